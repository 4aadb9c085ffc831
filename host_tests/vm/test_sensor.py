"""The sensor interface (enosnb.sensor) and the demo sensor main.py uses out of the box."""
from enosnb.sensor import DemoSensor, Sensor, SensorError, check_points
from vmcheck import raises


def test_demo_sensor_reports_a_plausible_temperature_every_read():
    s = DemoSensor()
    s.setup()
    for _ in range(12):
        p = check_points(s.read())
        assert list(p) == ["temperature"]
        assert -40.0 < p["temperature"] < 125.0


def test_demo_sensor_without_a_chip_sensor_is_deterministic():
    a, b = DemoSensor(), DemoSensor()
    a._raw = b._raw = None
    assert [a.read() for _ in range(3)] == [b.read() for _ in range(3)]
    assert a.read() == {"temperature": 22.0}


def test_valid_point_shapes_pass():
    pts = {"temp": 1.02, "Power": {"value": 1.0, "quality": 9}, "on": True, "s": "x",
           "branchCurr": [1.02, 2.02]}
    assert check_points(pts) is pts


def test_bad_readings_name_the_point():
    assert "temp" in str(raises(SensorError, check_points, {"temp": float("nan")}))
    assert "quality" in str(raises(SensorError, check_points, {"p": {"value": 1, "quality": 10}}))
    assert "obj" in str(raises(SensorError, check_points, {"obj": object()}))
    raises(SensorError, check_points, {})


def test_an_unimplemented_sensor_says_what_to_do():
    assert "sensors.py" in str(raises(NotImplementedError, Sensor().read))
