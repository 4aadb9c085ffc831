"""AES-128-CCM with an 8-byte tag (CCM-8) from AES-ECB and AES-CBC only (spec/dtls.md §10).

RFC 3610 with M = 8, L = 3 and a 12-byte nonce, as RFC 6655 uses it for TLS. The key stream is
all counter blocks of a record in one ECB call; the CBC-MAC is the last block of one CBC
encryption under a zero IV. No CTR mode is needed (ESP32 cryptolib has none).
"""
from enosnb.dtls import aes
from enosnb.dtls.ct import ct_equal

TAG_LEN = 8
_ZERO_IV = bytes(16)


def _keystream(key, nonce, n):
    m = (n + 15) // 16
    ctr = bytearray(16 * (m + 1))
    for i in range(m + 1):
        o = 16 * i
        ctr[o] = 0x02
        ctr[o + 1:o + 13] = nonce
        ctr[o + 13] = (i >> 16) & 0xFF
        ctr[o + 14] = (i >> 8) & 0xFF
        ctr[o + 15] = i & 0xFF
    return aes.ecb_encrypt(key, ctr)


def _cbc_mac(key, nonce, aad, pt):
    n = len(pt)
    la = len(aad)
    alen = (2 + la + 15) // 16 * 16 if la else 0
    buf = bytearray(16 + alen + (n + 15) // 16 * 16)
    # Flags: Adata (0x40, DTLS always has AAD), M' = 3 (8-byte tag), L' = 2 (3-byte length).
    buf[0] = 0x5A if la else 0x1A
    buf[1:13] = nonce
    buf[13] = (n >> 16) & 0xFF
    buf[14] = (n >> 8) & 0xFF
    buf[15] = n & 0xFF
    if la:
        buf[16] = la >> 8
        buf[17] = la & 0xFF
        buf[18:18 + la] = aad
    buf[16 + alen:16 + alen + n] = pt
    x = aes.cbc_encrypt(key, _ZERO_IV, buf)
    return x[len(x) - 16:len(x) - 8]


def seal(key, nonce, aad, plaintext):
    """ciphertext | tag for a 12-byte nonce; aad shorter than 0xFF00 bytes."""
    n = len(plaintext)
    s = _keystream(key, nonce, n)
    t = _cbc_mac(key, nonce, aad, plaintext)
    out = bytearray(n + TAG_LEN)
    for i in range(n):
        out[i] = plaintext[i] ^ s[16 + i]
    for i in range(TAG_LEN):
        out[n + i] = t[i] ^ s[i]
    return bytes(out)


def open(key, nonce, aad, data):
    """The plaintext of ciphertext | tag, or None when it does not authenticate."""
    n = len(data) - TAG_LEN
    if n < 0:
        return None
    s = _keystream(key, nonce, n)
    pt = bytearray(n)
    for i in range(n):
        pt[i] = data[i] ^ s[16 + i]
    t = _cbc_mac(key, nonce, aad, pt)
    exp = bytearray(TAG_LEN)
    for i in range(TAG_LEN):
        exp[i] = t[i] ^ s[i]
    if not ct_equal(exp, data[n:]):
        return None
    return bytes(pt)
