"""The three AES backends of enosnb.dtls.aes under pytest, each in fresh module copies.

backend(name) imports fresh copies of enosnb.dtls.aes, ccm and record with the platform made
to look like:
- "cryptolib": MicroPython with cryptolib (FakeCryptolibAes below installed as `cryptolib`);
- "cryptography": CPython with the `cryptography` package (the default here);
- "python": neither, so aes falls back to the pure-Python aes_py.
It restores sys.modules and the enosnb.dtls package's attributes afterwards, so nothing leaks
into other tests.

FakeCryptolibAes is `cryptolib.aes` built on `cryptography`, with ESP32's rules (dtls.md
§15.2): modes 1 (ECB) and 2 (CBC) only, a 16- or 32-byte key, a 16-byte IV for CBC, data a
multiple of 16 bytes, one object either encrypts or decrypts, a CBC object keeps chaining
across calls, encrypt(in, out) writes into out (which may be in) and returns it. Objects and
calls are logged in CALLS as ("new", mode) and ("encrypt" | "decrypt", mode, nbytes).
"""
import contextlib
import importlib
import sys
import types

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BACKENDS = ("cryptolib", "cryptography", "python")
CALLS = []
_FRESH = ("enosnb.dtls.aes", "enosnb.dtls.ccm", "enosnb.dtls.record")
_CRYPTOGRAPHY = "cryptography.hazmat.primitives.ciphers"
_CPYTHON = "enosnb.dtls.aes_cpython"  # aes's CPython backend, imported again with it


class FakeCryptolibAes:
    def __init__(self, key, mode, iv=None):
        if mode not in (1, 2):
            raise ValueError("mode")
        if len(key) not in (16, 32):
            raise ValueError("key")
        if mode == 2 and (iv is None or len(iv) != 16):
            raise ValueError("iv")
        self._mode = mode
        self._cipher = Cipher(algorithms.AES(bytes(key)),
                              modes.ECB() if mode == 1 else modes.CBC(bytes(iv)))
        self._ctx = None
        self._encrypting = None
        CALLS.append(("new", mode))

    def _run(self, encrypting, data, out):
        if self._encrypting is None:
            self._encrypting = encrypting
            self._ctx = self._cipher.encryptor() if encrypting else self._cipher.decryptor()
        elif self._encrypting != encrypting:
            raise ValueError("can't encrypt & decrypt")
        if len(data) % 16:
            raise ValueError("blksize % 16")
        CALLS.append(("encrypt" if encrypting else "decrypt", self._mode, len(data)))
        # One context per object: CBC chains on from the last block of the previous call.
        result = self._ctx.update(bytes(data))
        if out is None:
            return result
        if len(out) < len(data):
            raise ValueError("output too small")
        memoryview(out)[0:len(result)] = result
        return out

    def encrypt(self, data, out=None):
        return self._run(True, data, out)

    def decrypt(self, data, out=None):
        return self._run(False, data, out)


def fake_cryptolib():
    """A `cryptolib` module object whose aes is FakeCryptolibAes."""
    m = types.ModuleType("cryptolib")
    m.aes = FakeCryptolibAes
    return m


@contextlib.contextmanager
def backend(name):
    """Yields fresh (aes, ccm, record) modules running on the named backend."""
    import enosnb.dtls as pkg
    names = ("cryptolib", _CRYPTOGRAPHY, _CPYTHON) + _FRESH
    saved = {n: sys.modules.get(n) for n in names}
    attrs = {n: getattr(pkg, n.rsplit(".", 1)[1], None) for n in _FRESH + (_CPYTHON,)}
    try:
        # A None entry in sys.modules makes `import` of that name raise ImportError.
        sys.modules["cryptolib"] = fake_cryptolib() if name == "cryptolib" else None
        if name == "python":
            sys.modules[_CRYPTOGRAPHY] = None
        for n in _FRESH + (_CPYTHON,):
            sys.modules.pop(n, None)
        mods = tuple(importlib.import_module(n) for n in _FRESH)
        assert mods[0].BACKEND == name, mods[0].BACKEND
        yield mods
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m
        for n, m in attrs.items():
            setattr(pkg, n.rsplit(".", 1)[1], m)
        del CALLS[:]
