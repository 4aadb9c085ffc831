"""The ESP32's cryptolib.aes (modes 1 = ECB, 2 = CBC) for the RAM runs in the WebAssembly VM,
which has no cryptolib: without it the firmware would load its pure-Python AES, which the
device never runs. The block cipher itself runs in the host (tools/budget/ram_vm.mjs, _aesjs).

Heap, as the device pays it: each aes object carries OBJECT_BYTES, the size of MicroPython's
aes object with a software mbedtls_aes_context (the larger of the ESP32's two builds; with the
hardware AES context it is about 48 bytes); an in-place call leaves its input's size of garbage
here, where the device leaves none, so the figures err high by one record per AES call.
"""
import _aesjs

OBJECT_BYTES = 288


class aes:
    def __init__(self, key, mode, iv=None):
        if mode not in (1, 2):
            raise ValueError("mode")
        self._ctx = bytearray(OBJECT_BYTES - 32)
        self._key = bytes(key)
        self._mode = mode
        self._iv = bytes(iv) if iv is not None else bytes(16)

    def _run(self, decrypt, data, out):
        r = bytes(_aesjs.run(self._key, self._mode, self._iv, bytes(data), decrypt))
        if self._mode == 2:
            self._iv = bytes(data[-16:]) if decrypt else r[-16:]
        if out is None:
            return r
        out[:] = r
        return None

    def encrypt(self, data, out=None):
        return self._run(False, data, out)

    def decrypt(self, data, out=None):
        return self._run(True, data, out)
