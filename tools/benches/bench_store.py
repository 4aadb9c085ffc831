"""Flash queue figures: power-cut simulation at the store level, flash bytes
written per report cycle (wear), and heap use in the MicroPython VM.

store.powercut.*: host_tests/test_store_powercut.py's seeded kills at every byte of appends, acks,
drops and deletes; lost and duplicated must be 0.
store.flash_bytes_per_cycle: bytes written for one 120-byte measurement queued and acked
(record + head slot), the figure that sets flash wear.
store.outage_days_default: days of 10-minute readings the default queue cap holds.
store.open_ms.N: opening a queue of N pending records on the MicroPython unix port (the head
holds counts and positions), against store.rebuild_ms.N, reading every record as every open
did before.
"""
import os
import random
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _flash_bytes_per_cycle():
    from host_tests.test_store_powercut import CutFs
    from enosnb.store import Store
    fs = CutFs(random.Random(0))
    s = Store("/q", fs=fs)
    record = b"x" * 120
    for _ in range(5):
        s.ack(s.append(record))
    before = fs.steps
    cycles = 100
    for _ in range(cycles):
        s.ack(s.append(record))
    return (fs.steps - before) / cycles


def _outage_days(record):
    """Days of 10-minute readings the default cap (a quarter of a 2 MiB LittleFS, as on a
    stock ESP32_GENERIC image) holds before the full policy acts."""
    import tempfile
    from enosnb.store import Store
    fs = _NoSyncFs()
    with tempfile.TemporaryDirectory() as tmp:
        s = Store(os.path.join(tmp, "q"), max_bytes=2 * 1024 * 1024 // 4, fs=fs)
        n = 0
        while not s.events:
            s.append(record)
            n += 1
    return (n - 1) / 144.0


class _NoSyncFs:
    def __init__(self):
        from enosnb.store import OsFs
        self.fs = OsFs()

    def sync(self):
        pass

    def __getattr__(self, name):
        return getattr(self.fs, name)


def main():
    from host_tests.test_store_powercut import run
    kills, lost, dup = run()
    print("store.powercut.kills: %d" % kills)
    print("store.powercut.lost: %d" % lost)
    print("store.powercut.duplicated: %d" % dup)
    print("store.record_overhead: 11 bytes")
    print("store.flash_bytes_per_cycle: %.1f bytes" % _flash_bytes_per_cycle())
    print("store.outage_days_default: %.0f days (the demo reading; a five-point reading: %.0f)"
          % (_outage_days(b'{"e":3,"p":{"temperature":21.5},"r":1764115200123}'),
             _outage_days(b'{"e":3,"p":{"humidity":40.5,"pressure":1013.2,"pm10":12,'
                          b'"pm25":8,"temperature":21.5},"r":1764115200123}')))
    import tempfile
    from enosnb.store import OsFs, Store
    record = b'{"l":3,"p":{"temperature":21.5},"r":1764115200123}'
    with tempfile.TemporaryDirectory() as tmp:
        args = []
        for n in (5000, 20000):
            d = os.path.join(tmp, "q%d" % n)
            s = Store(d, fs=OsFs())
            for _ in range(n + 1):
                s.append(record)
            s.ack(s.peek(1)[0][0])
            args += [d, str(n)]
        env = dict(os.environ, MICROPYPATH=os.path.join(ROOT, "firmware", "lib"))
        r = subprocess.run([os.path.join(ROOT, ".venv", "bin", "micropython"), "-X",
                            "heapsize=256k", os.path.join(ROOT, "tools", "benches",
                                                          "mp_store_open.py")] + args,
                           capture_output=True, text=True, timeout=600, env=env)
    if r.returncode:
        raise RuntimeError("mp_store_open failed: %s%s" % (r.stdout, r.stderr.strip()))
    sys.stdout.write(r.stdout)
    r = subprocess.run(["node", os.path.join(ROOT, "tools", "mpvm", "run.mjs"), "--script",
                        os.path.join(ROOT, "tools", "benches", "mpvm_store.py")],
                       capture_output=True, text=True, timeout=120)
    if r.returncode:
        raise RuntimeError("mpvm_store failed: %s" % r.stderr.strip())
    sys.stdout.write(r.stdout)


if __name__ == "__main__":
    for p in (os.path.join(ROOT, "firmware", "lib"), os.path.join(ROOT, "tools", "host"), ROOT):
        sys.path.insert(0, p)
    main()
