"""firmware/thing-model.json, the thing model a maker imports into EnOS so that the first data
is not refused (EnOS code 1204): it defines every point the demo sensor, the twin's sensor
and the I2C example report or accept, the example's services, and the diagnostics
attributes docs/thing-model.md lists, in the types those values have."""
import json
import os
import re
import sys

import pytest

from enosnb.sensor import DemoSensor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "firmware", "thing-model.json")
DOC = os.path.join(ROOT, "docs", "thing-model.md")
# The data types of EnOS's ThingModel struct (Model API, Get Thing Model).
TYPES = {"ARRAY", "BOOL", "DATE", "ENUM", "INT", "FLOAT", "DOUBLE", "STRUCT", "STRING",
         "TIMESTAMP", "FILE"}


@pytest.fixture(scope="module")
def model():
    with open(MODEL) as f:
        return json.load(f)


def _type_of(value):
    if isinstance(value, bool):
        return {"BOOL"}
    if isinstance(value, int):
        return {"INT", "DOUBLE", "FLOAT"}
    if isinstance(value, float):
        return {"DOUBLE", "FLOAT"}
    return {"STRING"}


def _check_points(model, points):
    for name, value in points.items():
        assert name in model["measurepoints"], "the thing model lacks point %r" % name
        assert model["measurepoints"][name]["dataType"] in _type_of(value), name


def test_every_element_is_keyed_by_its_identifier_with_a_documented_type(model):
    assert re.fullmatch(r"[A-Za-z0-9_]+", model["modelId"])
    for kind in ("attributes", "measurepoints", "services"):
        for key, el in model[kind].items():
            assert el["identifier"] == key and el["name"]["defaultValue"]
            for dp in [el] + el.get("inputData", []) + el.get("outputData", []):
                if "dataType" in dp or kind != "services":
                    assert dp["dataType"] in TYPES, (key, dp.get("dataType"))


def test_the_demo_and_the_twin_sensors_points_are_defined(model, tmp_path, monkeypatch):
    _check_points(model, DemoSensor().read())
    from tools import twin
    monkeypatch.chdir(tmp_path)
    ns = {"__name__": "twin_sensors"}
    exec(compile(twin.SENSOR_PY, "sensors.py", "exec"), ns)
    _check_points(model, ns["make_sensor"]().read())
    with open(os.path.join(ROOT, "tools", "twin.py")) as f:
        sets = re.findall(r'enqueue_set\(\{"(\w+)": ([\d.]+)\}\)', f.read())
    assert sets, "make demo queues a measurement point set"
    _check_points(model, {name: float(v) for name, v in sets})


def test_the_i2c_example_s_points_set_points_and_services_are_defined(model, tmp_path,
                                                                      monkeypatch):
    sys.path.insert(0, os.path.join(ROOT, "docs", "examples"))
    try:
        import sht3x_sensors
        from sht3x_sim import SimSht3x
    finally:
        sys.path.pop(0)
    monkeypatch.chdir(tmp_path)
    s = sht3x_sensors.Sht3xSensor(SimSht3x())
    _check_points(model, s.read())
    _check_points(model, {"temp_offset": -0.5})
    assert s.set_points({"temp_offset": -0.5}) == 200
    heater = model["services"]["heater"]
    assert [d["identifier"] for d in heater["inputData"]] == ["on"]
    assert s.service("heater", {"on": True})[1] == {
        d["identifier"]: True for d in heater["outputData"]}
    assert s.service("reset", {})[0] == 200 and "reset" in model["services"]


def test_the_diagnostics_attributes_match_the_documented_table(model):
    with open(DOC) as f:
        doc = f.read()
    table = doc[doc.index("<!-- diagnostics attributes -->"):doc.index("<!-- end -->")]
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \|", table, re.M)
    assert rows, "docs/thing-model.md lists the diagnostics attributes"
    assert {k: v for k, v in rows} == {k: a["dataType"] for k, a in model["attributes"].items()}
    for required in ("fw_version", "modem_model", "modem_fw", "imei", "iccid", "csq",
                     "psm_t3412_s", "psm_t3324_s", "battery_mv", "queue_depth",
                     "dead_letters", "reset_cause", "enosnb_abnormal_resets"):
        assert required in model["attributes"]
