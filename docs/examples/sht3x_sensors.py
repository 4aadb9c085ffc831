"""sensors.py for a Sensirion SHT3x (SHT30/31/35) temperature and humidity sensor on I2C.

Copy this file over firmware/sensors.py (or deploy it with make deploy SENSORS=this file).
Wiring: SDA to GPIO 21, SCL to GPIO 22, VDD 3.3 V, GND, ADDR to GND (address 0x44; 0x45
with ADDR high); most breakouts carry the pull-ups. Datasheet: Sensirion "SHT3x-DIS",
section 4 (commands, CRC) and 4.13 (conversion).

Reports   temperature (degrees C, with the calibration offset applied), humidity (% RH).
Commands  (docs/sensors.md explains each kind and its reply):
  set points  {"temp_offset": -0.4}   calibration offset in degrees C, kept across sleep
  service     heater {"on": true}     the sensor's heater (drives off condensation)
  service     reset {}                the sensor's soft reset
  raw         b"\\x01"                 the sensor's status register, 2 bytes
  get points  answered by the firmware from the last reading
"""
import json

from enosnb.clock import SYSTEM
from enosnb.sensor import Sensor, SensorError

ADDRESS = 0x44
MEASURE_HIGH = b"\x24\x00"  # single shot, high repeatability, no clock stretching
HEATER_ON = b"\x30\x6d"
HEATER_OFF = b"\x30\x66"
SOFT_RESET = b"\x30\xa2"
READ_STATUS = b"\xf3\x2d"
MEASURE_MS = 16  # 15.5 ms at most for high repeatability
STATE_FILE = "sht3x.json"  # the board reboots at every wake: settings live on flash
CODE_UNKNOWN_POINT = 2001  # device-defined reply codes start at 2000 (EnOS SDKs)
CODE_UNKNOWN_SERVICE = 2002
CODE_BAD_PARAMS = 2003


def crc8(data):
    """CRC-8 of the SHT3x: polynomial 0x31, initial value 0xFF (crc8(b"\\xbe\\xef") == 0x92)."""
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _word(data, at, what):
    if crc8(data[at:at + 2]) != data[at + 2]:
        raise SensorError("SHT3x %s failed its CRC check: check the wiring and pull-ups" % what)
    return (data[at] << 8) | data[at + 1]


class Sht3xSensor(Sensor):
    def __init__(self, i2c, address=ADDRESS, clock=SYSTEM):
        self.i2c = i2c
        self.address = address
        self.clock = clock
        self.offset = 0.0

    def setup(self):
        if self.address not in self.i2c.scan():
            raise SensorError("no SHT3x answers at 0x%02x: check SDA/SCL, power and the ADDR "
                              "pin" % self.address)
        self.offset = _load().get("temp_offset", 0.0)

    def _command(self, cmd):
        try:
            self.i2c.writeto(self.address, cmd)
        except OSError as e:
            raise SensorError("SHT3x at 0x%02x did not acknowledge (%s)" % (self.address, e))

    def read(self):
        self._command(MEASURE_HIGH)
        self.clock.sleep_ms(MEASURE_MS)
        try:
            data = self.i2c.readfrom(self.address, 6)
        except OSError as e:
            raise SensorError("SHT3x at 0x%02x returned no measurement (%s)" % (self.address, e))
        t = -45 + 175 * _word(data, 0, "temperature") / 65535 + self.offset
        rh = 100 * _word(data, 3, "humidity") / 65535
        return {"temperature": round(t, 2), "humidity": round(rh, 1)}

    # --- cloud commands (enosnb.cloud hands them over) --------------------------------

    def set_points(self, params):
        """thing.service.measurepoint.set: returns 200, or (code, data) for what it refused."""
        unknown = [k for k in params if k != "temp_offset"]
        if unknown:
            return CODE_UNKNOWN_POINT, {"unknown": unknown}
        value = params["temp_offset"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or abs(value) > 10:
            return CODE_BAD_PARAMS, {"temp_offset": "a number of degrees C, -10..10"}
        self.offset = float(value)
        state = _load()
        state["temp_offset"] = self.offset
        _save(state)
        return 200

    def service(self, service_id, params):
        """thing.service.{id}: returns (code, output parameters)."""
        if service_id == "heater":
            on = params.get("on")
            if not isinstance(on, bool):
                return CODE_BAD_PARAMS, {"on": "true or false"}
            self._command(HEATER_ON if on else HEATER_OFF)
            return 200, {"heater": on}
        if service_id == "reset":
            self._command(SOFT_RESET)
            self.clock.sleep_ms(2)
            return 200, {}
        return CODE_UNKNOWN_SERVICE, {"service": service_id}

    def raw_command(self, payload):
        """thing/model/down_raw: opcode 0x01 answers the status register, others 0xFF."""
        if payload[:1] != b"\x01":
            return b"\xff"
        self._command(READ_STATUS)
        data = self.i2c.readfrom(self.address, 3)
        _word(data, 0, "status")
        return bytes(data[:2])


def _load():
    try:
        with open(STATE_FILE) as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return {}


def _save(state):
    import os
    # Written aside, then renamed: a power cut leaves the old settings or the new ones.
    with open(STATE_FILE + ".tmp", "w") as f:
        f.write(json.dumps(state))
    os.rename(STATE_FILE + ".tmp", STATE_FILE)


def make_sensor():
    from machine import I2C, Pin  # here, not at the top: host tools import this file too
    return Sht3xSensor(I2C(0, scl=Pin(22), sda=Pin(21), freq=100000))
