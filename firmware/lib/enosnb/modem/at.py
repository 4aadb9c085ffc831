"""AT command engine over a UART (modems.md §1, §6, §10.1; 3GPP TS 27.007 §9.2 results).

One object owns the UART and splits its bytes into lines. Each line goes to one of:
- the pending command's echo (dropped), information lines, or final result
  (OK / ERROR / +CME ERROR: n, with or without the space after the colon);
- a URC handler chosen by prefix ("+CSONMI", "+NSONMI", ...), at any moment, including between
  a command's information line and its OK (SIM7020 does that);
- reboot detection: boot banner lines fail the pending command with ModemRebooted and set
  .rebooted, because a banner's own "OK" (BC95) must never complete a command;
- nothing: lines that only announce something the driver does not need ("SMS Ready").

Bad input is expected: bytes outside printable ASCII are dropped and counted, lines longer than
the preallocated buffer are dropped and counted, nothing the modem sends raises anything but a
ModemError subclass. Time comes only from the injected clock.

UART duck type: read(n) -> bytes or None, write(b), any() -> int.
"""
from micropython import const

from enosnb.clock import SYSTEM
from enosnb.modem.errors import AtCommandError, AtTimeout, ModemError, ModemRebooted

LINE_MAX = const(1100)      # +CSONMI / NSORF line for a 512-byte datagram is about 1060 chars
READ_CHUNK = const(256)
IDLE_STEP_MS = const(5)
MAX_INFO_LINES = const(24)  # AT+NCONFIG? and AT+NUESTATS are the longest answers
DEFAULT_TIMEOUT_MS = const(1000)

_CR = const(13)
_LF = const(10)


def payload(line):
    """Text after "+XXX:" with at most one space removed (SIMCom writes one, Quectel none)."""
    i = line.find(":")
    if i < 0:
        return line
    i += 1
    if i < len(line) and line[i] == " ":
        i += 1
    return line[i:]


def response_prefix(cmd):
    """The information-line prefix a command answers with: "AT+CEREG?" -> "+CEREG"."""
    if not cmd.startswith("AT") or len(cmd) < 3 or cmd[2] not in "+*$^&":
        return None
    end = len(cmd)
    for ch in "=?":
        j = cmd.find(ch, 3)
        if 0 <= j < end:
            end = j
    return cmd[2:end]


def _short(cmd):
    # Commands may carry kilobytes of hex; errors name only the start of them.
    return cmd if len(cmd) <= 40 else cmd[:37] + "..."


class _Pending:
    """The command waiting for its final result."""

    def __init__(self, cmd, tail, prefix, expect_reboot, need, final):
        self.cmd = cmd
        self.tail = tail
        self.prefix = prefix
        self.expect_reboot = expect_reboot
        self.need = need
        self.final = final
        self.lines = []
        self.done = False
        self.error = None


class AtEngine:
    """Sends AT commands and routes what comes back; see the module docstring."""

    def __init__(self, uart, clock=SYSTEM, line_max=LINE_MAX):
        self.uart = uart
        self.clock = clock
        self._buf = bytearray(line_max)
        self._n = 0
        self._overlong = False
        self._urc = {}
        self._boot_lines = ()
        self._boot_prefixes = ()
        self.quiet_lines = ()
        self._pending = None
        self.on_reboot = None
        self.on_unsolicited = None
        self.rebooted = False
        self.reboot_marker = None
        self.stale = False
        self.silent = False  # the last sync() got no answer at all: see Modem.silent
        self.echo_seen = False
        self.commands = 0
        self.bytes_written = 0
        self.bytes_read = 0
        self.dropped_bytes = 0
        self.overlong_lines = 0
        self.dropped_lines = 0
        self.stray_results = 0
        self.bad_urcs = 0

    # -- configuration -------------------------------------------------------------------

    def urc(self, prefix, handler):
        """Route lines "<prefix>:..." to handler(line) when no pending command claims them.

        Handlers run inside pump(), possibly in the middle of another command: they must only
        record what happened, never issue commands.
        """
        self._urc[prefix] = handler

    def boot_markers(self, lines=(), prefixes=()):
        """Lines (exact) and line prefixes that mean the modem has just booted."""
        self._boot_lines = tuple(lines)
        self._boot_prefixes = tuple(prefixes)

    def note_reboot(self, marker):
        """Record a reboot seen by a driver (e.g. an unexpected +CPIN: READY)."""
        self.rebooted = True
        self.reboot_marker = marker
        p = self._pending
        if p is not None and not p.done:
            p.error = ModemRebooted(marker, _short(p.cmd))
            p.done = True
        if self.on_reboot is not None:
            self.on_reboot(marker)

    # -- byte and line handling ------------------------------------------------------------

    def pump(self):
        """Process whatever the UART holds; returns the number of bytes read."""
        total = 0
        while True:
            try:
                n = self.uart.any()
            except (OSError, ValueError, TypeError):
                return total
            if not n:
                return total
            data = self.uart.read(n if n < READ_CHUNK else READ_CHUNK)
            if not data:
                return total
            total += len(data)
            self.bytes_read += len(data)
            self._feed(data)

    def _feed(self, data):
        buf = self._buf
        cap = len(buf)
        for b in data:
            if b == _CR or b == _LF:
                self._end_line()
            elif 32 <= b < 127:
                if self._n < cap:
                    buf[self._n] = b
                    self._n += 1
                else:
                    self._overlong = True
            else:
                self.dropped_bytes += 1

    def _end_line(self):
        n = self._n
        self._n = 0
        if self._overlong:
            self._overlong = False
            self.overlong_lines += 1
            return
        if n:
            self._line(bytes(self._buf[:n]).decode())

    def _line(self, line):
        p = self._pending
        if p is not None and p.done:
            p = None
        if p is not None and _is_echo(p, line):
            # Echo, also with the first character lost after sleep (§10.6).
            self.echo_seen = True
            return
        if p is not None and line == p.final:
            p.done = True
            return
        if line == "OK" or line == "ERROR" or line.startswith("+CME ERROR") \
                or line.startswith("+CMS ERROR"):
            if p is None or (p.need and not p.lines):
                self.stray_results += 1
                return
            if line != "OK":
                p.error = _command_error(p.cmd, line)
            p.done = True
            return
        if p is not None and p.need and p.need is not True and p.need(line):
            # A probe whose answer has no prefix (a bare IMEI) is recognised by its form.
            self._info(p, line)
            return
        if line in self.quiet_lines:
            return
        if line in self._boot_lines or self._starts_boot(line):
            if p is not None and p.expect_reboot:
                p.lines.append(line)
                return
            self.note_reboot(line)
            return
        name = None
        if line[0] == "+" or line[0] == "*":
            i = line.find(":")
            if i > 1:
                name = line[:i]
        if p is not None and name is not None and name == p.prefix:
            self._info(p, line)
            return
        if p is not None and p.need:
            # Only the probe's own prefix counts while skipping a late answer.
            if name is None or name not in self._urc:
                self.dropped_lines += 1
                return
        if name is not None and name in self._urc:
            try:
                self._urc[name](line)
            except (ValueError, IndexError, TypeError, KeyError):
                self.bad_urcs += 1
            return
        if p is not None:
            self._info(p, line)
            return
        self.dropped_lines += 1
        if self.on_unsolicited is not None:
            self.on_unsolicited(line)

    def _starts_boot(self, line):
        for pre in self._boot_prefixes:
            if line.startswith(pre):
                return True
        return False

    def _info(self, p, line):
        if len(p.lines) < MAX_INFO_LINES:
            p.lines.append(line)
        else:
            self.dropped_lines += 1

    # -- commands ------------------------------------------------------------------------

    def command(self, cmd, timeout_ms=DEFAULT_TIMEOUT_MS, prefix=None, expect_reboot=False,
                need=False, tail=None, final=None):
        """Send cmd (then the bytes tail, e.g. hex data, without joining them), return its
        information lines once OK arrives (or the line final, for a command that ends with
        something else, such as "NORMAL POWER DOWN").

        need=True ignores final results until an information line has arrived (used to skip
        the late answer of a timed-out command); need may also be a function that tells such
        a line by its form. Raises AtCommandError (ERROR / +CME ERROR), AtTimeout,
        ModemRebooted.
        """
        self.pump()
        if prefix is None:
            prefix = response_prefix(cmd)
        p = _Pending(cmd, tail, prefix, expect_reboot, need, final)
        self._pending = p
        try:
            self._write(cmd, tail)
            self._wait(p, timeout_ms)
        finally:
            self._pending = None
        if p.error is not None:
            raise p.error
        return p.lines

    def _write(self, cmd, tail):
        self.commands += 1
        data = cmd.encode()
        self.uart.write(data)
        n = len(data) + 1
        if tail:
            self.uart.write(tail)
            n += len(tail)
        self.uart.write(b"\r")
        self.bytes_written += n

    def _wait(self, p, timeout_ms):
        clock = self.clock
        deadline = clock.ticks_add(clock.ticks_ms(), timeout_ms)
        while not p.done:
            if self.pump():
                continue
            left = clock.ticks_diff(deadline, clock.ticks_ms())
            if left <= 0:
                # A late answer may still come; the next sync() discards it.
                self.stale = True
                raise AtTimeout(_short(p.cmd), timeout_ms)
            clock.sleep_ms(IDLE_STEP_MS if left > IDLE_STEP_MS else left)

    def query(self, cmd, timeout_ms=DEFAULT_TIMEOUT_MS, prefix=None):
        """Send cmd and return the payload of its first "+XXX:" line, or a bare line, or None."""
        lines = self.command(cmd, timeout_ms, prefix)
        if prefix is None:
            prefix = response_prefix(cmd)
        for line in lines:
            if prefix is not None and line.startswith(prefix + ":"):
                return payload(line)
        for line in lines:
            if line[0] != "+":
                return line
        return None

    def poll(self, timeout_ms, until=None):
        """Pump URCs for up to timeout_ms, returning early (True) once until() is true."""
        clock = self.clock
        deadline = clock.ticks_add(clock.ticks_ms(), timeout_ms)
        while True:
            self.pump()
            if until is not None and until():
                return True
            left = clock.ticks_diff(deadline, clock.ticks_ms())
            if left <= 0:
                return False
            clock.sleep_ms(IDLE_STEP_MS if left > IDLE_STEP_MS else left)

    def drain(self, quiet_ms=50, max_ms=2000):
        """Discard input until the line has been quiet for quiet_ms (bounded by max_ms)."""
        clock = self.clock
        start = clock.ticks_ms()
        last = start
        while True:
            now = clock.ticks_ms()
            if self.pump():
                last = now
            elif clock.ticks_diff(now, last) >= quiet_ms:
                return
            if clock.ticks_diff(now, start) >= max_ms:
                return
            clock.sleep_ms(IDLE_STEP_MS)

    def sync(self, attempts=40, interval_ms=500, probe="AT", prefix=None):
        """Send probe until a clean final OK; returns the number of probes sent.

        After a timeout a late answer may still arrive. With prefix set, a final result counts
        only after a line with that prefix (e.g. probe "AT+CGSN=1", prefix "+CGSN"), or, when
        prefix is a function, after a line it accepts (probe "AT+CGSN", a bare IMEI), so a
        stale OK or ERROR is never taken for the probe's own.
        """
        last = None
        need = prefix is not None
        if callable(prefix):
            need, prefix = prefix, None
        for i in range(attempts):
            try:
                self.command(probe, interval_ms, prefix=prefix, need=need)
            except AtTimeout as e:
                last = e
                continue
            except AtCommandError as e:
                # BC95 answers ERROR for a while after boot (§3.2).
                last = e
                self.clock.sleep_ms(interval_ms)
                continue
            except ModemRebooted as e:
                last = e
                continue
            self.drain(20, interval_ms)
            self.stale = False
            self.silent = False
            return i + 1
        self.silent = True
        raise ModemError("modem did not answer %s after %d tries (%s); check power, the power "
                         "key pulse, wiring (TX/RX crossed?) and baud rate"
                         % (probe, attempts, last if last is not None else "no clean OK"))


def _is_echo(p, line):
    cmd = p.cmd
    if p.tail:
        # The echo of a command with data is compared by its head and total length only.
        n = len(cmd) + len(p.tail)
        return (len(line) == n and line.startswith(cmd)) or \
            (len(line) == n - 1 and line.startswith(cmd[1:]))
    # A first character lost after sleep (modems.md §10.6) still makes an echo.
    return line == cmd or (len(line) > 3 and line == cmd[1:])


def _command_error(cmd, line):
    cmd = _short(cmd)
    if line == "ERROR":
        return AtCommandError(cmd)
    text = payload(line).strip()
    try:
        return AtCommandError(cmd, int(text))
    except ValueError:
        return AtCommandError(cmd, None, text[:40])
