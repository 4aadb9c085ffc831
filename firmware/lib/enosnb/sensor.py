"""The sensor interface a device maker implements, and a demo sensor that works out of the box.

A sensor is any object with read() -> dict mapping measurement-point names (as defined in
the EnOS thing model) to values: a number, a string, a bool, a list of them, or
{"value": v, "quality": 0..9} (enos-coap.md §8.4). main.py gets its sensor from the
device maker's sensors.py (firmware/sensors.py: make_sensor()), calls read() once per
report cycle and queues the result with check_points() applied.
"""


class SensorError(Exception):
    """A reading that cannot be reported: say which point and what is wrong with it."""


class Sensor:
    """Base class to subclass in sensors.py: override read(); setup() runs once per boot."""

    def setup(self):
        pass

    def read(self):
        raise NotImplementedError("implement read() -> {point: value} in sensors.py")


def _check_value(name, v):
    if isinstance(v, bool) or isinstance(v, str):
        return
    if isinstance(v, (int, float)):
        if v != v or v in (float("inf"), float("-inf")):
            raise SensorError("point %s is %r: JSON has no NaN or infinity" % (name, v))
        return
    raise SensorError("point %s has type %s: use a number, string, bool or list of them"
                      % (name, type(v).__name__))


def check_points(points):
    """Returns points if EnOS can take them as measurepoints, else raises SensorError."""
    if not isinstance(points, dict) or not points:
        raise SensorError("read() must return a non-empty dict {point: value}")
    for name in points:
        if not isinstance(name, str) or not name:
            raise SensorError("point names must be non-empty strings, got %r" % (name,))
        v = points[name]
        if isinstance(v, dict):
            if "value" not in v:
                raise SensorError('point %s: a dict point needs "value" (and "quality")' % name)
            q = v.get("quality", 0)
            if not isinstance(q, int) or isinstance(q, bool) or not 0 <= q <= 9:
                raise SensorError("point %s: quality must be an integer 0..9" % name)
            v = v["value"]
        if isinstance(v, list):
            for x in v:
                _check_value(name, x)
        else:
            _check_value(name, v)
    return points


class DemoSensor(Sensor):
    """Reports "temperature" in degrees C: the ESP32's internal sensor when the port has
    esp32.raw_temperature() (Fahrenheit, chip temperature, not ambient), else a
    deterministic sawtooth 20.0, 20.5, ... 24.5 so host runs are reproducible."""

    def __init__(self, start=0):
        self.n = start
        try:
            import esp32
            self._raw = esp32.raw_temperature
        except (ImportError, AttributeError):
            self._raw = None

    def read(self):
        self.n += 1
        if self._raw is not None:
            t = (self._raw() - 32) / 1.8
        else:
            t = 20.0 + (self.n % 10) * 0.5
        return {"temperature": round(t, 1)}
