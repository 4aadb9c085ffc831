"""Randomness shim: every random byte the firmware uses comes from urandom() here.

On the ESP32 this is os.urandom (the hardware RNG; see docs/real-board.md on entropy with the radio
off), on CPython os.urandom too. The MicroPython WebAssembly VM used in tests has no
os.urandom: its runner installs the host's CSPRNG in this module's place.
"""
try:
    from os import urandom
except ImportError:
    def urandom(n):
        raise OSError("no random source: this port has no os.urandom")
