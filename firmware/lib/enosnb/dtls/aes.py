"""AES-128 primitives for the record layer: ECB encrypt, CBC encrypt, CBC decrypt (dtls.md §10, §15.2).

The only platform shim of the DTLS package: cryptolib on MicroPython (ESP32 has modes 1 = ECB
and 2 = CBC only); the `cryptography` package on CPython (aes_cpython); else the pure-Python
AES of aes_py.
"AES-ECB and AES-CBC are all that is needed" (dtls.md §10), so all three backends offer the same
two forms:
- ecb_encrypt(key, data), cbc_encrypt(key, iv, data), cbc_decrypt(key, iv, data): a new
  object per call and a fresh output (CBC-SHA256 records, tests);
- AesKey(key), which CCM-8 uses on every record, one per session key made at the handshake:
  ecb_in_place(buf) encrypts every block of buf in one ECB call, and cbc_mac_in_place(buf)
  CBC-encrypts buf in one call as a new chain under a zero IV, so that its last block is the
  CBC-MAC. buf is a bytearray or a memoryview of one, a multiple of 16 bytes, and is
  overwritten: no output buffer is allocated. The ECB object holds no chaining state and is
  kept; a cryptolib CBC object keeps chaining across calls, so each CBC-MAC makes a new one.
"""
_ZERO_IV = bytes(16)

try:
    import cryptolib

    def ecb_encrypt(key, data):
        return cryptolib.aes(key, 1).encrypt(data)

    def cbc_encrypt(key, iv, data):
        return cryptolib.aes(key, 2, iv).encrypt(data)

    def cbc_decrypt(key, iv, data):
        return cryptolib.aes(key, 2, iv).decrypt(data)

    class AesKey:
        def __init__(self, key):
            self._key = bytes(key)
            self._ecb = cryptolib.aes(self._key, 1)

        def ecb_in_place(self, buf):
            self._ecb.encrypt(buf, buf)

        def cbc_mac_in_place(self, buf):
            cryptolib.aes(self._key, 2, _ZERO_IV).encrypt(buf, buf)

    BACKEND = "cryptolib"
except ImportError:
    # The host harness (CPython): a module of its own, so that its names are not interned
    # on a device, where this branch never runs.
    try:
        from enosnb.dtls.aes_cpython import ecb_encrypt, cbc_encrypt, cbc_decrypt, AesKey

        BACKEND = "cryptography"
    except ImportError:
        from enosnb.dtls.aes_py import ecb_encrypt, cbc_encrypt, cbc_decrypt, AesKey

        BACKEND = "python"
