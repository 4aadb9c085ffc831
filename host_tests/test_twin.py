"""The whole device through the host twin: firmware/main.py unchanged on CPython,
the modem emulator on a pty (SIM7020 and BC95), the local EnOS server over DTLS, deep sleep
between boots, outages and power cuts. Prints outage.* and powercut.* figures."""
import json
import os
import shutil

import pytest

from tools.twin import Twin, powercut, recover_after_outage, tshark_check

BOARDS = ("esp32-sim7020", "esp32-bc95")
# Both dialects, and the BC95 with firmware before B656 (no ATE, NSOSTF, CPSMS; modems.md §13).
MODULES = [("esp32-sim7020", {}), ("esp32-bc95", {}), ("esp32-bc95", {"revision": "old"})]
MODULE_IDS = ["sim7020", "bc95", "bc95-old"]


@pytest.fixture
def twin_factory(tmp_path):
    made = []

    def make(board="esp32-sim7020", **kw):
        kw.setdefault("sleep_scale", 0.0002)
        t = Twin(board, out=str(tmp_path / ("t%d" % len(made))), **kw)
        made.append(t)
        return t.start()
    yield make
    for t in made:
        t.stop()


def _connect(boot):
    line = boot.line("[enosnb] connected (")
    return line[len("[enosnb] connected ("):-1] if line else None


@pytest.mark.parametrize("board,emulator", MODULES, ids=MODULE_IDS)
def test_reports_one_point_per_cycle_in_order_and_wakes_without_a_new_handshake(
        twin_factory, tmp_path, board, emulator):
    pcap = str(tmp_path / "cycles.pcap")
    # A private APN with public addresses: no carrier NAT (test_twin_nat.py has one).
    twin = twin_factory(board, pcap=pcap, emulator=dict(emulator or {}, nat=None))
    boots = [twin.run_cycle()]
    row = twin.enqueue_set({"setpoint": 23.5})
    boots += twin.run_cycles(3)
    assert twin.readings() == [1, 2, 3, 4]
    # The cold boot's sleep is shifted to the device's own slot (fleet timing).
    assert 300000 <= boots[0].sleep_ms < 900000
    assert [b.sleep_ms is not None and b.sleep_ms > 590000 for b in boots[1:]] == [True] * 3
    assert _connect(boots[0]) == "full"
    # Every wake used the DTLS state kept in RTC memory: no handshake at all.
    assert [_connect(b) for b in boots[1:]] == ["restored"] * 3
    assert sum("handshake ok" in m for m in twin.server_log) == 1
    cmd = [c for c in twin.commands() if c["id"] == row][0]
    assert cmd["state"] == "replied"
    assert json.loads(bytes(cmd["reply"])) == {"id": json.loads(cmd["payload"])["id"],
                                               "code": 200, "data": {}}
    with open(os.path.join(twin.flash, "setpoints.json")) as f:
        assert json.load(f) == {"setpoint": 23.5}
    port = twin.server.dtls_port
    twin.emu.stop()
    twin.emu = None
    if not shutil.which("tshark"):
        pytest.skip("tshark not installed")
    problems, coap = tshark_check(pcap, port)
    assert problems == ""
    # Decrypted with the demo PSK: 4 reports + command GET + reply, each request and response.
    assert sum("CON" in ln and "measurepoint/post" in ln for ln in coap) == 4
    assert any("measurepoint/set_reply" in ln for ln in coap)


@pytest.mark.parametrize("board", BOARDS)
def test_after_an_outage_every_measurement_arrives_once_in_order(twin_factory, board):
    twin = twin_factory(board)
    twin.run_cycle()
    twin.outage(True)
    failed = twin.run_cycles(3)
    assert all("RegistrationError" in (b.line("[enosnb] cycle:") or "") or
               "back-off" in b.log for b in failed)
    assert twin.readings() == [1]
    twin.outage(False)
    got, expected = recover_after_outage(twin)
    lost = len(set(expected) - set(got))
    print("outage.lost: %d (%s)" % (lost, board))
    assert got == expected
    topics = [p["topic"].rsplit("/thing/", 1)[1] for p in twin.points() if p["name"] == "reading"]
    assert "measurepoint/resume/batch" in topics


def test_power_cuts_never_lose_or_duplicate_a_queued_measurement(twin_factory):
    totals = {"kills": 0, "lost": 0, "duplicated": 0, "redelivered": 0}
    for i, (board, emulator) in enumerate(MODULES):
        twin = twin_factory(board, seed=11 + i, emulator=emulator)
        kills = 100 if i == 0 else 50
        r = powercut(twin, kills=kills, seed=7 + i)
        assert r["lost"] == 0, r["lost_readings"]
        assert r["duplicated"] == 0
        assert r["out_of_order"] == 0
        assert r["still_queued"] == 0
        assert r["received"] >= kills // 2
        for k in totals:
            totals[k] += r[k]
    print("powercut.kills: %d" % totals["kills"])
    print("powercut.lost: %d" % totals["lost"])
    print("powercut.duplicated: %d" % totals["duplicated"])
    print("powercut.redelivered: %d" % totals["redelivered"])
    assert totals["kills"] >= 200


@pytest.mark.parametrize("board", BOARDS)
def test_twenty_cold_boots_against_one_powered_modem_all_report(twin_factory, board):
    # The modem keeps its sockets while the ESP32 restarts cold (5 ids on SIM7020, 7 on
    # BC95): every cold boot closes them, so none runs out.
    twin = twin_factory(board)
    for _ in range(20):
        twin.cold_boot()
        b = twin.run_cycle()
        assert "error" not in (b.line("[enosnb] cycle:") or "error"), b.log
    assert twin.readings() == list(range(1, 21))
    assert len(twin.emu.open_sockets()) == 1


def test_a_session_the_server_forgot_is_replaced_by_a_new_handshake(twin_factory):
    twin = twin_factory()
    twin.run_cycle()
    twin.server.call(twin.server.front.close)  # the server drops every DTLS session
    b = twin.run_cycle()
    assert _connect(b) == "restored"
    assert "handshake again" in b.log
    assert twin.readings() == [1, 2]
    # The next wakes do not probe a possibly dead session again: they handshake (resume).
    assert _connect(twin.run_cycle()) in ("resumed", "full")
    assert twin.readings() == [1, 2, 3]


def test_a_new_address_after_sleep_resumes_the_session_instead_of_a_full_handshake(
        twin_factory):
    twin = twin_factory()
    twin.run_cycle()
    twin.emu.close_socket_by_network()  # like a NAT rebinding: the next datagram has a new port
    b = twin.run_cycle()
    # The restored session's records go unanswered from the new port; the device resumes the
    # session (abbreviated handshake), and the server says so. With resumption off, or a
    # fallback to a full handshake, each of these fails.
    assert "restore-failed/resumed" in b.line("[enosnb] cycle:")
    assert sum("session resumed" in m for m in twin.server_log) == 1
    assert sum("handshake ok" in m for m in twin.server_log) == 1
    # After a restore went unanswered the next wakes resume at once, without a probe.
    assert _connect(twin.run_cycle()) == "resumed"
    assert sum("session resumed" in m for m in twin.server_log) == 2
    assert twin.readings()[:3] == [1, 2, 3]


def test_plain_coap_authenticates_once_and_keeps_the_binding_over_sleep(twin_factory):
    twin = twin_factory(dtls=False, emulator={"nat": None})
    boots = twin.run_cycles(3)
    assert [_connect(b) for b in boots] == ["plain", "plain-kept", "plain-kept"]
    assert twin.readings() == [1, 2, 3]
    assert sum(m.startswith("auth ") for m in twin.server_log) == 1
    # The server forgot the binding (a NAT rebinding looks the same): 4.01, one new /auth.
    twin.server.site.force_unauthorized = 1
    twin.run_cycle()
    assert twin.readings() == [1, 2, 3, 4]
    assert sum(m.startswith("auth ") for m in twin.server_log) == 2


def test_a_bad_secrets_file_stops_at_the_repl_without_sleeping_or_printing_the_secret(
        twin_factory):
    twin = twin_factory()
    path = os.path.join(twin.flash, "secrets.json")
    with open(path) as f:
        secrets = json.load(f)
    secrets["deviceSecret"] = "TopSecretValue42\n"
    secrets["lifetime"] = "3600"
    with open(path, "w") as f:
        json.dump(secrets, f)
    with pytest.raises(RuntimeError) as e:
        twin.run_cycle()
    text = str(e.value)
    assert "configuration error" in text and "without deep sleep" in text
    assert "TopSecretValue42" not in text
    assert twin.emu.commands_received == 0
