"""AES-128-CCM with an 8-byte tag (CCM-8) from AES-ECB only (spec/dtls.md §10).

RFC 3610 with M = 8, L = 3 and a 12-byte nonce, as RFC 6655 uses it for TLS. No CTR mode is
needed (ESP32 cryptolib has none): the key stream is counter blocks encrypted with ECB, the
CBC-MAC is chained block by block (aes.AesKey.cbc_mac).

Why Ccm8 keeps scratch buffers: every report seals one record and opens one, and on the
device a heap block is only reclaimed by a garbage collection. So a Ccm8 (one per session key,
made at the handshake) owns a few blocks that every record reuses: the counter blocks, which
ECB turns into key stream in place, the CBC-MAC input, the CBC-MAC value and S_0. Records are
processed _CHUNK bytes at a time, so the scratch does not grow with the record. Nothing a
caller receives aliases the scratch, and each call rewrites all of it before reading it.
"""
from micropython import const

from enosnb.dtls import aes

TAG_LEN = const(8)
_CHUNK = const(64)  # bytes of key stream and of MAC input per AES call; a multiple of 16
_ZERO16 = bytes(16)


class Ccm8:
    """CCM-8 under one key. seal_into() writes ciphertext | tag into the caller's buffer;
    open() returns a fresh bytes plaintext or None."""

    def __init__(self, key):
        self._aes = aes.AesKey(key)
        self._ks = bytearray(_CHUNK)
        self._mac_in = bytearray(_CHUNK)
        self._x = bytearray(16)
        self._s0 = bytearray(16)

    def _begin(self, nonce, aad, n):
        """S_0 = E(A_0), and the CBC-MAC over B_0 and aad."""
        s0 = self._s0
        s0[0] = 0x02  # flags: L' = 2 (3-byte counter)
        s0[1:13] = nonce
        s0[13] = s0[14] = s0[15] = 0
        self._aes.ecb_in_place(s0)
        b = self._mac_in
        la = len(aad)
        # B_0 flags: Adata (0x40, DTLS always has AAD), M' = 3 (8-byte tag), L' = 2.
        b[0] = 0x5A if la else 0x1A
        b[1:13] = nonce
        b[13] = (n >> 16) & 0xFF
        b[14] = (n >> 8) & 0xFF
        b[15] = n & 0xFF
        x = self._x
        x[0:16] = _ZERO16
        self._mac(16)
        if la:
            b[0] = la >> 8
            b[1] = la & 0xFF
            f = 2
            for i in range(la):
                if f == _CHUNK:
                    self._mac(f)
                    f = 0
                b[f] = aad[i]
                f += 1
            self._mac(f)

    def _mac(self, m):
        """Runs the CBC-MAC over the first m bytes of _mac_in, zero-padded to a block."""
        b = self._mac_in
        end = (m + 15) & ~15
        for i in range(m, end):
            b[i] = 0
        self._aes.cbc_mac(self._x, b, end)

    def _keystream(self, nonce, ctr, m):
        """_ks[0:m] = key stream blocks S_ctr, S_ctr+1, ... covering m bytes."""
        ks = self._ks
        end = (m + 15) & ~15
        for o in range(0, end, 16):
            ks[o] = 0x02
            ks[o + 1:o + 13] = nonce
            ks[o + 13] = (ctr >> 16) & 0xFF
            ks[o + 14] = (ctr >> 8) & 0xFF
            ks[o + 15] = ctr & 0xFF
            ctr += 1
        self._aes.ecb_in_place(ks if end == _CHUNK else memoryview(ks)[0:end])

    def seal_into(self, nonce, aad, pt, out, pos):
        """Writes ciphertext | tag of pt at out[pos:]; returns the end position."""
        n = len(pt)
        self._begin(nonce, aad, n)
        ks = self._ks
        b = self._mac_in
        i = 0
        while i < n:
            m = n - i if n - i < _CHUNK else _CHUNK
            self._keystream(nonce, 1 + i // 16, m)
            for k in range(m):
                p = pt[i + k]
                b[k] = p
                out[pos + i + k] = p ^ ks[k]
            self._mac(m)
            i += m
        x = self._x
        s0 = self._s0
        pos += n
        for k in range(TAG_LEN):
            out[pos + k] = x[k] ^ s0[k]
        return pos + TAG_LEN

    def open(self, nonce, aad, data):
        """The plaintext (bytes) of ciphertext | tag, or None when it does not authenticate."""
        n = len(data) - TAG_LEN
        if n < 0:
            return None
        self._begin(nonce, aad, n)
        pt = bytearray(n)
        ks = self._ks
        b = self._mac_in
        i = 0
        while i < n:
            m = n - i if n - i < _CHUNK else _CHUNK
            self._keystream(nonce, 1 + i // 16, m)
            for k in range(m):
                p = data[i + k] ^ ks[k]
                b[k] = p
                pt[i + k] = p
            self._mac(m)
            i += m
        # Constant-time tag check (spec §10): no early exit on the first differing byte.
        x = self._x
        s0 = self._s0
        acc = 0
        for k in range(TAG_LEN):
            acc |= x[k] ^ s0[k] ^ data[n + k]
        if acc:
            return None
        return bytes(pt)


def seal(key, nonce, aad, plaintext):
    """ciphertext | tag for a 12-byte nonce; aad shorter than 0xFF00 bytes."""
    out = bytearray(len(plaintext) + TAG_LEN)
    Ccm8(key).seal_into(nonce, aad, plaintext, out, 0)
    return bytes(out)


def open(key, nonce, aad, data):
    """The plaintext of ciphertext | tag, or None when it does not authenticate."""
    return Ccm8(key).open(nonce, aad, data)
