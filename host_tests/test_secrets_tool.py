"""`make secrets` as a device maker meets it (tools/secrets_tool.py on a pseudo-terminal): each
answer is checked as it is typed and asked again, deviceKey defaults to the IMEI, secrets
are never echoed or printed, implausible secrets are refused with the rule, the closing
hint is the right `make deploy` line; `CHECK=` knows a board.json; FORCE passes through make."""
import json
import os
import subprocess
import sys

from enosnb.config import load_secrets

from ptyproc import PtyProcess
from tools import secrets_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "secrets_tool.py")
SECRET = "sRlGhkC0TCGBz5sdSrkU"


def _tool(tmp_path, *args):
    env = dict(os.environ, COLUMNS="200")
    return PtyProcess([sys.executable, TOOL, "create", *args], env=env, cwd=str(tmp_path))


def test_typos_are_caught_at_each_answer_and_the_file_ends_right(tmp_path):
    out = tmp_path / "mine.json"
    p = _tool(tmp_path, "--out", str(out))
    try:
        p.expect(r"(?m)^secureMode \[2\]: ")
        p.sendline("4")
        p.expect(r"secureMode must be 2 or 3; try again")
        p.expect(r"(?m)^secureMode \[2\]: ")
        p.sendline("")
        p.expect(r"(?m)^productKey: ")
        p.sendline("my product")
        p.expect(r"productKey \(length 10\) contains a space.*try again")
        p.expect(r"(?m)^productKey: ")
        p.sendline("FZEYbbGq")
        p.expect(r"(?m)^deviceKey \[imei\]: ")
        p.sendline("")
        p.expect(r"(?m)^deviceSecret: ")
        p.sendline(SECRET + " ")
        p.expect(r"deviceSecret has a space or tab at its start or end; EnOS secrets are "
                 r"8 to 64 characters without spaces")
        p.expect(r"(?m)^deviceSecret: ")
        p.sendline("abc")
        p.expect(r"deviceSecret is 3 characters long; EnOS secrets are 8 to 64")
        p.expect(r"(?m)^deviceSecret: ")
        p.sendline(SECRET)
        p.expect(r"(?m)^host: ")
        p.sendline("https://coap-demo.example.com")
        p.expect(r"host must be a bare host name.*try again")
        p.expect(r"(?m)^host: ")
        p.sendline("coap-demo.example.com")
        p.expect(r"(?m)^apn \[network default\]: ")
        p.sendline("")
        p.expect(r"(?m)^board \[esp32-sim7020\]: ")
        p.sendline("esp8266")
        p.expect(r"no board esp8266; choose one of: esp32-bc95, esp32-sim7020")
        p.expect(r"(?m)^board \[esp32-sim7020\]: ")
        p.sendline("esp32-bc95")
        assert p.wait() == 0
    finally:
        p.close()
    shown = p.text
    assert SECRET not in shown, "the secret showed on the terminal"
    assert "make deploy PORT=<port> BOARD=esp32-bc95 SECRETS=mine.json" in shown
    assert "python tools/deploy.py deploy --port <port> --board esp32-bc95 --secrets " \
           "--secrets-file mine.json" in shown
    assert 'deviceKey "imei"' in shown
    assert os.stat(out).st_mode & 0o777 == 0o600
    s = load_secrets(str(out))
    assert (s.product_key, s.device_key, s.device_secret, s.host, s.apn) == (
        "FZEYbbGq", "imei", SECRET, "coap-demo.example.com", "")


def test_per_product_keys_ask_for_the_product_secret_and_the_default_output(tmp_path):
    out = tmp_path / "firmware" / "secrets.json"
    out.parent.mkdir()
    p = _tool(tmp_path, "--out", str(out), "--board", "esp32-sim7020", "--host",
              "coap-x.example.com", "--apn", "iot.example")
    try:
        p.expect(r"(?m)^secureMode \[2\]: ")
        p.sendline("3")
        p.expect(r"(?m)^productKey: ")
        p.sendline("FZEYbbGq")
        p.expect(r"(?m)^deviceKey \[imei\]: ")
        p.sendline("unit-0001")
        p.expect(r"(?m)^productSecret: ")
        p.sendline("DemoProductSecret0123456789abcd")
        assert p.wait() == 0
    finally:
        p.close()
    obj = json.loads(out.read_text())
    assert obj["secureMode"] == 3 and obj["deviceKey"] == "unit-0001"
    assert "deviceSecret" not in obj and obj["apn"] == "iot.example"
    assert "board [" not in p.text  # given with --board
    assert "DemoProductSecret" not in p.text


def test_an_existing_file_is_kept_unless_forced_and_the_hint_works_through_make(tmp_path):
    out = tmp_path / "secrets.json"
    out.write_text("{}")
    p = _tool(tmp_path, "--out", str(out))
    try:
        assert p.wait() == 1
    finally:
        p.close()
    assert "exists; pass --force (make secrets FORCE=1)" in p.text
    assert out.read_text() == "{}"
    r = subprocess.run(["make", "-n", "-C", ROOT, "secrets", "FORCE=1", "OUT=" + str(out),
                        "BOARD=esp32-bc95"], capture_output=True, text=True, timeout=60)
    line = [ln for ln in r.stdout.splitlines() if "secrets_tool.py" in ln][-1]
    assert line.split()[-6:] == ["create", "--force", "--out", str(out), "--board",
                                 "esp32-bc95"]
    r = subprocess.run(["make", "-n", "-C", ROOT, "secrets"], capture_output=True, text=True,
                       timeout=60)
    line = [ln for ln in r.stdout.splitlines() if "secrets_tool.py" in ln][-1]
    assert line.split()[-1] == "create", "BOARD must be asked when the maker did not give it"


def test_input_ending_early_writes_nothing(tmp_path):
    out = tmp_path / "secrets.json"
    p = _tool(tmp_path, "--out", str(out), "--secureMode", "2")
    try:
        p.expect(r"(?m)^productKey: ")
        p.send("\x04")  # Ctrl-D
        assert p.wait() == 1
    finally:
        p.close()
    assert "aborted: nothing written" in p.text and not out.exists()


def test_check_recognises_a_board_json_and_refuses_implausible_secrets(tmp_path, capsys):
    board = os.path.join(ROOT, "boards", "esp32-bc95", "board.json")
    assert secrets_tool.main(["check", board]) == 0
    assert "is a board.json: OK: <Board esp32-bc95 modem bc95" in capsys.readouterr().out
    bad_board = tmp_path / "board.json"
    bad_board.write_text('{"name": "x", "modem": "bc96", "uart": {}}')
    assert secrets_tool.main(["check", str(bad_board)]) == 1
    assert "modem is 'bc96'" in capsys.readouterr().err
    for value, words in ((" " + SECRET, "space or tab at its start or end"),
                         ("x" * 65, "is 65 characters long"), ("short", "is 5 characters")):
        path = tmp_path / "secrets.json"
        path.write_text(json.dumps({"productKey": "PK", "deviceKey": "imei",
                                    "deviceSecret": value, "host": "coap-x.example.com"}))
        assert secrets_tool.main(["check", str(path)]) == 1
        err = capsys.readouterr().err
        assert words in err and "8 to 64 characters without spaces" in err
        assert value.strip() not in err
