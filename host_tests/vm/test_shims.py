from enosnb import rng
from enosnb.clock import SYSTEM


def test_urandom_gives_fresh_bytes_of_the_asked_length():
    a, b = rng.urandom(16), rng.urandom(16)
    assert len(a) == 16 and len(b) == 16
    assert a != b


def test_system_clock_is_monotonic():
    t0 = SYSTEM.ticks_ms()
    SYSTEM.sleep_ms(2)
    assert SYSTEM.ticks_diff(SYSTEM.ticks_ms(), t0) >= 1
