"""Board power (enosnb.power, enosnb.config, the cycle in enosnb.app) on CPython and in the
MicroPython VM: the modem's control lines are held at their resting level through deep sleep
and released before the driver uses them, the battery is read through the board's divider,
and a low battery lengthens the interval, a critical one keeps the radio off and the modem
unpowered. board.json's battery block is validated like every other field."""
import os

from enosnb import app as appmod
from enosnb import power
from enosnb.config import ConfigError, parse_board, parse_secrets
from test_app_logic import _rm
from vmcheck import VirtualClock, raises

# Called for each path: mutmut forks its parallel runs from one process that imported the
# tests, and they must not share files.
_pid = getattr(os, "getpid", lambda: 0)
_BOARD = {"name": "t", "modem": "sim7020",
          "uart": {"id": 1, "baudrate": 115200, "tx": 27, "rx": 26},
          "pwrkey": {"pin": 4, "active_high": True, "pulse_ms": 500},
          "power_enable": {"pin": 25, "active_high": True},
          "battery": {"adc_pin": 35, "divider": 2, "low_mv": 3500, "critical_mv": 3300}}


class _Pin:
    OUT = 3
    levels = {}
    held = set()

    def __init__(self, pin, mode=-1, value=None, hold=None):
        self.id = pin
        if hold is False:
            _Pin.held.discard(pin)
        if value is not None and pin not in _Pin.held:
            _Pin.levels[pin] = value
        if hold:
            _Pin.held.add(pin)


class _Adc:
    ATTN_11DB = 3

    def __init__(self, pin, atten=None):
        self.pin = pin.id

    def read_uv(self):
        return _Machine.pin_uv


class _Machine:
    Pin = _Pin
    ADC = _Adc
    pin_uv = 2000000

    @staticmethod
    def unique_id():
        return b"\xa4\xcf\x12\x34\x56\x78"


def _fresh(name):
    d = "/tmp/enosnb_power_%d_%s" % (_pid(), name)
    _rm(d)
    os.mkdir(d)
    return d


class _Sensor:
    def read(self):
        return {"t": 1}


class _App(appmod.App):
    connects = 0

    def connect(self):
        _App.connects += 1
        from enosnb.modem.errors import ModemError
        raise ModemError("no network in this test")

    def _driver(self):
        raise OSError("no modem in this test")


def _cycle(d, volts):
    _Machine.pin_uv = int(volts * 1000000 / 2)
    secrets = parse_secrets({"productKey": "MuGsF6W4", "deviceKey": "15bBZlRknc",
                             "deviceSecret": "ExampleDeviceSecret0123456789abc",
                             "host": "127.0.0.1", "report_interval_s": 600})
    a = _App(secrets, parse_board(_BOARD), _Sensor(), root=d + "/", clock=VirtualClock(0),
             machine=_Machine, rtc=None)
    return a, a.run(woke=True)


def test_the_modem_lines_are_held_at_rest_through_deep_sleep_and_released_before_use():
    _Pin.levels.clear()
    _Pin.held.clear()
    _cycle(_fresh("hold"), 4.0)
    # power_enable on (active high), PWRKEY inactive (active high -> 0), both held.
    assert _Pin.levels == {25: 1, 4: 0} and _Pin.held == {25, 4}
    power.release(_Machine, parse_board(_BOARD))
    assert _Pin.held == set()
    _Pin(4, _Pin.OUT, value=1)  # the driver can pulse PWRKEY again
    assert _Pin.levels[4] == 1


def test_a_low_battery_lengthens_the_interval_and_a_critical_one_keeps_the_radio_off():
    d = _fresh("battery")
    _App.connects = 0
    a, sleep = _cycle(d, 4.0)
    assert a.report["battery_mv"] == 4000 and sleep == 600000 and _App.connects == 1
    a, sleep = _cycle(d, 3.4)
    assert a.report["battery_mv"] == 3400 and sleep == 4 * 600000 and _App.connects == 2
    _Pin.levels.clear()
    a, sleep = _cycle(d, 3.2)
    assert sleep == 4 * 600000 and _App.connects == 2  # no radio at all
    assert a.report["queued"] is not None  # still measuring
    assert _Pin.levels[25] == 0 and 25 in _Pin.held  # modem supply cut for the sleep


def test_the_battery_block_of_board_json_is_checked():
    board = dict(_BOARD)
    b = parse_board(board).battery
    assert b["divider_x1000"] == 2000 and b["low_factor"] == 4 and b["capacity_mah"] == 2600
    for battery, words in (({"adc_pin": 25, "divider": 2}, "not an ADC1 pin"),
                           ({"adc_pin": 36, "divider": 0.5}, "divider"),
                           ({"adc_pin": 35, "divider": 2, "low_mv": 3300,
                             "critical_mv": 3400}, "below low_mv"),
                           ({"adc_pin": 26, "divider": True}, "not an ADC1 pin"),
                           ("35", "must be an object")):
        board["battery"] = battery
        e = raises(ConfigError, parse_board, board)
        assert words in str(e), str(e)
    board["battery"] = {"adc_pin": 36, "divider": 2}  # GPIO36 is also "status" elsewhere
    board["status"] = {"pin": 36}
    assert "already used" in str(raises(ConfigError, parse_board, board))
    board = dict(_BOARD)
    board["sleep_floor_ua"] = 0
    assert "sleep_floor_ua" in str(raises(ConfigError, parse_board, board))
