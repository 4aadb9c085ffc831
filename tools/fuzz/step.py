"""One bounded step of `make fuzz`: inputs [start, start + count) of one parser, on whichever
runtime runs this file (the MicroPython unix port or CPython).

    step.py ROOT PARSER SEED START COUNT [trace]

Prints "at N" every 1000 inputs (the driver finds a hang from it), "escape N Error: text" for
each input that raised something outside its layer's errors (and writes the input to
host_tests/corpus/<dir>/crash-<crc>.bin), "slow N MS" for an input that took over a second, and
at the end "done COUNT SECONDS". With `trace` it prints "at N" before every input.
"""
import sys

ROOT = sys.argv[1]

for p in (ROOT + "/host_tests/vm", ROOT + "/firmware/lib", ROOT + "/tools/host", ROOT):
    if p not in sys.path:
        sys.path.insert(0, p)

try:
    from time import ticks_ms, ticks_diff
except ImportError:
    import time

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


def _save(corpus, data, kind):
    import binascii
    name = "%s-%08x.bin" % (kind, binascii.crc32(data) & 0xFFFFFFFF)
    d = ROOT + "/host_tests/corpus/" + corpus
    try:
        import os
        os.mkdir(d)
    except OSError:
        pass
    with open(d + "/" + name, "wb") as f:
        f.write(data)
    return name


def main(argv):
    name, seed, start, count = argv[2], int(argv[3]), int(argv[4]), int(argv[5])
    trace = "trace" in argv
    from tools.fuzz import engine, targets
    targets.ROOT = ROOT
    corpus, _files, allowed, _seeds, tokens, max_len, run = targets.TARGETS[name]
    seeds = targets.seeds_of(name)
    t0 = ticks_ms()
    for i in range(start, start + count):
        if trace or i % 1000 == 0:
            print("at", i)
        data = engine.input_for(seed, i, seeds, tokens, max_len)
        t = ticks_ms()
        try:
            run(data, i)
        except allowed:
            pass
        except Exception as e:  # noqa: BLE001 - an escape is what this looks for
            print("escape %d %s: %s [%s]" % (i, type(e).__name__, str(e)[:120],
                                             _save(corpus, data, "crash")))
        took = ticks_diff(ticks_ms(), t)
        if took > 1000:
            print("slow %d %d [%s]" % (i, took, _save(corpus, data, "slow")))
    print("done %d %d" % (count, ticks_diff(ticks_ms(), t0)))


if __name__ == "__main__":
    main(sys.argv)
