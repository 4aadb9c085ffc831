"""Clock shim: ticks_ms, ticks_diff, ticks_add and sleep_ms on MicroPython and CPython.

Layers never read the time themselves: they take a clock object with these three methods,
so tests can pass a virtual clock. SYSTEM is the real one.
"""
import time


class SystemClock:
    """Monotonic milliseconds: time.ticks_* on MicroPython, time.monotonic on CPython."""

    if hasattr(time, "ticks_ms"):
        def ticks_ms(self):
            return time.ticks_ms()

        def ticks_diff(self, a, b):
            return time.ticks_diff(a, b)

        def ticks_add(self, a, delta):
            return time.ticks_add(a, delta)

        def sleep_ms(self, n):
            time.sleep_ms(n)
    else:
        def ticks_ms(self):
            return int(time.monotonic() * 1000)

        def ticks_diff(self, a, b):
            return a - b

        def ticks_add(self, a, delta):
            return a + delta

        def sleep_ms(self, n):
            if n > 0:
                time.sleep(n / 1000)


SYSTEM = SystemClock()
