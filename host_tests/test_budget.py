"""The budget's pieces: the warm report's exact size, the wire counting, the SVG
trace and the README table. The full `make budget` run is not repeated here."""
import io
import xml.etree.ElementTree as ET

import pytest

from tools.budget import mpvm_cycle, readme_table, trace_svg, wire

SVG = "{http://www.w3.org/2000/svg}"


def test_warm_reference_report_is_exactly_286_bytes_of_udp_payload():
    # The real device stack (EnosClient, DtlsSession with CCM-8, CoAP Client) against the
    # scripted peer answering the enos-coap.md §17 reference reply: 217 up + 69 down.
    figures, _, _ = mpvm_cycle.record_pass()
    warm = figures["warm"]
    assert (warm["bytes_up"], warm["bytes_down"], warm["round_trips"]) == (217, 69, 1)
    assert warm["bytes"] == 286


def test_cold_report_takes_four_round_trips_and_raw_report_stays_under_150_bytes():
    figures, _, _ = mpvm_cycle.record_pass()
    assert figures["cold"]["round_trips"] == 4
    assert figures["cold"]["datagrams_up"] == 4
    assert figures["raw_warm"]["bytes"] < 150


def test_wire_counts_round_trips_and_adds_ip_headers():
    w = wire.Wire("x")
    for direction, n in (("up", 77), ("down", 60), ("up", 109), ("down", 131), ("down", 5)):
        w.add(direction, bytes(n))
    f = w.figures()
    assert f["round_trips"] == 2
    assert f["bytes_up"] == 186 and f["bytes_down"] == 196
    assert f["ip_bytes"] == 186 + 196 + 5 * 28


def test_trace_svg_is_well_formed_and_has_the_three_lanes_and_named_flights():
    ch = bytes.fromhex("16feff00000000000000000040") + bytes.fromhex("010000340000000000000034") \
        + bytes.fromhex("fefd") + bytes(32) + b"\x00\x00" + bytes.fromhex("0006c0a800ae00ff01000004") \
        + bytes.fromhex("00170000")
    app = bytes.fromhex("17fefd0001000000000001") + (30).to_bytes(2, "big") + bytes(30)
    events = trace_svg.events_from_wire([("up", ch, 0.0), ("down", app, 0.2)])
    assert events[0][1:] == ("device", "server", "ClientHello 77 B")
    assert events[1][3] == "CoAP response 43 B"
    svg = trace_svg.render(events + [(0.3, "device", "modem", "AT+CSOSEND=0,0,\"...\"")])
    root = ET.fromstring(svg)
    lanes = [g.get("id") for g in root.iter(SVG + "g") if g.get("class") == "lane"]
    assert lanes == ["lane-device", "lane-modem", "lane-server"]
    labels = [t.text for t in root.iter(SVG + "text")]
    assert "ClientHello 77 B" in labels and "200 ms" in labels


def test_readme_table_marks_met_and_missed_targets_and_keeps_notes():
    out = io.StringIO("report.warm.bytes: 286 B\nreport.cold.ip_bytes: 1076 B\n"
                      "# measured on loopback\nmpy.total_bytes: 40000 B\n")
    figures, notes = readme_table.parse(out)
    text = readme_table.table(figures, notes)
    assert "| `report.warm.bytes` | 286 B | 286 (217 + 69) | yes |" in text
    assert "| `report.cold.ip_bytes` | 1076 B |" in text and "**no**" in text
    assert "| `report.wake.round_trips` | not measured |" in text
    assert "- measured on loopback" in text


@pytest.fixture
def local_server():
    from tools.enos_server.server import EnosServer
    srv = EnosServer(port=0, dtls_port=0, log=None).start()
    try:
        yield srv
    finally:
        srv.stop()


def test_wake_after_deep_sleep_resumes_in_two_round_trips_with_finished_and_request_together(
        local_server):
    srv = local_server
    dev = wire.Device(srv.host, srv.dtls_port)
    cold = dev.cold()
    assert cold.figures()["round_trips"] == 4
    assert wire.cookie_lengths(cold) == [16]
    kept = dev.sleep()
    hvr = srv.front.hello_verifies
    w = dev.wake(kept)
    dev.close()
    assert dev.resumed and srv.front.resumptions == 1
    # The local server resumes a session it issued without a cookie exchange.
    assert srv.front.hello_verifies == hvr and wire.cookie_lengths(w) == []
    f = w.figures()
    assert (f["round_trips"], f["datagrams_up"]) == (2, 2)
    # The second datagram carries CCS, Finished and the CoAP request.
    second_up = [d for k, d, _ in w.events if k == "up"][1]
    assert trace_svg.describe(second_up, True) == "CCS+Finished+CoAP request"


def test_budget_run_rewrites_only_the_readme_summary_between_its_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n%s\nold table\n%s\noutro\n"
                      % (readme_table.README_BEGIN, readme_table.README_END))
    figures, _ = readme_table.parse(io.StringIO(
        "report.warm.bytes: 286 B\nreport.wake.round_trips: 3\nmpy.total_bytes: 99999 B\n"))
    readme_table.splice_readme(str(readme), figures)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(readme_table.README_END + "\noutro\n")
    assert "old table" not in text
    assert "| `report.warm.bytes` | 286 B | 286 (217 + 69) | yes |" in text
    assert "- `report.wake.round_trips` misses:" in text
    # The README shows what a report costs; every other figure is on docs/budget.md.
    assert "mpy.total_bytes" not in text and "[docs/budget.md](docs/budget.md)" in text
    assert "- `mpy.total_bytes`:" in readme_table.table(figures, [])
