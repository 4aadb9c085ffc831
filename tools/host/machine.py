"""CPython stand-in for the MicroPython `machine` members the firmware uses (host twin).

UART  = a pseudo-terminal registered per UART id (environment ENOSNB_UART<id>=/dev/pts/N or
        UART.attach(id, path)); the modem emulator sits on the other end.
Pin   = records every level change (Pin.history) and calls watchers (Pin.watch), so a runner
        can connect the PWRKEY pin to the emulator's pwrkey().
RTC   = RTC().memory() backed by the file ENOSNB_RTC_FILE (in-process bytes when unset).
deepsleep(ms) = records the request (ENOSNB_DEEPSLEEP_FILE, machine.last_deepsleep_ms) and
        raises SystemExit: the runner starts main.py again after the sleep.
WDT, reset_cause, reset: minimal; the device-app engineer may extend them.
"""
import errno
import fcntl
import os
import select
import struct
import termios
import time
import tty

# ---------------------------------------------------------------------------- UART


class UART:
    """machine.UART on a pty. read()/readinto() never block with timeout=0 (return None when
    nothing is available, as MicroPython does); with timeout>0 they wait up to that many ms."""

    _paths = {}

    @classmethod
    def attach(cls, uart_id, path):
        """Registers the pty path that UART(uart_id) opens."""
        cls._paths[uart_id] = path

    @classmethod
    def detach(cls, uart_id):
        cls._paths.pop(uart_id, None)

    def __init__(self, id, baudrate=115200, bits=8, parity=None, stop=1, tx=None, rx=None,
                 rts=None, cts=None, txbuf=256, rxbuf=256, timeout=0, timeout_char=0, **kw):
        self.id = id
        self._fd = None
        path = self._paths.get(id) or os.environ.get("ENOSNB_UART%s" % id)
        if not path:
            raise OSError(errno.ENODEV, "UART(%s): no pty registered; set ENOSNB_UART%s or call "
                                        "machine.UART.attach(%s, path)" % (id, id, id))
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self._fd)
        self.init(baudrate, bits, parity, stop, tx=tx, rx=rx, rxbuf=rxbuf, timeout=timeout,
                  timeout_char=timeout_char)

    def init(self, baudrate=115200, bits=8, parity=None, stop=1, tx=None, rx=None, rxbuf=256,
             timeout=0, timeout_char=0, **kw):
        self.baudrate, self.tx, self.rx, self.rxbuf = baudrate, tx, rx, rxbuf
        self.timeout, self.timeout_char = timeout, timeout_char

    def _check(self):
        if self._fd is None:
            raise OSError(errno.EBADF, "UART(%s) is deinitialised" % self.id)

    def any(self):
        self._check()
        buf = fcntl.ioctl(self._fd, termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]

    def _wait(self, ms):
        if ms <= 0:
            return bool(select.select([self._fd], [], [], 0)[0])
        return bool(select.select([self._fd], [], [], ms / 1000.0)[0])

    def read(self, nbytes=None):
        self._check()
        if not self._wait(self.timeout):
            return None
        want = nbytes if nbytes is not None else 1 << 16
        out = b""
        while len(out) < want:
            try:
                chunk = os.read(self._fd, want - len(out))
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    chunk = b""
                else:
                    raise
            if chunk:
                out += chunk
                continue
            if nbytes is None or not self._wait(self.timeout_char if self.timeout else 0):
                break
        return out or None

    def readinto(self, buf, nbytes=None):
        n = len(buf) if nbytes is None else min(nbytes, len(buf))
        data = self.read(n)
        if not data:
            return None
        buf[:len(data)] = data
        return len(data)

    def readline(self):
        self._check()
        out = b""
        while not out.endswith(b"\n"):
            if not self._wait(self.timeout):
                break
            try:
                c = os.read(self._fd, 1)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    continue
                raise
            if not c:
                break
            out += c
        return out or None

    def write(self, buf):
        self._check()
        data = bytes(buf)
        done = 0
        while done < len(data):
            try:
                done += os.write(self._fd, data[done:])
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                    raise
                select.select([], [self._fd], [], 1.0)
        return done

    def flush(self):
        self._check()
        try:
            termios.tcdrain(self._fd)
        except termios.error:
            pass

    def txdone(self):
        return True

    def sendbreak(self):
        pass

    def deinit(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        try:
            self.deinit()
        except Exception:
            pass

    def __repr__(self):
        return "UART(%s, baudrate=%s, path=%r)" % (self.id, self.baudrate, self.path)


# ---------------------------------------------------------------------------- Pin


class Pin:
    """GPIO stand-in: levels are remembered per pin id; every write is recorded in
    Pin.history as (time.monotonic(), id, value), and watchers of that id are called.
    Pin(..., hold=True) latches the level as the ESP32 pad hold does (Pin.held: ids held
    now); writes to a held pin change nothing until hold=False."""

    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    history = []
    levels = {}
    held = set()
    _watchers = {}

    @classmethod
    def watch(cls, pin_id, callback):
        """callback(pin_id, value) on every write to that pin (e.g. PWRKEY -> emulator)."""
        cls._watchers.setdefault(pin_id, []).append(callback)

    @classmethod
    def reset_all(cls):
        del cls.history[:]
        cls.levels.clear()
        cls.held.clear()
        cls._watchers.clear()

    def __init__(self, id, mode=-1, pull=-1, value=None, **kw):
        self.id = id
        self.init(mode, pull, value)

    def init(self, mode=-1, pull=-1, value=None, hold=None, **kw):
        if hold is False:
            Pin.held.discard(self.id)
        if mode != -1:
            self.mode = mode
        if pull != -1:
            self.pull = pull
        if value is not None:
            self.value(value)
        elif self.id not in Pin.levels:
            Pin.levels[self.id] = 1 if pull == Pin.PULL_UP else 0
        if hold:
            Pin.held.add(self.id)

    def value(self, v=None):
        if v is None:
            return Pin.levels.get(self.id, 0)
        if self.id in Pin.held:
            return None
        v = 1 if v else 0
        Pin.levels[self.id] = v
        Pin.history.append((time.monotonic(), self.id, v))
        for cb in Pin._watchers.get(self.id, ()):
            cb(self.id, v)
        return None

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=None, **kw):
        return None

    def __repr__(self):
        return "Pin(%s)" % (self.id,)


# ---------------------------------------------------------------------------- RTC


class RTC:
    """RTC with user memory kept in ENOSNB_RTC_FILE (survives the process, like RTC slow
    memory survives deep sleep); without the variable the memory lives in this process."""

    MEMORY_SIZE = 2048
    _mem = b""

    def __init__(self, id=0):
        self.path = os.environ.get("ENOSNB_RTC_FILE")

    def memory(self, data=None):
        if data is None:
            if self.path:
                try:
                    with open(self.path, "rb") as f:
                        return f.read()
                except OSError:
                    return b""
            return RTC._mem
        data = bytes(data)
        if len(data) > self.MEMORY_SIZE:
            raise ValueError("RTC memory holds at most %d bytes" % self.MEMORY_SIZE)
        if self.path:
            tmp = self.path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, self.path)
        else:
            RTC._mem = data
        return None

    def datetime(self, dt=None):
        if dt is not None:
            return None
        t = time.gmtime()
        return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_wday, t.tm_hour, t.tm_min, t.tm_sec, 0)

    def init(self, dt=None):
        return None


# ---------------------------------------------------------------------------- power, reset, WDT

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

PIN_WAKE = 2
EXT0_WAKE = 2
EXT1_WAKE = 3
TIMER_WAKE = 4
TOUCHPAD_WAKE = 5
ULP_WAKE = 6

last_deepsleep_ms = None


def reset_cause():
    """ENOSNB_RESET_CAUSE (a number, as set by the runner), else PWRON_RESET."""
    try:
        return int(os.environ.get("ENOSNB_RESET_CAUSE", PWRON_RESET))
    except ValueError:
        return PWRON_RESET


def wake_reason():
    return TIMER_WAKE if reset_cause() == DEEPSLEEP_RESET else 0


def deepsleep(time_ms=0):
    """Records the sleep request, then ends the program as a real deep sleep does."""
    global last_deepsleep_ms
    last_deepsleep_ms = int(time_ms)
    path = os.environ.get("ENOSNB_DEEPSLEEP_FILE")
    if path:
        with open(path, "w") as f:
            f.write("%d\n" % last_deepsleep_ms)
    raise SystemExit(0)


def lightsleep(time_ms=0):
    time.sleep(time_ms / 1000.0)


def idle():
    time.sleep(0.001)


def reset():
    raise SystemExit(0)


def soft_reset():
    raise SystemExit(0)


def unique_id():
    return bytes.fromhex(os.environ.get("ENOSNB_UNIQUE_ID", "a4cf12345678"))


def freq(hz=None):
    return 240000000 if hz is None else None


class WDT:
    """Watchdog stand-in: feed() records the time; expired() tells a test whether it would
    have fired. It never kills the process itself."""

    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.last_feed = time.monotonic()
        self.feeds = 0

    def feed(self):
        self.last_feed = time.monotonic()
        self.feeds += 1

    def expired(self):
        return (time.monotonic() - self.last_feed) * 1000 > self.timeout
