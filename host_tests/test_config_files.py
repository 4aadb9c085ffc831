"""secrets.json / board.json as files (enosnb.config, tools/secrets_tool.py): every bad
variant stops with the documented message, which never contains a secret."""
import json
import os

import pytest

from enosnb.config import ConfigError, load, load_board, load_secrets
from tools import secrets_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "Zq9-very-secret-device-secret-77"
PRODUCT_SECRET = "Pp1-very-secret-product-secret-88"
GOOD = {"productKey": "MuGsF6W4", "deviceKey": "15bBZlRknc", "deviceSecret": SECRET,
        "host": "coap-enos.example.com"}


def _write(tmp_path, name, content):
    p = tmp_path / name
    p.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(p)


def _variant(**kw):
    d = dict(GOOD)
    for k, v in kw.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return d


# (variant, words the message must contain): the documented messages of docs/device-config.md
BAD_SECRETS = [
    (_variant(deviceSecret=None), ["deviceSecret is missing", "secureMode 3"]),
    (_variant(productKey=None), ["productKey is missing"]),
    (_variant(host=None), ["host is missing"]),
    (_variant(deviceSecret=""), ["deviceSecret", "empty"]),
    (_variant(deviceSecret=SECRET + "\r\n"), ["deviceSecret", "control character"]),
    (_variant(deviceSecret=list(SECRET)), ["deviceSecret must be a JSON string"]),
    (_variant(secureMode=1), ["secureMode must be 2 or 3"]),
    (_variant(secureMode="2"), ["secureMode must be 2 or 3"]),
    (_variant(secureMode=3, productSecret=PRODUCT_SECRET, dtls=False), ["3 needs DTLS"]),
    (_variant(secureMode=3, deviceSecret=None), ["productSecret is missing"]),
    (_variant(lifetime=100000), ["lifetime is 100000, outside 30..86400"]),
    (_variant(lifetime=True), ["lifetime must be an integer"]),
    (_variant(port_dtls=70000), ["port_dtls is 70000"]),
    (_variant(report_interval_s=1), ["report_interval_s is 1"]),
    (_variant(dtls="yes"), ["dtls must be true or false"]),
    (_variant(deviceKey="a/b"), ["deviceKey", "'/'"]),
    (_variant(productKey="MuGs F6W4"), ["productKey", "a space"]),
    (_variant(host="coap-enos.example.com:5684"), ["host must be a bare host name"]),
    (_variant(psk_slice="8-24"), ["psk_slice"]),
    (_variant(deviceSecret="YOUR_DEVICE_SECRET"), ["deviceSecret still holds the template"]),
    (dict(_variant(deviceSecret=None), DeviceSecret=SECRET), ['write "deviceSecret"']),
]


@pytest.mark.parametrize("obj,words", BAD_SECRETS)
def test_bad_secrets_files_give_the_documented_message_without_the_secret(tmp_path, obj, words):
    path = _write(tmp_path, "secrets.json", obj)
    with pytest.raises(ConfigError) as e:
        load_secrets(path)
    msg = str(e.value)
    for w in words:
        assert w in msg
    for secret in (SECRET, PRODUCT_SECRET, SECRET[:8], PRODUCT_SECRET[:8]):
        assert secret not in msg


def test_invalid_json_gives_the_position_but_not_the_text(tmp_path):
    path = _write(tmp_path, "secrets.json", '{"deviceSecret": "%s",,}' % SECRET)
    with pytest.raises(ConfigError) as e:
        load_secrets(path)
    assert "not valid JSON (line 1" in str(e.value) and SECRET not in str(e.value)


def test_a_missing_file_says_how_to_create_it(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_secrets(str(tmp_path / "secrets.json"))
    assert "make secrets" in str(e.value) and "SECRETS=1" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_board(str(tmp_path / "board.json"))
    assert "make deploy BOARD=" in str(e.value)


def test_a_json_array_instead_of_an_object_is_refused(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_secrets(_write(tmp_path, "secrets.json", "[1, 2]"))
    assert "one JSON object" in str(e.value)


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    p = tmp_path / "secrets.json"
    p.write_bytes(b'{"deviceSecret": "\xff\xfe"}')
    with pytest.raises(ConfigError) as e:
        load_secrets(str(p))
    assert "UTF-8" in str(e.value)


@pytest.mark.parametrize("board", ["esp32-sim7020", "esp32-bc95"])
def test_the_shipped_board_files_are_valid(board):
    b = load_board(os.path.join(ROOT, "boards", board, "board.json"))
    assert b.name == board
    assert b.modem == board.split("-")[1]
    assert b.warnings == []


def test_the_sim7020_board_matches_the_lilygo_t_pcie_wiring():
    b = load_board(os.path.join(ROOT, "boards", "esp32-sim7020", "board.json"))
    assert (b.uart["tx"], b.uart["rx"], b.uart["baudrate"]) == (27, 26, 115200)
    assert b.pwrkey == {"pin": 4, "active_high": True, "pulse_ms": 500}
    assert b.power_enable["pin"] == 25 and b.status["pin"] == 36 and b.led["pin"] == 12


def test_the_bc95_board_runs_at_9600_baud():
    b = load_board(os.path.join(ROOT, "boards", "esp32-bc95", "board.json"))
    assert (b.uart["tx"], b.uart["rx"], b.uart["baudrate"]) == (27, 14, 9600)
    assert b.pwrkey is None


BAD_BOARDS = [
    ({"modem": "sim800"}, ['"sim7020" or "bc95"']),
    ({"uart": None}, ["uart is missing"]),
    ({"uart": {"id": 2, "baudrate": 115200, "tx": 27}}, ["rx is missing"]),
    ({"uart": {"id": 2, "baudrate": 115200, "tx": 38, "rx": 26}}, ["input-only"]),
    ({"uart": {"id": 2, "baudrate": 115200, "tx": 27, "rx": 26, "rxbuf": 128}},
     ["rxbuf is 128"]),
    ({"pwrkey": {"pin": 26}}, ["pwrkey.pin uses GPIO26, already used by uart.rx"]),
    ({"pwrkey": {"pin": 4, "pulse_ms": 0}}, ["pulse_ms is 0"]),
    ({"reset": {"pin": 20}}, ["not a usable ESP32 GPIO"]),
    ({"bands": "B20"}, ["bands must be a non-empty list"]),
    ({"wdt_timeout_ms": 1000}, ["wdt_timeout_ms is 1000"]),
    ({"attach_timeout_ms": 900000}, ["attach_timeout_ms is 900000, outside 1000..600000"]),
    ({"attach_timeout_ms": 1.5}, ["attach_timeout_ms must be an integer"]),
]


@pytest.mark.parametrize("change,words", BAD_BOARDS)
def test_bad_board_files_give_the_documented_message(tmp_path, change, words):
    with open(os.path.join(ROOT, "boards", "esp32-sim7020", "board.json")) as f:
        obj = json.load(f)
    for k, v in change.items():
        if v is None:
            obj.pop(k)
        else:
            obj[k] = v
    with pytest.raises(ConfigError) as e:
        load_board(_write(tmp_path, "board.json", obj))
    for w in words:
        assert w in str(e.value)


def test_load_reads_both_files(tmp_path):
    s, b = load(_write(tmp_path, "secrets.json", GOOD),
                os.path.join(ROOT, "boards", "esp32-bc95", "board.json"))
    assert s.device_secret == SECRET and b.modem == "bc95"


def test_the_template_is_refused_until_filled_in():
    with pytest.raises(ConfigError) as e:
        load_secrets(os.path.join(ROOT, "firmware", "secrets.example.json"))
    assert "placeholder" in str(e.value)


def test_secrets_tool_creates_a_private_valid_file_and_never_prints_the_secret(tmp_path,
                                                                              capsys):
    out = str(tmp_path / "secrets.json")
    rc = secrets_tool.main(["create", "--out", out, "--productKey", "PK1", "--deviceKey",
                            "imei", "--deviceSecret", SECRET, "--host", "coap-x.example.com"])
    assert rc == 0
    assert os.stat(out).st_mode & 0o777 == 0o600
    s = load_secrets(out)
    assert s.device_secret == SECRET and s.uses_imei
    assert secrets_tool.main(["check", out, "--board",
                              os.path.join(ROOT, "boards", "esp32-sim7020", "board.json")]) == 0
    assert secrets_tool.main(["create", "--out", out, "--productKey", "PK1"]) == 1
    printed = capsys.readouterr()
    assert SECRET not in printed.out + printed.err
    assert "exists; pass --force" in printed.err


def test_secrets_tool_asks_for_what_is_missing(tmp_path):
    asked = []

    def ask(prompt, secret):
        field = prompt.split()[0].rstrip(":")
        asked.append((field, secret))
        return {"productKey": "PK", "deviceKey": "DK", "host": "coap-h.example.com",
                "productSecret": PRODUCT_SECRET, "apn": ""}[field]

    obj = secrets_tool.build({"secureMode": 3}, interactive=True, ask=ask, out=lambda m: None)
    assert obj["productSecret"] == PRODUCT_SECRET and "deviceSecret" not in obj
    assert ("productSecret", True) in asked and ("productKey", False) in asked


def test_secrets_tool_check_reports_a_bad_file(tmp_path, capsys):
    path = _write(tmp_path, "secrets.json", _variant(lifetime=5))
    assert secrets_tool.main(["check", path]) == 1
    err = capsys.readouterr().err
    assert "lifetime is 5" in err and SECRET not in err
