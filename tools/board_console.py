"""`make monitor` and `make repl`: the board's serial console from the host.

    python tools/board_console.py monitor --port PORT [--reset] [--log FILE] [--seconds N]
        Prints every line the board writes, prefixed with the host's time, and never writes
        to the board: a running cycle is not disturbed. When a native-USB port vanishes (the
        board resets or sleeps) it waits for the port to come back. Ctrl-C ends it.
    python tools/board_console.py repl --port PORT [--reset] [--wait S] [--break-only]
        Gets onto the REPL of a board that is running or in deep sleep: sends Ctrl-C every
        100 ms until the `>>> ` prompt shows (a sleeping board answers when it wakes, at the
        latest after report_interval_s; --reset or the RESET button saves the wait), says
        whether the watchdog is armed, then hands the port to `mpremote connect PORT resume
        repl` (Ctrl-] leaves it). --break-only stops at the prompt.

--reset pulses the EN line through RTS, as esptool does on boards with the usual two-
transistor auto-reset circuit; a port without RTS (a bare UART adapter) says so and you
press the board's RESET/EN button instead. Both commands use pyserial, which mpremote brings.
"""
import argparse
import re
import subprocess
import sys
import time

BAUD = 115200
PROMPT = b"\n>>> "
_WDT_LINE = re.compile(rb"watchdog resets the board in (\d+) s")
DEFAULT_WAIT_S = 660  # the default report_interval_s (600 s) and a minute for the cycle


class ConsoleError(Exception):
    pass


def _serial():
    try:
        import serial
    except ImportError:
        raise ConsoleError("pyserial is missing: run `make device-deps` (or pip install -r "
                           "requirements-device.txt)")
    return serial


def open_port(port, baud=BAUD):
    """The port opened with DTR and RTS released, so that opening it does not reset an ESP32
    board with an auto-reset circuit."""
    serial = _serial()
    ser = serial.serial_for_url(port, baudrate=baud, timeout=0, do_not_open=True)
    ser.dtr = False
    ser.rts = False
    try:
        ser.open()
    except (OSError, serial.SerialException) as e:
        raise ConsoleError(explain_open_error(port, e))
    return ser


def explain_open_error(port, err):
    text = str(err)
    if "ermission denied" in text or getattr(err, "errno", None) == 13:
        return ("%s: permission denied: on Linux add yourself to the port's group "
                "(`sudo usermod -aG dialout $USER`, then log in again)" % port)
    if "No such file" in text or getattr(err, "errno", None) == 2:
        return ("%s does not exist: is the board plugged in? `make ports` lists the ports "
                "(Windows: COM3..., macOS: /dev/cu.usbserial-...)" % port)
    if "busy" in text or "ould not exclusively lock" in text:
        return ("%s is in use by another program (another mpremote, a serial monitor, an "
                "IDE): close it and try again" % port)
    return "%s: cannot open the port: %s" % (port, text)


def reset_board(ser, out):
    """EN low for 100 ms through RTS (DTR released keeps GPIO0 high: a normal boot)."""
    try:
        ser.dtr = False
        ser.rts = True
        time.sleep(0.1)
        ser.rts = False
    except (OSError, ValueError) as e:
        out("-- this port cannot reset the board (no RTS line: %s); press the board's "
            "RESET/EN button now" % (getattr(e, "strerror", None) or e))
        return False
    out("-- board reset through RTS")
    return True


def _stamp():
    t = time.time()
    return time.strftime("%H:%M:%S", time.localtime(t)) + ".%03d" % (int(t * 1000) % 1000)


class LineClock:
    """Turns the byte stream into lines with the host time at which each line began."""

    def __init__(self, emit):
        self.emit = emit
        self.buf = b""
        self.started = None
        self.last = 0.0

    def feed(self, data):
        now = time.monotonic()
        for part in data.splitlines(keepends=True):
            if not self.buf:
                self.started = _stamp()
            self.buf += part
            if part.endswith(b"\n"):
                self.flush()
        self.last = now

    def idle(self, after_s=0.3):
        if self.buf and time.monotonic() - self.last > after_s:
            self.flush()

    def flush(self):
        if self.buf:
            text = self.buf.decode("utf-8", "replace").rstrip("\r\n")
            self.emit("%s %s" % (self.started, text))
            self.buf = b""


def monitor(port, reset=False, log=None, seconds=None, baud=BAUD, out=print):
    """Read-only console; returns when seconds pass (None: until Ctrl-C)."""
    logf = open(log, "a", encoding="utf-8") if log else None

    def emit(line):
        out(line)
        if logf:
            logf.write(line + "\n")
            logf.flush()

    ser = open_port(port, baud)
    out("-- monitoring %s at %d baud; nothing is sent to the board; Ctrl-C ends" % (port, baud))
    if reset:
        reset_board(ser, out)
    lines = LineClock(emit)
    end = None if seconds is None else time.monotonic() + seconds
    serial = _serial()
    try:
        while end is None or time.monotonic() < end:
            try:
                data = ser.read(4096)
            except (OSError, serial.SerialException):
                lines.flush()
                out("-- %s went away (a native-USB board resets or sleeps); waiting for it"
                    % port)
                ser.close()
                ser = _reopen(port, baud, end)
                if ser is None:
                    break
                out("-- %s is back" % port)
                continue
            if data:
                lines.feed(data)
            else:
                lines.idle()
                time.sleep(0.05)
    except KeyboardInterrupt:
        out("\n-- monitor stopped; the board was not touched")
    finally:
        lines.flush()
        if ser is not None:
            ser.close()
        if logf:
            logf.close()


def _reopen(port, baud, end):
    while end is None or time.monotonic() < end:
        time.sleep(0.5)
        try:
            return open_port(port, baud)
        except ConsoleError:
            continue
    return None


def break_in(port, reset=False, wait_s=DEFAULT_WAIT_S, baud=BAUD, out=print,
             show=None):
    """Ctrl-C every 100 ms until the REPL prompt; returns the watchdog seconds the board
    announced (None when it did not). show(bytes) receives what the board printed."""
    show = show or (lambda b: (sys.stdout.write(b.decode("utf-8", "replace")),
                               sys.stdout.flush()))
    ser = open_port(port, baud)
    try:
        if reset:
            reset_board(ser, out)
        out("-- sending Ctrl-C to %s every 100 ms for up to %d s; a board in deep sleep "
            "answers when it wakes (RESET=1 or its RESET button skips the wait)"
            % (port, wait_s))
        seen = b""
        end = time.monotonic() + wait_s
        while time.monotonic() < end:
            ser.write(b"\x03")
            time.sleep(0.1)
            data = ser.read(4096)
            if data:
                show(data)
                seen = (seen + data)[-4096:]
                if seen.replace(b"\r\n", b"\n").endswith(PROMPT):
                    m = None
                    for m in _WDT_LINE.finditer(seen):
                        pass
                    return int(m.group(1)) if m else None
        raise ConsoleError(
            "no REPL prompt from %s in %d s: the board did not wake or print. Press its "
            "RESET button (or make repl RESET=1), check the port (make ports) and that "
            "MicroPython is flashed (make flash)" % (port, wait_s))
    finally:
        ser.close()


def repl(port, reset=False, wait_s=DEFAULT_WAIT_S, break_only=False, baud=BAUD, out=print):
    wdt_s = break_in(port, reset, wait_s, baud, out)
    out("\n-- at the REPL of %s" % port)
    if wdt_s:
        out("-- the cycle had armed the watchdog: the board resets in %d s (board.json "
            "wdt_timeout_ms) unless you stop main.py first:\n"
            "--   import os; os.rename('main.py', 'main_off.py')\n"
            "-- after the reset the board stays at the REPL; `make deploy` brings main.py "
            "back" % wdt_s)
    else:
        out("-- the watchdog was not armed (Ctrl-C came before the cycle started)")
    if break_only:
        return 0
    cmd = [sys.executable, "-m", "mpremote", "connect", port, "resume", "repl"]
    out("-- " + " ".join(cmd[1:]) + "   (Ctrl-] leaves)")
    sys.stdout.flush()
    return subprocess.call(cmd)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python tools/board_console.py",
                                 description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("monitor", help="print what the board writes, with host times")
    r = sub.add_parser("repl", help="get onto the REPL of a running or sleeping board")
    for p in (m, r):
        p.add_argument("--port", required=True)
        p.add_argument("--baud", type=int, default=BAUD)
        p.add_argument("--reset", action="store_true", help="reset the board through RTS first")
    m.add_argument("--log", help="also append the lines to this file")
    m.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl-C)")
    r.add_argument("--wait", type=float, default=DEFAULT_WAIT_S,
                   help="longest wait for the prompt, s (default %d)" % DEFAULT_WAIT_S)
    r.add_argument("--break-only", action="store_true",
                   help="stop at the prompt instead of starting mpremote's REPL")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "monitor":
            monitor(a.port, a.reset, a.log, a.seconds, a.baud)
            return 0
        return repl(a.port, a.reset, a.wait, a.break_only, a.baud)
    except ConsoleError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\n-- stopped", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
