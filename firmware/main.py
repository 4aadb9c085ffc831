"""Device entry point: one report cycle, then deep sleep (the cycle is enosnb.app).

board.json and secrets.json are read from the current directory (the root of the board's
flash). A configuration error prints what to fix and returns to the REPL without arming the
watchdog or sleeping, so a wrong file never locks the board out. Ctrl-C during a cycle also
stops at the REPL; the armed watchdog then resets the board after its timeout (it cannot be
disarmed), so to work on the board rename main.py (mpremote fs mv :main.py :main.off) before
the reset runs it again.

The milliseconds since the interpreter started (boot) and those the imports take go into
the cycle's phase figures (docs/power.md). The modem's UART is made before the imports
(enosnb.early: the ESP-IDF allocates its ring while it still has room), and board.json
"mem_report": true prints the heap at boot, after the UART, after the imports and at the
cycle's peak (docs/ram.md).
"""
import time

import machine

_BOOT_MS = time.ticks_ms() if hasattr(time, "ticks_ms") else None

from enosnb import early  # noqa: E402

_EARLY = early.start()

from enosnb import app  # noqa: E402  (after the boot mark, so the imports are timed)

_IMPORTS_MS = time.ticks_diff(time.ticks_ms(), _BOOT_MS) if _BOOT_MS is not None else None
_EARLY.point("imports")


def main():
    try:
        device = app.build(early=_EARLY)
    except app.ConfigError as e:
        print("enosnb: configuration error: %s" % e)
        print("enosnb: fix the file (make secrets / make deploy) and reset the board")
        from enosnb.diag_boot import config_error
        config_error()
        return
    # The cycle feeds the watchdog while it is within its budget (enosnb.app.CycleClock);
    # the timeout must exceed the longest gap between two feeds, not the whole cycle.
    wdt = machine.WDT(timeout=device.board.wdt_timeout_ms)
    try:
        sleep_ms = device.run(wdt, machine.reset_cause() == machine.DEEPSLEEP_RESET,
                              _BOOT_MS, _IMPORTS_MS)
    except KeyboardInterrupt:
        print("enosnb: stopped by Ctrl-C; the watchdog resets the board in %d s"
              % (device.board.wdt_timeout_ms // 1000))
        return
    except Exception as e:  # run() catches every layer's failure; this is a last resort
        print("enosnb: cycle failed: %s: %s" % (type(e).__name__, e))
        sleep_ms = device.secrets.report_interval_s * 1000
    machine.deepsleep(sleep_ms)


main()
