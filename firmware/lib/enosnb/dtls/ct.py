"""Constant-time comparison (dtls.md §10): MicroPython has no hmac.compare_digest."""


def ct_equal(a, b):
    """True when a and b hold the same bytes; time depends only on the (public) lengths."""
    if len(a) != len(b):
        return False
    acc = 0
    for i in range(len(a)):
        acc |= a[i] ^ b[i]
    return acc == 0
