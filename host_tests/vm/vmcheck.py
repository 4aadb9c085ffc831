"""Tiny helpers for tests that run both under pytest (CPython) and in the MicroPython VM.

Tests in host_tests/vm/ are plain functions named test_* with plain asserts; they may not use
pytest fixtures. tools/mpvm/run.mjs runs the same modules inside MicroPython.
"""
import json

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
VECTORS = _HERE + "/../vectors"
CORPUS = _HERE + "/../corpus"


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception of exc_type it raised; fail if it raised none."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("expected %s from %r" % (exc_type.__name__, fn))


def load_vector(name):
    with open(VECTORS + "/" + name) as f:
        return json.load(f)


def unhex(s):
    import binascii
    return binascii.unhexlify(s.replace(" ", ""))


class VirtualClock:
    """A clock that moves only when told to: sleep_ms and advance() move it."""

    def __init__(self, start=0):
        self.now = start

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, a, delta):
        return a + delta

    def sleep_ms(self, n):
        if n > 0:
            self.now += n

    def advance(self, n):
        self.now += n
