"""Flash queue figures: power-cut simulation at the store level, flash bytes
written per report cycle (wear), and heap use in the MicroPython VM.

store.powercut.*: host_tests/test_store_powercut.py's seeded kills at every byte of appends, acks,
drops and deletes; lost and duplicated must be 0.
store.flash_bytes_per_cycle: bytes written for one 120-byte measurement queued and acked
(record + head slot), the figure that sets flash wear.
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


def main():
    from host_tests.test_store_powercut import run
    kills, lost, dup = run()
    print("store.powercut.kills: %d" % kills)
    print("store.powercut.lost: %d" % lost)
    print("store.powercut.duplicated: %d" % dup)
    print("store.record_overhead: 11 bytes")
    print("store.flash_bytes_per_cycle: %.1f bytes" % _flash_bytes_per_cycle())
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
