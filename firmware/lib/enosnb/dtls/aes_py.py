"""Pure-Python AES-128 (FIPS 197) for ports without cryptolib, e.g. the MicroPython VM in tests.

Byte-oriented, so every intermediate stays a small int on 32-bit MicroPython (32-bit T-table
words would become heap-allocated long ints). The S-box, its inverse and the xtime table are
built once at import; round keys of the last key are cached, since a session uses the same
two keys for every record. Not constant-time: the device uses cryptolib (mbedTLS, hardware AES).
"""


def _tables():
    sbox = bytearray(256)
    inv = bytearray(256)
    x2 = bytearray(256)
    for i in range(256):
        x2[i] = ((i << 1) ^ 0x1B) & 0xFF if i & 0x80 else i << 1
    # Walk the multiplicative group with generator 3 to get inverses via exp/log.
    exp = bytearray(256)
    log = bytearray(256)
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x ^= x2[x]
    for i in range(256):
        b = exp[(255 - log[i]) % 255] if i else 0
        s = b
        for _ in range(4):
            b = ((b << 1) | (b >> 7)) & 0xFF
            s ^= b
        s ^= 0x63
        sbox[i] = s
        inv[s] = i
    return bytes(sbox), bytes(inv), bytes(x2)


_S, _SI, _X2 = _tables()
_cache = [None, None, None, None]


def _expand(key):
    # A session alternates between its two write keys: keep both schedules.
    if _cache[0] == key:
        return _cache[1]
    if _cache[2] == key:
        return _cache[3]
    if len(key) != 16:
        raise ValueError("AES-128 key must be 16 bytes")
    S = _S
    rk = bytearray(176)
    rk[0:16] = key
    rcon = 1
    for i in range(16, 176, 4):
        if i % 16 == 0:
            t0 = S[rk[i - 3]] ^ rcon
            t1 = S[rk[i - 2]]
            t2 = S[rk[i - 1]]
            t3 = S[rk[i - 4]]
            rcon = _X2[rcon]
        else:
            t0 = rk[i - 4]
            t1 = rk[i - 3]
            t2 = rk[i - 2]
            t3 = rk[i - 1]
        rk[i] = rk[i - 16] ^ t0
        rk[i + 1] = rk[i - 15] ^ t1
        rk[i + 2] = rk[i - 14] ^ t2
        rk[i + 3] = rk[i - 13] ^ t3
    _cache[2] = _cache[0]
    _cache[3] = _cache[1]
    _cache[0] = bytes(key)
    _cache[1] = rk
    return rk


def _enc(rk, b, o, out):
    # One statement per byte: a 4-tuple assignment would allocate a tuple on MicroPython.
    S = _S
    X = _X2
    s0 = b[o] ^ rk[0]
    s1 = b[o + 1] ^ rk[1]
    s2 = b[o + 2] ^ rk[2]
    s3 = b[o + 3] ^ rk[3]
    s4 = b[o + 4] ^ rk[4]
    s5 = b[o + 5] ^ rk[5]
    s6 = b[o + 6] ^ rk[6]
    s7 = b[o + 7] ^ rk[7]
    s8 = b[o + 8] ^ rk[8]
    s9 = b[o + 9] ^ rk[9]
    s10 = b[o + 10] ^ rk[10]
    s11 = b[o + 11] ^ rk[11]
    s12 = b[o + 12] ^ rk[12]
    s13 = b[o + 13] ^ rk[13]
    s14 = b[o + 14] ^ rk[14]
    s15 = b[o + 15] ^ rk[15]
    k = 16
    while k < 160:
        a0 = S[s0]
        a1 = S[s5]
        a2 = S[s10]
        a3 = S[s15]
        b0 = S[s4]
        b1 = S[s9]
        b2 = S[s14]
        b3 = S[s3]
        c0 = S[s8]
        c1 = S[s13]
        c2 = S[s2]
        c3 = S[s7]
        d0 = S[s12]
        d1 = S[s1]
        d2 = S[s6]
        d3 = S[s11]
        t = a0 ^ a1 ^ a2 ^ a3
        s0 = a0 ^ t ^ X[a0 ^ a1] ^ rk[k]
        s1 = a1 ^ t ^ X[a1 ^ a2] ^ rk[k + 1]
        s2 = a2 ^ t ^ X[a2 ^ a3] ^ rk[k + 2]
        s3 = a3 ^ t ^ X[a3 ^ a0] ^ rk[k + 3]
        t = b0 ^ b1 ^ b2 ^ b3
        s4 = b0 ^ t ^ X[b0 ^ b1] ^ rk[k + 4]
        s5 = b1 ^ t ^ X[b1 ^ b2] ^ rk[k + 5]
        s6 = b2 ^ t ^ X[b2 ^ b3] ^ rk[k + 6]
        s7 = b3 ^ t ^ X[b3 ^ b0] ^ rk[k + 7]
        t = c0 ^ c1 ^ c2 ^ c3
        s8 = c0 ^ t ^ X[c0 ^ c1] ^ rk[k + 8]
        s9 = c1 ^ t ^ X[c1 ^ c2] ^ rk[k + 9]
        s10 = c2 ^ t ^ X[c2 ^ c3] ^ rk[k + 10]
        s11 = c3 ^ t ^ X[c3 ^ c0] ^ rk[k + 11]
        t = d0 ^ d1 ^ d2 ^ d3
        s12 = d0 ^ t ^ X[d0 ^ d1] ^ rk[k + 12]
        s13 = d1 ^ t ^ X[d1 ^ d2] ^ rk[k + 13]
        s14 = d2 ^ t ^ X[d2 ^ d3] ^ rk[k + 14]
        s15 = d3 ^ t ^ X[d3 ^ d0] ^ rk[k + 15]
        k += 16
    out[o] = S[s0] ^ rk[160]
    out[o + 1] = S[s5] ^ rk[161]
    out[o + 2] = S[s10] ^ rk[162]
    out[o + 3] = S[s15] ^ rk[163]
    out[o + 4] = S[s4] ^ rk[164]
    out[o + 5] = S[s9] ^ rk[165]
    out[o + 6] = S[s14] ^ rk[166]
    out[o + 7] = S[s3] ^ rk[167]
    out[o + 8] = S[s8] ^ rk[168]
    out[o + 9] = S[s13] ^ rk[169]
    out[o + 10] = S[s2] ^ rk[170]
    out[o + 11] = S[s7] ^ rk[171]
    out[o + 12] = S[s12] ^ rk[172]
    out[o + 13] = S[s1] ^ rk[173]
    out[o + 14] = S[s6] ^ rk[174]
    out[o + 15] = S[s11] ^ rk[175]


def _dec(rk, b, o, out):
    S = _SI
    X = _X2
    s = bytearray(16)
    for i in range(16):
        s[i] = b[o + i] ^ rk[160 + i]
    k = 144
    while True:
        # InvShiftRows + InvSubBytes, then AddRoundKey.
        a0, a1, a2, a3 = S[s[0]] ^ rk[k], S[s[13]] ^ rk[k + 1], S[s[10]] ^ rk[k + 2], S[s[7]] ^ rk[k + 3]
        b0, b1, b2, b3 = S[s[4]] ^ rk[k + 4], S[s[1]] ^ rk[k + 5], S[s[14]] ^ rk[k + 6], S[s[11]] ^ rk[k + 7]
        c0, c1, c2, c3 = S[s[8]] ^ rk[k + 8], S[s[5]] ^ rk[k + 9], S[s[2]] ^ rk[k + 10], S[s[15]] ^ rk[k + 11]
        d0, d1, d2, d3 = S[s[12]] ^ rk[k + 12], S[s[9]] ^ rk[k + 13], S[s[6]] ^ rk[k + 14], S[s[3]] ^ rk[k + 15]
        if k == 0:
            break
        j = 0
        for w0, w1, w2, w3 in ((a0, a1, a2, a3), (b0, b1, b2, b3), (c0, c1, c2, c3),
                               (d0, d1, d2, d3)):
            # InvMixColumns = a pre-multiplication by (4x^2+5) folded into MixColumns.
            u = X[X[w0 ^ w2]]
            v = X[X[w1 ^ w3]]
            w0 ^= u
            w1 ^= v
            w2 ^= u
            w3 ^= v
            t = w0 ^ w1 ^ w2 ^ w3
            s[j] = w0 ^ t ^ X[w0 ^ w1]
            s[j + 1] = w1 ^ t ^ X[w1 ^ w2]
            s[j + 2] = w2 ^ t ^ X[w2 ^ w3]
            s[j + 3] = w3 ^ t ^ X[w3 ^ w0]
            j += 4
        k -= 16
    out[o:o + 16] = bytes((a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3))


def _check(data):
    if len(data) % 16:
        raise ValueError("AES data must be a multiple of 16 bytes")


def ecb_encrypt(key, data):
    _check(data)
    rk = _expand(key)
    out = bytearray(len(data))
    for o in range(0, len(data), 16):
        _enc(rk, data, o, out)
    return bytes(out)


def cbc_encrypt(key, iv, data):
    _check(data)
    rk = _expand(key)
    out = bytearray(len(data))
    blk = bytearray(iv)
    for o in range(0, len(data), 16):
        for i in range(16):
            blk[i] ^= data[o + i]
        _enc(rk, blk, 0, blk)
        out[o:o + 16] = blk
    return bytes(out)


def cbc_decrypt(key, iv, data):
    _check(data)
    rk = _expand(key)
    out = bytearray(len(data))
    prev = iv
    for o in range(0, len(data), 16):
        _dec(rk, data, o, out)
        for i in range(16):
            out[o + i] ^= prev[i]
        prev = data[o:o + 16]
    return bytes(out)


class AesKey:
    """One key's schedule, encrypting in place (the aes.AesKey interface; see aes.py)."""

    def __init__(self, key):
        self._rk = _expand(key)

    def ecb_in_place(self, buf):
        rk = self._rk
        for o in range(0, len(buf), 16):
            _enc(rk, buf, o, buf)

    def cbc_mac_in_place(self, buf):
        # CBC under a zero IV: the first block is encrypted as it is, each later one after
        # XORing in the ciphertext block just written before it.
        rk = self._rk
        _enc(rk, buf, 0, buf)
        for o in range(16, len(buf), 16):
            for i in range(o, o + 16):
                buf[i] ^= buf[i - 16]
            _enc(rk, buf, o, buf)
