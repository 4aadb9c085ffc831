"""AES-128 primitives for the record layer: ECB encrypt, CBC encrypt, CBC decrypt (spec §10, §15.2).

The only platform shim of the DTLS package: cryptolib on MicroPython (ESP32 has modes 1 = ECB
and 2 = CBC only, and a CBC object keeps chaining, so every call makes a new object); the
`cryptography` package on CPython; else the pure-Python AES of aes_py.

AesKey(key) is the allocation-free form CCM uses on every record: one object per session key,
made at the handshake, that encrypts blocks in place (ecb_in_place) and advances a CBC-MAC
chaining value over the first n bytes of a buffer (cbc_mac). An ECB object holds no chaining
state, so unlike a CBC one it can be kept and reused: a warm report then allocates no AES
objects or output buffers at all.
"""
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
            self._ecb = cryptolib.aes(key, 1)

        def ecb_in_place(self, buf):
            """Encrypts buf (a multiple of 16 bytes, bytearray or memoryview) in place."""
            self._ecb.encrypt(buf, buf)

        def cbc_mac(self, x, buf, n):
            """x = E(x ^ block) for each 16-byte block of buf[0:n]; x is a 16-byte bytearray."""
            enc = self._ecb.encrypt
            for o in range(0, n, 16):
                for i in range(16):
                    x[i] ^= buf[o + i]
                enc(x, x)

    BACKEND = "cryptolib"
except ImportError:
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        def ecb_encrypt(key, data):
            e = Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()
            return e.update(bytes(data)) + e.finalize()

        def cbc_encrypt(key, iv, data):
            e = Cipher(algorithms.AES(bytes(key)), modes.CBC(bytes(iv))).encryptor()
            return e.update(bytes(data)) + e.finalize()

        def cbc_decrypt(key, iv, data):
            d = Cipher(algorithms.AES(bytes(key)), modes.CBC(bytes(iv))).decryptor()
            return d.update(bytes(data)) + d.finalize()

        class AesKey:
            # CPython allocates freely; these keep the AesKey interface, not its thrift.
            def __init__(self, key):
                self._ecb = Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()

            def ecb_in_place(self, buf):
                buf[:] = self._ecb.update(buf)

            def cbc_mac(self, x, buf, n):
                # Block by block on the kept ECB object: a new CBC Cipher per call costs
                # more on CPython than the whole rest of a record.
                upd = self._ecb.update
                v = bytes(x)
                for o in range(0, n, 16):
                    v = upd((int.from_bytes(v, "big")
                             ^ int.from_bytes(buf[o:o + 16], "big")).to_bytes(16, "big"))
                x[:] = v

        BACKEND = "cryptography"
    except ImportError:
        from enosnb.dtls.aes_py import ecb_encrypt, cbc_encrypt, cbc_decrypt, AesKey

        BACKEND = "python"
