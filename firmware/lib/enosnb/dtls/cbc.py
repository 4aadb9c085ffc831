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
    p = 15 - n % 16  # content, 32 bytes of MAC and p + 1 bytes of padding fill whole blocks
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
    # Every padding byte holds p; the last one is p itself. The scan covers the longest
    # padding (256 bytes) whatever p says, and a bad padding still pays for the MAC over
    # the longest content (p = 0), so timing tells nothing about where the check failed.
    bad = p + 33 > L
    scan = 256 if L > 256 else L
    for i in range(2, scan + 1):
        bad |= (P[L - i] ^ p) if i <= p + 1 else 0
    if bad:
        p = 0
    clen = L - 33 - p
    content = P[0:clen]
    tag = mac.mac(prefix, bytes((clen >> 8, clen & 0xFF)), content)
    if ct_equal(tag, P[clen:clen + 32]) and not bad:
        return content
    return None
