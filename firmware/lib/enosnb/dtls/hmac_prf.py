"""HMAC-SHA256 (RFC 2104) and the TLS 1.2 PRF P_SHA256 (RFC 5246 §5), dtls.md §9.1.

MicroPython's sha256 has neither copy() nor a second digest(), so each MAC builds two fresh
hash objects from the two key pads, computed once per key.
"""
from hashlib import sha256



def _pads(key):
    if len(key) > 64:
        key = sha256(key).digest()
    ipad = bytearray(64)
    opad = bytearray(64)
    for i in range(64):
        k = key[i] if i < len(key) else 0
        ipad[i] = k ^ 0x36
        opad[i] = k ^ 0x5C
    return ipad, opad


class HmacSha256:
    """HMAC-SHA256 under one key; mac(*parts) hashes the parts as if concatenated."""

    def __init__(self, key):
        self._ipad, self._opad = _pads(key)

    def mac(self, *parts):
        h = sha256(self._ipad)
        for p in parts:
            h.update(p)
        inner = h.digest()
        h = sha256(self._opad)
        h.update(inner)
        return h.digest()

    def __repr__(self):
        return "<HmacSha256>"


def hmac_sha256(key, *parts):
    return HmacSha256(key).mac(*parts)


def prf(secret, label, seed, n):
    """The first n bytes of P_SHA256(secret, label | seed); label is ASCII bytes."""
    h = HmacSha256(secret)
    a = h.mac(label, seed)                 # A(1)
    out = bytearray(h.mac(a, label, seed))
    while len(out) < n:
        a = h.mac(a)                       # A(i + 1) = HMAC(A(i))
        out += h.mac(a, label, seed)
    return bytes(out[:n])


def sha256_of(data):
    return sha256(data).digest()
