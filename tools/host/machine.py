"""`machine` stand-in for the host: the members the firmware uses, no friendlier than an ESP32.

One implementation for both host runtimes: CPython (pytest, the twin's CPython runtime) and the
MicroPython unix port (tools/host/mpboot.py imports it before it mounts the board's flash).

UART  = a pseudo-terminal registered per UART id (environment ENOSNB_UART<id>=/dev/pts/N or
        UART.attach(id, path)); the modem emulator sits on the other end. Bytes move from the
        pty into an RX ring of `rxbuf` bytes whenever the program touches the UART; what the
        wire (baudrate/10 bytes a second) delivered meanwhile beyond the ring's room is dropped
        and counted (UART.dropped), as the ESP-IDF driver drops bytes its ring buffer has no
        room for.
Pin   = levels per pin id; every change is recorded in Pin.history as (time, id, value) and
        passed to watchers (Pin.watch) and, with ENOSNB_PIN_PORT set, sent as a datagram
        "<id> <level>" to that port on 127.0.0.1, where the runner wires PWRKEY and RESET to
        the modem emulator (tools/host/pinwire.py). hold=True latches the level: writes are ignored until
        the hold is released, and held pins keep their level through deep sleep
        (ENOSNB_PINS_FILE records {id: [level, held]} when the board sleeps). ENOSNB_PIN_LOG
        gets every write of this boot as [[id, value], ...] (an LED's pattern, say).
RTC   = RTC().memory(): at most 2,048 bytes (the ESP32 port's limit), kept in ENOSNB_RTC_FILE
        (in this process when unset); the runner deletes the file when the power is cut.
        RTC().datetime() is the host's clock, or, with ENOSNB_RTC_CLOCK naming a JSON file
        {"base_ms", "at_ms", "drift", "sets"} kept by the runner (tools/simclock.py), a
        drifting RTC: base_ms + (now - at_ms) * (1 + drift); setting it is recorded in "sets".
WDT   = WDT(timeout=ms).feed() writes the deadline (epoch ms) to ENOSNB_WDT_FILE, at most once
        a second; the runner resets the board (WDT_RESET) when a deadline passes.
reset_cause() = ENOSNB_RESET_CAUSE, else PWRON_RESET; the constants are the ESP32 port's.
deepsleep(ms) = writes ms to ENOSNB_DEEPSLEEP_FILE, then the program ends: SystemExit on
        CPython, a kill of the whole process on MicroPython (set by mpboot: nothing after the
        call runs, no `finally`); the runner boots the board again after the sleep.
reset() = the same with ENOSNB_RESET_FILE (the runner boots again at once, SOFT_RESET, RTC
        memory kept); lightsleep(ms) sleeps in place.

On MicroPython the board's flash is mounted at "/", so host files can no longer be opened by
path: mpboot opens them first and hands them over in `_files` (keyed by environment name).
"""
import errno
import json
import os
import select
import time

try:
    from termios import setraw  # MicroPython
except ImportError:
    from tty import setraw
import termios

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

_VTIME = 5
_VMIN = 6

_files = {}       # environment name -> host file opened before the flash was mounted
_halt_hooks = []  # called before the program ends (mpboot writes its counters)
_hard_halt = None  # mpboot sets a function that ends the process at once

last_deepsleep_ms = None


def _now_ms():
    return time.time_ns() // 1000000


def _read_host(env):
    """The bytes of the host file named by environment variable env; b"" when it does not
    exist yet, None when the variable is unset."""
    f = _files.get(env)
    if f is not None:
        f.seek(0)
        return f.read()
    path = os.getenv(env)
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _write_host(env, data):
    """Writes data at the start of that host file; False when the variable is unset. A file
    handed over by mpboot cannot be truncated, so readers stop at their own end marker."""
    f = _files.get(env)
    if f is not None:
        f.seek(0)
        f.write(data)
        f.flush()
        return True
    path = os.getenv(env)
    if not path:
        return False
    with open(path, "wb") as f:
        f.write(data)
    return True


def _halt():
    for hook in _halt_hooks:
        hook()
    if _hard_halt is not None:
        _hard_halt()
    raise SystemExit(0)


# ---------------------------------------------------------------------------- UART


class UART:
    """machine.UART on a pty. read()/readinto()/readline() return None when nothing came
    within `timeout` ms (0: at once), as MicroPython does."""

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
        self._f = None
        env = "ENOSNB_UART%s" % id
        self.path = self._paths.get(id) or os.getenv(env)
        f = _files.get(env) if id not in self._paths else None
        if f is None:
            if not self.path:
                raise OSError(errno.ENODEV, "UART(%s): no pty registered; set ENOSNB_UART%s or "
                                            "call machine.UART.attach(%s, path)" % (id, id, id))
            f = open(self.path, "r+b", 0)
        self._f = f
        fd = f.fileno()
        setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[6][_VMIN] = 0   # a read returns what is there, never waits
        attrs[6][_VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        self._poll = select.poll()
        self._poll.register(f, select.POLLIN)
        self._chunk = bytearray(256)
        self.dropped = 0
        self._ring = None
        self._last = _now_ms()
        self.init(baudrate, bits, parity, stop, tx=tx, rx=rx, rxbuf=rxbuf, timeout=timeout,
                  timeout_char=timeout_char)

    def init(self, baudrate=115200, bits=8, parity=None, stop=1, tx=None, rx=None, rxbuf=256,
             timeout=0, timeout_char=0, **kw):
        self.baudrate, self.tx, self.rx = baudrate, tx, rx
        self.timeout, self.timeout_char = timeout, timeout_char
        if self._ring is None or len(self._ring) != rxbuf:
            self._ring = bytearray(rxbuf)
            self._n = 0

    def _check(self):
        if self._f is None:
            raise OSError(errno.EBADF, "UART(%s) is deinitialised" % self.id)

    def _pump(self, wait_ms=0):
        """Moves what the pty holds into the ring; waits up to wait_ms for the first byte.

        The emulator writes a whole response at once, where the wire brings baudrate/10 bytes
        a second. Bytes the wire would have delivered while the program did not touch the UART
        go into the ring, and what does not fit is dropped; bytes beyond that count as arriving
        now, while the program reads, and wait in the pty for room."""
        if wait_ms > 0:
            ready = self._poll.poll(wait_ms)
            self._last = _now_ms()  # waiting on the UART is reading it
            if not ready:
                return
        elif not self._poll.poll(0):
            self._last = _now_ms()
            return
        now = _now_ms()
        arrived = (now - self._last) * self.baudrate // 10000
        self._last = now
        room = len(self._ring) - self._n
        limit = room if room > arrived else arrived
        chunk = self._chunk
        while limit > 0:
            n = self._f.readinto(memoryview(chunk)[:min(len(chunk), limit)])
            if not n:
                return
            limit -= n
            keep = n if n <= room else room
            if keep:
                self._ring[self._n:self._n + keep] = chunk[:keep]
                self._n += keep
                room -= keep
            self.dropped += n - keep
            if not self._poll.poll(0):
                return

    def _take(self, n):
        out = bytes(self._ring[:n])
        rest = self._n - n
        if rest:
            self._ring[:rest] = self._ring[n:self._n]
        self._n = rest
        return out

    def _wait_for(self, want):
        """Pumps until `want` bytes are buffered or the timeout ran out."""
        self._pump()
        if self._n >= want or not self.timeout:
            return
        deadline = _now_ms() + self.timeout
        while self._n < want:
            left = deadline - _now_ms()
            if left <= 0:
                return
            self._pump(left)

    def any(self):
        self._check()
        self._pump()
        return self._n

    def read(self, nbytes=None):
        self._check()
        self._wait_for(len(self._ring) if nbytes is None else nbytes)
        n = self._n if nbytes is None else min(nbytes, self._n)
        return self._take(n) if n else None

    def readinto(self, buf, nbytes=None):
        data = self.read(len(buf) if nbytes is None else min(nbytes, len(buf)))
        if not data:
            return None
        buf[:len(data)] = data
        return len(data)

    def readline(self):
        self._check()
        deadline = _now_ms() + self.timeout
        while True:
            self._pump()
            i = self._ring.find(b"\n", 0, self._n)
            if i >= 0:
                return self._take(i + 1)
            left = deadline - _now_ms()
            if left <= 0 or self._n == len(self._ring):
                return self._take(self._n) if self._n else None
            self._pump(left)

    def write(self, buf):
        self._check()
        data = bytes(buf)
        done = 0
        while done < len(data):
            n = self._f.write(data[done:])
            done += n or 0
        return done

    def flush(self):
        self._check()

    def txdone(self):
        return True

    def sendbreak(self):
        pass

    def deinit(self):
        if self._f is not None:
            self._poll.unregister(self._f)
            if self._f is not _files.get("ENOSNB_UART%s" % self.id):
                self._f.close()
            self._f = None

    def __del__(self):
        try:
            self.deinit()
        except Exception:
            pass

    def __repr__(self):
        return "UART(%s, baudrate=%s, rxbuf=%d, path=%r)" % (self.id, self.baudrate,
                                                            len(self._ring), self.path)


# ---------------------------------------------------------------------------- Pin


class Pin:
    """GPIO: levels per pin id, history, watchers, hold (see the module docstring)."""

    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5

    history = []
    levels = {}
    held = {}
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

    @classmethod
    def state(cls):
        """{pin id: [level, held]}: what deep sleep keeps (held pins) and loses."""
        return dict((p, [v, 1 if cls.held.get(p) else 0]) for p, v in cls.levels.items())

    def __init__(self, id, mode=-1, pull=-1, value=None, **kw):
        self.id = id
        self.init(mode, pull, value, **kw)

    def init(self, mode=-1, pull=-1, value=None, hold=None, **kw):
        if hold is False:
            Pin.held[self.id] = False
        if mode != -1:
            self.mode = mode
        if pull != -1:
            self.pull = pull
        if value is not None:
            self.value(value)
        elif self.id not in Pin.levels:
            Pin.levels[self.id] = 1 if pull == Pin.PULL_UP else 0
        if hold:
            Pin.held[self.id] = True

    def value(self, v=None):
        if v is None:
            return Pin.levels.get(self.id, 0)
        if Pin.held.get(self.id):
            return None  # a held pin keeps its level until the hold is released
        v = 1 if v else 0
        Pin.levels[self.id] = v
        Pin.history.append((time.time(), self.id, v))
        _write_host("ENOSNB_PIN_LOG", (json.dumps([[p, x] for _, p, x in Pin.history]) +
                                       "\n").encode())
        for cb in Pin._watchers.get(self.id, ()):
            cb(self.id, v)
        _wire(self.id, v)
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


_wire_sock = []


def _wire(pin_id, v):
    """The level change to the runner's pin wire, when there is one."""
    port = os.getenv("ENOSNB_PIN_PORT")
    if not port:
        return
    import socket
    if not _wire_sock:
        _wire_sock.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        _wire_sock.append(socket.getaddrinfo("127.0.0.1", int(port))[0][-1])
    _wire_sock[0].sendto(b"%s %d" % (str(pin_id).encode(), v), _wire_sock[1])


def _restore_held_pins():
    """After a deep sleep, pins that were held still drive their level and stay held."""
    if reset_cause() != DEEPSLEEP_RESET:
        return
    raw = _read_host("ENOSNB_PINS_FILE")
    try:
        state = json.loads(raw.split(b"\n")[0]) if raw else {}
    except ValueError:
        state = {}
    for pin, (level, held) in state.items():
        if held:
            Pin.levels[int(pin)] = level
            Pin.held[int(pin)] = True


# ---------------------------------------------------------------------------- RTC


class RTC:
    """RTC with user memory (see the module docstring). The file holds two length bytes and
    the data, so it can be rewritten in place through an open file."""

    MEMORY_SIZE = 2048
    _mem = b""

    def __init__(self, id=0):
        pass

    def memory(self, data=None):
        if data is None:
            raw = _read_host("ENOSNB_RTC_FILE")
            if raw is None:
                return RTC._mem
            if len(raw) < 2:
                return b""
            return bytes(raw[2:2 + ((raw[0] << 8) | raw[1])])
        data = bytes(data)
        if len(data) > self.MEMORY_SIZE:
            raise ValueError("RTC memory holds at most %d bytes" % self.MEMORY_SIZE)
        if not _write_host("ENOSNB_RTC_FILE", bytes((len(data) >> 8, len(data) & 255)) + data):
            RTC._mem = data
        return None

    def datetime(self, dt=None):
        if os.getenv("ENOSNB_RTC_CLOCK"):
            return _simulated_rtc(dt)
        if dt is not None:
            return None
        t = time.gmtime()
        return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)

    def init(self, dt=None):
        return None


_CLOCK_FILE_BYTES = 4096  # rewritten in place, padded: readers ignore the trailing spaces
# Made at import, before main.py runs (the stand-in's bytes, which the RAM figures subtract):
# reading or setting an ESP32's RTC allocates a tuple, not a copy of a 4 KB file.
_CLOCK_BUF = bytearray(_CLOCK_FILE_BYTES)
_SPACES = b" " * _CLOCK_FILE_BYTES


def _clock_state():
    f = _files.get("ENOSNB_RTC_CLOCK")
    if f is None:
        return json.loads(_read_host("ENOSNB_RTC_CLOCK"))
    f.seek(0)
    n = f.readinto(_CLOCK_BUF) or 0
    memoryview(_CLOCK_BUF)[n:] = memoryview(_SPACES)[n:]
    return json.loads(_CLOCK_BUF)


def _set_clock(st):
    text = json.dumps(st).encode()
    f = _files.get("ENOSNB_RTC_CLOCK")
    if f is None:
        _write_host("ENOSNB_RTC_CLOCK", text + _SPACES[len(text):])
        return
    f.seek(0)
    f.write(text)
    f.write(memoryview(_SPACES)[len(text):])
    f.flush()


def _simulated_rtc(dt):
    st = _clock_state()
    now = _now_ms()
    if dt is None:
        ms = int(st["base_ms"] + (now - st["at_ms"]) * (1 + st["drift"]))
        t = time.gmtime(ms // 1000)
        return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], ms % 1000 * 1000)
    y, m = dt[0] - (dt[1] <= 2), dt[1]
    era = y // 400
    doe = (y - era * 400) * 365 + (y - era * 400) // 4 - (y - era * 400) // 100 + \
        (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + dt[2] - 1
    days = era * 146097 + doe - 719468  # days since 1970 (H. Hinnant's days_from_civil)
    ms = ((days * 24 + dt[4]) * 60 + dt[5]) * 60000 + dt[6] * 1000 + dt[7] // 1000
    st["base_ms"], st["at_ms"] = ms, now
    st.setdefault("sets", []).append([now, ms])
    _set_clock(st)
    return None


# ---------------------------------------------------------------------------- power, reset, WDT


def reset_cause():
    """ENOSNB_RESET_CAUSE (a number, as set by the runner), else PWRON_RESET."""
    try:
        return int(os.getenv("ENOSNB_RESET_CAUSE") or PWRON_RESET)
    except ValueError:
        return PWRON_RESET


def wake_reason():
    return TIMER_WAKE if reset_cause() == DEEPSLEEP_RESET else 0


def deepsleep(time_ms=0):
    """Records the sleep request and the pins, then ends the program as a real deep sleep does."""
    global last_deepsleep_ms
    last_deepsleep_ms = int(time_ms)
    _write_host("ENOSNB_PINS_FILE", (json.dumps(Pin.state()) + "\n").encode())
    _write_host("ENOSNB_DEEPSLEEP_FILE", ("%d\n" % last_deepsleep_ms).encode())
    _halt()


def lightsleep(time_ms=0):
    time.sleep(time_ms / 1000.0)


sleep = lightsleep


def idle():
    time.sleep(0.001)


def reset():
    _write_host("ENOSNB_RESET_FILE", b"reset\n")
    _halt()


def soft_reset():
    raise SystemExit(0)


def unique_id():
    import binascii
    return binascii.unhexlify(os.getenv("ENOSNB_UNIQUE_ID") or "a4cf12345678")


def freq(hz=None):
    return 240000000 if hz is None else None


def disable_irq():
    return 0


def enable_irq(state=0):
    return None


class WDT:
    """Watchdog: feed() moves the deadline the runner enforces (ENOSNB_WDT_FILE); expired()
    tells a test whether it would have fired."""

    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0
        self._written = 0
        self.feed()
        self.feeds = 0

    def feed(self):
        self.last_feed = _now_ms()
        self.feeds += 1
        # The runner allows one second of slack, so a write a second is enough.
        if self.last_feed - self._written >= 1000:
            self._written = self.last_feed
            _write_host("ENOSNB_WDT_FILE", ("%d\n" % (self.last_feed + self.timeout)).encode())

    def expired(self):
        return _now_ms() - self.last_feed > self.timeout


_restore_held_pins()
