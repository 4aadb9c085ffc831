"""What the SIM7020 and BC95 drivers share (modems.md §1, §5, §6, §8, §13).

Modem holds the bring-up skeleton (power key pulse, AT sync, echo off, numeric errors,
registration with a deadline), PSM and eDRX as the network grants them, and the recovery
policy:
- a timed-out command makes the engine stale; the next command first re-syncs with a probe whose
  answer cannot be confused with the late one;
- a reboot (boot banner, unexpected +CPIN: READY) or a PSM exit leads to a bounded
  re-initialisation that re-opens the sockets; if it fails the caller gets a ModemError;
- a send is confirmed by the modem or raises: after a failure it recovers and tries once more
  (send_attempts), never forever.

What the driver learns about the module (its firmware revision, the commands it refused,
whether it ever registered) is kept across deep sleep: memory() gives it as a few bytes for
the caller to store, Modem(memory=...) takes them back, so nothing is asked twice. Commands the
manuals tie to a firmware revision are only sent where the revision has them (modems.md §13).

ModemSocket is the datagram endpoint of ARCHITECTURE.md over one modem socket; socket() opens
one, adopt_socket() takes over one the module kept open while the host was in deep sleep.
"""
from micropython import const

from enosnb.clock import SYSTEM
from enosnb.modem.at import AtEngine, payload
from enosnb.modem.errors import (AtCommandError, AtTimeout, ModemError, ModemRebooted,
                                 RegistrationError, SocketError)
from enosnb.modem.timers import T3324_UNITS, T3412_UNITS, decode_timer, encode_t3324, \
    encode_t3412

# Release assistance (BC95 AT+NSOSTF flags, SIM7020 AT+CNBIOTRAI, modems.md §2.6, §3.6).
RELEASE_NONE = const(0)
RELEASE_NOW = const(0x200)
RELEASE_AFTER_REPLY = const(0x400)

MTU = const(512)
RX_QUEUE = const(4)


def is_ipv4(host):
    parts = host.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p.isdigit() or int(p) > 255:
            return False
    return True


def number(text, cmd):
    """int(text), or a ModemError naming the command whose answer was not a number."""
    try:
        return int(text)
    except (ValueError, TypeError):
        raise ModemError("unexpected answer %r to %s; check the module firmware (AT+CGMR) "
                         "against docs/modems.md" % (text, cmd))


def fields(line):
    """Comma-separated fields of an information line, quotes removed."""
    return [f.strip().strip('"') for f in payload(line).split(",")]


def _timer_bits(text):
    return len(text) == 8 and not text.strip("01")


class ModemSocket:
    """A UDP socket on the modem: send(data)/recv(timeout_ms)/close()/mtu.

    send(data, release=None) takes RELEASE_NOW or RELEASE_AFTER_REPLY on modems with release
    assistance; setting .last_exchange = True makes every following send ask for release
    after the reply, for endpoints whose caller cannot pass the argument (the CoAP client).
    """

    def __init__(self, modem, ip, port):
        self.modem = modem
        self.ip = ip
        self.port = port
        self.id = None
        self.mtu = MTU
        self.last_exchange = False
        self.closed = False
        self.rx = []
        self.rx_pending = False
        self.rx_dropped = 0
        self.net_closed = 0
        self.datagrams_sent = 0
        self.datagrams_received = 0

    def send(self, data, release=None):
        if self.closed:
            raise SocketError("send on a closed modem socket; open a new one with socket()")
        if len(data) > self.mtu:
            raise SocketError("datagram of %d bytes exceeds the modem limit of %d; use smaller "
                              "CoAP blocks" % (len(data), self.mtu))
        if release is None:
            release = RELEASE_AFTER_REPLY if self.last_exchange else RELEASE_NONE
        self.modem._send(self, data, release)
        self.datagrams_sent += 1

    def recv(self, timeout_ms):
        if self.closed:
            raise SocketError("recv on a closed modem socket; open a new one with socket()")
        data = self.modem._recv(self, timeout_ms)
        if data is not None:
            self.datagrams_received += 1
        return data

    def close(self):
        if not self.closed:
            self.closed = True
            self.modem._close(self)

    def _deliver(self, data):
        if len(self.rx) >= RX_QUEUE:
            self.rx.pop(0)
            self.rx_dropped += 1
        self.rx.append(data)


def _ignore(line):
    return None


class Modem:
    """Common part of the drivers. Subclasses name their dialect's commands in the class
    attributes below and implement check_sim, _radio_up, _read_settings, _apply_settings,
    _open, _send_once and the URCs."""

    NAME = "modem"
    BOOT_LINES = ()
    BOOT_PREFIXES = ()
    QUIET_LINES = ()
    LINE_MAX = 1100         # longest line the engine keeps (modems.md §1.8)
    SYNC_INTERVAL_MS = 500
    TIMEOUTS = {}
    DEFAULT_TIMEOUT_MS = 1000
    IGNORED_URCS = ()       # URCs that carry nothing the driver needs
    BAND_CMD = None         # "AT+CBAND=" / "AT+NBAND=", followed by the band list
    APN_CMD = None          # with %s for the APN
    ICCID_CMD = None
    IMEI_CMD = None
    PROBE = None            # (command, prefix or line test) whose answer cannot be stale
    IP_CMD = None
    PSM_URC_CMD = None      # switches on the PSM entry/exit URCs
    DNS_CMD = None          # with %s for the host name; the answer comes as a URC
    DNS_TIMEOUT_MS = 90000
    CLOSE_CMD = None        # with %d for the socket id
    SOCKETS = 0             # socket ids 0 .. SOCKETS-1
    RESTART_CMD = None      # reboots the module
    CCLK_UTC = False        # the +CCLK time fields are UTC (not 27.007 local time)

    def __init__(self, uart, clock=SYSTEM, pwrkey=None, pwrkey_active_high=False,
                 pwrkey_ms=800, boot_timeout_ms=20000, reg_poll_ms=2000,
                 reattach_timeout_ms=60000, reinit_attempts=2, send_attempts=2, timeouts=None,
                 boot_lines=None, boot_prefixes=None, memory=None, baudrate=None,
                 cclk_utc=None):
        self.clock = clock
        if cclk_utc is not None:
            self.CCLK_UTC = cclk_utc
        self.at = AtEngine(uart, clock, self.LINE_MAX)
        self.at.boot_markers(self.BOOT_LINES if boot_lines is None else boot_lines,
                             self.BOOT_PREFIXES if boot_prefixes is None else boot_prefixes)
        self.at.quiet_lines = self.QUIET_LINES
        self.at.on_reboot = self._on_reboot
        self.at.urc("+CEREG", self._urc_cereg)
        for prefix in self.IGNORED_URCS:
            self.at.urc(prefix, _ignore)
        self.pwrkey = pwrkey
        self.pwrkey_active_high = pwrkey_active_high
        self.pwrkey_ms = pwrkey_ms
        self.boot_timeout_ms = boot_timeout_ms
        self.reg_poll_ms = reg_poll_ms
        self.reattach_timeout_ms = reattach_timeout_ms
        self.reinit_attempts = reinit_attempts
        self.send_attempts = send_attempts
        self.baudrate = baudrate
        self.timeouts = dict(self.TIMEOUTS)
        if timeouts:
            self.timeouts.update(timeouts)
        self.sockets = []
        self.stat = None
        self.registered = False
        self.attached = False
        self.apn = None
        self.bands = None
        self.in_psm = False
        self.radio_is_off = False
        self.psm_granted = None
        self.tz_quarters = None
        self.fresh = False
        self.recoveries = 0
        self.resyncs = 0
        self._recovering = False
        self._reinit_needed = False
        self._dns = None
        self.revision = None
        self.facts = {}
        self._load_memory(memory)

    # -- what the driver learnt about the module ------------------------------------------

    def _load_memory(self, memory):
        if not memory:
            return
        try:
            rev, flags = bytes(memory).decode().split("|", 1)
            facts = {}
            for item in flags.split(","):
                if item:
                    key, value = item.split("=")
                    facts[key] = value == "1"
        except (ValueError, UnicodeError):
            return  # not ours: learn again
        self.revision = rev or None
        self.facts = facts

    @property
    def silent(self):
        """True when the module answered nothing to the last re-sync (no power, wiring):
        the end of a cycle then leaves it alone instead of waiting for answers that cannot
        come."""
        return self.at.silent

    def memory(self):
        """What the driver learnt about this module, as bytes for Modem(memory=...) after
        the next deep sleep: "<revision>|<fact>=<0|1>,..."."""
        return ("%s|%s" % (self.revision or "", ",".join(
            "%s=%d" % (k, 1 if v else 0) for k, v in sorted(self.facts.items())))).encode()

    def can(self, what):
        """Whether the module has a feature: what it showed earlier, else what its firmware
        revision says, else yes (a refusal is then learnt)."""
        v = self.facts.get(what)
        return self._firmware_has(what) if v is None else v

    def learn(self, what, value):
        self.facts[what] = bool(value)

    def _firmware_has(self, what):
        return True

    def _read_revision(self):
        """AT+CGMR, once per module (the answer is kept in memory())."""
        try:
            lines = self.cmd("AT+CGMR")
        except AtCommandError:
            lines = ()
        rev = self._parse_revision(lines)
        # Kept in memory(): no separators, bounded.
        self.revision = (rev or "?").replace("|", "").replace(",", "")[:40]

    def _parse_revision(self, lines):
        for line in lines:
            if line.startswith("Revision:"):
                return line[9:].strip()
        return lines[0].strip() if lines else None

    # -- plumbing ------------------------------------------------------------------------

    def _timeout(self, cmd):
        for key in self.timeouts:
            if cmd.startswith(key):
                return self.timeouts[key]
        return self.DEFAULT_TIMEOUT_MS

    def cmd(self, cmd, timeout_ms=None, **kw):
        """One AT command with its own timeout; re-syncs or recovers first when needed."""
        self._ensure(False)
        return self.at.command(cmd, self._timeout(cmd) if timeout_ms is None else timeout_ms,
                               **kw)

    def query(self, cmd, timeout_ms=None, prefix=None):
        self._ensure(False)
        return self.at.query(cmd, self._timeout(cmd) if timeout_ms is None else timeout_ms,
                             prefix)

    def _try(self, cmd, what=None):
        """cmd; False when the module refused it (and, with what, learns it has not got it)."""
        try:
            self.cmd(cmd)
            return True
        except AtCommandError:
            if what:
                self.learn(what, False)
            return False

    def _ensure(self, network):
        if self._recovering:
            return
        if self.in_psm:
            self._leave_psm()
        if self.at.rebooted or self._reinit_needed:
            self.recover()
        elif self.at.stale:
            self.resyncs += 1
            try:
                self.at.sync(4, self.SYNC_INTERVAL_MS * 2, self.PROBE[0], self.PROBE[1])
            except ModemError:
                self.recover()
            if self.at.rebooted:
                self.recover()
        if network and self.attached and not self.registered:
            self._wait_registered(self.reattach_timeout_ms)

    def _on_reboot(self, marker):
        self.registered = False
        self.fresh = True
        self._rebooted_hook()
        for s in self.sockets:
            s.id = None

    def _rebooted_hook(self):
        """Dialect state that a reboot resets (SIM7020: the receive flag)."""

    def _urc_cereg(self, line):
        f = fields(line)
        # URC "+CEREG: <stat>[,<tac>,<ci>,<AcT>[,...,<T3324>,<T3412>]]"; the late answer of
        # a query has "<n>,<stat>" instead, its second field one digit.
        query = len(f) > 1 and len(f[1]) == 1 and f[1].isdigit()
        self._set_stat(int(f[1] if query else f[0]))
        self._read_timers(f)

    def _set_stat(self, stat):
        self.stat = stat
        self.registered = stat in (1, 5)
        if self.registered:
            self.learn("reg", True)

    def _read_timers(self, f):
        # With AT+CEREG=4 the last two fields are the granted T3324 and T3412 (27.007 §10.1.22;
        # modems.md §2.6): "111xxxxx" means deactivated, i.e. no PSM.
        if len(f) < 4 or not (_timer_bits(f[-1]) and _timer_bits(f[-2])):
            return
        active = decode_timer(f[-2], T3324_UNITS)
        tau = decode_timer(f[-1], T3412_UNITS)
        self.psm_granted = False if active is None else (tau, active)

    # -- bring-up ------------------------------------------------------------------------

    def power_on(self, timeout_ms=None):
        """Make the module answer AT: try it first, pulse the power key only if it is silent.
        Afterwards .fresh tells whether the module has just booted (no state from before)."""
        if timeout_ms is None:
            timeout_ms = self.boot_timeout_ms
        try:
            self.at.sync(2, self.SYNC_INTERVAL_MS)
        except ModemError:
            # A pulse on a module that is already on could switch it off: only when silent.
            if self.pwrkey is not None:
                self.pulse_pwrkey()
                self.fresh = True
            self.at.sync(max(1, timeout_ms // self.SYNC_INTERVAL_MS), self.SYNC_INTERVAL_MS)
        self.at.rebooted = False
        self.at.stale = False

    def pulse_pwrkey(self, ms=None):
        pin = self.pwrkey
        if isinstance(pin, int):
            import machine
            pin = machine.Pin(pin, machine.Pin.OUT)
            self.pwrkey = pin
        active = 1 if self.pwrkey_active_high else 0
        pin.value(1 - active)
        self.clock.sleep_ms(10)
        pin.value(active)
        self.clock.sleep_ms(self.pwrkey_ms if ms is None else ms)
        pin.value(1 - active)

    def init(self):
        """Firmware revision (once per module), echo off, numeric errors, registration URCs
        with the PSM timers; SIM check unless already registered."""
        if self.revision is None:
            self._read_revision()
        self._setup()
        self.at.rebooted = False
        self.cereg()
        if not self.registered:
            self.check_sim()

    def _setup(self):
        # A reboot or a PSM exit resets all three (modems.md §10.6).
        if self.can("ate"):
            self._try("ATE0", "ate")
        self.cmd("AT+CMEE=1")
        # n=4 adds the PSM timers the network granted to every registration answer.
        if not (self.can("cereg4") and self._try("AT+CEREG=4", "cereg4")):
            self._try("AT+CEREG=1")
        self._reinit_needed = False

    def cereg(self):
        """AT+CEREG? -> stat (1 home, 5 roaming, 2 searching, 0/3/4 not registered); also
        reads the granted PSM timers into .psm_granted when the answer carries them."""
        stat = None
        for line in self.cmd("AT+CEREG?"):
            if line.startswith("+CEREG"):
                f = fields(line)
                if len(f) >= 2:
                    stat = f[1]
                    self._read_timers(f)
                    break
                # A bare "+CEREG: <stat>" is a URC that came with the answer: the answer wins.
                stat = f[0]
        if stat is not None:
            self._set_stat(number(stat, "AT+CEREG?"))
        return self.stat

    def cold_start(self):
        """After a cold boot of the host (power-on, reset button, watchdog; not a deep-sleep
        wake), with the module possibly still powered: closes every socket id it may hold
        from before, errors ignored (modems.md §2.5, §3.6: 5 ids on SIM7020, 7 on BC95), so
        sockets never run out. Nothing to do when the module itself has just booted."""
        if not self.fresh:
            self.close_stale_sockets()

    def close_stale_sockets(self):
        """Closes every socket id this driver does not use; returns how many were open."""
        mine = [s.id for s in self.sockets if s.id is not None]
        closed = 0
        for sid in range(self.SOCKETS):
            if sid not in mine and self._try(self.CLOSE_CMD % sid):
                closed += 1
        return closed

    def attach(self, apn=None, bands=None, timeout_ms=120000, scan_timeout_ms=None,
               on_scan=None):
        """Register on the network by timeout_ms.

        Asks the registration first and touches the radio only as needed (modems.md §6.1):
        registered: nothing; searching with the right settings: wait; radio off: switch it
        on; APN or bands differ: change them (radio off, settings, radio on or reboot). A
        module that will scan the bands (settings changed, or never registered before) gets
        scan_timeout_ms instead, told first to on_scan(ms) so the caller can stretch its own
        time budget.
        """
        self.apn = apn
        self.bands = bands
        self.attached = True
        self.radio_is_off = False
        if self.registered:
            return
        scan = self._configure(apn, bands) or not self.facts.get("reg")
        if scan and scan_timeout_ms:
            timeout_ms = max(timeout_ms, scan_timeout_ms)
            if on_scan is not None:
                on_scan(timeout_ms)
        self._wait_registered(timeout_ms)

    def _configure(self, apn, bands):
        """Radio on with the right settings; True when settings had to change."""
        bands = list(bands) if bands else None
        if apn is not None or bands:
            have_apn, have_bands = self._read_settings(apn is not None, bool(bands))
            apn = None if apn is None or apn == have_apn else apn
            bands = None if not bands or bands == have_bands else bands
            if apn is not None or bands:
                self.learn("reg", False)
                self._apply_settings(apn, bands)
                return True
        if self.stat in (None, 0):
            self._radio_up()
        return False

    def _wait_registered(self, timeout_ms):
        clock = self.clock
        deadline = clock.ticks_add(clock.ticks_ms(), timeout_ms)
        while True:
            if self.cereg() in (1, 5):
                return
            left = clock.ticks_diff(deadline, clock.ticks_ms())
            if left <= 0:
                raise RegistrationError(self.stat, timeout_ms)
            self.at.poll(min(left, self.reg_poll_ms), lambda: self.registered)
            if self.at.rebooted and not self._recovering:
                self.recover()
                return

    def radio_off(self, power_off=True):
        """Switch the radio off for a back-off, so a module that cannot register stops
        searching at mA-level current (modems.md §6.1): powered down where the board can
        power it up again (power_off and a power key; SIM7020 AT+CPOWD=1), else the
        dialect's radio off (AT+CFUN=0). The next power_on() / attach() brings it back;
        its sockets are gone (.radio_is_off until then). The line is synced first: a reset
        of the ESP32 may have cut a command in half. ModemError when the module is silent."""
        self.at.sync(3, self.SYNC_INTERVAL_MS)
        self._radio_off(power_off and self.pwrkey is not None)
        self.radio_is_off = True
        self.registered = False
        self.attached = False
        self.stat = 0
        for s in self.sockets:
            s.id = None

    def _radio_off(self, power_down):
        self.cmd("AT+CFUN=0")

    def restart(self):
        """Reboot the module and bring it back (the last resort: every socket is lost)."""
        self._reboot()
        if self.attached:
            self._configure(self.apn, self.bands)

    def _reboot(self):
        """Reboots the module and waits until it answers again, set up as by init()."""
        lines = self.cmd(self.RESTART_CMD, self._timeout(self.RESTART_CMD), expect_reboot=True)
        self._on_reboot(self.RESTART_CMD)
        if not lines:
            # Answered OK first (SIM7020 AT+CRESET): the boot banner follows.
            self.at.poll(self.boot_timeout_ms, lambda: self.at.rebooted)
        self.at.sync(max(1, self.boot_timeout_ms // self.SYNC_INTERVAL_MS),
                     self.SYNC_INTERVAL_MS)
        self.at.rebooted = False
        self._setup()

    # -- information -----------------------------------------------------------------------

    def _ask(self, cmd):
        """The answer of a query that must have one."""
        answer = self.query(cmd)
        if not answer:
            raise ModemError("no answer line to %s; check the module firmware (AT+CGMR)" % cmd)
        return answer

    def imei(self):
        return self._ask(self.IMEI_CMD)

    def iccid(self):
        return self._ask(self.ICCID_CMD)

    def ip(self):
        f = fields("+CGPADDR:" + (self.query(self.IP_CMD) or ""))
        return f[1] if len(f) > 1 else None

    def network_time(self):
        """The network's time (NITZ) as an RTC datetime tuple in UTC, or None before the
        module has it; ModemError when the answer is not a time. Sets .tz_quarters to the
        zone the module reports (quarter hours east of UTC)."""
        from enosnb.modem.nettime import datetime, parse_time
        self._clock_setup()
        try:
            t = parse_time(self.query("AT+CCLK?", prefix="+CCLK"))
        except ValueError as e:
            raise ModemError("%s; check the module firmware (AT+CGMR)" % e)
        if t is None:
            return self._urc_time()
        secs, zone = t
        self.tz_quarters = zone
        return datetime(secs if self.CCLK_UTC else secs - zone * 900)

    def _clock_setup(self):
        """Makes +CCLK mean what CCLK_UTC says (SIM7020: AT+CURTC)."""

    def _urc_time(self):
        """The network time from a URC (SIM7020 +CLTS), or None."""
        return None

    def signal(self):
        """Received signal strength in dBm from AT+CSQ, or None when unknown (99)."""
        f = fields("+CSQ:" + self._ask("AT+CSQ"))
        rssi = number(f[0], "AT+CSQ")
        return None if rssi == 99 else -113 + 2 * rssi

    # -- power saving ------------------------------------------------------------------------

    def psm(self, t3412_s=None, t3324_s=None):
        """Request PSM with a periodic TAU and active time in seconds, switch eDRX off, and
        read back what the network granted (modems.md §5): returns .psm_granted, a tuple
        (T3412 s or None, T3324 s), False when the network refused PSM, None when the module
        does not say (or has no PSM: BC95 before B657SP1). t3412_s None disables PSM.
        """
        if not self.can("psm"):
            return None
        if t3412_s is None:
            self.cmd("AT+CPSMS=0")
            self.psm_granted = None
            return None
        self._before_psm()
        self.cmd('AT+CPSMS=1,,,"%s","%s"' % (encode_t3412(t3412_s), encode_t3324(t3324_s)))
        # A module may keep eDRX from its own settings: paging cycles in idle cost current
        # and buy nothing here (commands ride on uplink responses).
        self.edrx(None)
        if self.can("psmurc"):
            self._try(self.PSM_URC_CMD, "psmurc")
        self.cereg()
        return self.psm_granted

    def _before_psm(self):
        """Dialect settings PSM needs (SIM7020: a fixed baud rate)."""

    def _psm_changed(self, entered):
        self.in_psm = entered
        if not entered:
            # Echo is back on and dialect flags are reset after PSM (modems.md §10.6).
            self._reinit_needed = True

    def _leave_psm(self):
        """Wake the module before talking to it; the re-initialisation follows."""
        self.in_psm = False
        self._reinit_needed = True

    def edrx(self, cycle_s=None):
        """Request an eDRX cycle (NB-S1 value in seconds, e.g. 81.92); None switches eDRX
        off. False when the module has no AT+CEDRXS."""
        if cycle_s is None:
            return self.can("edrx") and self._try("AT+CEDRXS=0,5", "edrx")
        from enosnb.modem.timers import encode_edrx
        self.cmd('AT+CEDRXS=1,5,"%s"' % encode_edrx(cycle_s))
        return True

    def release(self):
        """Ask the network to release the RRC connection now, where the module has a
        command for it (BC95-G AT+CNMPSD). After one refusal (ERROR or +CME ERROR: 4) it is
        not asked again (see memory()). False when nothing was asked."""
        return False

    # -- recovery ------------------------------------------------------------------------

    def recover(self):
        """Bounded re-initialisation after a reboot, PSM exit or lost sync; raises if it fails."""
        if self._recovering:
            return
        self._recovering = True
        self.recoveries += 1
        last = None
        try:
            for attempt in range(self.reinit_attempts):
                try:
                    if attempt and self.pwrkey is not None:
                        self.power_on()
                    else:
                        self.at.sync(max(1, self.boot_timeout_ms // self.SYNC_INTERVAL_MS),
                                     self.SYNC_INTERVAL_MS, self.PROBE[0], self.PROBE[1])
                    self.at.rebooted = False
                    self._reinit()
                    if self.attached and not self.registered:
                        self._configure(self.apn, self.bands)
                        self._wait_registered(self.reattach_timeout_ms)
                    for s in self.sockets:
                        if s.id is None and not s.closed:
                            self._open(s)
                    if self.at.rebooted:
                        raise ModemRebooted(self.at.reboot_marker)
                    return
                except RegistrationError:
                    raise
                except ModemError as e:
                    last = e
            raise ModemError("%s did not recover after %d re-initialisations (%s); power-cycle "
                             "the module" % (self.NAME, self.reinit_attempts, last))
        finally:
            self._recovering = False

    def _reinit(self):
        self._setup()
        self.cereg()

    # -- sockets -------------------------------------------------------------------------

    def socket(self, host, port):
        """A UDP datagram endpoint to host:port (literal IPv4 preferred; else DNS)."""
        ip = host if is_ipv4(host) else self.resolve(host)
        s = ModemSocket(self, ip, port)
        self._ensure(True)
        self._open_freeing(s)
        self.sockets.append(s)
        return s

    def _open_freeing(self, sock):
        """_open(sock); when the module gives no socket id, close the ones nobody uses and
        try again, and reboot it only when even that did not help."""
        try:
            self._open(sock)
            return
        except SocketError:
            self.close_stale_sockets()
        try:
            self._open(sock)
            return
        except SocketError:
            self.restart()
        self._open(sock)

    def adopt_socket(self, sid, ip, port):
        """The endpoint for socket sid to ip:port that the module kept open while the host
        slept (ESP32 deep sleep with the modem powered): no AT command, no new socket.

        The driver cannot know whether the module still has it (a reboot or PSM may have
        closed it): if it is gone, the first send is refused once, the driver drops the id
        and opens a new socket (see _send). Adopting an id this driver already holds for the
        same address gives that endpoint back.
        """
        if not isinstance(sid, int) or sid < 0:
            raise SocketError("socket id %r to adopt is not a modem socket number; open a new "
                              "one with socket()" % (sid,))
        s = self._socket_by_id(sid)
        if s is not None:
            if s.ip == ip and s.port == port:
                return s
            raise SocketError("modem socket %d is already open to %s:%d; adopt it with that "
                              "address or open a new one with socket()" % (sid, s.ip, s.port))
        s = ModemSocket(self, ip, port)
        s.id = sid
        self.sockets.append(s)
        return s

    def _send(self, sock, data, release):
        last = None
        for _ in range(self.send_attempts):
            try:
                self._ensure(True)
                if sock.id is None:
                    self._open_freeing(sock)
                self._send_once(sock, data, release)
                return
            except AtCommandError as e:
                last = e
                self._send_failed(sock, e)
            except (AtTimeout, ModemRebooted) as e:
                last = e
                if not self.at.rebooted:
                    self._reinit_needed = True
        raise SocketError("%s: datagram of %d bytes not sent after %d attempts (%s); the caller "
                          "may retry later" % (self.NAME, len(data), self.send_attempts, last))

    def _send_failed(self, sock, err):
        """After a refused send: lost registration or a dead socket are the usual causes."""
        try:
            self.cereg()
        except ModemError:
            self._reinit_needed = True
            return
        if not self.registered:
            return
        self._drop_socket(sock)

    def _drop_socket(self, sock):
        if sock.id is not None:
            sid = sock.id
            sock.id = None
            try:
                self.cmd(self.CLOSE_CMD % sid)
            except ModemError:
                pass

    def _recv(self, sock, timeout_ms):
        clock = self.clock
        deadline = clock.ticks_add(clock.ticks_ms(), timeout_ms)
        while True:
            self.at.pump()
            if self.at.rebooted:
                self.recover()
            self._fetch(sock)
            if sock.rx:
                return sock.rx.pop(0)
            left = clock.ticks_diff(deadline, clock.ticks_ms())
            if left <= 0:
                return None
            self.at.poll(left, lambda: sock.rx or sock.rx_pending or self.at.rebooted)

    def _fetch(self, sock):
        """Pull buffered datagrams from the modem (BC95 NSORF); SIM7020 gets them in URCs."""

    def _close(self, sock):
        if sock in self.sockets:
            self.sockets.remove(sock)
        self._drop_socket(sock)

    def _socket_by_id(self, sid):
        for s in self.sockets:
            if s.id == sid:
                return s
        return None

    def _net_closed(self, sid):
        s = self._socket_by_id(sid)
        if s is not None:
            s.id = None
            s.net_closed += 1

    def close(self):
        """Close every socket this driver opened."""
        for s in list(self.sockets):
            s.close()

    def resolve(self, host, timeout_ms=None):
        """IPv4 address of host via the modem's DNS (answer in a URC the dialect parses)."""
        self._dns = None
        self.cmd(self.DNS_CMD % host, 5000)
        self.at.poll(self.DNS_TIMEOUT_MS if timeout_ms is None else timeout_ms,
                     lambda: self._dns is not None)
        if not self._dns:
            raise ModemError("DNS lookup of %r failed or timed out; configure the server as an "
                             "IPv4 address or cache it" % host)
        return self._dns
