"""Command line of the fault soak (see the package docstring)."""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for p in (ROOT, os.path.join(ROOT, "firmware", "lib"), os.path.join(ROOT, "tools", "host")):
    if p not in sys.path:
        sys.path.insert(0, p)

from tools.soak.run import Soak  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.soak", description=__doc__)
    ap.add_argument("--cycles", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--board", default="esp32-sim7020", choices=("esp32-sim7020", "esp32-bc95"))
    ap.add_argument("--out", default=os.path.join("out", "soak"))
    ap.add_argument("--rtt", default=None, help="unscaled round trips MIN-MAX ms, e.g. 2000-10000"
                                                " (NB-IoT timings on the device)")
    ap.add_argument("--fault-rate", type=float, default=1.0,
                    help="scales every fault's chance per cycle")
    ap.add_argument("--prefix", default="soak", help="figure name prefix")
    ap.add_argument("--force", default="", metavar="KIND@CYCLE,...",
                    help="faults that begin at that cycle instead of being drawn,"
                         " e.g. server_silent_1h@2,attach_5min@8")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    rtt = tuple(int(x) for x in a.rtt.split("-")) if a.rtt else None
    forced = dict((k, int(c)) for k, c in (f.split("@") for f in a.force.split(",") if f))
    soak = Soak(a.cycles, a.seed, a.board, a.out, rtt_ms=rtt, fault_rate=a.fault_rate,
                outage_at=(3, 3) if rtt else None, verbose=a.verbose, scripted=forced)
    try:
        soak.start()
        soak.run()
        soak.check()
    finally:
        soak.stop()
    for line in soak.report(a.prefix):
        print(line, flush=True)
    if soak.figures.get("lost_readings"):
        print("%s.lost_readings: %s" % (a.prefix, soak.figures["lost_readings"]))
    bad = soak.failures()
    if bad:
        print("%s.failed: %s" % (a.prefix, " ".join(bad)))
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
