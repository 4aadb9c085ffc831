"""The report cycle's own decisions (enosnb/app.py), with the radio and EnOS replaced by a
fake: what is queued, sent, acknowledged, dropped, and when the radio is skipped."""
import json
import os
import shutil

import pytest

from enosnb import app as appmod
from enosnb.config import parse_board, parse_secrets
from enosnb.enos.errors import EnosCoapError, reply_error
from enosnb.modem.errors import ModemError
from enosnb.store import Store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Counter:
    def __init__(self):
        self.n = 0
        self.fail = False

    def read(self):
        if self.fail:
            raise OSError("I2C bus stuck")
        self.n += 1
        return {"reading": self.n}


class FakeEnos:
    """Records what the app reports; `refuse(items)` returns an exception to raise or None."""

    def __init__(self, refuse=None):
        self.sent = []
        self.refuse = refuse or (lambda items: None)

    def _call(self, kind, items):
        e = self.refuse(items)
        if e is not None:
            raise e
        self.sent.append((kind, [it["measurepoints"]["reading"] for it in items]))

    def post_measurepoints(self, points, time_ms):
        self._call("post", [{"measurepoints": points, "time": time_ms}])

    def resume_measurepoint(self, points, time_ms):
        self._call("resume", [{"measurepoints": points, "time": time_ms}])

    def resume_measurepoints(self, items):
        self._call("resume/batch", items)

    def state(self):
        return b"\x01\x00\x00\x00\x07"


class FakeApp(appmod.App):
    network = True
    connects = 0
    radio = False  # True: bring up the real driver (on the emulator) before the fake EnOS

    def connect(self):
        FakeApp.connects += 1
        if not FakeApp.network:
            raise ModemError("not registered")
        if self.radio:
            self.bring_up_modem()
        self.enos = self.fake
        self.report["connect"] = "fake"


@pytest.fixture
def device(tmp_path, monkeypatch):
    monkeypatch.setenv("ENOSNB_RTC_FILE", str(tmp_path / "rtc.bin"))
    with open(os.path.join(ROOT, "boards", "esp32-sim7020", "board.json")) as f:
        board = parse_board(json.load(f))
    secrets = parse_secrets({"productKey": "MuGsF6W4", "deviceKey": "15bBZlRknc",
                             "deviceSecret": "ExampleDeviceSecret0123456789abc",
                             "host": "127.0.0.1", "batch_max": 3, "report_interval_s": 600})
    FakeApp.network = True
    FakeApp.connects = 0
    sensor = Counter()
    made = []

    def make(refuse=None):
        a = FakeApp(secrets, board, sensor, root=str(tmp_path) + "/")
        a.fake = FakeEnos(refuse)
        made.append(a)
        return a
    make.sensor = sensor
    make.secrets = secrets
    make.queue = lambda: Store(str(tmp_path / "queue"))
    return make


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


def test_after_an_outage_the_backlog_goes_in_order_in_batches_then_the_new_reading(device):
    FakeApp.network = False
    for _ in range(5):
        device().run(woke=True)
    FakeApp.network = True
    for _ in range(4):  # back-off may skip the radio a few cycles
        a = device()
        a.run(woke=True)
        if a.fake.sent:
            break
    sent = a.fake.sent
    assert [k for k, _ in sent] == ["resume/batch", "resume/batch", "resume", "post"]
    assert [r for _, rs in sent for r in rs] == list(range(1, device.sensor.n + 1))
    assert all(len(rs) <= 3 for _, rs in sent)


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


def test_a_record_enos_rejects_is_dropped_alone_and_the_others_are_delivered(device):
    FakeApp.network = False
    for _ in range(3):
        device().run(woke=True)
    FakeApp.network = True

    def refuse(items):
        if any(it["measurepoints"]["reading"] == 2 for it in items):
            return reply_error(1204, "/topic/sys/x/y/thing/measurepoint/resume/batch")
        return None
    for _ in range(4):
        a = device(refuse)
        a.run(woke=True)
        if a.fake.sent:
            break
    assert a.fake.sent == [("resume", [1]), ("resume", [3]), ("post", [4])]
    assert a.report["rejected"] == 1
    assert len(device.queue()) == 0


def test_a_server_error_leaves_every_reading_queued_for_the_next_cycle(device):
    a = device(lambda items: EnosCoapError(0xA0, "/topic/x"))
    a.run(woke=True)
    assert "5.00" in a.report["error"]
    assert len(device.queue()) == 1
    b = device()
    b.run(woke=True)  # first failure: no back-off skip yet
    assert b.fake.sent == [("resume", [1]), ("post", [2])]


def test_a_failing_sensor_does_not_stop_the_queue_from_being_reported(device):
    FakeApp.network = False
    device().run(woke=True)
    FakeApp.network = True
    device.sensor.fail = True
    a = device()
    a.run(woke=True)
    assert a.report["queued"] is None
    assert a.fake.sent == [("resume", [1])]


def test_a_corrupt_queued_record_is_dropped_and_counted(device):
    device.queue().append(b"\xff not json")
    a = device()
    a.run(woke=True)
    assert a.report["rejected"] == 1
    assert a.fake.sent == [("post", [1])]
    assert len(device.queue()) == 0


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
