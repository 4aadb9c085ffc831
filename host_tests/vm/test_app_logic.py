"""The report cycle's queue decisions (enosnb.app) on CPython and in the MicroPython VM:
readings are queued before the radio, survive failures, go out oldest first, and a record
EnOS rejects alone is dropped. The radio and EnOS are fakes."""
import os

from enosnb import activation, report
from enosnb import app as appmod
from enosnb.config import parse_board, parse_secrets
from enosnb.enos.errors import reply_error
from enosnb.modem.errors import ModemError
from enosnb.store import Store

# Called for each path: mutmut forks its parallel runs from one process that imported the
# tests, and they must not share files.
_pid = getattr(os, "getpid", lambda: 0)
_BOARD = {"name": "t", "modem": "sim7020",
          "uart": {"id": 1, "baudrate": 115200, "tx": 27, "rx": 26}}
_SECRETS = {"productKey": "MuGsF6W4", "deviceKey": "15bBZlRknc",
            "deviceSecret": "ExampleDeviceSecret0123456789abc", "host": "127.0.0.1",
            "batch_max": 3}


def _fresh(name):
    d = "/tmp/enosnb_app_%d_%s" % (_pid(), name)
    _rm(d)
    os.mkdir(d)
    return d


def _rm(d):
    try:
        names = os.listdir(d)
    except OSError:
        return
    for n in names:
        p = d + "/" + n
        try:
            os.remove(p)
        except OSError:
            _rm(p)
    os.rmdir(d)


class _Counter:
    def __init__(self):
        self.n = 0

    def read(self):
        self.n += 1
        return {"reading": self.n}


class _Enos:
    def __init__(self, refuse):
        self.sent = []
        self.refuse = refuse

    def _call(self, kind, items):
        for it in items:
            if it["measurepoints"]["reading"] in self.refuse:
                raise reply_error(1204, "/topic/x")
        self.sent.append((kind, [it["measurepoints"]["reading"] for it in items]))

    def post_measurepoints(self, points, t):
        self._call("post", [{"measurepoints": points, "time": t}])

    def resume_measurepoint(self, points, t):
        self._call("resume", [{"measurepoints": points, "time": t}])

    def resume_measurepoints(self, items):
        self._call("batch", items)

    def update_attributes(self, attrs):
        pass

    def state(self):
        return b"\x01\x00\x00\x00\x07"


class _App(appmod.App):
    def connect(self):
        if not self.network:
            raise ModemError("not registered")
        self.times.sync(self.times.rtc_ms(), 1000, "test")  # the host's clock is right
        self.enos = self.fake
        self.report["connect"] = "fake"


def _device(d, sensor, network=True, refuse=()):
    a = _App(parse_secrets(_SECRETS), parse_board(_BOARD), sensor, root=d + "/", rtc=None)
    a.network = network
    a.fake = _Enos(refuse)
    return a


def test_readings_survive_failed_cycles_and_go_out_oldest_first_in_batches():
    d = _fresh("order")
    sensor = _Counter()
    for _ in range(4):
        a = _device(d, sensor, network=False)
        a.run(woke=True)
    assert len(Store(d + "/queue")) == 4
    sent = []
    for _ in range(4):  # back-off skips the radio for a few cycles
        a = _device(d, sensor)
        a.run(woke=True)
        sent = a.fake.sent
        if sent:
            break
    assert sent[-1][0] == "post"
    order = []
    for _, rs in sent:
        order += rs
    assert order == list(range(1, sensor.n + 1))
    assert len(Store(d + "/queue")) == 0


def test_a_record_refused_for_good_goes_to_the_dead_letters_and_the_rest_is_delivered():
    d = _fresh("reject")
    sensor = _Counter()
    a = _device(d, sensor, network=False)
    a.run(woke=True)
    a = _device(d, sensor, network=False)
    a.run(woke=True)
    a = _device(d, sensor, refuse=(1,))
    a.run(woke=True)
    if not a.fake.sent:  # back-off skipped the radio once
        a = _device(d, sensor, refuse=(1,))
        a.run(woke=True)
    assert a.fake.sent[0] == ("resume", [2])
    assert a.report["dead"] == 1
    assert len(Store(d + "/queue")) == 0
    from enosnb.deadletter import DeadLetters
    why, rec = DeadLetters(d + "/dead").peek(1)[0]
    assert why == "EnOS code 1204" and b'"reading":1' in rec


def test_a_record_keeps_its_points_and_its_rtc_stamp():
    from enosnb.delivery import decode
    rec = appmod.encode_record({"t": 21.5, "q": {"value": 1, "quality": 9}}, 1764115200123, 7)
    assert decode(rec) == {"p": {"t": 21.5, "q": {"value": 1, "quality": 9}},
                           "r": 1764115200123, "e": 7}


def test_network_time_becomes_utc_for_the_rtc():
    from enosnb.modem.nettime import parse_cclk
    # 27.007: local time plus the offset in quarter hours (+32 = UTC+8).
    assert parse_cclk('+CCLK: "26/11/26,11:30:05+32"') == (2026, 11, 26, 3, 3, 30, 5, 0)
    assert parse_cclk("+CCLK:26/01/01,01:00:00+32") == (2025, 12, 31, 2, 17, 0, 0, 0)
    assert parse_cclk('+CCLK: "26/03/01,00:10:00-04"') == (2026, 3, 1, 6, 1, 10, 0, 0)
    assert parse_cclk('+CCLK: "80/01/06,00:00:49+00"') is None
    assert parse_cclk(None) is None


def test_an_activated_secret_survives_a_power_cut_between_remove_and_rename():
    d = _fresh("secret")
    a = appmod.App(parse_secrets(_SECRETS), parse_board(_BOARD), root=d)
    activation.persist(a, "FirstActivatedSecret0123456789ab")
    # The cut: the new secret is written to .tmp and the old file is gone, no rename yet.
    with open(d + "/device_secret.json.tmp", "w") as f:
        f.write('{"deviceSecret": "SecondActivatedSecret123456789ab"}')
    os.remove(d + "/device_secret.json")
    assert activation.secret(a) == "SecondActivatedSecret123456789ab"
    activation.persist(a, "ThirdActivatedSecret0123456789ab")
    assert activation.secret(a) == "ThirdActivatedSecret0123456789ab"
    assert sorted(os.listdir(d)) == ["device_secret.json"]
    _rm(d)
