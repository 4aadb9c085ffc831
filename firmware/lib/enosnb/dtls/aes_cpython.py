"""AES-128 for the record layer on CPython (the host harness): the `cryptography` package, in
the forms enosnb.dtls.aes describes. That module picks it where there is no cryptolib; a
device never loads it.
"""
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_ZERO_IV = bytes(16)


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
    # update_into() wants 15 spare bytes after its output, so the scratch would have to be
    # oversized for CPython's sake: copy update()'s result back instead.
    def __init__(self, key):
        self._alg = algorithms.AES(bytes(key))
        self._ecb = Cipher(self._alg, modes.ECB()).encryptor()

    def ecb_in_place(self, buf):
        buf[:] = self._ecb.update(buf)

    def cbc_mac_in_place(self, buf):
        buf[:] = Cipher(self._alg, modes.CBC(_ZERO_IV)).encryptor().update(buf)
