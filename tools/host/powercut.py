"""The long power-cut and outage runs (make powercut; make test runs a short seeded version):

    python -m tools.host.powercut [--kills 200] [--runtime micropython|cpython] [--seed 7]

For each board (SIM7020, BC95): `kills` seeded power cuts, half inside the flash's erases and
programs (on MicroPython a torn page of the littlefs2 block device, then SIGKILL), half at an AT
command line (SIGKILL, the line sent or not), each followed by a boot from power-on; then the
queue drains. Then an outage: one good cycle, three without registration, recovery. Prints one
figure per line (`powercut.<runtime>.kills: N`, `.lost`, `.duplicated`, `.redelivered`,
`outage.<runtime>.lost`) and exits 1 if a reading was lost or duplicated.
"""
import argparse
import sys
import tempfile
import time

from tools.twin import Twin, powercut, recover_after_outage

BOARDS = ("esp32-sim7020", "esp32-bc95")


def run(kills, runtime, seed=7, out=None, boards=BOARDS):
    """{figure name: value} over both boards."""
    out = out or tempfile.mkdtemp(prefix="powercut-")
    t0 = time.time()
    totals = {"kills": 0, "kills_flash": 0, "kills_at": 0, "boots": 0, "lost": 0,
              "duplicated": 0, "redelivered": 0, "out_of_order": 0, "still_queued": 0,
              "received": 0}
    outage_lost = 0
    for i, board in enumerate(boards):
        with Twin(board, out="%s/%s" % (out, board), runtime=runtime, seed=11 + i,
                  sleep_scale=0.0002) as twin:
            r = powercut(twin, kills=kills, seed=seed + i)
        for k in totals:
            totals[k] += r[k]
        with Twin(board, out="%s/%s-outage" % (out, board), runtime=runtime,
                  sleep_scale=0.0002) as twin:
            twin.run_cycle()
            twin.outage(True)
            twin.run_cycles(3)
            twin.outage(False)
            got, expected = recover_after_outage(twin)
            outage_lost += len(set(expected) - set(got)) + (got != expected)
    figures = {"powercut.%s.%s" % (runtime, k): v for k, v in totals.items()}
    figures["outage.%s.lost" % runtime] = outage_lost
    figures["powercut.%s.seconds" % runtime] = round(time.time() - t0, 1)
    return figures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=200, help="power cuts per board")
    ap.add_argument("--runtime", default="micropython", choices=("micropython", "cpython"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    figures = run(a.kills, a.runtime, a.seed, a.out)
    for name, value in figures.items():
        print("%s: %s" % (name, value))
    rt = a.runtime
    bad = (figures["powercut.%s.lost" % rt] or figures["powercut.%s.duplicated" % rt] or
           figures["powercut.%s.out_of_order" % rt] or figures["powercut.%s.still_queued" % rt]
           or figures["outage.%s.lost" % rt])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
