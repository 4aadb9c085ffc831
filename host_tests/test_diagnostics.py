"""What the board tells its maker (docs/diagnostics.md), on the host twin with both modems:
the boot line after a power-on, the cycle line, "keys refused" with what to check, the LED
patterns on the board.json LED pin, the diagnostics report to EnOS in a request of its own,
and reactivation of a per-product device deleted and created again in EnOS. The lines the
page shows are checked against what the firmware prints."""
import json
import os
import re

import pytest

from enosnb import diag, diag_fail
from enosnb.config import parse_board
from enosnb.enos.errors import EnosAuthError, reply_error
from enosnb.modem.errors import AtTimeout, ModemError, RegistrationError
from tools.twin import Twin, pick_runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "diagnostics.md")
RUNTIME = pick_runtime("auto")[0]
WRONG = "WrongSecret0123456789"
KEYS_LINE = "keys refused by the server: check productKey, deviceKey and secret"


def shape(line):
    """A log line with every number replaced: what stays is what the docs promise."""
    return re.sub(r"\d+", "9", line.strip())


def doc_lines(prefix):
    with open(DOC) as f:
        return [ln.strip() for ln in f if ln.startswith(prefix)]


def led_flashes(boot, board):
    """The flashes (on, then off again) of the board's LED pin in the boot's pin writes, and
    the level it was left at."""
    pin = board["led"]["pin"]
    levels = [v for p, v in boot.pin_log if p == pin]
    flashes = sum(1 for a, b in zip(levels, levels[1:]) if a and not b)
    return flashes, levels[-1] if levels else None


def _readings(t, dk):
    return [json.loads(p["value"]) for p in t.db.points(dk, 1 << 30) if p["name"] == "reading"]


@pytest.fixture
def twin(tmp_path):
    made = []

    def make(board="esp32-sim7020", **kw):
        t = Twin(board, out=str(tmp_path / ("t%d" % len(made))), sleep_scale=0.0002,
                 runtime=RUNTIME, **kw)
        made.append(t)
        return t.start()
    yield make
    for t in made:
        t.stop()


@pytest.mark.parametrize("board", ["esp32-sim7020", "esp32-bc95"])
def test_the_boot_and_cycle_lines_say_what_the_board_is_and_what_a_cycle_cost(twin, board):
    t = twin(board)
    first, wake = t.run_cycles(2)
    boot = first.line("[enosnb] boot: ")
    assert "reset power-on" in boot and "device MuGsF6W4/15bBZlRknc" in boot
    assert "IMEI 866425031234567" in boot and "ICCID 89860318492040123456" in boot
    assert "registered (home)" in boot
    if board == "esp32-bc95":
        assert "modem BC95 " in boot and "RSRP -81.9 dBm, SNR 23.4 dB, coverage class 0" in boot
    else:
        assert "modem SIMCOM_SIM7020G " in boot and "RSRP" not in boot
    assert wake.line("[enosnb] boot: ") is None  # a wake from deep sleep is not a boot
    cycle = first.line("[enosnb] cycle: ")
    assert re.fullmatch(r"\[enosnb\] cycle: sent 1, queue 0, connect full, awake \d+ ms, "
                        r"attach \d+ ms, 4 round trips, \d+ B up, \d+ B down, CSQ 20 "
                        r"\(-73 dBm\)", cycle), cycle
    # The page shows these lines as the firmware prints them.
    assert shape(boot) in [shape(ln) for ln in doc_lines("[enosnb] boot: ")]
    assert shape(cycle) in [shape(ln) for ln in doc_lines("[enosnb] cycle: ")]
    assert shape(wake.line("[enosnb] cycle: ")) in [shape(ln) for ln in
                                                   doc_lines("[enosnb] cycle: ")]
    # One flash after a power-on when all went well, none on later wakes.
    assert led_flashes(first, t.board) == (1, 0)
    assert led_flashes(wake, t.board) == (0, None)
    # The next power-on asks nothing the board already knows about this module.
    t.power_cut()
    mark = len(t.emu.transcript)
    again = t.run_cycle()
    sent = b"".join(d for k, d in t.emu.transcript[mark:] if k == "in")
    assert again.line("[enosnb] boot: ") == boot
    assert b"ATI\r" not in sent and sent.count(b"AT+CGMR") <= 1


def test_a_wrong_secret_says_check_the_keys_and_flashes_three_times(twin):
    t = twin()
    t.run_cycle()
    t.power_cut()
    s = t.secrets()
    s["deviceSecret"] = WRONG
    t.write_flash("secrets.json", json.dumps(s))
    b = t.run_cycle()
    assert "[enosnb] %s (identity MuGsF6W4,15bBZlRknc,2,3600)" % KEYS_LINE in b.log
    assert WRONG not in b.log
    assert led_flashes(b, t.board) == (3, 0)
    assert shape(b.line("[enosnb] keys refused")) in [
        shape(ln) for ln in doc_lines("[enosnb] keys refused")]
    # An unknown deviceKey is refused the same way (another alert from the server).
    s["deviceSecret"] = t.secrets()["deviceSecret"]
    s["deviceKey"] = "noSuchDevice"
    t.write_flash("secrets.json", json.dumps(s))
    t.power_cut()
    b = t.run_cycle()
    assert "%s (identity MuGsF6W4,noSuchDevice,2,3600)" % KEYS_LINE in b.log


def test_no_network_shows_the_registration_state_and_flashes_twice(twin):
    t = twin("esp32-bc95")
    t.run_cycle()
    t.outage(True)
    b = t.run_cycle()
    cycle = b.line("[enosnb] cycle: ")
    assert "connect failed" in cycle and "not registered (CEREG 2: searching)" in cycle
    assert "error report: RegistrationError" in cycle
    assert shape(cycle) in [shape(ln) for ln in doc_lines("[enosnb] cycle: ")]
    assert led_flashes(b, t.board) == (2, 0)


def test_a_configuration_error_flashes_four_times_then_leaves_the_led_on(twin):
    t = twin()
    s = t.secrets()
    s["lifetime"] = "3600"
    t.write_flash("secrets.json", json.dumps(s))
    with pytest.raises(RuntimeError):
        t.run_cycle()
    assert led_flashes(t.boots[-1], t.board) == (4, 1)


def test_the_diagnostics_report_is_a_request_of_its_own_after_a_power_on(twin):
    t = twin("esp32-bc95")
    s = t.secrets()
    s["diagnostics"] = 86400
    t.write_flash("secrets.json", json.dumps(s))
    t.run_cycles(2)
    attrs = t.db.attributes("MuGsF6W4", "15bBZlRknc")
    assert attrs["fw_version"] and attrs["modem_model"] == "BC95"
    assert attrs["modem_fw"] == "V100R100C10B657SP3" and attrs["imei"] == "866425031234567"
    assert attrs["iccid"] == "89860318492040123456" and attrs["reset_cause"] == "power-on"
    assert (attrs["csq"], attrs["rsrp_dbm"], attrs["sinr_db"], attrs["coverage_class"]) == \
        (20, -82, 23, 0)
    assert attrs["queue_depth"] == 0
    with open(os.path.join(ROOT, "firmware", "thing-model.json")) as f:
        assert set(attrs) <= set(json.load(f)["attributes"])
    topics = [m["topic"] for m in t.messages() if m.get("topic")]
    updates = [tp for tp in topics if tp.endswith("/thing/attribute/update")]
    assert len(updates) == 1  # after the power-on; the wake is within the day
    # Readings went out apart, with only the sensor's points.
    assert sorted({p["name"] for p in t.points()}) == ["reading", "temperature"]


def test_a_power_on_without_network_owes_its_report_to_the_first_cycle_that_gets_through(
        twin):
    t = twin()
    s = t.secrets()
    s["diagnostics"] = True
    t.write_flash("secrets.json", json.dumps(s))
    t.outage(True)
    t.run_cycle()
    t.outage(False)
    for _ in range(4):  # the back-off may skip the radio once
        t.run_cycle()
        if t.readings():
            break
    assert t.db.attributes("MuGsF6W4", "15bBZlRknc")["reset_cause"] == "power-on"


def test_a_device_deleted_and_created_again_activates_again_with_reactivate(twin):
    t = twin()
    s = t.secrets()
    del s["deviceSecret"]
    s.update(deviceKey="demoDynamic01", productSecret="DemoProductSecret0123456789abcd",
             secureMode=3, reactivate=2)
    t.write_flash("secrets.json", json.dumps(s))
    t.run_cycle()
    old = json.load(open(os.path.join(t.flash, "device_secret.json")))["deviceSecret"]
    t.server.recreate_device("MuGsF6W4", "demoDynamic01")
    logs = []
    for _ in range(10):
        logs.append(t.run_cycle().log)
        if len(_readings(t, "demoDynamic01")) == len(logs) + 1:
            break
    text = "\n".join(logs)
    assert text.count(KEYS_LINE + " (identity MuGsF6W4,demoDynamic01,2,3600)") == 2
    assert "activated deviceSecret refused 2 times in a row: forgotten" in text
    new = json.load(open(os.path.join(t.flash, "device_secret.json")))["deviceSecret"]
    assert new != old and new not in text
    # Every reading queued meanwhile arrives, once and in order.
    assert _readings(t, "demoDynamic01") == list(range(1, len(logs) + 2))


# --- without the twin -------------------------------------------------------------------------

class _Pin:
    OUT = 3
    IN = 1

    def __init__(self, log, pin, mode=None, value=None):
        self.log, self.pin = log, pin
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is not None:
            self.log.append((self.pin, v))


class _Machine:
    def __init__(self):
        self.log = []
        self.sleeps = []

        def pin(p, mode=None, value=None):
            return _Pin(self.log, p, mode, value)
        self.Pin = pin
        self.Pin.OUT = 3


@pytest.mark.parametrize("active_high", [True, False])
def test_a_flash_is_100_ms_on_and_200_ms_off_and_the_led_ends_off(active_high):
    m = _Machine()
    diag.blink(m, {"pin": 12, "active_high": active_high}, 3, m.sleeps.append)
    on, off = (1, 0) if active_high else (0, 1)
    assert [v for _, v in m.log] == [off, on, off, on, off, on, off]
    assert m.sleeps == [100, 200, 100, 200, 100]


@pytest.mark.parametrize("error, status", [
    (RegistrationError(2, 1000), diag.NETWORK),
    (AtTimeout("AT", 500), diag.NETWORK),
    (EnosAuthError("refused"), diag.KEYS),
    (reply_error(1204, "/topic/x"), diag.ERROR),
    (ModemError("no answer"), diag.NETWORK),
])
def test_each_failure_has_the_status_its_led_pattern_documents(error, status):
    assert diag_fail.classify(error) == status


def test_a_handshake_refused_or_dropped_after_the_server_flight_is_keys_not_network():
    from enosnb.dtls.errors import DtlsAlert, DtlsTimeout
    refused = DtlsAlert(2, 20)
    refused.refused = True
    silent_after_flight = DtlsTimeout("x")
    silent_after_flight.refused = True
    assert diag_fail.classify(refused) == diag_fail.classify(silent_after_flight) == diag.KEYS
    assert diag_fail.classify(DtlsTimeout("no answer to the ClientHello")) == diag.NETWORK


def test_the_diagnostics_report_refused_by_the_thing_model_costs_nothing(tmp_path, capsys):
    from enosnb import diag_report

    class Enos:
        def update_attributes(self, attrs):
            raise reply_error(1204, "/topic/sys/MuGsF6W4/15bBZlRknc/thing/attribute/update")

    class App:
        enos = Enos()
        modem = None
        store = None
        report = {"csq": 20}

        def _path(self, name):
            return str(tmp_path / name)
    assert diag_report.send(App()) is False
    out = capsys.readouterr().out
    assert "diagnostics not reported (EnosModelError" in out
    assert shape(out.splitlines()[0]) in [shape(ln) for ln in
                                          doc_lines("[enosnb] diagnostics not reported")]



@pytest.mark.parametrize("field, value, parsed", [
    ("reactivate", False, 0), ("reactivate", True, 3), ("reactivate", 5, 5),
    ("diagnostics", False, 0), ("diagnostics", True, 86400), ("diagnostics", 3600, 3600),
])
def test_the_switches_take_true_false_or_a_number(field, value, parsed):
    from enosnb.config import parse_secrets
    s = parse_secrets({"productKey": "pk", "deviceKey": "dk", "deviceSecret": "s" * 20,
                       "host": "127.0.0.1", field: value})
    assert getattr(s, field) == parsed


@pytest.mark.parametrize("field, value", [("reactivate", 0), ("reactivate", "yes"),
                                          ("diagnostics", 60), ("diagnostics", "daily")])
def test_a_switch_out_of_range_names_the_field(field, value):
    from enosnb.config import ConfigError, parse_secrets
    with pytest.raises(ConfigError) as e:
        parse_secrets({"productKey": "pk", "deviceKey": "dk", "deviceSecret": "s" * 20,
                       "host": "127.0.0.1", field: value})
    assert field in str(e.value) and "true, false or an integer" in str(e.value)


@pytest.mark.parametrize("level, says", [
    (0, "modem sim7020 silent: STATUS low: the modem is off (check its supply and the power key)"),
    (1, "modem sim7020 silent: STATUS high: powered but not answering (check TX/RX crossed, "
        "the baud rate, the I/O level)"),
    (None, "modem sim7020 silent: check its supply, the power key, TX/RX crossed and the baud "
           "rate")])
def test_a_silent_modem_s_boot_line_reads_the_status_pin_where_there_is_one(
        tmp_path, capsys, level, says):
    from enosnb import diag_boot
    from enosnb.config import parse_secrets

    class Machine:
        PWRON_RESET = 1

        class Pin:
            IN = 1

            def __init__(self, pin, mode=None):
                pass

            def value(self):
                return level

        def reset_cause(self):
            return 1

    with open(os.path.join(ROOT, "boards", "esp32-sim7020", "board.json")) as f:
        board = parse_board(json.load(f))
    if level is None:
        board.status = None

    class App:
        secrets = parse_secrets({"productKey": "MuGsF6W4", "deviceKey": "15bBZlRknc",
                                 "deviceSecret": "s" * 20, "host": "127.0.0.1"})
        modem = None
        report = {"exc": AtTimeout("AT", 500)}

        def __init__(self):
            self.board = board

        def _mach(self):
            return Machine()

        def _path(self, name):
            return str(tmp_path / name)
    diag_boot.boot_line(App())
    line = capsys.readouterr().out.strip()
    assert line == ("[enosnb] boot: enosnb %s, reset power-on, device MuGsF6W4/15bBZlRknc, %s"
                    % (diag_boot.VERSION, says))
    if level == 0:  # the example docs/diagnostics.md shows
        assert shape(line) in [shape(ln) for ln in doc_lines("[enosnb] boot: ")]
