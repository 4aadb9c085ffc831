"""Diagnostics on every cycle (docs/diagnostics.md): what the cycle cost and the LED pattern.

The app calls in at a few points: metered() wraps the modem socket so the cycle's datagrams,
bytes and round trips are counted; before_release() asks the signal (AT+CSQ) while the radio
is still up; finish() prints the cycle line and blinks the LED; succeeded() sends the
diagnostics report when one is due. What only a failure needs (its status, "keys refused",
reactivation) is in diag_fail.py, what only a power-on or a configuration error needs (the
boot line, that LED) in diag_boot.py, the report itself in diag_report.py: each imported
only then.
"""
import struct

from enosnb.modem.errors import AtCommandError, ModemError, RegistrationError, SimError

OK = "ok"
NETWORK = "no network"
KEYS = "keys refused"
CONFIG = "config error"
ERROR = "error"
# LED flashes per status; a configuration error then leaves the LED on (main.py).
BLINKS = {OK: 1, NETWORK: 2, KEYS: 3, CONFIG: 4, ERROR: 5}
# +CEREG <stat> (3GPP TS 27.007 §10.1.22).
CEREG = ["not searching", "home", "searching", "denied", "unknown", "roaming"]


def log(msg):
    print("[enosnb] " + msg)


class Meter:
    """A datagram endpoint that counts what passes through the one it wraps: datagrams and
    bytes each way, and round trips (an uplink followed by a downlink), as make budget does."""

    def __init__(self):
        self.inner = None
        self.up = self.down = self.bytes_up = self.bytes_down = self.round_trips = 0
        self._waiting = False

    @property
    def mtu(self):
        return self.inner.mtu

    def send(self, data, release=None):
        if release is None:
            self.inner.send(data)
        else:
            self.inner.send(data, release)
        self.up += 1
        self.bytes_up += len(data)
        self._waiting = True

    def recv(self, timeout_ms):
        data = self.inner.recv(timeout_ms)
        if data is not None:
            self.down += 1
            self.bytes_down += len(data)
            if self._waiting:
                self.round_trips += 1
                self._waiting = False
        return data

    def close(self):
        self.inner.close()


def metered(app, sock):
    """sock behind the cycle's Meter (one per cycle, whichever socket it is)."""
    m = getattr(app, "meter", None)
    if m is None:
        m = app.meter = Meter()
    m.inner = sock
    return m


def succeeded(app):
    """After a successful cycle: no refused keys in a row any more, and the diagnostics report
    when secrets.json asks for it, after every power-on (the first cycle that reaches EnOS)
    and then at most every `diagnostics` seconds of sleep."""
    app.state.delete("krf")
    every = app.secrets.diagnostics
    if not every or app.enos is None:
        return
    since = app._u32("dgs") + (app._slept_s or 0)
    if app._woke and since < every:
        app.state.set("dgs", struct.pack(">I", since))
        return
    before_release(app)
    try:
        from enosnb.diag_report import send
        send(app)
    except Exception as e:  # the readings are in: nothing here may fail the cycle
        log("diagnostics not reported (%s: %s)" % (type(e).__name__, e))
    app.state.set("dgs", struct.pack(">I", 0))


def _modem_answers(app):
    e = app.report.get("exc")
    return app.modem is not None and not getattr(app.modem, "radio_is_off", False) and (
        e is None or not isinstance(e, ModemError) or
        isinstance(e, (RegistrationError, AtCommandError, SimError)))


def before_release(app):
    """The registration state and the signal while the radio is still up (one AT+CSQ a
    cycle, unless the modem is silent), for the cycle line."""
    m = app.modem
    if m is not None and not m.registered and m.stat is not None and 0 <= m.stat < len(CEREG):
        app.report["cereg"] = m.stat
    if "csq" in app.report or not _modem_answers(app):
        return
    try:
        app.report["dbm"] = app.modem.signal()
        app.report["csq"] = 99 if app.report["dbm"] is None else (app.report["dbm"] + 113) // 2
    except (ModemError, ValueError, IndexError):
        pass


def signal_text(r):
    csq = r.get("csq")
    if csq is None:
        return None
    return "CSQ %d (%s)" % (csq, "unknown" if csq == 99 else "%d dBm" % r["dbm"])


def cycle_line(app):
    r = app.report
    out = ["sent %d" % r["sent"]]
    if r["pending"] is not None:
        out.append("queue %d" % r["pending"])
    if r["rejected"]:
        out.append("rejected %d" % r["rejected"])
    if r["dropped"]:
        out.append("dropped %d" % r["dropped"])
    ph = r["phases"]
    if r["skipped_radio"]:
        out.append("radio skipped (back-off)")
    elif "attach" in ph:
        out.append("connect " + (r["connect"] or "failed"))
    out.append("awake %d ms" % app.clock.elapsed_ms())
    if "attach" in ph:
        out.append("attach %d ms" % ph["attach"])
    m = getattr(app, "meter", None)
    if m is not None:
        out.append("%d round trips, %d B up, %d B down" % (m.round_trips, m.bytes_up,
                                                           m.bytes_down))
    sig = signal_text(r)
    if sig:
        out.append(sig)
    stat = r.get("cereg")
    if stat is not None:
        out.append("not registered (CEREG %d: %s)" % (stat, CEREG[stat]))
    if r["error"]:
        out.append("error " + r["error"])
    return ", ".join(out)


def finish(app):
    """The cycle line, then the LED pattern: on a failure, and once after a power-on."""
    r = app.report
    status = r.get("status") or (OK if not r["error"] else ERROR)
    r["status"] = status
    log("cycle: " + cycle_line(app))
    led = app.board.led
    if led and not r["skipped_radio"] and (status != OK or not app._woke):
        # Not the cycle's clock: under a second, and shown even when the budget is spent.
        try:
            blink(app._mach(), led, BLINKS[status], app.base_clock.sleep_ms)
        except Exception as e:
            log("LED not shown: %s: %s" % (type(e).__name__, e))


def blink(machine, led, n, sleep_ms):
    """n flashes of 100 ms, 200 ms apart; the LED is off afterwards."""
    on = 1 if led["active_high"] else 0
    pin = machine.Pin(led["pin"], machine.Pin.OUT, value=1 - on)
    for i in range(n):
        pin.value(on)
        sleep_ms(100)
        pin.value(1 - on)
        if i < n - 1:
            sleep_ms(200)
    return pin

