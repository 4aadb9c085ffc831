"""AES-128-CCM with an 8-byte tag (CCM-8) from AES-ECB and AES-CBC only (dtls.md §10).

RFC 3610 with M = 8, L = 3 and a 12-byte nonce, as RFC 6655 uses it for TLS. ESP32 cryptolib
has no CTR mode, and "AES-ECB and AES-CBC are all that is needed": every record costs exactly
two AES calls, so the per-block work runs in C (mbedTLS, hardware AES) rather than in Python:
- the key stream: all counter blocks A_0 .. A_m of the record encrypted by ONE ECB call;
- the CBC-MAC: ONE CBC encryption, a new chain under a zero IV, of B_0 | AAD | plaintext;
  T is the first 8 bytes of its last block.

Why Ccm8 keeps two scratch buffers: every report seals one record and opens one, and on the
device a heap block is only reclaimed by a garbage collection. So a Ccm8 (one per session key,
made at the handshake) owns the counter blocks, which ECB turns into the key stream in place,
and the CBC-MAC input, which CBC encrypts in place. Both are sized for the largest record of a
512-byte modem datagram (dtls.md §10 Buffers) and grow if a larger record comes (the host
endpoint's MTU is 1280). Nothing a caller receives aliases them, and each call rewrites every
byte of them it reads.
"""
from micropython import const

from enosnb.dtls import aes

TAG_LEN = const(8)
# A 512-byte datagram carries at most 483 bytes of record plaintext, so m <= 31 (dtls.md §10).
_MAX_PLAINTEXT = const(483)
_DTLS_AAD_LEN = const(13)


def _padded(n):
    """n rounded up to whole 16-byte blocks."""
    return (n + 15) & ~15


def _aad_blocks(la):
    """Bytes of the AAD blocks: its 2-byte length and the AAD, zero-padded; none without AAD."""
    return _padded(2 + la) if la else 0


class Ccm8:
    """CCM-8 under one key. seal_into() writes ciphertext | tag into the caller's buffer;
    open() returns a fresh bytes plaintext or None."""

    def __init__(self, key):
        self._aes = aes.AesKey(key)
        self._ctr = self._mac = b""
        self._room(_MAX_PLAINTEXT, _DTLS_AAD_LEN)

    def _room(self, n, la):
        """Grows the scratch buffers, if needed, to fit n bytes of plaintext and la of AAD."""
        size = 16 + _padded(n)
        if len(self._ctr) < size:
            self._ctr = bytearray(size)
            self._ctr_mv = memoryview(self._ctr)
        size = 16 + _aad_blocks(la) + _padded(n)
        if len(self._mac) < size:
            self._mac = bytearray(size)
            self._mac_mv = memoryview(self._mac)

    def _keystream(self, nonce, n):
        """S_0 | S_1 | .. | S_m = E(A_0 | A_1 | .. | A_m) at the start of _ctr, in one ECB call.

        The previous record's ECB overwrote the blocks, so every byte is written again; within
        a record only the 3-byte counter differs from block to block.
        """
        end = 16 + _padded(n)
        c = self._ctr
        i = 0
        for o in range(0, end, 16):
            c[o] = 0x02  # flags: L' = 2 (3-byte counter)
            c[o + 1:o + 13] = nonce
            c[o + 13] = (i >> 16) & 0xFF
            c[o + 14] = (i >> 8) & 0xFF
            c[o + 15] = i & 0xFF
            i += 1
        self._aes.ecb_in_place(c if end == len(c) else self._ctr_mv[0:end])
        return c

    def _mac_head(self, nonce, aad, n):
        """Writes B_0 and the AAD blocks into _mac and zeroes the plaintext's padding; returns
        the offset p0 at which the caller writes the n plaintext bytes before _cbc_mac(p0 + n)."""
        la = len(aad)
        p0 = 16 + _aad_blocks(la)
        b = self._mac
        # B_0 flags: Adata (0x40, DTLS always has AAD), M' = 3 (8-byte tag), L' = 2.
        b[0] = 0x5A if la else 0x1A
        b[1:13] = nonce
        b[13] = (n >> 16) & 0xFF
        b[14] = (n >> 8) & 0xFF
        b[15] = n & 0xFF
        if la:
            b[16] = la >> 8
            b[17] = la & 0xFF
            b[18:18 + la] = aad
            for i in range(18 + la, p0):
                b[i] = 0
        for i in range(p0 + n, p0 + _padded(n)):
            b[i] = 0
        return p0

    def _cbc_mac(self, end):
        """CBC-encrypts _mac[0:end] in place (one call, a new chain); where T starts."""
        end = _padded(end)
        b = self._mac
        self._aes.cbc_mac_in_place(b if end == len(b) else self._mac_mv[0:end])
        return end - 16

    def seal_into(self, nonce, aad, pt, out, pos):
        """Writes ciphertext | tag of pt at out[pos:]; returns the end position."""
        n = len(pt)
        self._room(n, len(aad))
        s = self._keystream(nonce, n)
        p0 = self._mac_head(nonce, aad, n)
        b = self._mac
        b[p0:p0 + n] = pt
        t = self._cbc_mac(p0 + n)
        for k in range(n):
            out[pos + k] = pt[k] ^ s[16 + k]
        pos += n
        for k in range(TAG_LEN):
            out[pos + k] = b[t + k] ^ s[k]
        return pos + TAG_LEN

    def open(self, nonce, aad, data):
        """The plaintext (bytes) of ciphertext | tag, or None when it does not authenticate."""
        n = len(data) - TAG_LEN
        if n < 0:
            return None
        self._room(n, len(aad))
        s = self._keystream(nonce, n)
        p0 = self._mac_head(nonce, aad, n)
        b = self._mac
        for k in range(n):
            b[p0 + k] = data[k] ^ s[16 + k]
        # Taken before the in-place CBC-MAC overwrites it; handed out only if the tag matches.
        pt = bytes(self._mac_mv[p0:p0 + n])
        t = self._cbc_mac(p0 + n)
        # Constant-time tag check (dtls.md §10): no early exit on the first differing byte.
        acc = 0
        for k in range(TAG_LEN):
            acc |= b[t + k] ^ s[k] ^ data[n + k]
        if acc:
            return None
        return pt


def seal(key, nonce, aad, plaintext):
    """ciphertext | tag for a 12-byte nonce; aad shorter than 0xFF00 bytes."""
    out = bytearray(len(plaintext) + TAG_LEN)
    Ccm8(key).seal_into(nonce, aad, plaintext, out, 0)
    return bytes(out)


def open(key, nonce, aad, data):
    """The plaintext of ciphertext | tag, or None when it does not authenticate."""
    return Ccm8(key).open(nonce, aad, data)
