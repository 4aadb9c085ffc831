"""Runs on the MicroPython unix port (bench_store.py fills the queues with CPython, in the same
on-flash format, then starts this): how long opening a queue of N pending records takes,
against rebuilding it from every segment (what every open cost before the head kept counts
and positions). Prints `name: value unit` lines.

    micropython tools/benches/mp_store_open.py <queue dir> <records> [<queue dir> <records>...]
"""
import os
import sys
import time

from enosnb.store import Store


def _ms(fn, repeat):
    best = None
    for _ in range(repeat):
        t = time.ticks_us()
        fn()
        dt = time.ticks_diff(time.ticks_us(), t)
        best = dt if best is None or dt < best else best
    return best / 1000


def main(args):
    for i in range(0, len(args), 2):
        d, n = args[i], int(args[i + 1])
        opened = []
        ms = _ms(lambda: opened.append(Store(d)), 5)
        assert len(opened[-1]) == n
        print("store.open_ms.%d: %.2f ms" % (n, ms))

        def rebuild():
            for slot in (0, 1):
                try:
                    os.remove(d + "/h%d" % slot)
                except OSError:
                    pass
            opened.append(Store(d))
        print("store.rebuild_ms.%d: %.1f ms (every record read, as every open did before)"
              % (n, _ms(rebuild, 1)))
        assert len(opened[-1]) >= n  # without a head the acknowledged first record is back


main(sys.argv[1:])
