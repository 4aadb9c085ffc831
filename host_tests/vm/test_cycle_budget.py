"""The cycle's clock and back-off (enosnb.app, enosnb.timing, enosnb.nat) on CPython and in the
MicroPython VM: no wait outlives the cycle's budget, a reset in the middle of a cycle is a
failure with a back-off sleep, the radio is off while backing off, and every device of a
fleet has its own report slot and back-off. The modem is a fake on a virtual clock; the
CoAP client, DTLS session and EnOS client above it are the real ones."""
import os

from enosnb import app as appmod
from enosnb import nat, timing
from enosnb.config import parse_board, parse_secrets
from enosnb.modem.errors import RegistrationError
from enosnb.store import Store
from test_app_logic import _rm
from vmcheck import VirtualClock, raises

# Called for each path: mutmut forks its parallel runs from one process that imported the
# tests, and they must not share files.
_pid = getattr(os, "getpid", lambda: 0)
_BOARD = {"name": "t", "modem": "sim7020",
          "uart": {"id": 1, "baudrate": 115200, "tx": 27, "rx": 26}}


def _secrets(dtls=False, key="15bBZlRknc"):
    return parse_secrets({"productKey": "MuGsF6W4", "deviceKey": key,
                          "deviceSecret": "ExampleDeviceSecret0123456789abc",
                          "host": "127.0.0.1", "dtls": dtls, "report_interval_s": 600})


def _fresh(name):
    d = "/tmp/enosnb_budget_%d_%s" % (_pid(), name)
    _rm(d)
    os.mkdir(d)
    return d


class _Silent:
    """A modem UDP socket to a server that never answers; it waits through the cycle's
    clock, as the modem driver's polling does."""

    def __init__(self, app):
        self.app = app
        self.closed = False
        self.id = 0
        self.mtu = 1280
        self.sent = 0

    def send(self, data):
        self.sent += 1

    def recv(self, timeout_ms):
        self.app.clock.sleep_ms(timeout_ms)
        return None

    def close(self):
        self.closed = True


class _Modem:
    DNS_TIMEOUT_MS = 90000
    NAME = "fake"

    def __init__(self, app, network):
        self.app = app
        self.network = network
        self.calls = []
        self.radio_is_off = False
        self.silent = False
        self.psm_granted = None
        self.registered = network
        self.stat = 1 if network else 2

    def cmd(self, command):
        self.calls.append(command)
        return []

    def imei(self):
        return "866425031234567"

    def iccid(self):
        return "89860318492040123456"

    def signal(self):
        return -73

    def power_on(self):
        pass

    def init(self):
        pass

    def cold_start(self):
        pass

    def memory(self):
        return b""

    def attach(self, apn, bands, timeout_ms, scan_timeout_ms=None, on_scan=None):
        self.calls.append(("attach", timeout_ms))
        if not self.network:
            self.app.clock.sleep_ms(timeout_ms)
            raise RegistrationError(2, timeout_ms)

    def psm(self, t3412, t3324):
        pass

    def network_time(self):
        # The network's time is the host's clock, which the RTC (no machine module) reads too.
        from enosnb.timelog import SystemRtc
        return SystemRtc().datetime()

    def socket(self, ip, port):
        self.app.silent = _Silent(self.app)
        return self.app.silent

    def release(self):
        self.calls.append("release")

    def radio_off(self):
        self.calls.append("radio_off")
        self.radio_is_off = True


class _Reset(BaseException):
    """The board resets in the middle of the cycle (watchdog, brown-out, panic)."""


class _Sensor:
    def __init__(self):
        self.n = 0

    def read(self):
        self.n += 1
        return {"reading": self.n}


class _App(appmod.App):
    network = True
    reset_in_connect = False
    modems = []

    def _driver(self):
        m = _Modem(self, self.network)
        _App.modems.append(m)
        return m

    def connect(self):
        if self.reset_in_connect:
            raise _Reset()
        appmod.App.connect(self)


def _device(d, clock, dtls=False, sensor=None, key="15bBZlRknc", tune=None):
    t = {"attach_timeout_ms": 120000}
    t.update(tune or {})
    return _App(_secrets(dtls, key), parse_board(_BOARD), sensor or _Sensor(), root=d + "/",
                clock=clock, rtc=None, tune=t)


# --- every wait is clipped to the budget -------------------------------------------------

def test_a_layer_waiting_past_the_budget_is_stopped_at_the_budget_less_the_reserve():
    vc = VirtualClock(1000)
    clock = appmod.CycleClock(vc, None, 170000, 10000)
    assert clock.clip(120000) == 120000
    vc.advance(100000)
    assert clock.clip(120000) == 60000
    raises(appmod.BudgetSpent, lambda: [clock.sleep_ms(5000) for _ in range(100)])
    assert vc.now - 1000 == 160000
    clock.wind_down()
    clock.sleep_ms(4000)  # the reserve is open for saving state
    clock.sleep_ms(60000)
    assert vc.now - 1000 == 170000
    assert raises(appmod.BudgetSpent, clock.ticks_ms)


def test_a_silent_server_ends_the_cycle_within_its_budget_not_after_max_transmit_wait():
    # Plain CoAP: POST /auth with ACK_TIMEOUT 15 s and 4 retransmissions would wait up to
    # 11.6 min; DTLS: the handshake's own deadline is 180 s.
    for dtls in (False, True):
        d = _fresh("silent%d" % dtls)
        vc = VirtualClock(5000)
        a = _device(d, vc, dtls=dtls)
        sleep_ms = a.run(woke=True)
        took = vc.now - 5000
        assert 150000 <= took <= 170000 - 10000, took
        assert a.report["error"] is not None and a.report["queued"] == 1
        assert len(Store(d + "/queue")) == 1
        assert sleep_ms >= 600000 - 170000
        assert a.silent.sent >= 2
        # Registered, the first failure keeps the radio (and the registration) for the next.
        assert _App.modems[-1].calls[-1] == "release"


def test_the_attach_wait_is_what_is_left_of_the_budget():
    d = _fresh("attach")
    vc = VirtualClock(0)
    a = _device(d, vc, tune={"attach_timeout_ms": 300000})
    _App.network = False
    try:
        a.run(woke=True)
    finally:
        _App.network = True
    assert _App.modems[-1].calls[0] == ("attach", 160000)
    assert vc.now <= 160000
    assert "not registered" in a.report["error"]


# --- a reset in the middle of a cycle ------------------------------------------------------

class _Enos:
    coap = None

    def __init__(self):
        self.attributes = []

    def post_measurepoints(self, points, t):
        pass

    def resume_measurepoint(self, points, t):
        pass

    def resume_measurepoints(self, items):
        pass

    def update_attributes(self, attrs):
        self.attributes.append(attrs)

    def state(self):
        return b"\x01\x00\x00\x00\x07"


class _Reporting(_App):
    def connect(self):
        if self.reset_in_connect:
            raise _Reset()
        self.bring_up_modem()
        self.enos = self.fake


def test_resets_in_the_middle_of_cycles_back_off_then_sleep_long_and_are_reported_later():
    d = _fresh("reset")
    vc = VirtualClock(0)
    sensor = _Sensor()
    sleeps = []
    for _ in range(6):
        a = _Reporting(_secrets(), parse_board(_BOARD), sensor, root=d + "/", clock=vc,
                       rtc=None)
        a.reset_in_connect = True
        a.fake = _Enos()
        try:
            sleeps.append(a.run(woke=False))
        except _Reset:
            sleeps.append(None)
    # Crash, back-off 1, crash, back-off 2, crash, back-off 3: each back-off boot neither
    # measures nor touches the network, and switches the radio off.
    assert sleeps[0::2] == [None, None, None]
    base = appmod.DEFAULTS["backoff_base_ms"]
    for n, s in ((1, sleeps[1]), (2, sleeps[3]), (3, sleeps[5])):
        lo = base << (n - 1)
        assert lo // 2 <= s <= lo, (n, s)
    assert sensor.n == 3
    assert _App.modems[-1].calls == ["radio_off"]
    for _ in range(2):
        a = _Reporting(_secrets(), parse_board(_BOARD), sensor, root=d + "/", clock=vc,
                       rtc=None)
        a.reset_in_connect = True
        try:
            a.run(woke=False)
        except _Reset:
            pass
        a = _Reporting(_secrets(), parse_board(_BOARD), sensor, root=d + "/", clock=vc,
                       rtc=None)
        last = a.run(woke=False)
    assert last == appmod.DEFAULTS["long_sleep_ms"]  # the 5th abnormal reset in a row
    reports, sent = [], []
    for _ in range(3):
        a = _Reporting(_secrets(), parse_board(_BOARD), sensor, root=d + "/", clock=vc,
                       rtc=None)
        a.fake = _Enos()
        a.run(woke=True)
        reports += a.fake.attributes
        sent.append(a.report["sent"])
    assert sent == [6, 1, 1]  # every reading queued meanwhile, then one per cycle
    assert reports == [{"enosnb_abnormal_resets": 5}]


def test_the_radio_is_off_while_the_device_backs_off_and_on_again_after():
    d = _fresh("radiooff")
    vc = VirtualClock(0)
    sensor = _Sensor()
    calls = []
    _App.network = False
    try:
        for _ in range(5):
            before = len(_App.modems)
            _device(d, vc, sensor=sensor).run(woke=True)
            calls.append([m.calls for m in _App.modems[before:]])
    finally:
        _App.network = True
    attach = ("attach", 120000)
    # Failure 1: no back-off yet, but no cell took the module: radio off until the next
    # wake. Failure 2: back-off of 1 cycle, radio off. Then a skipped wake without any modem
    # command, then failure 3 with the radio off again.
    assert calls[0] == [[attach, "radio_off"]]
    assert calls[1] == [[attach, "radio_off"]]
    assert calls[2] == []
    assert calls[3] == [[attach, "radio_off"]]
    assert sensor.n == 5


# --- fleet timing -------------------------------------------------------------------------

def test_every_device_has_its_own_report_slot_and_back_off_and_keeps_them():
    seeds = [timing.seed("MuGsF6W4", "dev%d" % i, b"\xa4\xcf\x12\x00\x00" + bytes((i,)))
             for i in range(50)]
    offsets = [timing.offset_ms(s, 600000) for s in seeds]
    assert all(0 <= o < 600000 for o in offsets)
    # 50 devices over ten one-minute slots: none empty, none with more than a third of them.
    counts = [0] * 10
    for o in offsets:
        counts[o // 60000] += 1
    assert min(counts) >= 1 and max(counts) <= 17, counts
    assert timing.offset_ms(seeds[0], 600000) == offsets[0]
    waits = [timing.backoff_ms(s, 3, 60000, 3600000) for s in seeds]
    assert all(120000 <= w <= 240000 for w in waits)
    assert len(set(waits)) > 40
    assert timing.backoff_ms(seeds[0], 30, 60000, 3600000) <= 3600000


def test_after_a_power_on_the_first_sleep_moves_the_device_to_its_slot():
    d = _fresh("slot")
    vc = VirtualClock(0)
    cold = _device(d, vc).run(woke=False)
    other = _device(_fresh("slot2"), vc, key="OtherDevice01").run(woke=False)
    assert 300000 <= cold < 900000 and 300000 <= other < 900000
    assert cold != other
    assert _device(d, vc).run(woke=True) == 600000  # later wakes keep the interval


# --- NAT knowledge ----------------------------------------------------------------------

def test_the_nat_lifetime_is_learnt_from_which_sleeps_kept_the_binding():
    blob = None
    assert nat.worth_restoring(blob, 600, 16)[0]
    blob = nat.learn(blob, 30, True)
    blob = nat.learn(blob, 600, False)
    assert nat.load(blob)[:2] == (30, 600)
    ok, blob = nat.worth_restoring(blob, 20, 16)
    assert ok
    tries = []
    for _ in range(16):
        ok, blob = nat.worth_restoring(blob, 600, 16)
        tries.append(ok)
    assert tries == [False] * 15 + [True]  # one try every 16 wakes notices a new network
    blob = nat.learn(blob, 600, True)  # it worked: the old bound was stale
    assert nat.load(blob)[:2] == (600, 0)
    blob = nat.learn(blob, 120, False)
    assert nat.load(blob)[:2] == (0, 120)
