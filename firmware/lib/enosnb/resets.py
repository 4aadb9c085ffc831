"""The boot after an abnormal reset (docs/power.md): imported only when it happens.

The cycle (enosnb.app) writes an "in cycle" mark into the state before any radio work and
clears it at its end. A boot that finds the mark follows a watchdog, brown-out or crash reset
in the middle of a cycle. It counts the reset, neither measures nor uses the network, switches
the radio off and sleeps a randomised back-off (enosnb.timing), or long_sleep_ms after
abnormal_max resets in a row. The total is reported later by the app as an attribute.
"""
import struct

from enosnb import timing


def after_abnormal_reset(app):
    """Counts the reset, backs off; returns the milliseconds to sleep."""
    t = app.tune
    n = min(app._u8("abn") + 1, 255)
    app._set_u8("abn", n)
    total = app._u32("abt") + 1
    app.state.set("abt", struct.pack(">I", total))
    app.report["abnormal"] = total
    app.report["error"] = "reset: the last cycle ended in a watchdog, brown-out or crash " \
        "reset (%d in a row)" % n
    print("[enosnb] " + app.report["error"])
    if n >= t["abnormal_max"]:
        sleep_ms = t["long_sleep_ms"]
    else:
        sleep_ms = timing.backoff_ms(app.seed(), n, t["backoff_base_ms"], t["backoff_cap_ms"])
    app.state.delete("cyc")
    app.clock.wind_down()
    app._radio_off = True
    app.store = None
    app.finish(sleep_ms)
    return sleep_ms
