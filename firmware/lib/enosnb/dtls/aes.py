"""AES-128 primitives for the record layer: ECB encrypt, CBC encrypt, CBC decrypt (spec §10, §15.2).

The only platform shim of the DTLS package: cryptolib on MicroPython (ESP32 has modes 1 = ECB
and 2 = CBC only, and a CBC object keeps chaining, so every call makes a new object); the
`cryptography` package on CPython; else the pure-Python AES of aes_py.
"""
try:
    import cryptolib

    def ecb_encrypt(key, data):
        return cryptolib.aes(key, 1).encrypt(data)

    def cbc_encrypt(key, iv, data):
        return cryptolib.aes(key, 2, iv).encrypt(data)

    def cbc_decrypt(key, iv, data):
        return cryptolib.aes(key, 2, iv).decrypt(data)

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

        BACKEND = "cryptography"
    except ImportError:
        from enosnb.dtls.aes_py import ecb_encrypt, cbc_encrypt, cbc_decrypt

        BACKEND = "python"
