"""The report cycle: measure, queue, report to EnOS, handle commands, sleep.

One wake-up of the device is one call of App.run(). Its steps, in order:

  1. restore the state kept across deep sleep (enosnb.state): CoAP and EnOS counters, the
     DTLS session, the plain-mode auth binding, the modem socket, the back-off counters;
  2. read the sensor and append the reading to the flash queue (enosnb.store) BEFORE any
     radio work, so no later failure can lose it;
  3. bring up the modem (power key only when it is silent; after a cold boot the sockets the
     module still holds are closed; registration, touching the radio only as needed) and take
     the UDP socket that survived the sleep, or open one; PSM is asked once per power-on and
     what the network granted is reported;
  4. connect: restore the saved DTLS session (0 handshake round trips when the server still
     knows it), else resume it (abbreviated handshake), else a full handshake; in plain mode
     reuse the /auth binding, else POST /auth (enos-coap.md §5.3, §5.4, §6.4, dtls.md §16);
  5. report the queue oldest first: one record goes to thing.measurepoint.post; records left
     over from an outage go first to thing.measurepoint.resume(.batch), in order (§8.3);
     a record leaves the queue only after EnOS answered code 200 for it;
  6. cloud commands ride on every response (enos.commands); their dedupe memory is kept;
  7. save the state, release the radio (release assistance / AT+CNMPSD), switch the radio
     off where the network refused PSM (else the modem would idle in DRX at mA level), return
     the time to sleep. What the driver learnt about the module (firmware revision, refused
     commands) is kept in the state, so later cycles do not ask again.

Every failure of a layer (ModemError, DtlsError, CoapError, EnosError, StoreError, a sensor
error) is caught here: the reading stays queued, the error is logged without secrets, state
is saved and the device sleeps. After consecutive failures the next wakes only measure and
queue, skipping the radio for a randomised, exponentially growing number of cycles
(enosnb.timing), with the radio switched off in between.

Time (docs/power.md): every wait of every layer goes through CycleClock, which ends it when
the cycle's budget less a reserve is spent (BudgetSpent); the reserve saves the state and
puts the radio to sleep. An "in cycle" mark in the state is set before any radio work and
cleared at the end: a boot that finds it follows a watchdog, brown-out or crash reset, and
counts as a failure with a randomised back-off sleep, without touching the network; after
abnormal_max such resets in a row the device sleeps long_sleep_ms. The reset count is
reported later (attribute enosnb_abnormal_resets). After a power-on the first sleep is
shifted by the device's own offset, so a fleet powered together does not report together.

NAT (docs/power.md): a restored DTLS session is tried only when the sleep was shorter than
the shortest idle time that has lost the carrier's NAT binding before (enosnb.nat), or when
the session has a Connection ID; its first request then waits about two round trips, not
ACK_TIMEOUT, before the device resumes the session instead.
"""
import hashlib
import json
import struct
import time

from micropython import const

from enosnb.clock import SYSTEM
from enosnb.coap.errors import CoapError, CoapTimeout
from enosnb.config import ConfigError, load_board, load_secrets
from enosnb.dtls.errors import DtlsError
from enosnb.enos import identity as eid
from enosnb.enos.errors import EnosCoapError, EnosError, EnosReplyError
from enosnb.modem.errors import ModemError
from enosnb.sensor import check_points
from enosnb.state import State, StateError
from enosnb.store import Store, StoreError
from enosnb import diag, nat, timing

# Timings a board or a test may override (milliseconds).
DEFAULTS = {
    "attach_timeout_ms": 120000,   # radio on -> registered (modems.md §6); board.json may set it
    "first_attach_timeout_ms": 300000,  # a module scanning every band (modems.md §6.1)
    "psm_tau_s": 86400,            # periodic TAU asked for (modems.md §5)
    "psm_active_s": 2,             # shortest useful T3324: commands ride on uplink responses
    "psm_max_active_s": 60,        # a longer grant idles in DRX: the radio goes off instead
    "cycle_budget_ms": 170000,     # longest report cycle before the watchdog may fire
    "dtls_timers": None,           # None: enosnb.dtls.timers.NBIOT
    "coap_timing": None,           # None: ack_timeout_ms / max_retransmit of secrets.json
    "reserve_ms": 10000,           # end of the budget kept to save state and sleep the radio
    "probe_retransmit": 0,         # CoAP retransmissions on a restored DTLS session
    "probe_min_ms": 1000,          # shortest wait for the answer to that first request
    "nat_reprobe": 16,             # wakes skipping a restore before one is tried again
    "skip_cap_s": 14400,           # longest radio back-off (cycles skipped, in seconds)
    "backoff_base_ms": 60000,      # sleep after the first abnormal reset, doubling
    "backoff_cap_ms": 3600000,
    "abnormal_max": 5,             # abnormal resets in a row before the long sleep
    "long_sleep_ms": 21600000,
    "min_sleep_ms": 1000,
}
_MAX_BATCHES = const(20)
# EnOS answers these when the record itself is wrong: resending cannot help (§9, §10).
# Lists: smaller in the .mpy than constant tuples.
_REJECTED_CODES = [1008, 1204, 1206, 1220, 1251]
_REJECTED_COAP = [0x80, 0x8D]  # 4.00 Bad Request, 4.13 Request Entity Too Large
_EPOCH_2000 = const(946684800)
_CLOCK_VALID_S = const(1735689600)  # 2025-01-01: an RTC before that was never set
_SECRET_FILE = "device_secret.json"


def log(msg):
    print("[enosnb] " + msg)


def _err(e):
    return "%s: %s" % (type(e).__name__, e)


def now_ms():
    """Wall-clock epoch milliseconds, or None while the RTC has not been set."""
    ms = time.time_ns() // 1000000 if hasattr(time, "time_ns") else int(time.time() * 1000)
    if time.gmtime(0)[0] == 2000:
        ms += _EPOCH_2000 * 1000
    return ms if ms >= _CLOCK_VALID_S * 1000 else None


class BudgetSpent(Exception):
    """The cycle's time budget is spent: the wait in progress ends, the cycle winds down."""


class CycleClock:
    """The system clock, feeding the watchdog on every use while the cycle is in budget.

    Every layer waits through this clock (ticks_ms to compute a deadline, sleep_ms or an
    endpoint's recv polling it), so the budget clips every wait: once budget_ms - reserve_ms
    have passed, ticks_ms() and sleep_ms() raise BudgetSpent, whatever the layer's own
    timeout was (an attach of 120 s, a CoAP exchange of MAX_TRANSMIT_WAIT, a handshake of
    180 s). wind_down() then opens the reserve for saving state and releasing the radio; the
    watchdog is fed until budget_ms, so a wind-down that hangs still ends in a reset.
    """

    def __init__(self, base=SYSTEM, wdt=None, budget_ms=None, reserve_ms=0):
        self.base = base
        self.wdt = wdt
        self.start = base.ticks_ms()
        self.budget_ms = budget_ms
        self.limit_ms = None if budget_ms is None else budget_ms - reserve_ms
        self.spent = False

    def elapsed_ms(self):
        return self.base.ticks_diff(self.base.ticks_ms(), self.start)

    def left_ms(self):
        """Milliseconds of work left before the reserve (a large number without budget)."""
        if self.limit_ms is None:
            return 1 << 30
        return max(0, self.limit_ms - self.elapsed_ms())

    def clip(self, ms):
        """ms, or the work time left when that is shorter."""
        return min(ms, self.left_ms())

    def extend(self, ms):
        """At least ms of work time from now on (a band scan): budget and limit grow."""
        if self.budget_ms is not None:
            grow = max(0, self.elapsed_ms() + ms - self.limit_ms)
            self.budget_ms += grow
            self.limit_ms += grow

    def wind_down(self):
        """From now on only the end of the whole budget stops a wait."""
        self.limit_ms = self.budget_ms

    def feed(self):
        if self.wdt is not None and (self.budget_ms is None or
                                     self.elapsed_ms() < self.budget_ms):
            self.wdt.feed()

    def _check(self):
        if self.limit_ms is not None and self.elapsed_ms() >= self.limit_ms:
            self.spent = True
            raise BudgetSpent("the cycle's %d ms are spent" % self.limit_ms)

    def ticks_ms(self):
        self.feed()
        self._check()
        return self.base.ticks_ms()

    def ticks_diff(self, a, b):
        return self.base.ticks_diff(a, b)

    def ticks_add(self, a, d):
        return self.base.ticks_add(a, d)

    def sleep_ms(self, n):
        self.feed()
        self._check()
        self.base.sleep_ms(min(n, self.left_ms()))


def encode_record(points, time_ms):
    from enosnb.enos.bodies import dumps
    rec = {"p": points}
    if time_ms is not None:
        rec["t"] = time_ms
    return dumps(rec).encode()


def decode_record(data):
    """(points, time_ms) of a queued record; ValueError when it is not one of ours."""
    obj = json.loads(bytes(data))
    if not isinstance(obj, dict) or not isinstance(obj.get("p"), dict):
        raise ValueError("queued record is not {p, t}")
    return obj["p"], obj.get("t")


def _rejected(e):
    if isinstance(e, EnosReplyError):
        return e.code in _REJECTED_CODES
    if isinstance(e, EnosCoapError):
        return e.coap_code in _REJECTED_COAP
    return False


class _Link:
    """The EnOS client's transport (enos/transport.py contract): opens CoAP over the modem
    socket, inside a DTLS session when secrets.json says dtls (restore/resume/full)."""

    def __init__(self, app):
        self.app = app
        self.secure = app.secrets.dtls
        self.session = None
        self.how = None
        self.opens = 0

    def open(self, identity, psk):
        self.drop()
        self.opens += 1
        ep = self.app.endpoint()
        if not self.secure:
            self.how = "plain"
            return self.app.coap_client(ep)
        self.session, self.how = self.app.dtls_session(ep, identity, psk)
        return self.app.coap_client(self.session)

    def drop(self):
        """Forget the session without close_notify; the socket stays open."""
        self.session = None

    def close(self):
        s, self.session = self.session, None
        if s is not None:
            try:
                s.close()
            except DtlsError:
                pass


class App:
    """One device: App(secrets, board, sensor, root="", clock=SYSTEM, tune=None,
    machine=None, rtc=True). root is the flash directory; rtc=None keeps state on flash only.

    run(wdt=None, woke=False) -> milliseconds to deep sleep; woke is True when this boot is
    a wake from deep sleep (RTC memory and the modem's socket are then trusted). Never raises
    for a failure of
    the modem, DTLS, CoAP, EnOS, the queue or the sensor. Attributes after run():
    .report (dict of what happened this cycle, for logs and tests).
    """

    def __init__(self, secrets, board, sensor=None, root="", clock=SYSTEM, tune=None,
                 machine=None, rtc=True):
        self.secrets = secrets
        self.board = board
        self.sensor = sensor
        self.root = root
        self.base_clock = clock
        self.tune = dict(DEFAULTS)
        for key in DEFAULTS:
            v = getattr(board, key, None)
            if v is not None:
                self.tune[key] = v
        if tune:
            self.tune.update(tune)
        self._machine = machine
        self._rtc = rtc
        self.modem = None
        self.sock = None
        self.coap = None
        self.enos = None
        self.commands = None
        self.last_points = None

    # --- files ---------------------------------------------------------------------------

    def _path(self, name):
        return self.root + name if not self.root or self.root.endswith("/") \
            else self.root + "/" + name

    def _mach(self):
        if self._machine is None:
            import machine
            self._machine = machine
        return self._machine

    # --- the cycle -----------------------------------------------------------------------

    def run(self, wdt=None, woke=False, boot_ms=None, imports_ms=None):
        """One cycle; boot_ms / imports_ms: what main.py measured before it (phase figures)."""
        self.begin(wdt, woke, boot_ms, imports_ms)
        if self.state.get("cyc"):
            from enosnb.resets import after_abnormal_reset
            return after_abnormal_reset(self)
        self.state.set("cyc", b"1")
        self._consume_session()
        self._save_state()  # the mark is in RTC memory before any radio work
        self.store = None
        current = None
        interval_ms = self.secrets.report_interval_s * 1000
        try:
            self.store = Store(self._path("queue"), max_records=self.secrets.queue_max_records)
            current = self.measure()
        except (StoreError, OSError) as e:
            self._failed("queue", e)
        self._phase("measure")
        if self.board.battery:
            from enosnb.power import battery_interval
            interval_ms = battery_interval(self, interval_ms)
        if self.store is None or self._radio_off:
            pass
        elif self._skip_radio():
            self.report["skipped_radio"] = True
        else:
            try:
                self.connect()
                self.send_queue(current)
                if self._kept_how == "plain-kept":
                    self._learn_nat(self.link.opens == 0)
                self._succeeded()
                self._report_resets()
                diag.succeeded(self)
            except (ModemError, DtlsError, CoapError, EnosError, StoreError, StateError,
                    ConfigError, OSError, BudgetSpent) as e:
                self._failed("budget" if self.clock.spent else "report", e)
            except Exception as e:
                # A bug in a layer must not stop the device: log it, treat it as a failure.
                self._failed("unexpected", e)
        self._phase("report")
        if self.store is not None:
            self.report["pending"] = len(self.store)
            self.report["dropped"] = self.store.dropped
        self.clock.wind_down()
        self.state.delete("abn")
        self.state.delete("cyc")
        sleep_ms = self._sleep_ms(interval_ms)
        self.finish(sleep_ms)
        return sleep_ms

    def begin(self, wdt=None, woke=False, boot_ms=None, imports_ms=None):
        """The cycle's clock, report and state, read before anything else happens."""
        t = self.tune
        self.clock = CycleClock(self.base_clock, wdt, t["cycle_budget_ms"], t["reserve_ms"])
        self.clock.feed()
        self.report = {"queued": None, "sent": 0, "rejected": 0, "dropped": 0,
                       "connect": None, "error": None, "skipped_radio": False,
                       "commands": 0, "pending": None, "socket": None, "phases": {},
                       "abnormal": 0, "battery_mv": None}
        self._mark = 0
        if boot_ms is not None:
            self.report["phases"]["boot"] = boot_ms
        if imports_ms is not None:
            self.report["phases"]["imports"] = imports_ms
        self.meter = None
        self._unproven = False
        self._radio_off = self._critical = False
        self._rtt_at = None
        self._kept_how = None
        try:
            self.state = State(rtc=self._rtc, path=self._path("state.bin"))
        except Exception as e:  # a state we cannot read is a cold start, not a failure
            log("state unreadable (%s); starting cold" % _err(e))
            self.state = State(rtc=None, path=self._path("state.tmp.bin"))
            self.state.clear()
        self._woke = woke
        if not woke:
            # Power-on, reset button or watchdog: the modem may have been reset as well, so
            # no session is restored as is and PSM is requested again.
            self.state.delete("dtok")
            self.state.delete("psm")
        self._slept_s = self._u32("slp")
        self.state.delete("slp")
        self._restorable = False
        self._restored_sock = self.state.get("sock")

    def _sleep_ms(self, interval_ms):
        min_ms = self.tune["min_sleep_ms"]
        sleep_ms = timing.next_sleep_ms(interval_ms, self.clock.elapsed_ms(), 0, None, min_ms)
        if not self._woke:
            # After a power-on: the device's own slot in the interval (fleet timing). The
            # sleep stays within 0.5..1.5 intervals so no report is skipped or doubled.
            sleep_ms += timing.offset_ms(self.seed(), interval_ms)
            if sleep_ms >= interval_ms * 3 // 2:
                sleep_ms -= interval_ms
        return max(min_ms, sleep_ms)

    def seed(self):
        """The device's timing seed: productKey, deviceKey and the chip's unique id."""
        s = self.secrets
        try:
            uid = self._mach().unique_id()
        except (ImportError, AttributeError, OSError):
            uid = b""
        return timing.seed(s.product_key, s.device_key, uid)

    def _phase(self, name):
        now = self.clock.elapsed_ms()
        ph = self.report["phases"]
        ph[name] = ph.get(name, 0) + now - self._mark
        self._mark = now

    def _report_resets(self):
        """The abnormal reset count, once per new count, as an attribute (docs/power.md)."""
        total = self._u32("abt")
        if total == self._u32("abr") or self.enos is None:
            return
        try:
            self.enos.update_attributes({"enosnb_abnormal_resets": total})
        except EnosError as e:
            log("abnormal reset count not reported (%s); add the attribute "
                "enosnb_abnormal_resets to the thing model to see it" % e)
        self.state.set("abr", struct.pack(">I", total))

    def measure(self):
        """Reads the sensor and queues the reading; returns its queue seq (None if none)."""
        if self.sensor is None:
            return None
        try:
            points = check_points(self.sensor.read())
        except Exception as e:  # the device maker's code: any error is a sensor error
            log("sensor: %s" % _err(e))
            return None
        self.last_points = points
        seq = self.store.append(encode_record(points, now_ms()))
        self.report["queued"] = seq
        return seq

    # --- back-off ------------------------------------------------------------------------

    def _skip_radio(self):
        skip = self._u8("skip")
        if skip:
            self._set_u8("skip", skip - 1)
            log("back-off: radio skipped this cycle (%d more), %d queued" % (
                skip - 1, len(self.store)))
            return True
        return False

    def _failed(self, stage, e):
        fails = min(self._u8("fail") + 1, 255)
        self._set_u8("fail", fails)
        cap = max(1, self.tune["skip_cap_s"] // self.secrets.report_interval_s)
        skip = timing.skip_cycles(self.seed(), fails, cap)
        self._set_u8("skip", min(skip, 255))
        if skip:
            self._radio_off = True  # no network search while backing off
        if fails >= 2:
            self.state.delete("ip")  # the server may have moved: resolve its name again
        self.report["error"] = "%s: %s" % (stage, _err(e))
        log("%s failed (%d in a row): %s" % (stage, fails, _err(e)))
        from enosnb.diag_fail import failed
        failed(self, e)

    def _succeeded(self):
        self.state.delete("fail")
        self.state.delete("skip")

    def _u32(self, key):
        v = self.state.get(key)
        return struct.unpack(">I", v)[0] if v and len(v) == 4 else 0

    def _u8(self, key):
        v = self.state.get(key)
        return v[0] if v else 0

    def _set_u8(self, key, n):
        self.state.set(key, bytes((n,)))

    def _save_state(self):
        """Where the state went ("rtc" or "flash"), or None when saving failed."""
        try:
            return self.state.save()
        except Exception as e:  # a full or broken flash must not stop the cycle
            log("state save failed: %s" % _err(e))
            return None

    # --- radio ---------------------------------------------------------------------------

    def _driver(self):
        """The modem driver on the board's UART, its control lines released from their
        deep-sleep hold (enosnb.power)."""
        from enosnb.modem import driver
        m = self._mach()
        b = self.board
        if b.power_enable or b.pwrkey or b.reset:
            from enosnb import power
            power.release(m, b)
        uart = m.UART(b.uart["id"], **b.uart_kwargs())
        # What the driver learnt about this module in earlier cycles (revision, refusals).
        return driver(b.modem)(uart, self.clock, memory=self.state.get("modem"),
                               **b.modem_kwargs())

    def bring_up_modem(self):
        b = self.board
        self.modem = self._driver()
        self.state.delete("roff")
        self.modem.power_on()
        self.modem.init()
        if not self._woke:
            # The module may still hold sockets from before this reset (modems.md §6.2).
            self.modem.cold_start()
            self.state.delete("sock")
            self._restored_sock = None
        if self.secrets.uses_imei:
            self.secrets.set_device_key(self.modem.imei())
        t = self.tune
        self.modem.attach(self.secrets.apn or None, b.bands,
                          self.clock.clip(t["attach_timeout_ms"]),
                          t["first_attach_timeout_ms"], self._scan_budget)
        if now_ms() is None:
            self.sync_clock()
        self._power_saving()

    def _scan_budget(self, ms):
        """A module scanning every band may take minutes: this cycle's budget grows."""
        log("first attach: the modem scans its bands, up to %d s" % (ms // 1000))
        self.clock.extend(ms + 10000)

    def _power_saving(self):
        """PSM as granted (modems.md §5): asked once per power-on with the shortest useful
        active time and eDRX off; the grant is read back (every AT+CEREG? carries it), kept
        in the state and reported."""
        st = self.state
        t = self.tune
        if not st.get("psm"):
            try:
                self.modem.psm(t["psm_tau_s"], t["psm_active_s"])
            except ModemError as e:
                log("PSM request refused: %s" % _err(e))
        g = self.modem.psm_granted
        if g is None:
            text = st.get("psm") or b"?"  # the last known grant, or unknown
        elif g is False:
            text = b"refused"
        else:
            text = ("%s,%d" % ("-" if g[0] is None else g[0], g[1])).encode()
        if text != st.get("psm"):
            log("PSM: " + ("refused by the network, the radio goes off between reports"
                           if g is False else "the module does not say what was granted"
                           if g is None else "granted TAU %s s, active time %d s" % (
                               "-" if g[0] is None else g[0], g[1])))
        st.set("psm", text)
        self.report["psm"] = text.decode()

    def _radio_off_between_reports(self):
        """True when the network refused PSM or granted an active time so long the module
        would idle in DRX: then switching the radio off costs less than keeping it."""
        p = self.report.get("psm")
        if p == "refused":
            return True
        try:
            return int(p.split(",")[1]) > self.tune["psm_max_active_s"]
        except (AttributeError, IndexError, ValueError):
            return False  # unknown: keep the radio as it is

    def sync_clock(self):
        """Sets the RTC from the modem's network time (NITZ) so queued readings carry
        their real time; the RTC keeps it through deep sleep. Best effort."""
        try:
            t = self.modem.network_time()
        except ModemError:
            t = None
        if t is None:
            log("no network time: readings are sent without a timestamp")
            return
        self._mach().RTC().datetime(t)

    def server_ip(self):
        host = self.secrets.host
        cached = self.state.get("ip")
        if cached and cached.split(b"|")[0] == host.encode():
            return cached.split(b"|")[1].decode()
        from enosnb.modem.base import is_ipv4
        ip = host if is_ipv4(host) else self.modem.resolve(
            host, self.clock.clip(self.modem.DNS_TIMEOUT_MS))
        self.state.set("ip", host.encode() + b"|" + ip.encode())
        return ip

    def endpoint(self):
        """The modem UDP socket to the server: the one kept over the sleep, else a new one."""
        if self.sock is not None and not self.sock.closed:
            return diag.metered(self, self.sock)
        ip = self.server_ip()
        port = self.secrets.port
        saved = self.state.get("sock")
        self.state.delete("sock")
        self.sock = None
        if saved and len(saved) == 3:
            sid, sport = struct.unpack(">BH", saved)
            if sport == port:
                # Kept open on the module over the deep sleep; if the module lost it, the
                # driver's first send fails once, drops it and opens a new one.
                self.sock = self.modem.adopt_socket(sid, ip, port)
                self.report["socket"] = "kept"
        if self.sock is None:
            self.sock = self.modem.socket(ip, port)
            self.report["socket"] = "new"
        return diag.metered(self, self.sock)

    # --- connection ----------------------------------------------------------------------

    def _consume_session(self):
        """A restorable DTLS blob is good for one wake only: a crash later in this cycle
        would otherwise restore sequence numbers the server has already seen."""
        self._restorable = self.state.get("dtok") == b"1"
        self._restored_sock = self.state.get("sock")
        if self._restorable:
            self.state.delete("dtok")
            self._save_state()

    def _blob_key(self, identity, psk):
        return hashlib.sha256(bytes(identity) + b"|" + bytes(psk)).digest()[:8]

    def dtls_session(self, ep, identity, psk, restore=False, nat_ok=True):
        """(session, how): "restored" (no handshake), "resumed" or "full". A saved session
        is used as is only when restore is set and either it has a Connection ID or the
        NAT binding is likely alive (nat_ok); every handshake offers a Connection ID."""
        from enosnb.dtls.session import DtlsSession
        from enosnb.dtls.timers import NBIOT, Timers
        t = self.tune["dtls_timers"] or NBIOT
        timers = Timers(t.initial_ms, t.cap_ms, t.max_retransmit,
                        self.clock.clip(t.deadline_ms))
        self._dtid = self._blob_key(identity, psk)
        blob = self.state.get("dtls")
        if blob and self.state.get("dtid") != self._dtid:
            blob = None
        s = None
        if blob:
            try:
                s = DtlsSession.restore(ep, identity, psk, blob, clock=self.clock, timers=timers,
                                        cid=True)
            except DtlsError as e:
                log("saved DTLS session unusable: %s" % _err(e))
                self.state.delete("dtls")
        if s is not None and restore and (nat_ok or s.cid is not None):
            return s, "restored"
        if s is not None:
            s.resume()
            return s, "resumed" if s.resumed else "full"
        s = DtlsSession(ep, identity, psk, clock=self.clock, timers=timers, cid=True)
        s.handshake()
        return s, "full"

    def coap_client(self, ep):
        from enosnb.coap.client import Client, Timing
        timing = self.tune["coap_timing"] or Timing(ack_timeout_ms=self.secrets.ack_timeout_ms,
                                                    max_retransmit=self.secrets.max_retransmit)
        c = Client(ep, self.clock, timing)
        if self._rtt_at is not False:
            self._rtt_at = None
            c.trace = self._rtt_trace
        prev = self.coap.state() if self.coap is not None else self.state.get("coap")
        if prev:
            try:
                c.restore(prev)
            except CoapError:
                pass
        self.coap = c
        return c

    def _enos(self):
        from enosnb.enos.client import EnosClient
        from enosnb.enos.commands import Commands
        cfg = self.secrets.enos_config()
        cfg["deviceSecret"] = cfg["deviceSecret"] or self._activated_secret()
        self.commands = Commands(max_per_wake=8, log=log)
        self._command_handlers(self.commands)
        saved = self.state.get("cmds")
        if saved:
            try:
                self.commands.restore(saved)
            except (EnosError, ValueError):
                pass
        self.link = _Link(self)
        enos = EnosClient(self.link, cfg, on_secret=self._persist_secret,
                          commands=self.commands, clock=self.clock)
        saved = self.state.get("enos")
        if saved:
            try:
                enos.restore(saved)
            except EnosError:
                pass
        return enos

    def connect(self):
        try:
            self.bring_up_modem()
        except Exception as e:
            self.report["exc"] = e
            raise
        finally:
            self._phase("attach")
            if not self._woke:
                from enosnb.diag_boot import boot_line
                boot_line(self)
        try:
            self._connect()
        finally:
            self._phase("handshake")

    def _connect(self):
        self.enos = enos = self._enos()
        kept = self._restored_sock is not None
        how = None
        secret = self.secrets.device_secret or self._activated_secret()
        dtls = self.secrets.dtls
        restore = kept and secret and dtls and self._restorable and self.state.get("dtls")
        plain = kept and not dtls and self.state.get("auth") == b"1"
        self._nat_ok = True
        if restore or plain:
            self._nat_ok, blob = nat.worth_restoring(self.state.get("nat"), self._slept_s,
                                                     self.tune["nat_reprobe"])
            self.state.set("nat", blob)
        if restore:
            s = self.secrets
            ident = eid.psk_identity(s.product_key, s.device_key, eid.MODE_DEVICE, s.lifetime)
            psk = eid.psk_key(secret, s.psk_slice[0])
            session, how = self.dtls_session(self.endpoint(), ident, psk, restore=True,
                                             nat_ok=self._nat_ok)
            self.link.session, self.link.how = session, how
            enos.attach(self.coap_client(session))
        elif plain and self._nat_ok:
            # Plain mode: EnOS binds the /auth to our address, which the kept socket keeps
            # while the carrier's NAT does; a 4.01 makes the EnOS client re-authenticate
            # once (§6.4), which _learn_nat() notices.
            enos.attach(self.link.open(None, None))
            self.link.opens = 0
            how = "plain-kept"
        if how is None:
            enos.connect()
            how = self.link.how
        self.report["connect"] = how
        self._unproven = how == "restored"
        self._kept_how = how
        log("connected (%s)" % how)

    def _learn_nat(self, kept):
        """Whether the binding kept over the sleep worked: the NAT bounds (enosnb.nat)."""
        self.state.set("nat", nat.learn(self.state.get("nat"), self._slept_s, kept))

    # --- reporting -----------------------------------------------------------------------

    def _probe_timing(self, timing):
        """One transmission, answered within about two round trips of the last cycles."""
        from enosnb.coap.client import Timing
        rtt = self.state.get("rtt")
        wait = timing.ack_timeout_ms
        if rtt and len(rtt) == 2:
            wait = min(wait, max(self.tune["probe_min_ms"], 2 * struct.unpack(">H", rtt)[0]))
        return Timing(wait, 1, self.tune["probe_retransmit"])

    def _probe(self, fn):
        """Runs fn(); on a restored session whose server forgot it, reconnects and runs fn()
        again. The restored session gets one short try: silence means it is gone."""
        if not self._unproven:
            return fn()
        self._unproven = False
        timing = self.coap.timing
        self.coap.timing = self._probe_timing(timing)
        cid = self.link.session is not None and self.link.session.cid is not None
        try:
            out = fn()
            if not cid:
                self._learn_nat(True)
            return out
        except (CoapTimeout, DtlsError) as e:
            log("restored DTLS session not answered (%s); handshake again, resuming if the "
                "server still caches the session" % type(e).__name__)
            if not cid:
                self._learn_nat(False)  # a Connection ID survives NAT: the server forgot
            self.link.drop()
            self.enos.coap = None
            self.enos.connect()
            self.report["connect"] = "restore-failed/" + str(self.link.how)
            return fn()
        finally:
            if self.coap is not None:
                self.coap.timing = timing

    def _rtt_trace(self, direction, data):
        """CoAP client trace: the first request's round trip of the cycle, unless it was
        retransmitted (Karn), into the smoothed estimate the next probe uses."""
        if self._rtt_at is False:
            return
        now = self.base_clock.ticks_ms()
        if direction == "send":
            self._rtt_at = now if self._rtt_at is None else False
            return
        if self._rtt_at is None:
            return
        sample = self.base_clock.ticks_diff(now, self._rtt_at)
        self._rtt_at = False
        old = self.state.get("rtt")
        if old and len(old) == 2:
            sample = (3 * struct.unpack(">H", old)[0] + sample) // 4
        self.state.set("rtt", struct.pack(">H", min(max(sample, 1), 65535)))

    def send_queue(self, current):
        """Reports queued records oldest first; acks each batch after EnOS's code 200."""
        singles = False
        for _ in range(_MAX_BATCHES):
            recs = self.store.peek(1 if singles else self.secrets.batch_max)
            if not recs:
                return
            old = [r for r in recs if r[0] != current]
            batch = old if old else recs
            items = []
            for seq, data in batch:
                try:
                    points, t = decode_record(data)
                except ValueError:
                    log("queued record %d is corrupt; dropped" % seq)
                    self.report["rejected"] += 1
                    self.store.ack(seq)
                    break
                items.append({"measurepoints": points, "time": t})
            else:
                if len(batch) == len(self.store) and self.sock is not None:
                    # The queue's last request: the modem may release the RRC connection as
                    # soon as the reply is in (BC95 AT+NSOSTF 0x400, modems.md §3.7).
                    self.sock.last_exchange = True
                try:
                    self._probe(lambda: self._post(batch, items, current))
                except EnosError as e:
                    if not _rejected(e):
                        raise
                    if len(batch) > 1:
                        log("EnOS rejected a batch (%s); sending one by one" % e)
                        singles = True
                        continue
                    log("EnOS rejected record %d (%s); dropped" % (batch[0][0], e))
                    self.report["rejected"] += 1
                self.store.ack(batch[-1][0])
                self.report["sent"] += len(batch)
                self._save_progress()
        log("%d records still queued; the rest goes next cycle" % len(self.store))

    def _post(self, batch, items, current):
        enos = self.enos
        if len(batch) == 1 and batch[0][0] == current:
            return enos.post_measurepoints(items[0]["measurepoints"], items[0]["time"])
        if len(batch) == 1:
            return enos.resume_measurepoint(items[0]["measurepoints"], items[0]["time"])
        return enos.resume_measurepoints(items)

    def _save_progress(self):
        """Counters after each acknowledged batch, so a crash cannot reuse message ids."""
        if self.coap is not None:
            self.state.set("coap", self.coap.state())
        if self.enos is not None:
            self.state.set("enos", self.enos.state())

    # --- commands ------------------------------------------------------------------------

    def _command_handlers(self, commands):
        sensor = self.sensor

        def on_set(params):
            fn = getattr(sensor, "set_points", None)
            if fn is None:
                return 404
            return fn(params)

        def on_get(params):
            pts = self.last_points or {}
            if isinstance(params, list) and params:
                return dict((k, pts[k]) for k in params if k in pts)
            return dict(pts)

        def on_service(service_id, params):
            fn = getattr(sensor, "service", None)
            if fn is None:
                return 404, {}
            return fn(service_id, params)

        commands.on_set(on_set)
        commands.on_get(on_get)
        commands.on_service(on_service)
        raw = getattr(sensor, "raw_command", None)
        if raw is not None:
            commands.on_raw(raw)

    # --- per-product activation (§7 step 5) --------------------------------------------

    def _activated_secret(self):
        # The .tmp copy covers a power cut between removing the old file and the rename
        # (FAT cannot rename over an existing file).
        path = self._path(_SECRET_FILE)
        for p in (path, path + ".tmp"):
            try:
                with open(p) as f:
                    v = json.loads(f.read()).get("deviceSecret")
                if isinstance(v, str) and v:
                    return v
            except (OSError, ValueError, AttributeError):
                pass
        return None

    def _persist_secret(self, secret):
        import os
        path = self._path(_SECRET_FILE)
        with open(path + ".tmp", "w") as f:
            f.write(json.dumps({"deviceSecret": secret}))
        try:
            os.remove(path)
        except OSError:
            pass
        os.rename(path + ".tmp", path)
        if self._activated_secret() != secret:
            raise OSError("activated deviceSecret did not read back from flash")

    # --- end of cycle --------------------------------------------------------------------

    def finish(self, sleep_ms=0):
        """Saves the state and releases the radio (or switches it off for a back-off), holds
        the modem's control lines for the sleep; nothing here may raise."""
        st = self.state
        st.set("slp", struct.pack(">I", sleep_ms // 1000))
        if self._radio_off and st.get("roff") != b"1":
            self._switch_radio_off()
        link = getattr(self, "link", None)
        session = link.session if link is not None else None
        try:
            self._save_progress()
            if self.enos is not None and self.commands is not None:
                st.set("cmds", self.commands.state())
            if session is not None and session.established:
                st.set("dtls", session.save())
                st.set("dtid", self._dtid)
                st.set("dtok", b"1")
            elif self.enos is not None and self.secrets.dtls:
                st.delete("dtok")
            if self.enos is not None and not self.secrets.dtls:
                st.set("auth", b"1" if self.enos.coap is not None else b"0")
            if self.sock is not None and not self.sock.closed and self.sock.id is not None:
                st.set("sock", struct.pack(">BH", self.sock.id, self.secrets.port))
            elif self.sock is not None:
                st.delete("sock")
            elif self.modem is not None and self.modem.radio_is_off:
                st.delete("sock")  # gone with the radio (a back-off switched it off)
            elif self._restored_sock is not None:
                # Not used this cycle (no radio, or it failed before): still open on the modem.
                st.set("sock", self._restored_sock)
            if self.modem is not None:
                st.set("modem", self.modem.memory())
        except Exception as e:
            log("state not updated: %s" % _err(e))
        self.report["state"] = self._save_state()
        if self.commands is not None:
            self.report["commands"] = self.commands.executed
        if self.modem is not None:
            diag.before_release(self)
            try:
                self.modem.release()
                if self._radio_off_between_reports():
                    self.modem.radio_off()
                    st.delete("sock")  # gone with the radio
                    self.report["radio"] = "off"
            except Exception as e:
                log("radio release: %s" % _err(e))
            mem = self.modem.memory()
            if mem != st.get("modem") or self.report.get("radio"):
                # Saved again: the state went out before the release so that a release stuck
                # until the watchdog fires cannot lose it.
                st.set("modem", mem)
                self.report["state"] = self._save_state() or self.report["state"]
        b = self.board
        if b.power_enable or b.pwrkey or b.reset:
            try:
                from enosnb import power
                power.hold(self._mach(), b, modem_on=not self._critical)
            except Exception as e:
                log("control lines not held: %s" % _err(e))
        self.clock.feed()
        self._phase("save")
        diag.finish(self)
        log("phases (ms): " + " ".join("%s %d" % (k, v) for k, v in self.report["phases"].items()))

    def _switch_radio_off(self):
        """AT+CFUN=0 for a back-off: an unregistered modem would search the whole time."""
        self.clock.limit_ms = min(self.clock.budget_ms or 1 << 30,
                                  self.clock.elapsed_ms() + self.tune["reserve_ms"])
        try:
            m = self.modem or self._driver()
            m.radio_off()
            self.state.set("modem", m.memory())
        except Exception as e:
            log("radio not switched off: %s" % _err(e))
            return
        finally:
            self.clock.wind_down()
        self.modem = None  # off: nothing to release
        self.state.set("roff", b"1")
        self.state.delete("sock")  # the module closes its sockets with the radio
        self._restored_sock = None
        self.sock = None
        log("radio off until the back-off ends")


def build(secrets_path="secrets.json", board_path="board.json", root=""):
    """App from the two config files and the device maker's sensors.py; ConfigError when a
    file is missing or wrong (main.py prints it and returns to the REPL)."""
    secrets = load_secrets(secrets_path)
    board = load_board(board_path)
    for w in secrets.warnings + board.warnings:
        log("warning: " + w)
    return App(secrets, board, make_sensor(), root=root)


def make_sensor():
    """The device maker's sensors.make_sensor(), set up; the demo sensor when there is no
    sensors.py; None (queue still reported) when their code fails."""
    try:
        import sensors
    except ImportError as e:
        if "'sensors'" not in str(e):  # sensors.py is there but imports something missing
            log("sensors.py failed to import: %s" % _err(e))
            return None
        log("no sensors.py (%s): using the demo sensor" % e)
        from enosnb.sensor import DemoSensor
        return DemoSensor()
    except Exception as e:  # a sensors.py that fails to load must not keep the board awake
        log("sensors.py failed to import: %s" % _err(e))
        return None
    try:
        sensor = sensors.make_sensor()
        setup = getattr(sensor, "setup", None)
        if setup is not None:
            setup()
        return sensor
    except Exception as e:
        log("sensor setup failed: %s" % _err(e))
        return None
