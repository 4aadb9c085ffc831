"""The report cycle's own decisions (enosnb/app.py, enosnb/delivery.py), with the radio and
EnOS replaced by a fake: what is queued, sent (on which topic, with which time),
acknowledged, moved to the dead letters, replayed, and when the radio is skipped."""
import json
import os
import shutil

import pytest

from enosnb import app as appmod
from enosnb import timelog
from enosnb.coap.errors import CoapTimeout
from enosnb.config import parse_board, parse_secrets
from enosnb.deadletter import DeadLetters
from enosnb.enos.errors import EnosCoapError, EnosProtocolError, reply_error
from enosnb.modem.errors import ModemError
from enosnb.store import Store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOUR = 3600 * 1000


class Counter:
    def __init__(self):
        self.n = 0
        self.fail = False
        self.extra = None  # a point the thing model does not define, when set

    def read(self):
        if self.fail:
            raise OSError("I2C bus stuck")
        self.n += 1
        points = {"reading": self.n}
        if self.extra:
            points[self.extra] = 1
        return points


class World:
    """True time and the board's RTC, which drifts by `drift` and restarts at 2000 on a
    power-on (machine.RTC's datetime() interface)."""

    def __init__(self, drift=0.03):
        self.true = 1764115200000
        self.ms = self.true
        self.drift = drift

    def datetime(self, dt=None):
        if dt is None:
            return timelog.to_datetime(int(self.ms))
        self.ms = timelog.to_ms(dt)

    def sleep(self, seconds=600):
        self.true += seconds * 1000
        self.ms += seconds * 1000 * (1 + self.drift)

    def power_on(self):
        self.ms = 946684800000


class FakeMachine:
    def __init__(self, world):
        self.world = world

    def RTC(self):
        return self.world


class FakeEnos:
    """Records what the app reports: (topic, [reading], [time]); `refuse(topic, items)`
    returns an exception to raise or None."""

    def __init__(self, refuse=None, world=None):
        self.sent = []
        self.attributes = []
        self.refuse = refuse or (lambda topic, items: None)
        self.world = world

    def _call(self, kind, items):
        e = self.refuse(kind, items)
        if e is not None:
            raise e
        self.sent.append((kind, [it["measurepoints"]["reading"] for it in items]))
        self.times = getattr(self, "times", []) + [
            (it["measurepoints"]["reading"], it.get("time")) for it in items]

    def post_measurepoints(self, points, time_ms):
        self._call("post", [{"measurepoints": points, "time": time_ms}])

    def post_measurepoints_batch(self, items):
        self._call("post/batch", items)

    def resume_measurepoint(self, points, time_ms):
        self._call("resume", [{"measurepoints": points, "time": time_ms}])

    def resume_measurepoints(self, items):
        self._call("resume/batch", items)

    def update_attributes(self, attrs):
        e = self.refuse("attribute", attrs)
        if e is not None:
            raise e
        self.attributes.append(attrs)

    def state(self):
        return b"\x01\x00\x00\x00\x07"


class FakeApp(appmod.App):
    network = True
    network_time = True
    connects = 0
    radio = False  # True: bring up the real driver (on the emulator) before the fake EnOS

    def connect(self):
        FakeApp.connects += 1
        if not FakeApp.network:
            raise ModemError("not registered")
        if self.radio:
            self.bring_up_modem()
        elif FakeApp.network_time:  # what the modem's network time would give
            world = getattr(self._machine, "world", None)
            true = world.true if world else self.times.rtc_ms()
            assert self.times.sync(true, 1000, "test") is None
        self.enos = self.fake
        self.report["connect"] = "fake"


@pytest.fixture
def device(tmp_path, monkeypatch):
    monkeypatch.setenv("ENOSNB_RTC_FILE", str(tmp_path / "rtc.bin"))
    with open(os.path.join(ROOT, "boards", "esp32-sim7020", "board.json")) as f:
        board = parse_board(json.load(f))
    base = {"productKey": "MuGsF6W4", "deviceKey": "15bBZlRknc",
            "deviceSecret": "ExampleDeviceSecret0123456789abc",
            "host": "127.0.0.1", "batch_max": 3, "report_interval_s": 600}
    FakeApp.network = True
    FakeApp.network_time = True
    FakeApp.connects = 0
    sensor = Counter()
    made = []

    shared = parse_secrets(base)

    def make(refuse=None, world=None, **config):
        secrets = parse_secrets(dict(base, **config)) if config else shared
        a = FakeApp(secrets, board, sensor, root=str(tmp_path) + "/",
                    machine=FakeMachine(world) if world else None)
        a.fake = FakeEnos(refuse, world)
        made.append(a)
        return a
    make.sensor = sensor
    make.secrets = shared
    make.queue = lambda: Store(str(tmp_path / "queue"))
    make.dead = lambda: DeadLetters(str(tmp_path / "dead"))
    make.settings = lambda: json.load(open(str(tmp_path / "delivery.json")))
    make.tmp = tmp_path
    return make


def _until_sent(device, n=4, **kw):
    """Cycles (back-off may skip the radio) until one sends something; returns that app."""
    for _ in range(n):
        a = device(**kw)
        a.run(woke=True)
        if a.fake.sent:
            return a
    return a


def _radio(device, **kw):
    """One cycle that uses the radio (back-off may skip a few)."""
    for _ in range(5):
        a = device(**kw)
        a.run(woke=True)
        if not a.report["skipped_radio"]:
            return a
    raise AssertionError("the radio stayed off")


def _power_on(device, world):
    """The supply was cut: the RTC restarts at 2000 and RTC memory is empty."""
    world.power_on()
    for p in os.listdir(device.tmp):
        if p.startswith("rtc") or p.startswith("state"):
            os.remove(os.path.join(device.tmp, p))


def _outage(device, cycles, **kw):
    FakeApp.network = False
    for _ in range(cycles):
        device(**kw).run(woke=True)
    FakeApp.network = True


def test_a_reading_stays_queued_through_a_network_failure_and_goes_out_as_resume_first(device):
    FakeApp.network = False
    a = device()
    sleep_ms = a.run(woke=False)
    assert a.report["queued"] == 1 and a.report["sent"] == 0
    assert "not registered" in a.report["error"]
    # After a power-on the device's own offset moves its slot (fleet timing).
    assert 300000 <= sleep_ms < 900000
    assert len(device.queue()) == 1
    FakeApp.network = True
    b = device()
    b.run(woke=True)
    assert b.fake.sent == [("resume", [1]), ("post", [2])]
    assert len(device.queue()) == 0


def test_after_an_outage_the_backlog_goes_oldest_first_through_single_resume_then_post(device):
    _outage(device, 5)
    a = _until_sent(device)
    assert [k for k, _ in a.fake.sent] == ["resume"] * (device.sensor.n - 1) + ["post"]
    assert [r for _, rs in a.fake.sent for r in rs] == list(range(1, device.sensor.n + 1))


def test_batches_go_only_where_configured_and_stop_when_enos_refuses_them(device):
    _outage(device, 5)
    a = _until_sent(device, backlog="resume_batch")
    kinds = [k for k, _ in a.fake.sent]
    assert kinds[-1] == "post" and set(kinds[:-1]) == {"resume/batch"}
    assert [r for _, rs in a.fake.sent for r in rs] == list(range(1, device.sensor.n + 1))
    assert all(len(rs) <= 3 for _, rs in a.fake.sent) and len(kinds) < device.sensor.n
    _outage(device, 2)

    def no_batch(topic, items):
        return EnosCoapError(0x84, "/topic/x") if "batch" in topic else None
    a = _until_sent(device, refuse=no_batch, backlog="resume_batch")
    kinds = [k for k, _ in a.fake.sent]
    assert kinds[-1] == "post" and set(kinds[:-1]) == {"resume"}
    assert device.settings()["batch"] is False


VARIANTS = [("4.04", EnosCoapError(0x84, "/t")), ("4.05", EnosCoapError(0x85, "/t")),
            ("4.03", EnosCoapError(0x83, "/t")), ("1250", reply_error(1250, "/t")),
            ("1260", reply_error(1260, "/t")), ("1009", reply_error(1009, "/t"))]


@pytest.mark.parametrize("name,refusal", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_when_enos_refuses_resume_the_backlog_goes_through_post_with_its_own_times_and_the_choice_survives_a_power_on(
        device, name, refusal):
    world = World(drift=0.0)
    device(world=world).run(woke=False)  # a sync: the RTC is right
    FakeApp.network = False
    taken = []
    for _ in range(3):
        world.sleep()
        taken.append(world.true)
        device(world=world).run(woke=True)
    FakeApp.network = True

    def no_resume(topic, items):
        return refusal if topic == "resume" else None
    a = _until_sent(device, refuse=no_resume, world=world)
    assert [k for k, _ in a.fake.sent] == ["post"] * 4
    got = dict(a.fake.times)
    assert [got[r] for r in (2, 3, 4)] == taken  # each reading's own time, in time order
    assert device.settings()["topic"] == "post"
    # A power-on reset: RTC memory and RTC time are gone, the choice is on flash.
    _outage(device, 1, world=world)
    _power_on(device, world)
    b = device(refuse=no_resume, world=world)
    b.run(woke=False)
    assert [k for k, _ in b.fake.sent] == ["post", "post"]


def test_resume_is_tried_again_after_a_week_and_taken_back_when_enos_accepts_it(device):
    world = World(drift=0.0)
    device(world=world).run(woke=False)
    _outage(device, 1, world=world)
    refuse = [True]

    def no_resume(topic, items):
        return reply_error(1009, "/t") if topic == "resume" and refuse[0] else None
    device(refuse=no_resume, world=world).run(woke=True)
    assert device.settings()["topic"] == "post"
    for days in (1, 8):
        world.true += days * 24 * HOUR
        world.ms = world.true
        _outage(device, 1, world=world)
        refuse[0] = days < 8
        a = device(refuse=no_resume, world=world)
        a.run(woke=True)
    assert a.fake.sent[0][0] == "resume"
    assert device.settings()["topic"] == "resume"


def test_resume_that_gets_no_answer_twice_while_post_does_counts_as_refused(device):
    def silent(topic, items):
        return CoapTimeout("no answer") if topic == "resume" else None
    for _ in range(2):
        _outage(device, 1)
        a = device(refuse=silent)
        a.run(woke=True)
        assert a.report["error"] is None
        assert [k for k, _ in a.fake.sent] == ["post", "post"]  # the timed-out one, then now
    assert device.settings()["topic"] == "post"


def test_a_silent_resume_whose_post_is_refused_for_good_still_frees_the_queue(device):
    def silent(topic, items):
        if topic == "resume":
            return CoapTimeout("no answer")
        if items[0]["measurepoints"]["reading"] == 1:
            return reply_error(1204, "/t")
        return None
    _outage(device, 1)
    a = device(refuse=silent)
    a.run(woke=True)
    assert a.report["error"] is None and a.report["dead"] == 1
    assert a.fake.sent == [("post", [2])] and a._u8("rsil") == 1


def test_a_record_enos_refuses_for_good_goes_to_the_dead_letters_and_newer_ones_go_out(device):
    _outage(device, 3)

    def model(topic, items):
        if topic == "attribute":
            return None
        if any(it["measurepoints"]["reading"] == 2 for it in items):
            return reply_error(1204, "/topic/sys/x/y/thing/measurepoint/resume")
        return None
    a = _until_sent(device, refuse=model)
    assert a.fake.sent == [("resume", [1]), ("resume", [3]), ("post", [4])]
    assert a.report["dead"] == 1 and len(device.queue()) == 0
    why, rec = device.dead().peek(1)[0]
    assert why == "EnOS code 1204" and json.loads(rec)["p"] == {"reading": 2}
    assert "t" in json.loads(rec)  # its time is kept for a replay
    assert a.fake.attributes == [{"dead_letters": 1}]
    b = device(refuse=model)
    b.run(woke=True)
    assert b.report["dead"] == 1 and b.fake.attributes == []  # told once


def test_dead_letters_go_back_to_enos_after_a_replay_command_or_a_config_change(device):
    device.sensor.extra = "humidity"
    for _ in range(2):
        device(refuse=lambda t, i: reply_error(1204, "/t") if t != "attribute" else None
               ).run(woke=True)
    assert len(device.dead()) == 2
    device.sensor.extra = None
    a = device()
    a.run(woke=True)
    from enosnb import cloud
    from enosnb.enos.commands import Commands
    cmds = Commands()
    cloud.handlers(a, cmds)  # what a cloud command reaches
    assert cmds._service("replay_dead_letters", {}) == (200, {"replayed": 2})
    assert len(device.dead()) == 0 and len(a.store) == 2
    a.send_queue(None)
    assert [r for _, rs in a.fake.sent for r in rs] == [3, 1, 2]
    for _ in range(2):
        device(refuse=lambda t, i: reply_error(1204, "/t") if t != "attribute" else None
               ).run(woke=True)
    b = device(replay_dead_letters=1)
    b.run(woke=True)
    assert [r for _, rs in b.fake.sent for r in rs] == [6, 4, 5]
    c = device(replay_dead_letters=1)
    c.run(woke=True)
    assert c.fake.sent == [("post", [7])]  # the same value does not replay again


def test_a_record_refused_five_times_in_a_row_stops_blocking_the_queue(device):
    def odd(topic, items):
        return reply_error(1200, "/t") if items[0]["measurepoints"]["reading"] == 1 else None
    for i in range(5):
        a = device(refuse=odd)
        a.run(woke=True)
        assert a.report["error"] is None and not a.report["skipped_radio"]  # no back-off
        if i < 4:
            assert a.fake.sent == [] and len(device.queue()) == i + 1
            assert "1200" in a.report["refused"]
    assert a.report["dead"] == 1
    assert [r for _, rs in a.fake.sent for r in rs] == [2, 3, 4, 5]


def test_a_malformed_reply_or_a_server_error_keeps_the_queue_without_a_dead_letter(device):
    a = device(lambda t, i: EnosCoapError(0xA0, "/topic/x"))
    a.run(woke=True)
    assert "5.00" in a.report["error"]
    a = device(lambda t, i: EnosProtocolError("the reply to /x is not valid JSON"))
    a.run(woke=True)
    assert "EnosProtocolError" in a.report["refused"]
    assert len(device.queue()) == 2 and len(device.dead()) == 0
    b = device()
    b.run(woke=True)
    assert b.fake.sent == [("resume", [1]), ("resume", [2]), ("post", [3])]


def test_a_memory_error_is_logged_as_memory_and_the_reading_stays_queued(device, capsys):
    a = device(lambda t, i: MemoryError("memory allocation failed, allocating 2048 bytes"))
    a.run(woke=True)
    assert a.report["memory"] == 1 and "MemoryError" in a.report["error"]
    assert "out of memory in report" in capsys.readouterr().out
    assert len(device.queue()) == 1
    b = device()
    b.run(woke=True)
    assert b.fake.sent == [("resume", [1]), ("post", [2])]


def _skips_after_each_failure(device):
    FakeApp.network = False
    skips, run = [], 0
    for _ in range(40):
        before = FakeApp.connects
        device().run(woke=True)
        if FakeApp.connects > before:
            skips.append(run)
            run = 0
        else:
            run += 1
    return skips[1:]


def test_back_off_doubles_with_a_random_spread_up_to_its_cap_but_keeps_measuring(device):
    skips = _skips_after_each_failure(device)
    # After the n-th failure in a row: between 2^(n-2) and 2^(n-1) - 1 wakes without radio.
    for n, k in enumerate(skips[:5], start=1):
        assert (0 if n == 1 else 1 << (n - 2)) <= k <= (1 << (n - 1)) - 1, skips
    assert max(skips) <= appmod.DEFAULTS["skip_cap_s"] // 600
    assert len(device.queue()) == 40


def test_two_devices_back_off_and_report_at_different_times(device, tmp_path):
    from enosnb import timing
    seed = device().seed()
    first = _skips_after_each_failure(device)
    device.secrets.device_key = "AnotherDevice1"
    other = device().seed()
    assert other != seed
    shutil.rmtree(str(tmp_path / "queue"))
    os.remove(str(tmp_path / "rtc.bin"))
    assert _skips_after_each_failure(device) != first
    assert timing.offset_ms(seed, 600000) != timing.offset_ms(other, 600000)


def test_a_failing_sensor_does_not_stop_the_queue_from_being_reported(device):
    FakeApp.network = False
    device().run(woke=True)
    FakeApp.network = True
    device.sensor.fail = True
    a = device()
    a.run(woke=True)
    assert a.report["queued"] is None
    assert a.fake.sent == [("resume", [1])]


def test_a_corrupt_queued_record_goes_to_the_dead_letters(device):
    device.queue().append(b"\xff not json")
    a = device()
    a.run(woke=True)
    assert a.report["dead"] == 1
    assert a.fake.sent == [("post", [1])]
    assert len(device.queue()) == 0
    assert "corrupt" in device.dead().peek(1)[0][0]


def test_readings_from_an_outage_carry_their_true_time_despite_rtc_drift(device):
    world = World(drift=0.04)
    device(world=world).run(woke=False)
    FakeApp.network = False
    taken = {}
    for _ in range(6):
        world.sleep()
        taken[device.sensor.n + 1] = world.true
        device(world=world).run(woke=True)
    FakeApp.network = True
    world.sleep()
    taken[device.sensor.n + 1] = world.true
    a = _until_sent(device, world=world)
    got = dict(a.fake.times)
    assert set(taken) <= set(got)
    for r, t in taken.items():
        if r in got:
            # 6 cycles at 4 %: 144 s uncorrected; interpolation puts each within 1 s.
            assert abs(got[r] - t) <= 1000 + 10, (r, got[r] - t)


def test_without_any_time_source_this_cycles_reading_goes_undated_and_older_ones_wait(device):
    world = World(drift=0.02)
    FakeApp.network_time = False
    world.power_on()
    a = device(world=world)
    a.run(woke=False)
    assert a.fake.sent == [("post", [1])] and a.fake.times == [(1, None)]
    _outage(device, 2, world=world)
    b = _radio(device, world=world)
    n = device.sensor.n
    assert b.fake.sent == [] and b.report["held"] == n - 1
    FakeApp.network_time = True
    c = device(world=world)
    c.run(woke=True)
    assert [r for _, rs in c.fake.sent for r in rs] == list(range(2, n + 2))


@pytest.mark.parametrize("rule", ["dead_letter", "send"])
def test_a_reading_whose_time_is_lost_between_two_power_ons_follows_the_time_unknown_rule(
        device, rule):
    world = World()
    FakeApp.network = False
    _power_on(device, world)
    device(world=world, time_unknown=rule).run(woke=False)
    world.sleep(5)
    _power_on(device, world)
    FakeApp.network = True
    a = device(world=world, time_unknown=rule)
    a.run(woke=False)
    assert a.report["time_unknown"] == 1
    if rule == "dead_letter":
        assert a.fake.sent == [("post", [2])]
        assert device.dead().peek(1)[0][0].startswith("time unknown")
    else:
        assert a.fake.sent == [("resume", [1]), ("post", [2])]
        assert a.fake.times[0] == (1, None)


def test_what_the_driver_learnt_about_the_module_is_not_asked_again_next_cycle(device):
    import machine
    from tools.modem_emulator import ModemEmulator
    with ModemEmulator("sim7020", boot_time=0.05, registration_delay=0.1,
                       cpin_delay=0.05) as emu:
        assert emu.wait_registered(5)
        emu.fail_command("+CEDRXS", code=4, times=None)  # a firmware without eDRX
        machine.UART.attach(1, emu.port)
        try:
            for cycle in range(2):
                del emu.commands_log[:]
                a = device()
                a.radio = True
                a.run(woke=False)  # power-on both times: PSM is asked each time
                a.modem.at.uart.deinit()
                assert a.report["error"] is None and a.fake.sent == [("post", [cycle + 1])]
                assert ("AT+CGMR" in emu.commands_log) == (cycle == 0)
                assert ("AT+CEDRXS=0,5" in emu.commands_log) == (cycle == 0)
                assert 'AT+CPSMS=1,,,"00111000","00000001"' in emu.commands_log
        finally:
            machine.UART.detach(1)


@pytest.mark.parametrize("grant,psm,radio_off", [
    ("request", "86400,2", False),
    ("refuse", "refused", True),
    (("00111000", "00100101"), "86400,300", True),     # 5 min active time: idle in DRX
])
def test_the_networks_psm_answer_decides_whether_the_radio_stays_on_between_reports(
        device, grant, psm, radio_off):
    import machine
    from tools.modem_emulator import ModemEmulator
    with ModemEmulator("sim7020", boot_time=0.05, registration_delay=0.1, cpin_delay=0.05,
                       psm_grant=grant) as emu:
        assert emu.wait_registered(5)
        machine.UART.attach(1, emu.port)
        try:
            a = device()
            a.radio = True
            a.run(woke=False)
            a.modem.at.uart.deinit()
        finally:
            machine.UART.detach(1)
        assert a.report["error"] is None and a.report["psm"] == psm
        # The board has a power key: off means powered down (AT+CPOWD=1).
        assert emu.wait_until(lambda: emu.powered is not radio_off, 1.0)
        assert a.report.get("radio") == ("off" if radio_off else None)
        assert a.state.get("psm") == psm.encode() and a.state.get("sock") is None


def test_the_board_files_attach_timeout_is_how_long_the_app_waits_for_registration(
        monkeypatch):
    with open(os.path.join(ROOT, "boards", "esp32-bc95", "board.json")) as f:
        obj = json.load(f)
    secrets = parse_secrets({"productKey": "MuGsF6W4", "deviceKey": "15bBZlRknc",
                             "deviceSecret": "ExampleDeviceSecret0123456789abc",
                             "host": "127.0.0.1"})
    assert appmod.App(secrets, parse_board(obj)).tune["attach_timeout_ms"] == 120000
    obj["attach_timeout_ms"] = 240000
    assert appmod.App(secrets, parse_board(obj)).tune["attach_timeout_ms"] == 240000
    tuned = appmod.App(secrets, parse_board(obj), tune={"attach_timeout_ms": 1500})
    assert tuned.tune["attach_timeout_ms"] == 1500
    # The twin's loopback timings replace the defaults; a board without the field keeps them.
    monkeypatch.setitem(appmod.DEFAULTS, "attach_timeout_ms", 1500)
    del obj["attach_timeout_ms"]
    assert appmod.App(secrets, parse_board(obj)).tune["attach_timeout_ms"] == 1500


def test_a_usual_cycle_posts_its_reading_without_loading_the_backlog_code(device):
    """RAM: with only this cycle's reading queued and nothing for the dead letters to do,
    enosnb.delivery stays unloaded; a refusal on that path still ends in the dead letters."""
    import sys
    device().run(woke=True)  # the first cycle looks at the delivery settings once
    sys.modules.pop("enosnb.delivery", None)
    a = device()
    a.run(woke=True)
    assert a.fake.sent == [("post", [2])] and a.fake.times[0][1] is not None
    assert "enosnb.delivery" not in sys.modules and len(device.queue()) == 0
    b = device(refuse=lambda t, i: reply_error(1204, "/t") if t != "attribute" else None)
    b.run(woke=True)
    assert b.report["dead"] == 1 and len(device.dead()) == 1 and len(device.queue()) == 0
    assert b.fake.attributes == [{"dead_letters": 1}]
    c = device(refuse=lambda t, i: CoapTimeout("no answer") if t != "attribute" else None)
    c.run(woke=True)
    assert c.report["error"] and len(device.queue()) == 1  # the link failed: it stays queued
    d = _until_sent(device)
    assert d.fake.sent[0] == ("resume", [4]) and d.fake.sent[-1][0] == "post"


def test_a_silent_modem_is_not_asked_anything_more_so_the_cycle_sleeps_at_once(device):
    """No supply or crossed wires: after the power-on re-sync gets no answer, the end of
    the cycle sends nothing more (a release or radio off would wait out its timeouts
    against the cycle budget) and the reading stays queued."""
    import machine
    from tools.modem_emulator import ModemEmulator
    with open(os.path.join(ROOT, "boards", "esp32-bc95", "board.json")) as f:
        obj = json.load(f)
    obj.update(boot_wait_ms=2000, reset=None)  # two re-sync probes of 1 s
    with ModemEmulator("bc95", powered=False) as emu:
        machine.UART.attach(2, emu.port)
        try:
            a = FakeApp(device.secrets, parse_board(obj), device.sensor,
                        root=str(device.tmp) + "/")
            a.fake = FakeEnos(None, None)
            a.radio = True
            a.run(woke=False)
            a.modem.at.uart.deinit()
        finally:
            machine.UART.detach(2)
    assert isinstance(a.report["exc"], ModemError) and a.modem.silent
    # Two quick probes, then boot_wait_ms of probes; no AT+CNMPSD or AT+CFUN=0 after them.
    assert a.modem.at.commands == 4
    assert a.report["queued"] == 1 and a.report["sent"] == 0 and len(device.queue()) == 1
