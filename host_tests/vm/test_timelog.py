"""Every reading's true time (enosnb.timelog, enosnb.sntp) on CPython and in the MicroPython
VM: the RTC drifts and restarts, syncs come and go, and each reading's recovered time must be
within the error bound the module states for it."""
import os

from enosnb import sntp, timelog
from vmcheck import raises

_PID = getattr(os, "getpid", lambda: 0)()
T0 = 1764115200000  # 2025-11-26 00:00:00 UTC
EPOCH_2000 = 946684800000


def _path(name):
    p = "/tmp/enosnb_time_%d_%s.log" % (_PID, name)
    for f in (p, p[:-3] + "new"):
        try:
            os.remove(f)
        except OSError:
            pass
    return p


class World:
    """True time and a drifting RTC: advance() moves both, the RTC by (1 + drift)."""

    def __init__(self, drift=0.03, rtc_ms=EPOCH_2000):
        self.true = T0
        self.ms = rtc_ms
        self.drift = drift

    def datetime(self, dt=None):  # the machine.RTC interface
        if dt is None:
            return timelog.to_datetime(int(self.ms))
        self.ms = timelog.to_ms(dt)

    def advance(self, seconds, drift=None):
        d = self.drift if drift is None else drift
        self.true += seconds * 1000
        self.ms += seconds * 1000 * (1 + d)

    def power_on(self):
        self.ms = EPOCH_2000


def _log(world, name, var=0.01):
    tl = timelog.TimeLog(_path(name), rtc=world, drift_var=var, drift_max=0.05)
    tl.begin(None, None)
    return tl


def _check(tl, readings, final=True):
    """Every (true ms, (r, e)) resolves within its own stated bound; returns the worst error."""
    worst = 0
    for true, (r, e) in readings:
        got = tl.resolve(r, e)
        assert got is not None, (true, r, e)
        t, err, fin = got
        assert abs(t - true) <= err, (t - true, err)
        assert fin == final
        worst = max(worst, abs(t - true))
    return worst


def test_datetime_conversion_round_trips_through_milliseconds():
    for ms in (0, EPOCH_2000, T0 + 123, 4102444799999):
        assert timelog.to_ms(timelog.to_datetime(ms)) == ms
    assert timelog.to_datetime(T0)[:7] == (2025, 11, 26, 2, 0, 0, 0)


def test_readings_between_two_syncs_get_their_time_back_despite_a_3_percent_drift():
    w = World(drift=0.03)
    tl = _log(w, "interp")
    assert tl.sync(w.true, 1000, "network") is None
    readings = []
    for _ in range(5):
        w.advance(120)
        readings.append((w.true, tl.stamp()))
    w.advance(10)
    # Uncorrected, the last reading would be 18 s off.
    assert abs(readings[-1][1][0] - readings[-1][0]) > 17000
    assert tl.sync(w.true, 1000, "network") is None
    assert _check(tl, readings) <= 2


def test_interpolation_holds_its_bound_when_the_drift_varies_within_rtc_drift_var():
    w = World()
    tl = _log(w, "vary", var=0.01)
    tl.sync(w.true, 500, "sntp")
    readings = []
    for i in range(40):
        w.advance(150, drift=0.02 + (0.01 if i % 7 < 3 else 0.0))
        readings.append((w.true, tl.stamp()))
    tl.sync(w.true, 500, "sntp")
    worst = _check(tl, readings)
    assert worst > 500  # the variation shows, within 0.5 s + 1 % x 6000 s / 4
    t, err, _ = tl.resolve(*readings[20][1])
    assert err == 500 + 6000 * 1000 // 400


def test_after_a_power_on_readings_are_dated_back_from_the_first_sync():
    w = World(drift=0.04)
    tl = _log(w, "back")
    tl.sync(w.true, 1000, "network")
    for _ in range(8):  # an hour and more of syncs: the rate is measured
        w.advance(600)
        tl.sync(w.true, 1000, "network")
    assert 39000 <= tl.rate_ppm <= 41000
    w.advance(300)
    w.power_on()
    assert tl.begin(*tl.note()) is False  # same boot: nothing happened
    assert tl.begin(tl.epoch, w.ms + 5000) is True  # the RTC is behind where it was
    readings = []
    for _ in range(4):
        w.advance(600)
        readings.append((w.true, tl.stamp()))
    assert tl.resolve(*readings[0][1]) is None  # no sync yet in this epoch
    w.advance(60)
    tl.sync(w.true, 1000, "network")
    assert _check(tl, readings) <= 3


def test_readings_after_the_last_sync_are_dated_forward_and_held_final_only_once_ended():
    w = World(drift=0.02)
    tl = _log(w, "fwd")
    tl.sync(w.true, 1000, "network")
    w.advance(600)
    true, stamp = w.true, tl.stamp()
    t, err, final = tl.resolve(*stamp)
    assert final is False and abs(t - true) <= err
    assert err == 1000 + 612000 // 20  # no rate yet: 5 % of the RTC's 612 s
    w.power_on()
    tl.begin(None, None)
    t, err, final = tl.resolve(*stamp)
    assert final is True and abs(t - true) <= err


def test_a_reading_between_two_power_ons_without_a_sync_has_no_recoverable_time():
    w = World()
    tl = _log(w, "lost")
    w.advance(600)
    stamp = tl.stamp()
    w.power_on()
    tl.begin(None, None)
    w.advance(60)
    tl.sync(w.true, 1000, "network")
    assert tl.resolve(*stamp) is None


def test_a_network_time_the_rtc_cannot_have_drifted_to_is_refused():
    w = World(drift=0.01)
    tl = _log(w, "sanity")
    assert "plausible" in tl.sync(EPOCH_2000 + 5000, 1000, "network")
    tl.sync(w.true, 1000, "network")
    w.advance(3600)
    why = tl.sync(w.true + 3 * 3600 * 1000, 1000, "network")
    assert why is not None and "cannot have drifted" in why
    assert tl.sync(w.true, 1000, "sntp") is None
    assert tl.last_sync[1] == w.true


def test_the_log_survives_a_torn_append_and_compacts_to_the_current_epoch():
    w = World(drift=0.02)
    path = _path("torn")
    tl = timelog.TimeLog(path, rtc=w)
    tl.begin(None, None)
    tl.sync(w.true, 1000, "network")
    w.advance(600)
    tl.sync(w.true, 1000, "network")
    with open(path, "ab") as f:
        f.write(b"\x01\x02\x03")
    again = timelog.TimeLog(path, rtc=w)
    assert again.epoch == tl.epoch and again.last_sync == tl.last_sync
    w.advance(300)
    true, stamp = w.true, again.stamp()
    again.compact()
    assert os.stat(path)[6] == 2 * 29
    w.advance(300)
    again.sync(w.true, 1000, "network")
    t, err, _ = timelog.TimeLog(path, rtc=w).resolve(*stamp)
    assert abs(t - true) <= err


class _Server:
    """An SNTP server `offset_ms` ahead of the client's clock, answering after delays."""

    def __init__(self, clock, offset_ms, up_ms, down_ms, answers=None):
        self.clock, self.offset, self.up, self.down = clock, offset_ms, up_ms, down_ms
        self.answers = answers
        self.sent = []
        self.pending = []

    def send(self, data):
        self.sent.append(bytes(data))
        self.clock[0] += self.up
        now = self.clock[0] + self.offset
        secs, frac = divmod(now, 1000)
        ntp = secs + 2208988800
        ts = (ntp << 32) | (frac << 32) // 1000
        body = bytearray(48)
        body[0] = 0x24
        body[1] = 2
        body[24:32] = data[40:48]
        body[32:40] = ts.to_bytes(8, "big")
        body[40:48] = ts.to_bytes(8, "big")
        self.pending = list(self.answers or []) + [bytes(body)]

    def recv(self, timeout_ms):
        if not self.pending:
            self.clock[0] += timeout_ms
            return None
        self.clock[0] += self.down
        return self.pending.pop(0)


def test_sntp_takes_the_time_halfway_through_the_round_trip_and_skips_stray_answers():
    clock = [T0]
    stray = bytes([0x24, 2]) + bytes(46)
    srv = _Server(clock, 90000, 3000, 1000, answers=[stray])
    t, err = sntp.exchange(srv, lambda: clock[0], 10000)
    true_now = clock[0] + 90000
    # The stray answer made the way back look 2 s long: the bound (half the 5 s round trip)
    # still holds.
    assert abs(t - true_now) <= err and err == 2501
    req = srv.sent[0]
    assert len(req) == 48 and req[0] == 0x23 and req[1:40] == bytes(39)


def test_sntp_refuses_kiss_of_death_unsynchronised_and_server_less_answers():
    nonce = b"12345678"
    good = bytearray(48)
    good[0], good[1] = 0x24, 1
    good[24:32] = nonce
    good[40] = 0xE0
    assert sntp.parse(bytes(good), nonce) is not None
    for i, v, why in ((1, 0, "kiss"), (0, 0xE4, "not synchronised"), (0, 0x23, "mode 3")):
        bad = bytearray(good)
        bad[i] = v
        assert why in str(raises(sntp.SntpError, sntp.parse, bytes(bad), nonce))
    assert "48" in str(raises(sntp.SntpError, sntp.parse, bytes(good[:40]), nonce))
    assert sntp.parse(bytes(good), b"87654321") is None
    clock = [T0]

    class Silent:
        def send(self, data):
            pass

        def recv(self, timeout_ms):
            clock[0] += timeout_ms
            return None
    assert "no SNTP answer" in str(raises(sntp.SntpError, sntp.exchange, Silent(),
                                          lambda: clock[0], 2000))


def test_ntp_timestamps_after_2036_are_read_in_era_1():
    assert sntp.ntp_ms(2208988800, 0) == 0
    assert sntp.ntp_ms(3973000000, 1 << 31) == (3973000000 - 2208988800) * 1000 + 500
    # 2040: the 32-bit seconds field wrapped; its top bit is clear.
    assert sntp.ntp_ms(125000000, 0) == (125000000 + (1 << 32) - 2208988800) * 1000


def test_a_flash_that_refuses_the_time_log_does_not_stop_readings_from_being_stamped():
    w = World(drift=0.02)
    tl = timelog.TimeLog("/nonexistent_enosnb_dir/time.log", rtc=w)
    assert tl.begin(None, None) is True and tl.broken
    r, e = tl.stamp()
    assert tl.sync(w.true, 1000, "network") is None
    w.advance(600)
    assert tl.resolve(*tl.stamp())[1] > 0  # dated forward from the sync kept in memory
