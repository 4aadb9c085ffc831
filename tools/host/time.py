"""The ESP32's time module as the firmware sees it at boot, on the unix port.

On the ESP32 `time.ticks_ms()` counts from the chip's start, so main.py's first reading of it
is the boot time it reports (`phases (ms): boot`). The unix port counts from the host's
(CLOCK_MONOTONIC), hours or days. tools/host/mpboot.py imports this module first: it is the
built-in module with ticks_ms() counted from the process start (MicroPython lets a module of
the same name extend a built-in one; `utime` names the built-in itself).
"""
import utime
from utime import *  # noqa: F401,F403

_START = utime.ticks_ms()
_MASK = 0x3FFFFFFF  # TICKS_MAX: the ticks wrap as the device's do


def ticks_ms():
    return utime.ticks_diff(utime.ticks_ms(), _START) & _MASK
