"""The raw report as EnOS sees it: device encoder -> tools/enos_parser/script.js (run by node)
-> the measurement-point JSON of enos-coap.md §8.4, and the script's down_raw commands
back through the device decoder."""
import json
import os
import shutil
import subprocess

import pytest

from enosnb.enos import rawpoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tools", "enos_parser", "script.js")
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

_RUNNER = """
const s = require(process.argv[1]);
const jobs = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = jobs.map(function (j) {
  try {
    if (j.fn === 'up') return {ok: s.rawDataToJsonStr(j.arg)};
    if (j.fn === 'down') return {ok: s.jsonStrToRawData(j.arg)};
    return {ok: s.POINTS};
  } catch (e) { return {error: String(e.message)}; }
});
process.stdout.write(JSON.stringify(out));
"""


def run_script(jobs):
    out = subprocess.run([NODE, "-e", _RUNNER, SCRIPT], input=json.dumps(jobs),
                         capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)


def signed(data):
    """Java byte[] as EnOS hands it to the script: -128..127."""
    return [b - 256 if b > 127 else b for b in data]


def test_reference_raw_report_decodes_to_the_reference_json():
    raw = rawpoints.encode_post(1, {"temp": 21.5}, 1764115200000, rawpoints.DEMO_TABLE)
    (res,) = run_script([{"fn": "up", "arg": signed(raw)}])
    assert res["ok"] == ('{"id":"1","version":"1.0","method":"thing.measurepoint.post",'
                         '"params":{"measurepoints":{"temp":21.5},"time":1764115200000}}')


def test_points_quality_millisecond_time_and_unsigned_input_decode():
    points = {"temp": 21.3, "humidity": (48.25, 9), "rssi": -87.0}
    raw = rawpoints.encode_post(4000000000, points, 1764115200123, rawpoints.DEMO_TABLE)
    no_time = rawpoints.encode_post(5, {"pressure": 1013.2}, None, rawpoints.DEMO_TABLE)
    a, b = run_script([{"fn": "up", "arg": list(raw)}, {"fn": "up", "arg": signed(no_time)}])
    body = json.loads(a["ok"])
    assert body["id"] == "4000000000"
    assert body["params"] == {"measurepoints": {"temp": 21.3, "humidity": {"value": 48.25,
                                                                           "quality": 9},
                                                "rssi": -87}, "time": 1764115200123}
    assert json.loads(b["ok"])["params"] == {"measurepoints": {"pressure": 1013.2}}


def test_device_reply_becomes_the_reply_json():
    (res,) = run_script([{"fn": "up", "arg": signed(rawpoints.encode_reply(42, 200))}])
    assert json.loads(res["ok"]) == {"id": "42", "code": 200, "data": {}}


def test_set_command_from_the_cloud_reaches_the_device_points():
    cmd = ('{"id":"77","version":"1.0","method":"thing.service.measurepoint.set",'
           '"params":{"battery":3.3,"temp":-12.5}}')
    (res,) = run_script([{"fn": "down", "arg": cmd}])
    data = bytes(b & 0xFF for b in res["ok"])
    msg_id, points = rawpoints.decode_set(data, rawpoints.DEMO_TABLE)
    assert msg_id == 77 and points["temp"] == -12.5 and abs(points["battery"] - 3.3) < 1e-6


def test_script_and_device_share_one_point_table():
    (res,) = run_script([{"fn": "table"}])
    assert tuple(res["ok"]) == rawpoints.DEMO_TABLE


def test_truncated_and_unknown_messages_are_errors_not_garbage():
    raw = rawpoints.encode_post(1, {"temp": 21.5}, 1764115200000, rawpoints.DEMO_TABLE)
    res = run_script([{"fn": "up", "arg": list(raw[:-2])}, {"fn": "up", "arg": [0x7F, 0, 0, 0, 1]},
                      {"fn": "up", "arg": [0x11, 0, 0, 0, 1, 0x69, 0x26, 0x43, 0, 0x1F, 0, 0, 0, 0]},
                      {"fn": "down", "arg": '{"id":"1","method":"thing.service.foo","params":{}}'}])
    assert all("error" in r for r in res), res
