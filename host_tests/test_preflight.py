"""`make preflight` (tools/preflight.py) answers "does my EnOS take CoAP with these keys?" with
one exit status and one clear message per failure: against the local EnOS server (accepted,
wrong secret, unknown device, the IMEI as deviceKey), a port that never answers, a closed
port and a name that does not resolve."""
import json
import os
import socket
import subprocess
import sys

import pytest

from enos_fixtures import DK, PK, SECRET
from enos_fixtures import server as enos_server  # noqa: F401  (a module-scoped fixture)
from tools import preflight

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMEI = "866425031234567"


@pytest.fixture(scope="module")
def server(enos_server):
    """The local server, whose registry also knows a device keyed by its modem's IMEI."""
    enos_server.registry.devices[(PK, IMEI)] = {"productKey": PK, "deviceKey": IMEI,
                                                "deviceSecret": SECRET}
    return enos_server


def _secrets(tmp_path, port, **over):
    obj = {"productKey": PK, "deviceKey": DK, "deviceSecret": SECRET, "host": "127.0.0.1",
           "port_dtls": port, "port_plain": port}
    obj.update(over)
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps(obj))
    return str(path)


def _run(capsys, *argv):
    lines = []
    status = preflight.main(list(argv), out=lines.append)
    return status, "\n".join(lines), capsys.readouterr().err


def test_a_reading_reaches_the_server_and_the_maker_learns_how_to_read_it_back(server,
                                                                                tmp_path,
                                                                                capsys):
    status, out, err = _run(capsys, "--secrets", _secrets(tmp_path, server.dtls_port),
                            "--point", "humidity=55.5")
    assert status == preflight.OK, err
    assert "DTLS handshake: accepted" in out and "EnOS code 200" in out
    assert "preflight passed: EnOS stored humidity = 55.5" in out
    assert "tsdb-service/v2.0/latest" in out and "measurepoints=humidity" in out
    pts = [p for p in server.db_view.points(DK, 100) if p["name"] == "humidity"]
    assert pts and json.loads(pts[-1]["value"]) == 55.5
    assert SECRET not in out + err


def test_plain_mode_authenticates_with_the_sign_and_posts(server, tmp_path, capsys):
    status, out, err = _run(capsys, "--secrets", _secrets(tmp_path, server.port, dtls=False))
    assert status == preflight.OK, err
    assert "POST /auth: accepted" in out


def test_the_imei_as_device_key_needs_the_imei_and_then_works(server, tmp_path, capsys):
    path = _secrets(tmp_path, server.dtls_port, deviceKey="imei")
    status, _, err = _run(capsys, "--secrets", path)
    assert status == preflight.CONFIG and "--imei" in err
    status, out, err = _run(capsys, "--secrets", path, "--imei", IMEI)
    assert status == preflight.OK, err
    assert "%s/%s" % (PK, IMEI) in out


def test_a_wrong_secret_is_reported_as_refused_keys(server, tmp_path, capsys):
    wrong = "sRlGhkC0TCGBz5sdSrkU"
    status, out, err = _run(capsys, "--secrets", _secrets(tmp_path, server.dtls_port,
                                                          deviceSecret=wrong))
    assert status == preflight.KEYS
    assert "check productKey, deviceKey" in err and wrong not in out + err


def test_an_unknown_device_in_plain_mode_is_a_refused_topic(server, tmp_path, capsys):
    status, _, err = _run(capsys, "--secrets", _secrets(tmp_path, server.port, dtls=False,
                                                        deviceKey="nosuchdevice"))
    assert status == preflight.TOPIC
    assert "4.04" in err and "does not exist under this productKey" in err


def test_a_silent_port_means_probably_no_coap(tmp_path, capsys):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        status, _, err = _run(capsys, "--secrets",
                              _secrets(tmp_path, silent.getsockname()[1]), "--timeout", "2")
    finally:
        silent.close()
    assert status == preflight.NO_ANSWER
    assert "no answer on UDP port" in err and "probably offers no CoAP" in err
    assert "MQTT and HTTP" in err


def test_a_closed_port_and_an_unknown_host_are_told_apart(tmp_path, capsys):
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    closed = probe.getsockname()[1]
    probe.close()
    status, _, err = _run(capsys, "--secrets", _secrets(tmp_path, closed), "--timeout", "2")
    assert status == preflight.NO_ANSWER and "nothing listens on UDP port %d" % closed in err
    status, _, err = _run(capsys, "--secrets", _secrets(tmp_path, 5684,
                                                        host="coap-tenant.invalid"))
    assert status == preflight.DNS and "coap-tenant.invalid does not resolve" in err


def test_a_point_the_thing_model_lacks_names_the_fix():
    from enosnb.enos.errors import reply_error
    p = preflight.Preflight.__new__(preflight.Preflight)
    f = p._reply_failure(reply_error(1204, "/topic/x"), "temperature")
    assert f.status == preflight.DATA
    assert "thing model has no measurement point 'temperature'" in str(f)
    assert "docs/thing-model.md" in str(f)


def test_the_command_line_exit_status_and_make_target(server, tmp_path):
    path = _secrets(tmp_path, server.dtls_port, deviceSecret="sRlGhkC0TCGBz5sdSrkU")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "preflight.py"),
                        "--secrets", path], capture_output=True, text=True, timeout=60)
    assert r.returncode == preflight.KEYS and r.stderr.startswith("preflight failed: ")
    r = subprocess.run(["make", "-n", "-C", ROOT, "preflight", "SECRETS_FILE=" + path,
                        "IMEI=" + IMEI], capture_output=True, text=True, timeout=60)
    line = [ln for ln in r.stdout.splitlines() if "preflight.py" in ln][-1]
    assert line.split()[1:] == ["tools/preflight.py", "--secrets", path, "--imei", IMEI]
