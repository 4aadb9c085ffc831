"""Whole-device figures from the host twin: firmware/main.py unchanged, modem
emulator, local EnOS server over DTLS.

outage.*: 1 good cycle, 3 cycles without registration, then cycles until the queue is empty;
  lost = readings never received, duplicated = readings received twice.
powercut.*: 100 seeded power cuts per modem (SIM7020, BC95) at random flash operations and
  AT command lines; lost = durably queued readings never received; duplicated = readings
  stored under a second timestamp (EnOS keeps one value per point and time, so a record
  resent with its original time is not a second point); redelivered = records the server
  got again because the cut fell between its 2.04 and the flash acknowledgement.
twin.wake.restored: wakes that restored the DTLS session from RTC memory (no handshake).
"""
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def outage(tmp, board="esp32-sim7020"):
    from tools.twin import Twin, recover_after_outage
    with Twin(board, out=os.path.join(tmp, "outage"), sleep_scale=0.0002) as twin:
        twin.run_cycle()
        twin.outage(True)
        twin.run_cycles(3)
        twin.outage(False)
        got, expected = recover_after_outage(twin)
        return len(set(expected) - set(got)), len(got) - len(set(got))


def wakes(tmp, board="esp32-sim7020", n=4):
    """How the wakes after a cold boot connected, and the server's handshake count."""
    from tools.twin import Twin
    with Twin(board, out=os.path.join(tmp, "wakes"), sleep_scale=0.0002) as twin:
        boots = twin.run_cycles(n + 1)
        restored = sum(1 for b in boots[1:] if b.line("[enosnb] connected (restored)"))
        return restored, sum("handshake ok" in m for m in twin.server_log)


def main():
    from tools.twin import Twin, powercut
    with tempfile.TemporaryDirectory() as tmp:
        restored, handshakes = wakes(tmp)
        print("twin.wake.restored: %d of 4 wakes" % restored)
        print("twin.handshakes: %d for 5 boots" % handshakes)
        lost, dup = outage(tmp)
        print("outage.lost: %d" % lost)
        print("outage.duplicated: %d" % dup)
        totals = {"kills": 0, "boots": 0, "lost": 0, "duplicated": 0, "redelivered": 0,
                  "out_of_order": 0}
        t0 = time.time()
        for i, board in enumerate(("esp32-sim7020", "esp32-bc95")):
            with Twin(board, out=os.path.join(tmp, "cut%d" % i), seed=11 + i) as twin:
                r = powercut(twin, kills=100, seed=7 + i)
            for k in totals:
                totals[k] += r[k]
        print("powercut.kills: %d" % totals["kills"])
        print("powercut.boots: %d" % totals["boots"])
        print("powercut.lost: %d" % totals["lost"])
        print("powercut.duplicated: %d" % totals["duplicated"])
        print("powercut.redelivered: %d" % totals["redelivered"])
        print("powercut.out_of_order: %d" % totals["out_of_order"])
        print("powercut.seconds: %.1f s" % (time.time() - t0))


if __name__ == "__main__":
    main()
