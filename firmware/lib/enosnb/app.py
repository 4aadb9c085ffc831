"""The report cycle: measure, queue, report to EnOS, handle commands, sleep.

One wake-up of the device is one call of App.run(). Its phases, in order, each in a module
of its own that is imported when the phase begins (a cycle that skips the radio never loads
the radio's code, a restored session never loads the handshake):

  1. begin (here): the state kept across deep sleep (enosnb.state): CoAP and EnOS counters,
     the DTLS session, the plain-mode auth binding, the modem socket, the back-off counters;
  2. measure (here): read the sensor and append the reading to the flash queue
     (enosnb.store) BEFORE any radio work, so no later failure can lose it;
  3. radio (enosnb.radio): bring up the modem (power key only when it is silent; after a
     cold boot the sockets the module still holds are closed; registration, touching the
     radio only as needed) and take the UDP socket that survived the sleep, or open one;
     PSM is asked once per power-on and what the network granted is reported;
  4. connect (enosnb.link): restore the saved DTLS session (0 handshake round trips when the
     server still knows it), else resume it (abbreviated handshake), else a full handshake;
     in plain mode reuse the /auth binding, else POST /auth (enos-coap.md §5.3, §5.4, §6.4,
     dtls.md §16); the EnOS client itself is enosnb.cloud's;
  5. report (enosnb.report, enosnb.delivery): the queue oldest first: this cycle's reading
     goes to thing.measurepoint.post; records left over from an outage go first, in time
     order, through the backlog path (single resume, or post with each reading's own time
     where EnOS refuses resume, §8.3, §18); a record leaves the queue only after EnOS
     answered code 200 for it, or when EnOS refused it for good (then it waits in the dead
     letters); each record's time is recovered from the RTC value it was stamped with
     (enosnb.timelog);
  6. cloud commands ride on every response (enosnb.cloud loads enos.commands when one
     comes); their dedupe memory is kept;
  7. finish (here): save the state, release the radio (release assistance / AT+CNMPSD),
     switch the radio off where the network refused PSM (else the modem would idle in DRX at
     mA level), return the time to sleep. What the driver learnt about the module (firmware
     revision, refused commands) is kept in the state, so later cycles do not ask again.

The configuration comes from enosnb.settings (validated once per change of the files); the
modem's UART may have been made before the imports (enosnb.early). A garbage collection
closes every phase: what a phase left behind is freed before the next one allocates, so the
long-lived objects of the next phase fill the holes from the bottom of the heap instead of
spreading over it (docs/ram.md).

Every failure of a layer (ModemError, DtlsError, CoapError, EnosError, StoreError, a sensor
error, MemoryError) is caught here: the reading stays queued, the error is logged without
secrets (a MemoryError as memory, after a collection), state is saved and the device
sleeps. After consecutive failures the next wakes only measure and queue, skipping the
radio for a randomised, exponentially growing number of cycles (enosnb.timing), with the
radio switched off in between.

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
import gc
import struct

from micropython import const

from enosnb.clock import SYSTEM
from enosnb.coap.errors import CoapError
from enosnb.settings import ConfigError
from enosnb.dtls.errors import DtlsError
from enosnb.enos.errors import EnosError
from enosnb.modem.errors import ModemError, RegistrationError
from enosnb.sensor import check_points
from enosnb.state import State, StateError
from enosnb.store import Store, StoreError
from enosnb import diag, timing

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
    "fs_bytes": None,              # None: os.statvfs of the flash (the queue cap's base)
    "sntp_timeout_ms": None,       # None: ack_timeout_ms of secrets.json
}
# A queue smaller than this would not hold a day at 10 minutes: the fraction is too small.
_QUEUE_MIN_BYTES = const(16384)


def log(msg):
    print("[enosnb] " + msg)


def _join(root, name):
    return root + name if not root or root.endswith("/") else root + "/" + name


def _err(e):
    return "%s: %s" % (type(e).__name__, e)


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


def encode_record(points, rtc_ms, epoch):
    """A queued reading: its points, and the RTC value and epoch it was taken at (the time
    is recovered when it is sent, enosnb.timelog)."""
    from enosnb.enos.bodies import dumps
    return dumps({"p": points, "r": rtc_ms, "e": epoch}).encode()


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
        self.uart = None  # made by main.py before the imports (enosnb.early), else here
        self.mem = None   # enosnb.memreport when board.json asks for the memory report
        self.modem = None
        self.sock = None
        self.coap = None
        self.enos = None
        self.commands = None
        self.last_points = None

    # --- files ---------------------------------------------------------------------------

    def _path(self, name):
        return _join(self.root, name)

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
        self._open_time()  # its epoch note goes out with the mark: a reset keeps the epoch
        self._save_state()  # the mark is in RTC memory before any radio work
        self.store = None
        current = None
        interval_ms = self.secrets.report_interval_s * 1000
        try:
            self.store = self._open_queue()
            current = self.measure()
        except MemoryError as e:
            self._memory("queue", e)
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
                from enosnb import link, report  # loaded by the two phases above
                if self._kept_how == "plain-kept":
                    link.learn_nat(self, self.link.opens == 0)
                self._succeeded()
                report.report_resets(self)
                diag.succeeded(self)
            except MemoryError as e:
                self._memory("report", e)
            except (ModemError, DtlsError, CoapError, EnosError, StoreError, StateError,
                    ConfigError, OSError, BudgetSpent) as e:
                self._failed("budget" if self.clock.spent else "report", e)
            except Exception as e:
                # A bug in a layer must not stop the device: log it, treat it as a failure.
                self._failed("unexpected", e)
        self._phase("report")
        if self.mem is not None:
            self.mem.point("peak")
            self.mem.headroom()
        if self.store is not None:
            self.report["pending"] = len(self.store)
            self.report["dropped"] = self.store.dropped
            for what, n in self.store.events:
                log("queue full: %s (%d readings went, %d since the start, full policy %s)"
                    % (what, n, self.store.dropped, self.secrets.queue_full))
        dl = self.state.get("dl")
        if self.report["dead"] is None and dl:
            self.report["dead"] = struct.unpack(">H", dl)[0]
        self.report["dead_letters"] = self.report["dead"]  # the diagnostics report's name
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
        self.report = {"queued": None, "sent": 0, "rejected": 0, "dead": None, "time": None,
                       "dropped": 0,
                       "connect": None, "error": None, "skipped_radio": False,
                       "commands": 0, "pending": None, "socket": None, "phases": {},
                       "abnormal": 0, "battery_mv": None}
        self._mark = 0
        if boot_ms is not None:
            self.report["phases"]["boot"] = boot_ms
        if imports_ms is not None:
            self.report["phases"]["imports"] = imports_ms
        self.meter = None
        self.delivery = None
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
        gc.collect()
        if self.mem is not None:
            self.mem.phase(name)

    def measure(self):
        """Reads the sensor and queues the reading; returns its queue seq (None if none)."""
        if self.sensor is None:
            return None
        try:
            points = check_points(self.sensor.read())
        except MemoryError:
            raise
        except Exception as e:  # the device maker's code: any error is a sensor error
            log("sensor: %s" % _err(e))
            return None
        self.last_points = points
        r, e = self.times.stamp()
        seq = self.store.append(encode_record(points, r, e))
        self.report["queued"] = seq
        return seq

    def _open_time(self):
        """The time log; a restarted RTC (power-on) ends the current epoch."""
        from enosnb.timelog import TimeLog
        b = self.board
        self.times = TimeLog(self._path("time.log"), self._rtc_clock(),
                             getattr(b, "rtc_drift_var", None) or 0.01,
                             getattr(b, "rtc_drift_max", None) or 0.05)
        got = self.state.get("ep")
        epoch, last = struct.unpack(">Iq", got) if got and len(got) == 12 else (None, None)
        if self.times.begin(epoch, last):
            log("RTC restarted (epoch %d): readings until the next sync are dated from it"
                % self.times.epoch)
        self.state.set("ep", struct.pack(">Iq", *self.times.note()))

    def _rtc_clock(self):
        try:
            return self._mach().RTC()
        except (ImportError, AttributeError):
            return None

    def _open_queue(self):
        """The flash queue, capped at queue_fraction of the file system (at most half)."""
        s = self.secrets
        fs = self.tune["fs_bytes"]
        if fs is None:
            from enosnb.store import fs_bytes
            fs = fs_bytes(self._path("") or ".")
        cap = None
        if fs:
            cap = max(_QUEUE_MIN_BYTES, int(fs * s.queue_fraction))
        return Store(self._path("queue"), max_records=s.queue_max_records, max_bytes=cap,
                     full=s.queue_full)

    def _memory(self, stage, e):
        gc.collect()
        self.report["memory"] = self.report.get("memory", 0) + 1
        free = gc.mem_free() if hasattr(gc, "mem_free") else -1
        self._failed(stage, e)
        log("out of memory in %s (%d bytes free after a collection): the readings stay "
            "queued" % (stage, free))

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
        if skip or isinstance(e, RegistrationError):
            # No network search while backing off, nor until the next wake after no cell took
            # the module: unregistered, it searches at mA level the whole sleep.
            self._radio_off = True
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

    # --- the phases after the reading is queued (one module each) ---------------------

    def _consume_session(self):
        """A restorable DTLS blob is good for one wake only: a crash later in this cycle
        would otherwise restore sequence numbers the server has already seen."""
        self._restorable = self.state.get("dtok") == b"1"
        self._restored_sock = self.state.get("sock")
        if self._restorable:
            self.state.delete("dtok")
            self._save_state()

    def _driver(self):
        """The modem driver on the board's UART (enosnb.radio)."""
        from enosnb import radio
        return radio.driver(self)

    def bring_up_modem(self):
        """Power, registration, clock, PSM (enosnb.radio)."""
        from enosnb import radio
        radio.bring_up(self)

    def connect(self):
        """The radio, then CoAP over DTLS or plain CoAP to EnOS (enosnb.link)."""
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
            from enosnb import link
            link.connect(self)
        finally:
            self._phase("handshake")

    def send_queue(self, current):
        """The queue to EnOS, oldest first (enosnb.report)."""
        from enosnb import report
        report.send_queue(self, current)

    def _save_progress(self):
        """Counters after each acknowledged batch, so a crash cannot reuse message ids."""
        if self.coap is not None:
            self.state.set("coap", self.coap.state())
        if self.enos is not None:
            self.state.set("enos", self.enos.state())

    # --- end of cycle --------------------------------------------------------------------

    def finish(self, sleep_ms=0):
        """Saves the state and releases the radio (or switches it off for a back-off), holds
        the modem's control lines for the sleep; nothing here may raise."""
        st = self.state
        st.set("slp", struct.pack(">I", sleep_ms // 1000))
        silent = self.modem is not None and self.modem.silent
        if silent:
            log("modem silent: not released or switched off")
        elif self.modem is not None:
            diag.before_release(self)  # while the radio is up: the cycle line shows it
        if not silent and self._radio_off and st.get("roff") != b"1":
            from enosnb import radio
            radio.radio_off(self)
        link = getattr(self, "link", None)
        session = link.session if link is not None else None
        try:
            self._save_progress()
            times = getattr(self, "times", None)
            if times is not None:
                st.set("ep", struct.pack(">Iq", *times.note()))
                if self.store is not None and not len(self.store) and times.count > 4:
                    times.compact()  # no queued reading refers to an older epoch
            cmds = self.commands.state() if self.commands is not None else None
            if self.enos is not None and cmds is not None:
                st.set("cmds", cmds)
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
        if self.modem is not None and not silent:
            try:
                self.modem.release()
                from enosnb import radio  # loaded: the modem came from it
                if radio.off_between_reports(self):
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
        ph = self.report["phases"]
        # In the order they ran: a MicroPython dict keeps no order.
        log("phases (ms): " + " ".join("%s %d" % (k, ph[k]) for k in (
            "boot", "imports", "measure", "attach", "handshake", "report", "save") if k in ph))



def build(secrets_path="secrets.json", board_path="board.json", root="", early=None):
    """App from the two config files (enosnb.settings: validated when they changed) and the
    device maker's sensors.py; ConfigError when a file is missing or wrong (main.py prints it
    and returns to the REPL). early: what main.py made before the imports (enosnb.early)."""
    from enosnb import settings
    secrets, board = settings.load(secrets_path, board_path,
                                   _join(root, settings.CACHE_FILE))
    for w in secrets.warnings + board.warnings:
        log("warning: " + w)
    app = App(secrets, board, make_sensor(), root=root)
    if early is not None:
        app.uart, app.mem = early.uart, early.mem
    return app


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
