"""The ESP32's cryptolib.aes (modes 1 = ECB, 2 = CBC) for the RAM runs in the WebAssembly VM,
which has no cryptolib: without it the firmware would load its pure-Python AES, which the
device never runs. The block cipher itself runs in the host (tools/budget/ram_vm.mjs, _aesjs).

Heap, as the device pays it: each aes object carries OBJECT_BYTES, the size of MicroPython's
aes object with a software mbedtls_aes_context (the larger of the ESP32's two builds; with the
hardware AES context it is about 48 bytes). Only addresses and lengths cross into the host,
which reads and writes the VM's memory in place: an in-place call allocates nothing, as on the
device, and no object is handed to the host (an object passed to a host function stays
referenced by the VM's proxy table until the host collects it, which it never does during a
run: every AES call would leave its arguments live).
"""
import _aesjs
from uctypes import addressof

OBJECT_BYTES = 288


class aes:
    def __init__(self, key, mode, iv=None):
        if mode not in (1, 2):
            raise ValueError("mode")
        if len(key) != 16:
            raise ValueError("key")
        # key (16) + IV (16) + the rest of the context, as one object's worth of heap.
        self._ctx = bytearray(OBJECT_BYTES)
        self._ctx[0:16] = key
        if iv is not None:
            self._ctx[16:32] = iv
        self._mode = mode

    def _run(self, decrypt, data, out):
        n = len(data)
        if n % 16:
            raise ValueError("blksize")
        ret = out is None
        if ret:
            out = bytearray(n)
        elif len(out) < n:
            raise ValueError("output too small")
        if n:
            _aesjs.run(addressof(self._ctx), self._mode, addressof(data), n, addressof(out),
                       1 if decrypt else 0)
        return bytes(out) if ret else None

    def encrypt(self, data, out=None):
        return self._run(False, data, out)

    def decrypt(self, data, out=None):
        return self._run(True, data, out)
