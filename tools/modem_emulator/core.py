"""Modem emulator core: pseudo-terminal, event loop, AT line handling, UDP forwarding, faults.

Implements the dialect-independent parts of docs/modems.md §10.1 (framing `\\r\\n<line>\\r\\n`,
echo until ATE0, one final result per command, CMEE modes, timing knobs, fault injection,
real UDP data path) and what both dialects do alike, spelled through p() and error_text(): the
network (its band, its time and zone sent as NITZ on registration, the PSM timers it grants or
refuses), the RRC state with release assistance, the commands both answer the same way. The
dialects (sim7020.py, bc95.py) add the rest of the tables of §10.2/§10.4 and the firmware
revisions of §13.

Threading: one engine thread owns the pty master, the UDP sockets, the timers and all modem
state. Public methods called from other threads post a function to the engine and wait for
it (`_call`), so tests never race the engine.
"""
import binascii
import calendar
import errno
import heapq
import os
import queue
import random
import select
import socket
import threading
import time
import traceback
import tty

from .faults import CommandRule, DatagramFaults, FaultSet, command_pattern
from .nat import DEFAULT_TIMEOUT_S, CarrierNat
from .pcap import PcapWriter

CRLF = b"\r\n"

CME_TEXT = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    13: "SIM failure",
    23: "memory failure",
    30: "no network service",
    50: "incorrect parameters",
    100: "unknown",
    159: "uplink busy/flow control",
    516: "unknown",
}

MAX_LINE = 8192          # longest command line accepted (NSOST with 1358 bytes is ~2.8 KiB)
MAX_OUTBUF = 1 << 20     # bytes held for a device that does not read, then dropped
NO_NITZ = 315964800      # 1980-01-06, the clock of a module that has no network time yet
PSM_OFF = "11100000"     # GPRS timer value "deactivated" (TS 24.008 §10.5.7.4)


class CmdError(Exception):
    """Raised by a handler: the command ends with ERROR / +CME ERROR (code None = plain ERROR)."""

    def __init__(self, code=None):
        Exception.__init__(self, code)
        self.code = code


class Command:
    """One AT command line split into name, kind (exec/query/test/set) and arguments."""

    def __init__(self, text):
        self.text = text
        body = text[2:]
        self.args = []
        self.kind = "exec"
        if body[:1] in ("+", "*", "$", "^", "%"):
            i = 1
            while i < len(body) and body[i] not in "=?":
                i += 1
            self.name = body[:i].upper()
            rest = body[i:]
            if rest == "?":
                self.kind = "query"
            elif rest == "=?":
                self.kind = "test"
            elif rest.startswith("="):
                self.kind = "set"
                self.args = split_args(rest[1:])
            elif rest:
                self.kind = "bad"
        else:
            self.name = body.upper()

    def arg(self, i, default=None):
        return self.args[i] if i < len(self.args) else default

    def int_arg(self, i, default=None):
        v = self.arg(i)
        if v is None or v == "":
            if default is None:
                raise CmdError(50)
            return default
        try:
            return int(unquote(v))
        except ValueError:
            raise CmdError(50)


def split_args(s):
    """Splits on commas outside double quotes; keeps the quotes."""
    out, cur, inq = [], [], False
    for ch in s:
        if ch == '"':
            inq = not inq
        if ch == "," and not inq:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def unquote(s):
    s = s.strip()
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        return s[1:-1]
    return s


def parse_hex(text, what=50):
    try:
        return binascii.unhexlify(text)
    except (binascii.Error, ValueError):
        raise CmdError(what)


def hexup(data):
    """Upper-case hex text, as both modems write data."""
    return binascii.hexlify(data).decode().upper()


class Response:
    """What a command sends back: framed lines / raw chunks, a final result, follow-up actions."""

    def __init__(self, lines=(), final="OK"):
        self.items = [("line", ln) for ln in lines]
        self.final = final          # None: no final result (power down, reboot)
        self.after = []             # callables run by the engine after the response is out
        self.inside = []            # URCs placed between the information lines and the final
        self.garbage = b""

    def raw(self, data):
        self.items.append(("raw", data))
        return self


class ModemSocket:
    """One modem socket and the host UDP socket that carries its datagrams."""

    def __init__(self, sid, bind_host="127.0.0.1"):
        self.id = sid
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind_host, 0))
        self.sock.setblocking(False)
        self.local = self.sock.getsockname()
        self.remote = None          # (device-given ip, port), SIM7020 CSOCON
        self.rxbuf = []             # BC95: [ip, port, bytes] not yet read by NSORF
        self.closed_by_network = False
        self.release_on_reply = False  # release assistance: RRC release after the next downlink
        self.peers = {}             # host (ip, port) -> device-given (ip, port)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class ModemEmulator:
    """A SIM7020 or BC95 on a pseudo-terminal. `ModemEmulator(dialect="bc95", ...)` returns
    the dialect's subclass. See the package docstring for the constructor arguments."""

    DIALECT = None
    SEP = ": "                  # after the colon of +XXX: lines
    CME_FMT = "+CME ERROR: %s"
    MAX_SOCKETS = 5
    MAX_DATAGRAM = 512
    MAX_DOWNLINK = 512

    def __new__(cls, dialect="sim7020", **kwargs):
        if cls is ModemEmulator:
            from . import DIALECTS
            try:
                cls = DIALECTS[dialect.lower()]
            except KeyError:
                raise ValueError("unknown dialect %r: use one of %s" % (dialect, ", ".join(sorted(DIALECTS))))
        return object.__new__(cls)

    def __init__(self, dialect="sim7020", imei="866425031234567", iccid="89860318492040123456",
                 imsi="460001357924680", ip="10.1.2.3", boot_time=0.05, registration_delay=0.2,
                 registration_stat=1, cpin_delay=0.05, cmd_delay=0.0, cmd_delays=None,
                 urc_inside_prob=0.0, urc_inside=None, seed=0, pcap=None, remote_host="127.0.0.1",
                 remote_map=None, boot_lines=None, csq=(20, 99), max_datagram=None,
                 unregistered_send="error", dns=None, dns_fail_delay=70.0, faults=None,
                 rrc_inactivity=20.0, release_delay=0.1, sleep_idle=5.0, busy_prob=0.0,
                 powered=True, pwrkey_off_time=0.8, network_band=None, tz=32,
                 clock_offset=0.0, nitz=True, psm_grant="request", max_downlink=None,
                 edrx=None, start=True, nat=DEFAULT_TIMEOUT_S, **dialect_opts):
        self.imei, self.iccid, self.imsi, self.ip = imei, iccid, imsi, ip
        self.boot_time = boot_time
        self.registration_delay = registration_delay
        self.registration_stat = registration_stat
        self.cpin_delay = cpin_delay
        self.radio_gen = 0
        self.cmd_delay = cmd_delay
        self.cmd_delays = dict((k, v) for k, v in (cmd_delays or {}).items())
        self.urc_inside_prob = urc_inside_prob
        self.urc_inside = urc_inside          # None: by probability; True: always; False: never
        self.rng = random.Random(seed)
        self.remote_host = remote_host
        self.remote_map = dict(remote_map or {})
        self.boot_lines = boot_lines
        self.csq = csq
        self.max_datagram = max_datagram or self.MAX_DATAGRAM
        self.unregistered_send = unregistered_send
        self.dns = {"localhost": "127.0.0.1"}
        self.dns.update(dns or {})
        self.dns_fail_delay = dns_fail_delay
        self.rrc_inactivity = rrc_inactivity
        self.release_delay = release_delay
        self.sleep_idle = sleep_idle
        self.busy_prob = busy_prob
        self.start_powered = powered
        self.pwrkey_off_time = pwrkey_off_time
        self.network_band = network_band
        self.tz = tz
        self.clock_offset = clock_offset
        self.nitz = nitz
        self.psm_grant = psm_grant
        self.edrx = edrx                      # eDRX cycle bits in force, None = off
        self.max_downlink = max_downlink or self.MAX_DOWNLINK
        self.configure_dialect(**dialect_opts)

        self.faults = FaultSet()
        self.dgram_faults = DatagramFaults()
        self.nat = CarrierNat(nat)
        self.pcap = PcapWriter(pcap) if isinstance(pcap, str) else pcap

        # counters (read them any time; reset with reset_counters())
        self.transcript = []            # (direction, bytes): "in" = device -> modem, "out" = modem -> device
        self.timeline = []              # (time.monotonic(), kind, bytes): kinds in, out, up, down
        self.commands_log = []
        self.reset_counters()

        # modem state (engine thread only)
        self.powered = False
        self.booting = False
        self.gen = 0
        self.cfun = 0
        self._boot_state()
        self.reg_blocked_until = None   # None = not blocked; float('inf') = until regained
        self.socks = {}
        self.psm_req = None
        self.last_activity = time.monotonic()

        # engine plumbing
        self._timers = []
        self._seq = 0
        self._posted = queue.Queue()
        self._inbuf = bytearray()
        self._raw_expect = None         # (count, callback) while reading raw bytes (CSODSEND)
        self._raw_got = b""
        self._busy = False
        self._pending_urcs = []
        self._outbuf = bytearray()
        self._running = False
        self._thread = None
        self._error = None

        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tty.setraw(self.master)
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self.slave)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._scripted = list(faults or [])
        if start:
            self.start()

    # ------------------------------------------------------------------ lifecycle

    def configure_dialect(self, **opts):
        if opts:
            raise TypeError("unknown option(s) for %s: %s" % (self.DIALECT, ", ".join(sorted(opts))))

    def start(self):
        if self._running:
            return self
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="modem-emulator-" + str(self.DIALECT), daemon=True)
        self._thread.start()
        if self.start_powered:
            self._call(self._power_on_now)
        if self._scripted:
            self.script(self._scripted)
        return self

    def stop(self):
        """Stops the engine and closes the pty, the UDP sockets and the pcap file."""
        if self._running:
            self._running = False
            self._wake()
            self._thread.join(5)
        if self.master < 0:
            return
        self._close_sockets()
        for fd in (self.master, self.slave, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self.master = self.slave = self._wake_r = self._wake_w = -1
        if self.pcap is not None:
            self.pcap.close()

    close = stop

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ counters

    def reset_counters(self):
        self.commands_received = 0
        self.bytes_from_device = 0
        self.bytes_to_device = 0
        self.datagrams_up = 0
        self.datagrams_down = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.dropped_up = 0
        self.dropped_down = 0
        self.reboots = 0
        del self.transcript[:]
        del self.timeline[:]
        del self.commands_log[:]

    def counters(self):
        return dict((k, getattr(self, k)) for k in (
            "commands_received", "bytes_from_device", "bytes_to_device", "datagrams_up",
            "datagrams_down", "bytes_up", "bytes_down", "dropped_up", "dropped_down", "reboots"))

    # ------------------------------------------------------------------ engine thread

    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _call(self, fn, *args, **kw):
        """Runs fn in the engine thread and returns its result (re-raises its exception)."""
        if threading.current_thread() is self._thread or not self._running:
            return fn(*args, **kw)
        done = threading.Event()
        box = {}

        def run():
            try:
                box["v"] = fn(*args, **kw)
            except BaseException as e:  # handed back to the caller
                box["e"] = e
            done.set()
        self._posted.put(run)
        self._wake()
        if not done.wait(10):
            raise RuntimeError("modem emulator engine did not answer")
        if "e" in box:
            raise box["e"]
        return box.get("v")

    def _at(self, delay, fn, *args, gen=True):
        """Schedules fn after `delay` seconds; gen=True cancels it if the modem reboots first."""
        self._seq += 1
        heapq.heappush(self._timers, (time.monotonic() + delay, self._seq, self.gen if gen else None, fn, args))

    def _loop(self):
        while self._running:
            now = time.monotonic()
            timeout = 0.5
            if self._timers:
                timeout = max(0.0, min(timeout, self._timers[0][0] - now))
            rl = [self.master, self._wake_r] + [s.sock for s in self.socks.values()]
            wl = [self.master] if self._outbuf else []
            try:
                r, w, _ = select.select(rl, wl, [], timeout)
            except (OSError, ValueError):
                r, w = [], []
            try:
                if self._wake_r in r:
                    try:
                        os.read(self._wake_r, 4096)
                    except OSError:
                        pass
                while True:
                    try:
                        fn = self._posted.get_nowait()
                    except queue.Empty:
                        break
                    fn()
                if self.master in w:
                    self._flush()
                if self.master in r:
                    self._read_uart()
                for s in list(self.socks.values()):
                    if s.sock in r:
                        self._read_udp(s)
                self._run_timers()
            except Exception as e:  # keep the modem alive; tests can look at .error
                self._error = e
                traceback.print_exc()

    def _run_timers(self):
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, gen, fn, args = heapq.heappop(self._timers)
            if gen is None or gen == self.gen:
                fn(*args)

    # ------------------------------------------------------------------ UART output

    def _out(self, data):
        if not data or not self.powered:
            return
        data = bytes(data)
        self.last_activity = time.monotonic()
        self.bytes_to_device += len(data)
        self.transcript.append(("out", data))
        self.timeline.append((self.last_activity, "out", data))
        if len(self._outbuf) + len(data) > MAX_OUTBUF:
            return
        self._outbuf += data
        self._flush()

    def _flush(self):
        while self._outbuf:
            try:
                n = os.write(self.master, self._outbuf)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return
                raise
            del self._outbuf[:n]

    def frame(self, text):
        if isinstance(text, str):
            text = text.encode("latin-1")
        return CRLF + text + CRLF

    def p(self, name, value):
        """A prefixed line in the dialect's spelling: p("+CSQ", "20,99") -> "+CSQ: 20,99"."""
        return name + self.SEP + value

    def error_text(self, code=None):
        if code is None or self.cmee == 0:
            return "ERROR"
        if self.cmee == 2:
            return self.CME_FMT % CME_TEXT.get(code, "unknown")
        return self.CME_FMT % code

    def urc(self, line):
        """Sends an unsolicited line now, or after the response of the command in progress."""
        data = self.frame(line) if isinstance(line, str) else line
        if self._busy:
            self._pending_urcs.append(data)
        else:
            self._out(data)

    # ------------------------------------------------------------------ UART input

    def _read_uart(self):
        try:
            data = os.read(self.master, 65536)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EIO):
                return
            raise
        if not data:
            return
        now = time.monotonic()
        self.bytes_from_device += len(data)
        self.transcript.append(("in", data))
        self.timeline.append((now, "in", data))
        if self.csclk == 2 and self.sleep_idle is not None and now - self.last_activity > self.sleep_idle:
            self.asleep = True          # CSCLK=2: the module slept while the line was idle
        self.last_activity = now
        if not self.powered or self.booting:
            return                      # nobody listens while off or booting
        if self.in_psm and not self.psm_uart_wakes():
            return
        if self.asleep or self.in_psm:
            data = data[1:]             # the first character wakes the UART and is lost
            self.asleep = False
            if self.in_psm:
                self._exit_psm()
        self._inbuf += data
        self._process_input()

    def psm_uart_wakes(self):
        return False

    def _process_input(self):
        while self._inbuf and not self._busy and self.powered and not self.booting:
            if self._raw_expect is not None:
                n, cb = self._raw_expect
                need = n - len(self._raw_got)
                self._raw_got += bytes(self._inbuf[:need])
                del self._inbuf[:need]
                if len(self._raw_got) < n:
                    return
                data, self._raw_got, self._raw_expect = self._raw_got, b"", None
                cb(data)
                continue
            i = self._inbuf.find(b"\r")
            if i < 0:
                if len(self._inbuf) > MAX_LINE:
                    del self._inbuf[:]
                return
            line = bytes(self._inbuf[:i])
            del self._inbuf[:i + 1]
            line = line.lstrip(b"\n")
            if not line:
                continue
            self._handle_line(line.decode("latin-1"))

    def _handle_line(self, text):
        if self.swallow_line(text):
            return
        if self.echo:
            self._out(text.encode("latin-1") + b"\r")
        start = text.upper().find("AT")
        if start < 0:
            return                       # not a command: a real modem stays silent
        text = text[start:]
        self.commands_received += 1
        self.commands_log.append(text)
        cmd = Command(text)
        rules = self.faults.take(text)
        kinds = dict((r.kind, r) for r in rules)
        self._busy = True
        if "reboot" in kinds:
            if kinds["reboot"].params.get("send_first"):
                try:
                    for fn in self.dispatch(cmd).after:
                        fn()
                except CmdError:
                    pass
            self._out(kinds["reboot"].params.get("partial", b""))
            self._reboot(spontaneous=True)
            return
        busy = self.sporadic_busy(text)
        if "error" in kinds:
            resp = Response(final=self.error_text(kinds["error"].params.get("code")))
        elif busy is not None:
            resp = Response(final=self.error_text(busy))
        else:
            try:
                resp = self.dispatch(cmd)
            except CmdError as e:
                resp = Response(final=self.error_text(e.code))
        delay = self.cmd_delay
        for prefix, d in self.cmd_delays.items():
            if text.upper().startswith(command_pattern(prefix)):
                delay += d
        if "delay" in kinds:
            delay += kinds["delay"].params["seconds"]
        if "urc" in kinds:
            resp.inside.append(self.frame(kinds["urc"].params["line"]))
        if "garbage" in kinds:
            resp.garbage += kinds["garbage"].params["data"]
        if delay > 0:
            self._at(delay, self._respond, resp)
        else:
            self._respond(resp)

    def swallow_line(self, text):
        """True when the modem takes this line for something else than a command (SIM7020:
        the autobaud sync after a PSM wake)."""
        return False

    def dispatch(self, cmd):
        if cmd.kind == "bad":
            raise CmdError(50)
        handler = self.handler(cmd.name)
        if handler is None:
            raise CmdError(4)
        resp = handler(cmd)
        return resp if resp is not None else Response()

    def handler(self, name):
        key = "at_" + "".join(c if c.isalnum() else "_" for c in name.lower())
        return getattr(self, key, None)

    def _respond(self, resp):
        self._poll_udp()        # downlinks that already arrived become URCs of this moment
        out = bytearray()
        for kind, item in resp.items:
            out += self.frame(item) if kind == "line" else item
        out += resp.garbage
        inside = list(resp.inside)
        keep = []
        for u in self._pending_urcs:
            if self.urc_may_go_inside():
                inside.append(u)
            else:
                keep.append(u)
        for u in inside:
            out += u
        if resp.final is not None:
            out += self.frame(resp.final)
        for u in keep:
            out += u
        self._pending_urcs = []
        self._busy = False
        self._out(out)
        for fn in resp.after:
            fn()
        self._process_input()

    def urc_may_go_inside(self):
        """SIM7020 places URCs inside responses by chance; BC95 never (§1.2)."""
        return False

    def _poll_udp(self):
        socks = [s.sock for s in self.socks.values()]
        if not socks:
            return
        busy, self._busy = self._busy, True
        try:
            r, _, _ = select.select(socks, [], [], 0)
        except (OSError, ValueError):
            r = []
        for s in list(self.socks.values()):
            if s.sock in r:
                self._read_udp(s)
        self._busy = busy

    # ------------------------------------------------------------------ power, boot, registration

    def _power_on_now(self):
        self.powered = True
        self._boot(reason="power-on")

    def _boot(self, reason):
        self.gen += 1
        self.booting = True
        self._busy = False
        self._pending_urcs = []
        self._raw_expect = None
        self._raw_got = b""
        del self._inbuf[:]
        self._close_sockets()
        self._boot_state()
        self.reset_dialect_state()
        self._at(self.boot_time, self._boot_done, reason)

    def _boot_state(self):
        """What every boot resets (the dialect adds reset_dialect_state)."""
        self.echo = True
        self.cmee = 0
        self.stat = 0
        self.cereg_n = 0
        self.cscon_urc = False
        self.rrc = 0
        self.psm_urc = False
        self.csclk = 0
        self.in_psm = False
        self.asleep = False
        self.booted_at = time.monotonic()
        self.clock_synced = False

    def _boot_done(self, reason):
        self.booting = False
        self.boot_output(reason)
        if self.cfun_after_boot():
            self._radio_on()

    def _reboot(self, spontaneous=False, reason="reset"):
        self.reboots += 1
        self._boot(reason="spontaneous" if spontaneous else reason)

    def reset_dialect_state(self):
        pass

    def boot_output(self, reason):
        pass

    def cfun_after_boot(self):
        return True

    def _radio_on(self):
        self.cfun = 1
        self._set_stat(2)
        self._at(self.registration_delay, self._try_register, self.radio_gen)

    def _radio_off(self):
        self.cfun = 0
        self.radio_gen += 1  # a search started before this switch-off ends with it
        self._set_stat(0)

    def _try_register(self, radio_gen=None):
        if self.cfun != 1 or radio_gen not in (None, self.radio_gen):
            return
        if self.reg_blocked_until is not None and time.monotonic() < self.reg_blocked_until:
            return
        if self.network_band is not None and self.network_band not in self.active_bands():
            return                      # searching on bands where the network is not
        self.reg_blocked_until = None
        self._set_stat(self.registration_stat)

    @property
    def registered(self):
        return self.stat in (1, 5)

    def active_bands(self):
        """The bands the module searches now (BC95: those in force since the last reboot)."""
        return self.bands

    def _set_stat(self, stat):
        if stat == self.stat:
            return
        self.stat = stat
        if self.cereg_n:
            self.urc(self.cereg_urc())
        if self.registered and self.nitz and not self.clock_synced:
            self.clock_synced = True
            self.nitz_received()

    def nitz_received(self):
        """The network sent its time and zone (NITZ) after registration."""

    # ------------------------------------------------------------------ network time

    def network_now(self):
        """The network's time: seconds since 1970, UTC."""
        return time.time() + self.clock_offset

    def clock_text(self, local):
        """The module's clock as +CCLK writes it, "yy/MM/dd,hh:mm:ss+zz": the network's time
        once NITZ came (local=True adds the zone to the fields, 27.007 style; False keeps
        them UTC), else 80/01/06 plus the time since boot."""
        if self.clock_synced:
            secs, zone = self.network_now() + (self.tz * 900 if local else 0), self.tz
        else:
            secs, zone = NO_NITZ + time.monotonic() - self.booted_at, 0
        t = time.gmtime(int(secs))
        return "%02d/%02d/%02d,%02d:%02d:%02d%s%02d" % (
            t.tm_year % 100, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
            "-" if zone < 0 else "+", abs(zone))

    @staticmethod
    def clock_seconds(text):
        """Inverse of clock_text for tests: (seconds of the fields as UTC, zone)."""
        date, clock = text.strip('"').split(",")
        sign = "+" if "+" in clock else "-"
        clock, zone = clock.split(sign)
        t = time.strptime(date + "," + clock, "%y/%m/%d,%H:%M:%S")
        return calendar.timegm(t), int(zone) * (1 if sign == "+" else -1)

    # ------------------------------------------------------------------ commands both dialects answer alike

    def at_(self, cmd):
        return Response()

    def at_e0(self, cmd):
        self.echo = False

    def at_e1(self, cmd):
        self.echo = True

    def at__cgsn(self, cmd):
        if cmd.kind == "set" and cmd.arg(0) == "1":
            return Response([self.p("+CGSN", self.imei)])
        return Response([self.imei])

    def at__cgatt(self, cmd):
        if cmd.kind == "query":
            return Response([self.p("+CGATT", "1" if self.registered else "0")])
        if cmd.kind == "set":
            n = cmd.int_arg(0)
            if n == 1 and self.cfun != 1:
                self._radio_on()
            elif n == 0:
                self._set_stat(0)

    CEREG_N = (0, 1, 2, 3, 4, 5)
    CEREG_PSM = ',,,"%s","%s"'      # after <AcT> with n = 4: reject cause fields, T3324, T3412

    def at__cereg(self, cmd):
        if cmd.kind == "query":
            return Response([self.p("+CEREG", "%d,%s" % (self.cereg_n, self.cereg_fields()))])
        if cmd.kind == "set":
            n = cmd.int_arg(0)
            if n not in self.CEREG_N:
                raise CmdError(50)
            self.cereg_n = n

    def cereg_fields(self):
        """+CEREG after <n>: <stat>, with n >= 2 the cell, with n >= 4 the PSM timers the
        network granted (27.007 §10.1.22)."""
        out = str(self.stat)
        if self.cereg_n >= 2 and self.registered:
            out += ',"5B57","01A50B1A",9'
            if self.cereg_n >= 4:
                out += self.CEREG_PSM % self.granted_psm()
        return out

    def granted_psm(self):
        """(T3324, T3412) as the network grants them: what was asked (psm_grant "request"),
        "deactivated" (psm_grant "refuse", or no PSM asked), or the network's own values
        (psm_grant = (T3412 bits, T3324 bits))."""
        if self.psm_req is None or self.psm_grant == "refuse":
            return PSM_OFF, PSM_OFF
        t3412, t3324 = self.psm_req if self.psm_grant == "request" else self.psm_grant
        return t3324, t3412

    def at__cscon(self, cmd):
        if cmd.kind == "set":
            self.cscon_urc = cmd.arg(0) == "1"
        elif cmd.kind == "query":
            return Response([self.p("+CSCON", "%d,%d" % (1 if self.cscon_urc else 0, self.rrc))])

    def at__csq(self, cmd):
        # No cell in sight (radio off, or registration lost while searching: a coverage
        # hole) is 99,99, "not known or not detectable" (3GPP TS 27.007 §8.5).
        hole = self.reg_blocked_until is not None and self.stat == 2
        rssi, ber = self.csq if self.cfun == 1 and not hole else (99, 99)
        return Response([self.p("+CSQ", "%d,%d" % (rssi, ber))])

    def at__cpsms(self, cmd):
        if cmd.kind == "set":
            if cmd.arg(0) == "1" and len(cmd.args) >= 5:
                self.psm_req = (unquote(cmd.args[3]), unquote(cmd.args[4]))
            elif cmd.arg(0) == "0":
                self.psm_req = None
            resp = Response()
            if self.registered and self.cereg_n >= 4:
                # The network answers the request; with n = 4 the new timers come as a URC.
                resp.after.append(lambda: self.urc(self.cereg_urc()))
            return resp
        elif cmd.kind == "query":
            mode = 1 if self.psm_req else 0
            t = ',,,"%s","%s"' % self.psm_req if self.psm_req else ""
            return Response([self.p("+CPSMS", "%d%s" % (mode, t))])

    def at__cedrxs(self, cmd):
        if cmd.kind == "query":
            return Response([self.p("+CEDRXS", '5,"%s"' % self.edrx)] if self.edrx else [])
        if cmd.kind == "set":
            mode = cmd.int_arg(0)
            if mode not in (0, 1, 2, 3):
                raise CmdError(50)
            self.edrx = unquote(cmd.arg(2, "")) or self.edrx if mode in (1, 2) else None

    def at__cedrxrdp(self, cmd):
        if self.edrx and self.registered:
            return Response([self.p("+CEDRXRDP", '5,"%s","%s","0011"' % (self.edrx, self.edrx))])
        return Response([self.p("+CEDRXRDP", "0")])

    def setting(self, cmd, name, attr, allowed):
        """A numeric setting: the query answers "<name>: <value>", the set form takes one of
        allowed (else +CME ERROR 50)."""
        if cmd.kind == "query":
            return Response([self.p(name, str(getattr(self, attr)))])
        if cmd.kind == "set":
            n = cmd.int_arg(0)
            if n not in allowed:
                raise CmdError(50)
            setattr(self, attr, n)

    def bands_command(self, cmd, name):
        """AT+CBAND / AT+NBAND: query the band list or set it."""
        if cmd.kind == "query":
            return Response([self.p(name, ",".join(str(b) for b in self.bands))])
        if cmd.kind == "set":
            try:
                self.bands = [int(b) for b in cmd.args]
            except ValueError:
                raise CmdError(50)

    def cereg_urc(self):
        return self.p("+CEREG", self.cereg_fields())

    def _rrc_activity(self, release_after=None):
        if self.rrc == 0:
            self.rrc = 1
            if self.cscon_urc:
                self.urc(self.p("+CSCON", "1"))
        self._rrc_token = getattr(self, "_rrc_token", 0) + 1
        self._at(self.rrc_inactivity if release_after is None else release_after, self._rrc_release, self._rrc_token)

    def _rrc_release(self, token=None):
        if token is not None and token != self._rrc_token:
            return
        if self.rrc == 1:
            self.rrc = 0
            if self.cscon_urc:
                self.urc(self.p("+CSCON", "0"))

    def _enter_psm(self):
        self.in_psm = True
        if self.psm_urc:
            self._out(self.frame(self.psm_enter_urc()))

    def _exit_psm(self):
        self.in_psm = False
        self.echo = True            # both modems come out of PSM with echo on (§10.6)
        self.psm_exit_effects()

    def psm_enter_urc(self):
        raise NotImplementedError

    def psm_exit_effects(self):
        pass

    # ------------------------------------------------------------------ data path

    def new_socket(self):
        """The lowest free socket id; plain ERROR when all are in use (both dialects)."""
        for sid in range(self.MAX_SOCKETS):
            if sid not in self.socks:
                s = ModemSocket(sid)
                self.socks[sid] = s
                return s
        raise CmdError(None)

    def get_socket(self, cmd, i=0):
        sid = cmd.int_arg(i)
        s = self.socks.get(sid)
        if s is None:
            raise CmdError(3)
        return s

    def close_socket(self, cmd):
        s = self.get_socket(cmd)
        s.close()
        del self.socks[s.id]

    def resolve(self, host, found, failed):
        """DNS: OK now, then the URC found(ip) shortly, or failed after dns_fail_delay."""
        if not self.registered:
            raise CmdError(30)
        ip = self.dns.get(host)
        resp = Response()
        if ip is None:
            resp.after.append(lambda: self._at(self.dns_fail_delay, self.urc, failed))
        else:
            resp.after.append(lambda: self._at(0.05, self.urc, found(ip)))
        return resp

    def map_remote(self, ip, port):
        """Device-given destination -> host address (any IPv4 goes to remote_host by default)."""
        m = self.remote_map.get((ip, port), self.remote_map.get(ip))
        if m is None:
            return (self.remote_host, port)
        if isinstance(m, tuple):
            return m
        return (m, port)

    def check_can_send(self, s):
        if s.closed_by_network:
            raise CmdError(3)
        if not self.registered and self.unregistered_send == "error":
            raise CmdError(30)

    def uplink(self, s, ip, port, data):
        """Forwards one datagram from modem socket s to the device-given (ip, port)."""
        if self.in_psm:
            self._exit_psm()
        self._rrc_activity()
        if not self.registered:
            self.dropped_up += 1
            return
        if self.dgram_faults.drop_up > 0:
            self.dgram_faults.drop_up -= 1
            self.dropped_up += 1
            return
        dest = self.map_remote(ip, port)
        self.nat.outbound(s)
        s.peers[dest] = (ip, port)
        # Counted before it leaves, so a peer that has the datagram also sees the counters.
        self.datagrams_up += 1
        self.bytes_up += len(data)
        self.timeline.append((time.monotonic(), "up", data))
        if self.pcap is not None:
            self.pcap.write(s.local, dest, data)
        try:
            s.sock.sendto(data, dest)
        except OSError:
            self.datagrams_up -= 1
            self.bytes_up -= len(data)
            self.dropped_up += 1

    def _read_udp(self, s):
        while True:
            try:
                data, src = s.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return            # ECONNREFUSED from an earlier send, or closed
            if self.pcap is not None:
                self.pcap.write(src, s.local, data)
            self._downlink_arrived(s, data, src)

    def _downlink_arrived(self, s, data, src):
        f = self.dgram_faults
        if self.nat.inbound_dropped(s):
            self.dropped_down += 1
            return
        if f.drop_down > 0:
            f.drop_down -= 1
            self.dropped_down += 1
            return
        if f.delay_down:
            entry = f.delay_down[0]
            entry[1] -= 1
            if entry[1] <= 0:
                f.delay_down.pop(0)
            self._at(entry[0], self._deliver_checked, s, data, src, gen=False)
            return
        if f.reorder_down > 0:
            f.held.append((s, data, src))
            if len(f.held) >= f.reorder_down:
                held, f.held, f.reorder_down = f.held, [], 0
                for item in reversed(held):
                    self._deliver_checked(*item)
            return
        self._deliver_checked(s, data, src)

    def _deliver_checked(self, s, data, src):
        if self.socks.get(s.id) is not s or s.closed_by_network or not self.registered \
                or self.in_psm or not self.powered or self.booting:
            self.dropped_down += 1
            return
        if len(data) > self.max_downlink:
            self.dropped_down += 1
            return
        self.datagrams_down += 1
        self.bytes_down += len(data)
        self.timeline.append((time.monotonic(), "down", data))
        dev_ip, dev_port = s.peers.get(src, src)
        self.deliver(s, data, dev_ip, dev_port)
        if s.release_on_reply:
            s.release_on_reply = False
            self._rrc_activity(release_after=self.release_delay)
        else:
            self._rrc_activity()

    def deliver(self, s, data, ip, port):
        raise NotImplementedError

    def socket_closed_urc(self, s):
        raise NotImplementedError

    # ------------------------------------------------------------------ public fault API

    def fail_command(self, command, code=None, times=1, skip=0):
        """The next `times` commands starting with `command` answer ERROR (code None) or
        +CME ERROR <code> (shown as ERROR while CMEE=0). times=None: every time."""
        return self._call(self.faults.add, CommandRule("error", command, times, skip, code=code))

    def delay_response(self, command, seconds, times=1, skip=0):
        """The response to matching commands comes `seconds` late (the echo does not)."""
        return self._call(self.faults.add, CommandRule("delay", command, times, skip, seconds=seconds))

    def reboot_on(self, command, times=1, skip=0, send_first=False, partial=b""):
        """The modem reboots when it receives a matching command, without a final result.
        send_first=True: the command takes effect (the datagram goes out) before the reboot.
        partial: bytes written before the reboot (e.g. half a response line)."""
        return self._call(self.faults.add, CommandRule("reboot", command, times, skip,
                                                       send_first=send_first, partial=partial))

    def urc_in_response(self, line, command=None, times=1, skip=0):
        """Puts the URC `line` between the information lines and the final result of the next
        matching response (any command when command is None), on either dialect."""
        return self._call(self.faults.add, CommandRule("urc", command, times, skip, line=line))

    def garbage_in_response(self, data=None, command=None, times=1, skip=0):
        """Inserts garbage bytes before the final result of the next matching response."""
        data = self._call(self._garbage, data)
        return self._call(self.faults.add, CommandRule("garbage", command, times, skip, data=data))

    def send_garbage(self, data=None):
        """Writes garbage bytes to the device now (default: 16 seeded random bytes, no CR/LF)."""
        data = self._call(self._garbage, data)
        self._call(self._out, data)
        return data

    def _garbage(self, data):
        if data is None:
            data = bytes(self.rng.choice([b for b in range(256) if b not in (10, 13)]) for _ in range(16))
        return data

    def busy_on_send(self, times=1, skip=0):
        """The dialect's busy error on the next send(s) (BC95 +CME ERROR:159 on NSOST/NSOSTF,
        SIM7020 +CME ERROR: 516 on CSODSEND and CSOSEND)."""
        return [self._call(self.faults.add, CommandRule("error", c, times, skip, code=code))
                for c, code in self.busy_commands()]

    def busy_commands(self):
        raise NotImplementedError

    def sporadic_busy(self, text):
        """The busy error code when a send hits the seeded busy_prob, else None."""
        if self.busy_prob <= 0:
            return None
        for prefix, code in self.busy_commands():
            if text.upper().startswith(command_pattern(prefix)):
                return code if self.rng.random() < self.busy_prob else None
        return None

    def clear_faults(self):
        def clear():
            self.faults.clear()
            self.dgram_faults.clear()
            self.reg_blocked_until = None
        self._call(clear)

    def drop_uplink(self, n=1):
        """The next n datagrams the device sends are lost in the radio (the send says OK)."""
        def f():
            self.dgram_faults.drop_up += n
        self._call(f)

    def drop_downlink(self, n=1):
        """The next n datagrams from the network are lost before they reach the modem."""
        def f():
            self.dgram_faults.drop_down += n
        self._call(f)

    def delay_downlink(self, seconds, n=1):
        """The next n downlink datagrams reach the device `seconds` late."""
        def f():
            self.dgram_faults.delay_down.append([seconds, n])
        self._call(f)

    def reorder_downlinks(self, n=2):
        """The next n downlink datagrams are delivered in reverse order."""
        def f():
            self.dgram_faults.reorder_down = n
        self._call(f)

    def lose_registration(self, duration=None, stat=2):
        """Registration is lost now (stat 2 = searching, 0 = not trying, 3 = denied) and comes
        back after `duration` seconds (None: only with regain_registration()). While lost,
        sends fail with +CME ERROR 30 and downlinks are dropped."""
        def f():
            self.reg_blocked_until = float("inf") if duration is None else time.monotonic() + duration
            self._set_stat(stat)
            if duration is not None:
                self._at(duration, self._try_register)
        self._call(f)

    def regain_registration(self):
        def f():
            self.reg_blocked_until = None
            self._try_register()
        self._call(f)

    def set_registration_delay(self, seconds):
        """Time from radio on to registered for the next attach ("network slow" = minutes)."""
        def f():
            self.registration_delay = seconds
        self._call(f)

    def close_socket_by_network(self, sock_id=None, code=4):
        """The network closes a socket (all open ones when None): +CSOERR: <id>,4 / +NSOCLI:<s>.
        SIM7020: another code (1, 2, 3, 11) reports an error and leaves the socket open."""
        def f():
            ids = list(self.socks) if sock_id is None else [sock_id]
            for sid in ids:
                s = self.socks.get(sid)
                if s is not None and not s.closed_by_network:
                    s.closed_by_network = code == 4
                    self.urc(self.socket_closed_urc(s, code))
            return ids
        return self._call(f)

    def open_sockets(self):
        """Ids of the sockets the modem holds now."""
        return self._call(lambda: sorted(self.socks))

    def reboot(self):
        """The modem reboots on its own now (boot output follows after boot_time)."""
        self._call(self._reboot, True)

    def sleep(self):
        """The UART goes to sleep: the first character the device sends next is lost."""
        def f():
            self.asleep = True
        self._call(f)

    def enter_psm(self):
        self._call(self._enter_psm)

    def exit_psm(self):
        def f():
            if self.in_psm:
                self._exit_psm()
        self._call(f)

    def pwrkey(self, held=0.5):
        """A PWRKEY pulse held for `held` seconds: powers the modem on when off, wakes it from
        PSM, and powers it down when it is on and the pulse lasts pwrkey_off_time or more."""
        def f():
            if not self.powered:
                self._power_on_now()
            elif self.in_psm:
                self._exit_psm()
            elif self.pwrkey_off_time is not None and held >= self.pwrkey_off_time:
                self._out(self.frame("NORMAL POWER DOWN"))
                self._power_down()
        self._call(f)

    def follow_pwrkey(self, pin_cls, pin_id, active=1):
        """Connects a machine.Pin stand-in to pwrkey(): a pulse to `active` and back on that
        pin id acts on the modem with the time it was held (pin_cls is tools/host machine.Pin)."""
        state = {}

        def changed(pid, value):
            if value == active:
                state["since"] = time.monotonic()
            elif "since" in state:
                self.pwrkey(time.monotonic() - state.pop("since"))
        pin_cls.watch(pin_id, changed)

    def follow_reset(self, pin_cls, pin_id, active=1):
        """Connects a RESET line (pin_cls: machine.Pin stand-in or tools/host PinWire): a pulse
        to `active` and back restarts the module, as its reset pin does."""
        pressed = []

        def changed(pid, value):
            if value == active:
                pressed.append(1)
            elif pressed:
                del pressed[:]
                self._call(self._reset_pin)
        pin_cls.watch(pin_id, changed)

    def _reset_pin(self):
        if self.powered:
            self._reboot(reason="reset")
        else:
            self._power_on_now()

    def power_off(self):
        """Power is cut: the modem goes silent until pwrkey()."""
        self._call(self._power_down)

    def _power_down(self):
        self.powered = False
        self.booting = False
        self.gen += 1
        self._close_sockets()

    def _close_sockets(self):
        for s in self.socks.values():
            s.close()
        self.socks = {}

    def inject_urc(self, line):
        """Sends an unsolicited line now (after the response in progress, if any)."""
        self._call(self.urc, line)

    def send_raw(self, data):
        """Writes raw bytes to the device now."""
        self._call(self._out, data)

    def script(self, steps):
        """Scripted faults: steps are (seconds_from_now, method_name, kwargs) tuples or dicts
        {"at": s, "fault": method_name, ...kwargs}; each runs that public method at its time."""
        for step in steps:
            if isinstance(step, dict):
                step = dict(step)
                t, name = step.pop("at"), step.pop("fault")
                kw = step
            else:
                t, name = step[0], step[1]
                kw = step[2] if len(step) > 2 else {}
            method = getattr(self, name)
            self._call(self._at, t, self._scripted_step, method, kw, gen=False)

    def _scripted_step(self, method, kw):
        threading.Thread(target=method, kwargs=kw, daemon=True).start()

    # ------------------------------------------------------------------ helpers for tests

    def wait_until(self, predicate, timeout=5.0, interval=0.01):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return predicate()

    def wait_registered(self, timeout=5.0):
        return self.wait_until(lambda: self.registered, timeout)

    def wait_booted(self, timeout=5.0):
        return self.wait_until(lambda: self.powered and not self.booting, timeout)

    def socket_address(self, sock_id):
        """The host (ip, port) of a modem socket's UDP socket, e.g. for pcap decode rules."""
        s = self.socks.get(sock_id)
        return None if s is None else s.local

    @property
    def error(self):
        return self._error
