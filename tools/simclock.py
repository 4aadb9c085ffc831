"""The wall clocks of the host twin and the soak (CPython only): true time, the board's RTC,
the network's time behind the modem emulator, and an SNTP server.

SimClock keeps simulated true time: the host's clock while the device is awake, jumping by
the full requested deep sleep while the runner sleeps only a scaled fraction of it. It also
keeps the board's RTC in a JSON file that tools/host/machine.py reads (ENOSNB_RTC_CLOCK):
the RTC runs at (1 + drift) times true time, its drift may change at every deep sleep, a
power-on restarts it at 2000-01-01, and every time the firmware sets it is recorded (sets:
the true time of the set and the value set), so a checker knows when syncs happened. The
file also holds true_offset (true ms = host ms + true_offset) for a sensor that logs the
true time of its readings.

network_time(emu, clock) makes the modem emulator's network time (its AT+CCLK? once NITZ came,
3GPP TS 27.007 §8.15) that true time.

SntpServer answers SNTPv4 (RFC 4330) requests on 127.0.0.1 with that true time; while
.blocked it drops them.
"""
import json
import os
import struct
import time

from tools.netutil import UdpEcho

EPOCH_2000_MS = 946684800000
_NTP_TO_UNIX_S = 2208988800


def _real_ms():
    return time.time() * 1000


class SimClock:
    def __init__(self, path, start_ms=None, drift=0.0):
        self.path = path
        self.offset = 0.0 if start_ms is None else start_ms - _real_ms()
        self.drift = drift
        self.sets = []      # (true ms when the RTC was set, value set)
        self.powers = []    # true ms of each power-on
        self._write({"base_ms": EPOCH_2000_MS, "at_ms": _real_ms(), "drift": drift,
                     "sets": []})
        self.powers.append(self.true_ms())

    def env(self):
        return {"ENOSNB_RTC_CLOCK": self.path}

    def true_ms(self):
        return int(_real_ms() + self.offset)

    def _read(self):
        with open(self.path) as f:
            return json.load(f)

    def _write(self, st):
        st["true_offset"] = self.offset  # for a test sensor that logs the true time
        with open(self.path + ".tmp", "w") as f:
            json.dump(st, f)
        os.replace(self.path + ".tmp", self.path)

    def rtc_ms(self):
        st = self._read()
        return int(st["base_ms"] + (_real_ms() - st["at_ms"]) * (1 + st["drift"]))

    def collect(self):
        """Takes the sets the firmware made since the last call into .sets."""
        st = self._read()
        if st.get("sets"):
            for at, value in st["sets"]:
                self.sets.append((int(at + self.offset), value))
            st["sets"] = []
            self._write(st)

    def sleep(self, sleep_ms, scale, drift=None):
        """Deep sleep: the host waits sleep_ms * scale; true time and the RTC move on by the
        whole sleep (the RTC at the new drift, which holds until the next sleep)."""
        self.collect()
        st = self._read()
        before = _real_ms()
        rtc = st["base_ms"] + (before - st["at_ms"]) * (1 + st["drift"])
        if sleep_ms * scale > 0:
            time.sleep(sleep_ms * scale / 1000.0)
        after = _real_ms()
        if drift is not None:
            self.drift = drift
        self.offset += sleep_ms - (after - before)
        st.update(base_ms=rtc + sleep_ms * (1 + self.drift), at_ms=after, drift=self.drift)
        self._write(st)

    def power_on(self, off_ms=0):
        """The supply was cut for off_ms: the RTC starts again at 2000-01-01."""
        self.collect()
        self.offset += off_ms
        st = self._read()
        st.update(base_ms=EPOCH_2000_MS, at_ms=_real_ms())
        self._write(st)
        self.powers.append(self.true_ms())


def network_time(emu, clock):
    """The emulated network's time (what AT+CCLK? shows once NITZ came) is the clock's true
    time."""
    emu.network_now = lambda: clock.true_ms() / 1000.0


class SntpServer(UdpEcho):
    """SNTPv4 server on 127.0.0.1 answering with now_ms() (e.g. SimClock.true_ms); use as a
    context manager. blocked: requests go unanswered (a firewall)."""

    def __init__(self, now_ms):
        self.now_ms = now_ms
        self.blocked = False
        UdpEcho.__init__(self, self._answer)

    @staticmethod
    def _ntp(ms):
        secs, frac = divmod(ms, 1000)
        return struct.pack(">II", (secs + _NTP_TO_UNIX_S) & 0xFFFFFFFF, (frac << 32) // 1000)

    def _answer(self, data):
        if len(data) < 48 or data[0] & 7 != 3 or self.blocked:
            return None
        now = self._ntp(self.now_ms())
        return bytes([0x24, 1, 6, 0xEC]) + bytes(8) + b"GPS\0" + now + data[40:48] + \
            now + self._ntp(self.now_ms())
