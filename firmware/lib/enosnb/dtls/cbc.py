"""AES-128-CBC with HMAC-SHA256, MAC-then-encrypt (RFC 5246 §6.2.3.2, RFC 5487), dtls.md §11.

Receiving checks padding and MAC without data-dependent early exits and gives one and the same
"invalid" answer (None) whichever check failed. `prefix` is the MAC input before the 2-byte
length: epoch | seq | type | version (or the RFC 9146 §5.1 form with a connection ID).
"""
from enosnb.dtls import aes
from enosnb.dtls.ct import ct_equal

MAC_LEN = 32


def seal(mac, key, iv, prefix, content):
    """IV | CBC(content | MAC | padding); mac is an HmacSha256 under the MAC write key."""
    n = len(content)
    tag = mac.mac(prefix, bytes((n >> 8, n & 0xFF)), content)
    p = 15 - (n + 32) % 16
    pt = bytearray(n + 33 + p)
    pt[0:n] = content
    pt[n:n + 32] = tag
    for i in range(n + 32, len(pt)):
        pt[i] = p
    return bytes(iv) + aes.cbc_encrypt(key, iv, pt)


def open(mac, key, prefix, fragment):
    """The content of a protected fragment, or None when padding or MAC is wrong."""
    flen = len(fragment)
    if flen < 64 or flen % 16:
        return None
    P = aes.cbc_decrypt(key, bytes(fragment[0:16]), bytes(fragment[16:]))
    L = len(P)
    p = P[L - 1]
    good = 1 if p + 33 <= L else 0
    bad = 0
    scan = 256 if L > 256 else L
    for i in range(1, scan + 1):
        in_pad = 1 if i <= p + 1 else 0
        bad |= in_pad * (P[L - i] ^ p)
    if bad:
        good = 0
    if not good:
        p = 0
    clen = L - 32 - (p + 1)
    if clen < 0:
        clen = 0
        good = 0
    content = P[0:clen]
    tag = mac.mac(prefix, bytes((clen >> 8, clen & 0xFF)), content)
    ok = ct_equal(tag, P[clen:clen + 32])
    if ok and good:
        return content
    return None
