"""What the SIM7020 and BC95 drivers share (spec/modems.md §1, §5, §6, §8).

Modem holds the bring-up skeleton (power key pulse, AT sync, echo off, numeric errors,
registration with a deadline), the PSM/eDRX commands, and the recovery policy:
- a timed-out command makes the engine stale; the next command first re-syncs with a probe whose
  answer cannot be confused with the late one;
- a reboot (boot banner, unexpected +CPIN: READY) or a PSM exit leads to a bounded
  re-initialisation that re-opens the sockets; if it fails the caller gets a ModemError;
- a send is confirmed by the modem or raises: after a failure it recovers and tries once more
  (send_attempts), never forever.

ModemSocket is the datagram endpoint of ARCHITECTURE.md over one modem socket; socket() opens
one, adopt_socket() takes over one the module kept open while the host was in deep sleep.
"""
from micropython import const

from enosnb.clock import SYSTEM
from enosnb.modem.at import AtEngine, payload
from enosnb.modem.errors import (AtCommandError, AtTimeout, ModemError, ModemRebooted,
                                 RegistrationError, SocketError)

# Release assistance (BC95 AT+NSOSTF flags, spec §3.6).
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
                         "against spec/modems.md" % (text, cmd))


def fields(line):
    """Comma-separated fields of an information line, quotes removed."""
    return [f.strip().strip('"') for f in payload(line).split(",")]


class ModemSocket:
    """A UDP socket on the modem: send(data)/recv(timeout_ms)/close()/mtu.

    send(data, release=None) takes RELEASE_NOW or RELEASE_AFTER_REPLY on modems with release
    assistance (BC95); setting .last_exchange = True makes every following send ask for release
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
    attributes below and implement check_sim, _radio_up, _open, _send_once and the URCs."""

    NAME = "modem"
    BOOT_LINES = ()
    BOOT_PREFIXES = ()
    SYNC_INTERVAL_MS = 500
    TIMEOUTS = {}
    DEFAULT_TIMEOUT_MS = 1000
    IGNORED_URCS = ()       # URCs that carry nothing the driver needs
    BAND_CMD = None         # "AT+CBAND=" / "AT+NBAND=", followed by the band list
    APN_CMD = None          # with %s for the APN
    ICCID_CMD = None
    IP_CMD = None
    PSM_URC_CMD = None      # switches on the PSM entry/exit URCs
    DNS_CMD = None          # with %s for the host name; the answer comes as a URC
    DNS_TIMEOUT_MS = 90000
    CLOSE_CMD = None        # with %d for the socket id

    def __init__(self, uart, clock=SYSTEM, pwrkey=None, pwrkey_active_high=False,
                 pwrkey_ms=800, boot_timeout_ms=20000, reg_poll_ms=2000,
                 reattach_timeout_ms=60000, reinit_attempts=2, send_attempts=2, timeouts=None,
                 boot_lines=None, boot_prefixes=None, has_cnmpsd=True):
        self.clock = clock
        self.at = AtEngine(uart, clock)
        self.at.boot_markers(self.BOOT_LINES if boot_lines is None else boot_lines,
                             self.BOOT_PREFIXES if boot_prefixes is None else boot_prefixes)
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
        self.recoveries = 0
        self.resyncs = 0
        self._recovering = False
        self._reinit_needed = False
        self._dns = None
        # False once the firmware refused AT+CNMPSD; the app may persist it across deep
        # sleep and pass it back, so the command is not retried every cycle.
        self.has_cnmpsd = has_cnmpsd

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
                self.at.sync(4, self.SYNC_INTERVAL_MS * 2, "AT+CGSN=1", "+CGSN")
            except ModemError:
                self.recover()
            if self.at.rebooted:
                self.recover()
        if network and self.attached and not self.registered:
            self._wait_registered(self.reattach_timeout_ms)

    def _on_reboot(self, marker):
        self.registered = False
        self._rebooted_hook()
        for s in self.sockets:
            s.id = None

    def _rebooted_hook(self):
        """Dialect state that a reboot resets (SIM7020: the receive flag)."""

    def _urc_cereg(self, line):
        f = fields(line)
        # URC "+CEREG: <stat>[,<tac>,<ci>,<AcT>]"; tac is quoted hex, so field count decides.
        stat = int(f[0]) if len(f) in (1, 4) else int(f[1])
        self._set_stat(stat)

    def _set_stat(self, stat):
        self.stat = stat
        self.registered = stat in (1, 5)

    # -- bring-up ------------------------------------------------------------------------

    def power_on(self, timeout_ms=None):
        """Make the module answer AT: try it first, pulse the power key only if it is silent."""
        if timeout_ms is None:
            timeout_ms = self.boot_timeout_ms
        try:
            self.at.sync(2, self.SYNC_INTERVAL_MS)
        except ModemError:
            # A pulse on a module that is already on could switch it off: only when silent.
            if self.pwrkey is not None:
                self.pulse_pwrkey()
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
        """Echo off, numeric errors, registration URCs; SIM check unless already registered."""
        self._setup()
        self.at.rebooted = False
        self.cereg()
        if not self.registered:
            self.check_sim()

    def _setup(self):
        # A reboot or a PSM exit resets all three (spec §10.6).
        self.cmd("ATE0")
        self.cmd("AT+CMEE=1")
        try:
            self.cmd("AT+CEREG=1")
        except AtCommandError:
            pass
        self._reinit_needed = False

    def cereg(self):
        """AT+CEREG? -> stat (1 home, 5 roaming, 2 searching, 0/3/4 not registered)."""
        stat = None
        for line in self.cmd("AT+CEREG?"):
            if line.startswith("+CEREG"):
                f = fields(line)
                if len(f) >= 2:
                    stat = f[1]
                    break
                # A bare "+CEREG: <stat>" is a URC that came with the answer: the answer wins.
                stat = f[0]
        if stat is not None:
            self._set_stat(number(stat, "AT+CEREG?"))
        return self.stat

    def attach(self, apn=None, bands=None, timeout_ms=120000):
        """Register on the network by timeout_ms, configuring APN/bands only when needed."""
        self.apn = apn
        self.bands = bands
        self.attached = True
        if self.registered:
            return
        self._radio_on(apn, bands)
        self._wait_registered(timeout_ms)

    def _radio_on(self, apn, bands):
        # Bands and APN only take effect with the radio off: skip the detach when not asked.
        if apn is not None or bands:
            self.cmd("AT+CFUN=0")
            if bands:
                self.cmd(self.BAND_CMD + ",".join(str(b) for b in bands))
            if apn is not None:
                self.cmd(self.APN_CMD % apn)
        self._radio_up()

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

    # -- information -----------------------------------------------------------------------

    def _ask(self, cmd):
        """The answer of a query that must have one."""
        answer = self.query(cmd)
        if not answer:
            raise ModemError("no answer line to %s; check the module firmware (AT+CGMR)" % cmd)
        return answer

    def imei(self):
        return self._ask("AT+CGSN=1")

    def iccid(self):
        return self._ask(self.ICCID_CMD)

    def ip(self):
        f = fields("+CGPADDR:" + (self.query(self.IP_CMD) or ""))
        return f[1] if len(f) > 1 else None

    def network_time(self):
        """The network's time (NITZ) as an RTC datetime tuple in UTC, or None before the
        module has it; ModemError when the answer is not a time."""
        from enosnb.modem.nettime import parse_cclk
        try:
            return parse_cclk(self.query("AT+CCLK?", prefix="+CCLK"))
        except ValueError as e:
            raise ModemError("%s; check the module firmware (AT+CGMR)" % e)

    def signal(self):
        """Received signal strength in dBm from AT+CSQ, or None when unknown (99)."""
        f = fields("+CSQ:" + self._ask("AT+CSQ"))
        rssi = number(f[0], "AT+CSQ")
        return None if rssi == 99 else -113 + 2 * rssi

    # -- power saving ------------------------------------------------------------------------

    def psm(self, t3412_s=None, t3324_s=None):
        """Request PSM with a periodic TAU and active time in seconds; None disables PSM.

        The network may grant other values: read them back with AT+CEREG=4 / AT+CEREG?.
        """
        if t3412_s is None:
            self.cmd("AT+CPSMS=0")
            return
        # The encoders load only here: PSM is asked for once per power-on.
        from enosnb.modem.timers import encode_t3324, encode_t3412
        self.cmd('AT+CPSMS=1,,,"%s","%s"' % (encode_t3412(t3412_s), encode_t3324(t3324_s)))
        self.cmd(self.PSM_URC_CMD)

    def _psm_changed(self, entered):
        self.in_psm = entered
        if not entered:
            # Echo is back on and dialect flags are reset after PSM (spec §10.6).
            self._reinit_needed = True

    def _leave_psm(self):
        """Wake the module before talking to it; the re-initialisation follows."""
        self.in_psm = False
        self._reinit_needed = True

    def edrx(self, cycle_s=None):
        """Request an eDRX cycle (NB-S1 value in seconds, e.g. 81.92); None disables eDRX."""
        if cycle_s is None:
            self.cmd("AT+CEDRXS=3,5")
        else:
            from enosnb.modem.timers import encode_edrx
            self.cmd('AT+CEDRXS=1,5,"%s"' % encode_edrx(cycle_s))

    def radio_off(self):
        """Radio off (AT+CFUN=0) for a back-off: an unregistered module would otherwise keep
        searching between wakes. attach() switches it on again. The line is synced first: a
        reset of the ESP32 may have cut a command in half. ModemError when it is silent."""
        self.at.sync(3, self.SYNC_INTERVAL_MS)
        self.cmd("AT+CFUN=0")

    def release(self):
        """Ask the network to release the RRC connection now (AT+CNMPSD, where supported).

        Many firmwares do not have it (spec §2.6): after one ERROR or +CME ERROR: 4 (not
        supported) .has_cnmpsd is False and release() no longer keeps the radio busy with it.
        """
        if not self.has_cnmpsd:
            return False
        try:
            self.cmd("AT+CNMPSD")
            return True
        except AtCommandError as e:
            if e.code in (None, 4):
                self.has_cnmpsd = False
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
                                     self.SYNC_INTERVAL_MS, "AT+CGSN=1", "+CGSN")
                    self.at.rebooted = False
                    self._reinit()
                    if self.attached and not self.registered:
                        if self.stat == 0:
                            # Came back with the radio off (settings not saved): switch it on.
                            self._radio_on(self.apn, self.bands)
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
        self._open(s)
        self.sockets.append(s)
        return s

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
                    self._open(sock)
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
