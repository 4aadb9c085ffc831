"""Fleet timing: when a device reports and how long it backs off (GSMA TS.34 §4.1, §4.3).

A fleet flashed and powered on together must not report in the same minute, and must not
retry in lock-step after a network outage. Both spreads are pseudo-random numbers drawn
from the device's identity (productKey/deviceKey), not from os.urandom: on the ESP32 the
hardware RNG is only truly random while the radio runs, and every device of a batch would
otherwise start from the same state after a power cut. The same identity always gives the
same offset, so a device keeps its slot across reboots, and two devices almost never share
one.

- offset_ms: the device's slot inside the report interval. With a set wall clock the
  device reports at the times t where (t - offset) is a multiple of the interval; without
  one it sleeps interval - elapsed, as before.
- backoff_ms: randomised exponential back-off, half fixed, half random ("equal jitter"):
  base * 2^(n-1) capped at cap, then scaled by 0.5..1.
- skip_cycles: the same spread counted in report cycles (the radio is skipped on that many
  wakes while readings are still queued).
"""
import hashlib

from micropython import const

_SCALE = const(0x1000000)  # 24-bit fractions: small ints on every port


def seed(*parts):
    """8 bytes naming this device: a hash of its identity strings."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else bytes(p))
        h.update(b"|")
    return h.digest()[:8]


def draw(seed_bytes, label, n=0):
    """A fraction 0 <= f < _SCALE (of _SCALE) for this device, label and counter."""
    d = hashlib.sha256(bytes(seed_bytes) + label + bytes((n & 0xFF, (n >> 8) & 0xFF))).digest()
    return (d[0] << 16) | (d[1] << 8) | d[2]


def offset_ms(seed_bytes, interval_ms):
    """The device's report slot inside the interval, 0 <= offset < interval_ms."""
    return draw(seed_bytes, b"offset") * interval_ms // _SCALE


def next_sleep_ms(interval_ms, elapsed_ms, offset, wall_ms=None, min_ms=1000):
    """Milliseconds to sleep so the next report lands in the device's slot.

    wall_ms: epoch milliseconds now, or None while the RTC is unset (then the interval
    counts from this cycle's start). A slot closer than min_ms is skipped for the next.
    """
    if wall_ms is None:
        return max(min_ms, interval_ms - elapsed_ms)
    wait = (offset - wall_ms) % interval_ms
    while wait < min_ms:
        wait += interval_ms
    return wait


def backoff_ms(seed_bytes, n, base_ms, cap_ms):
    """The n-th (1, 2, ...) randomised exponential back-off: base * 2^(n-1), at most cap,
    times 0.5..1 (drawn from the device identity and n)."""
    if n < 1:
        return 0
    d = base_ms << min(n - 1, 20)
    if d > cap_ms:
        d = cap_ms
    half = d // 2
    return half + draw(seed_bytes, b"backoff", n) * (d - half) // _SCALE


def skip_cycles(seed_bytes, n, cap):
    """Wakes without radio after the n-th failure in a row: a window of 2^(n-1) cycles
    (at most cap + 1), of which the device skips between half and all but one."""
    if n < 2:
        return 0
    w = 1 << min(n - 1, 15)
    if w > cap + 1:
        w = cap + 1
    lo = w // 2
    return lo + draw(seed_bytes, b"skip", n) * (w - lo) // _SCALE
