"""The true time of every reading: the RTC, its syncs, power-ons, and drift correction.

An ESP32 keeps wall-clock time in its RTC. In deep sleep the RTC runs on an RC oscillator
that drifts by 0.6 to 5 % (about 9 minutes to 1.2 hours a day), and a power-on reset starts
it again at 2000-01-01. So a reading is queued with the RTC's own value when it was taken
(r, milliseconds) and its epoch (e), and its true time is worked out later, when it is sent.

An epoch is the stretch of RTC time between two events: a sync (the RTC set from network
time or SNTP) or a power-on (the RTC restarted). Events go to an append-only log on flash,
`time.log`, one CRC-checked entry each:

    kind (1) | R (8) | T (8) | err (4) | rate (4) | crc32 (4)          29 bytes, little endian

kind 1 sync: the RTC read R ms just before it was set to the true time T (ms since 1970,
UTC), which may be off by err ms; kind 2 power-on: R is the RTC after the restart; kind 0,
first entry only: R is the number of the first epoch in the file (older ones were dropped).
rate is the RTC's drift in ppm, measured over the syncs of the last hour or more, else the
last known one, else _NO_RATE. Event i ends epoch base+i and starts epoch base+i+1.

How a reading's time is recovered (docs/queue-and-time.md states the bound):
- between two syncs S (RTC set to T_s) and E: t = T_s + (r - T_s) * (T_e - T_s) / (R_e - T_s),
  linear interpolation over the measured drift; error <= max(err_s, err_e) + v * (T_e - T_s) / 4,
  v being how much the drift rate may vary between two syncs (board.json rtc_drift_var);
- after a power-on, before the first sync E: back from E at the last measured rate,
  error <= err_e + u * (R_e - r);
- after a sync S with no sync since: forward at the last measured rate,
  error <= err_s + u * (r - T_s);
  u is v + 0.1 % when a rate was measured over an hour or more, else rtc_drift_max;
- an epoch that starts with a power-on and ends with another before any sync: the reading's
  time cannot be recovered (the app's rule for it: secrets.json time_unknown).
A reading of the epoch still running may get a better time at the next sync: the app holds
it while its error is above time_max_error_s (for at most time_hold_s).

A sync is refused when the RTC's own count since the last sync says it cannot be that far off
(err + rtc_drift_max * elapsed + 2 s), so one wrong network time cannot shift every reading.

The log is rewritten to its last entry when the queue is empty (compact()), and when it grows
past _MAX_EVENTS: write time.new, remove time.log, rename; a cut at any point leaves one of
the two whole.
"""
import binascii
import struct

from micropython import const

from enosnb.modem.nettime import civil_from_days, days_from_civil

_ENTRY = "<BqqIi"
_ENTRY_LEN = const(25)
_SIZE = const(29)
BASE = const(0)
SYNC = const(1)
POWER = const(2)
_NO_RATE = const(-0x80000000)
_MAX_EVENTS = const(2000)
_KEEP_EVENTS = const(1000)
VALID_FROM_MS = const(1735689600000)  # 2025-01-01: an RTC before that was never set
_VALID_UNTIL_MS = const(4102444800000)  # 2100-01-01
_SLACK_MS = const(2000)
_RATE_SPAN_MS = const(3600000)
# What a rate measured over _RATE_SPAN_MS with sync errors under 0.1 % of it may be off by.
_RATE_ERROR = 0.001


class SystemRtc:
    """machine.RTC's datetime() where there is no machine module (host tools, the VM):
    the system clock; setting it is ignored."""

    def datetime(self, dt=None):
        if dt is not None:
            return None
        import time
        ns = time.time_ns() if hasattr(time, "time_ns") else int(time.time() * 1e9)
        ms = ns // 1000000
        if time.gmtime(0)[0] == 2000:
            ms += 946684800000
        return to_datetime(ms)


def default_rtc():
    try:
        import machine
        return machine.RTC()
    except (ImportError, AttributeError):
        return SystemRtc()


def to_ms(dt):
    """Epoch milliseconds (UTC) of an RTC datetime tuple (y, m, d, wd, h, mi, s, us)."""
    days = days_from_civil(dt[0], dt[1], dt[2])
    return (((days * 24 + dt[4]) * 60 + dt[5]) * 60 + dt[6]) * 1000 + dt[7] // 1000


def to_datetime(ms):
    """The RTC datetime tuple (UTC, microseconds last) of epoch milliseconds."""
    days, rem = divmod(ms, 86400000)
    y, mo, d = civil_from_days(days)
    s, milli = divmod(rem, 1000)
    return (y, mo, d, (days + 3) % 7, s // 3600, s // 60 % 60, s % 60, milli * 1000)


def plausible(ms):
    return ms is not None and VALID_FROM_MS <= ms < _VALID_UNTIL_MS


class TimeLog:
    """TimeLog(path, rtc=None, drift_var=0.005, drift_max=0.05).

    begin(epoch, last_rtc) -> True when the RTC restarted since (a power-on was logged)
    stamp() -> (r, e) for a reading taken now; now() -> (ms, err ms) or None
    sync(true_ms, err_ms, source) -> None when applied, else why it was refused
    resolve(r, e) -> (ms, err ms, final) or None when it cannot be recovered (yet)
    compact(), .epoch, .rate_ppm (None while unknown), .last_sync (R, T, err) or None
    """

    def __init__(self, path, rtc=None, drift_var=0.005, drift_max=0.05):
        self.path = path
        self.rtc = rtc if rtc is not None else default_rtc()
        self.drift_var = drift_var
        self.drift_max = drift_max
        self.broken = False
        self._load()

    # --- the file ------------------------------------------------------------------------

    def _load(self):
        import os
        new = self.path[:-3] + "new"
        try:
            os.stat(self.path)
            try:
                os.remove(new)  # an unfinished rewrite: the old log is whole
            except OSError:
                pass
        except OSError:
            try:
                os.rename(new, self.path)
            except OSError:
                pass
        self.base = 0
        self.count = 0
        self._last = None
        try:
            size = os.stat(self.path)[6]
        except OSError:
            size = 0
        n = size // _SIZE
        first = self._read(0) if n else None
        if first is None or first[0] != BASE:
            self._rewrite(0, [])
            return
        self.base = first[1]
        last = self._read(n - 1)
        if size % _SIZE or last is None:
            # A torn append: keep what is whole (read them back in order) and rewrite.
            entries = []
            for i in range(1, n):
                e = self._read(i)
                if e is None:
                    break
                entries.append(e)
            self._rewrite(self.base, entries)
            return
        self.count = n - 1
        self._last = last if n > 1 else None

    def _read(self, index):
        """Entry index of the file (0 = base), or None when it is not a whole entry."""
        try:
            f = open(self.path, "rb")
        except OSError:
            return None
        try:
            f.seek(index * _SIZE)
            data = f.read(_SIZE)
        finally:
            f.close()
        if not data or len(data) != _SIZE:
            return None
        if struct.unpack("<I", data[_ENTRY_LEN:])[0] != \
                binascii.crc32(data[:_ENTRY_LEN]) & 0xFFFFFFFF:
            return None
        return struct.unpack(_ENTRY, data[:_ENTRY_LEN])

    @staticmethod
    def _pack(kind, r, t, err, rate):
        body = struct.pack(_ENTRY, kind, r, t, err, rate)
        return body + struct.pack("<I", binascii.crc32(body) & 0xFFFFFFFF)

    def _rewrite(self, base, entries):
        try:
            self._write_new(base, entries)
        except OSError as e:
            self._failed(e)
        self.base = base
        self.count = len(entries)
        self._last = tuple(entries[-1]) if entries else None

    def _failed(self, e):
        # A flash that refuses writes must not stop readings from being queued: the log
        # goes on in memory; older epochs read from the file may then be missing (their
        # readings' time is unknown).
        if not self.broken:
            self.broken = True
            print("[enosnb] time log not written (%s): readings keep their RTC stamps" % e)

    def _write_new(self, base, entries):
        import os
        new = self.path[:-3] + "new"
        f = open(new, "wb")
        try:
            f.write(self._pack(BASE, base, 0, 0, _NO_RATE))
            for e in entries:
                f.write(self._pack(*e))
            f.flush()
        finally:
            f.close()
        try:
            os.remove(self.path)
        except OSError:
            pass
        os.rename(new, self.path)

    def _append(self, kind, r, t, err, rate):
        if self.count >= _MAX_EVENTS:
            keep = [self._read(i) for i in range(self.count - _KEEP_EVENTS + 1, self.count + 1)]
            self._rewrite(self.base + self.count - _KEEP_EVENTS, keep)
        try:
            f = open(self.path, "ab")
            try:
                f.write(self._pack(kind, r, t, err, rate))
                f.flush()
            finally:
                f.close()
        except OSError as e:
            self._failed(e)
        self.count += 1
        self._last = (kind, r, t, err, rate)

    def _event(self, index):
        """Event `index` (0 = the first after the base), from the file."""
        if index < 0 or index >= self.count:
            return None
        if index == self.count - 1:
            return self._last
        return self._read(index + 1)

    def compact(self):
        """Keeps only the event that started the current epoch (call it when no queued
        reading refers to an older one)."""
        if self.count > 1:
            self._rewrite(self.epoch - 1, [self._last])

    # --- the RTC and epochs --------------------------------------------------------------

    @property
    def epoch(self):
        return self.base + self.count

    @property
    def rate_ppm(self):
        if self._last is None or self._last[4] == _NO_RATE:
            return None
        return self._last[4]

    @property
    def last_sync(self):
        """(R, T, err) of the sync that started the current epoch, or None."""
        last = self._last
        return (last[1], last[2], last[3]) if last is not None and last[0] == SYNC else None

    def rtc_ms(self):
        return to_ms(self.rtc.datetime())

    def begin(self, epoch, last_rtc):
        """Call once per boot with what note() gave at the end of the last cycle (None, None
        when that is lost). A different epoch, or an RTC behind the last value it showed,
        means the RTC started again: the current epoch ends with a power-on."""
        now = self.rtc_ms()
        if epoch == self.epoch and last_rtc is not None and now >= last_rtc - _SLACK_MS:
            return False
        self._append(POWER, now, 0, 0, self._last[4] if self._last else _NO_RATE)
        return True

    def note(self):
        """(epoch, RTC ms) to keep in RTC memory until the next begin()."""
        return self.epoch, self.rtc_ms()

    def stamp(self):
        """(r, e) of a reading taken now."""
        return self.rtc_ms(), self.epoch

    def now(self):
        """The true time now and its error bound, or None while it cannot be known."""
        got = self.resolve(self.rtc_ms(), self.epoch)
        return None if got is None else got[:2]

    # --- syncs ---------------------------------------------------------------------------

    def sync(self, true_ms, err_ms, source):
        """Sets the RTC to true_ms (taken now, off by at most err_ms) unless the RTC says it
        cannot be right; returns None when applied, else the reason it was refused."""
        if not plausible(true_ms):
            return "%s time %d is not a plausible date" % (source, true_ms)
        r = self.rtc_ms()
        last = self.last_sync
        if last is not None:
            since = r - last[1]
            room = last[2] + err_ms + self.drift_max * max(since, 0) + _SLACK_MS
            if since < 0 or abs(r - true_ms) > room:
                return ("%s time is %d s away from the RTC, which cannot have drifted more than "
                        "%d s since the last sync" % (source, (true_ms - r) // 1000, room // 1000))
        rate = self._rate(r - true_ms, true_ms, err_ms)
        # Logged first: a cut between the two leaves a sync the RTC never saw, which the
        # power-on that follows ends at once; the other order would leave an RTC set with no
        # record of it.
        self._append(SYNC, r, true_ms, err_ms, rate)
        self.rtc.datetime(to_datetime(true_ms))
        return None

    def _rate(self, drift, true_ms, err_ms):
        """The RTC's drift rate in ppm over the syncs back to at least _RATE_SPAN_MS ago (the
        RTC was set at each, so their drifts add up and their errors cancel but for the
        first and the last), or the last known rate while that span is too short or its
        sync errors too large."""
        keep = self._last[4] if self._last else _NO_RATE
        i = self.count - 1
        for _ in range(16):
            ev = self._event(i)
            if ev is None or ev[0] != SYNC:
                return keep
            span = true_ms - ev[2]
            if span >= _RATE_SPAN_MS:
                if (ev[3] + err_ms) * 1000 > span:
                    return keep
                return int(drift * 1000000 // span)
            drift += ev[1] - ev[2]
            i -= 1
        return keep

    # --- recovering a reading's time ---------------------------------------------------------

    def _uncertainty(self, rate):
        """How far the drift rate used to extrapolate may be from the real one."""
        if rate == _NO_RATE:
            return self.drift_max
        return min(self.drift_max, self.drift_var + _RATE_ERROR)

    def resolve(self, r, e):
        """(true ms, error bound ms, final) of a reading stamped (r, e), or None when its
        time cannot be recovered (or not yet, for the current epoch). final: no later sync
        can change it. The result depends only on the events around epoch e (the rates
        they carry included), so a record sent again gets the same time."""
        if e > self.epoch or e < self.base:
            return None
        start = self._event(e - 1 - self.base)
        end = self._event(e - self.base)
        s_sync = start is not None and start[0] == SYNC
        e_sync = end is not None and end[0] == SYNC
        if s_sync and e_sync and end[1] > start[2]:
            ts, err_s = start[2], start[3]
            re, te, err_e = end[1], end[2], end[3]
            t = ts + (r - ts) * (te - ts) // (re - ts)
            return t, max(err_s, err_e) + int(self.drift_var * (te - ts) / 4), True
        if e_sync:
            rate = end[4]
            d = 0.0 if rate == _NO_RATE else rate / 1e6
            back = max(0, end[1] - r)
            return end[2] - int(back / (1 + d)), end[3] + int(self._uncertainty(rate) * back), True
        if s_sync:
            rate = start[4]
            d = 0.0 if rate == _NO_RATE else rate / 1e6
            ahead = max(0, r - start[2])
            return (start[2] + int(ahead / (1 + d)),
                    start[3] + int(self._uncertainty(rate) * ahead), end is not None)
        return None
