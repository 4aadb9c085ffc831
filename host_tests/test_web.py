"""The local server's web page in a real headless browser (Debian's Chromium over the DevTools
protocol) while the twin reports: the device shows up, the charts hold exactly the stored
points, the CSV export equals the database rows, the decoded message log matches tshark's
decode of the same run's pcap, 50,000 points draw (prints web.render_50k_ms), and no secret
reaches the page. Screenshots go to out/web/."""
import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from enosnb.coap.client import Client, Timing
from enosnb.dtls import timers
from enosnb.dtls.session import DtlsSession
from enosnb.dtls.errors import DtlsError
from enosnb.enos.client import EnosClient
from enosnb.enos.transport import DtlsTransport, PlainTransport
from enosnb.udp import UdpEndpoint
from tools.cdp import CHROMIUM, Chromium
from tools.enos_server import commands as server_cmds
from tools.enos_server.db import Db
from tools.enos_server.msglog import HIDDEN, decode_coap, decode_dtls, redact_text, show_payload
from tools.enos_server.registry import DEMO, expected_sign, psk_key
from tools.enos_server.server import EnosServer
from tools.enos_server.webdriver import (PageDriver, coap_rows_of_page, coap_rows_of_tshark,
                                         fill_points)
from tools.twin import ROOT, Twin, psk_hex

SHOTS = os.path.join(ROOT, "out", "web")
PK, DK = "MuGsF6W4", "15bBZlRknc"
DEVICE = PK + "/" + DK

@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (make deps)")
    with Chromium() as b:
        yield b


class Demo:
    """The twin reporting over DTLS with a pcap, its page open in the browser."""

    def __init__(self, browser, tmp):
        self.browser = browser
        self.tmp = tmp
        self.pcap = os.path.join(tmp, "web.pcap")
        # A private APN (no carrier NAT): every wake restores the session, so the DTLS rows
        # of the run are one full handshake.
        self.twin = Twin(out=os.path.join(tmp, "twin"), pcap=self.pcap, sleep_scale=0.0002,
                         web_port=0, emulator={"nat": None}).start()
        self.page = browser.new_page()
        self.driver = PageDriver(self.page, self.twin.server.web.url)
        self.driver.open("devices")
        self.dtls_port = self.twin.server.dtls_port

    def run_until(self, cycles):
        """The device reports until it has booted `cycles` times (a command before the second)."""
        while len(self.twin.boots) < cycles:
            if len(self.twin.boots) == 1:
                self.twin.enqueue_set({"setpoint": 23.5})
            self.twin.run_cycle()

    def close_pcap(self):
        if self.twin.emu is not None:
            self.twin.emu.stop()
            self.twin.emu = None

    def rows(self, sql, *args):
        conn = sqlite3.connect(os.path.join(self.twin.dir, "enos.sqlite"))
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def demo(browser, tmp_path_factory):
    d = Demo(browser, str(tmp_path_factory.mktemp("web")))
    try:
        yield d
    finally:
        d.twin.stop()


def _tshark(pcap, *args):
    return subprocess.run(["tshark", "-n", "-r", pcap, *args], capture_output=True, text=True,
                          timeout=120, check=True).stdout.splitlines()


# --- the twin's run, seen in the page -------------------------------------------------------

def test_the_device_appears_online_while_the_twin_reports(demo):
    drv = demo.driver
    if not demo.twin.boots:
        assert drv.device_state(DEVICE) == "never connected"
        demo.twin.run_cycle()
    drv.wait_device_online(DEVICE)
    cells = drv.device_cells(DEVICE)
    assert cells["c-mode"] == "dtls-2" and cells["c-lifetime"] == "3600 s"
    assert cells["c-dead"] == "–"     # the slot for the device's own count
    demo.run_until(4)
    demo.page.wait("document.querySelector('tr.device[data-device=\"%s\"] .c-commands')"
                   ".textContent === '1 replied'" % DEVICE)
    assert drv.device_cells(DEVICE)["c-points"] == "8 (2)"
    demo.page.screenshot(os.path.join(SHOTS, "devices.png"))
    assert demo.page.errors() == []


def test_each_chart_holds_exactly_the_points_in_the_database(demo):
    demo.run_until(4)
    timings = demo.driver.show_points(DEVICE)
    charts = demo.driver.chart_data()
    stored = {}
    for name, time_ms, value in demo.rows(
            "SELECT name, time_ms, value FROM points WHERE dk=? ORDER BY time_ms, id", DK):
        stored.setdefault(name, ([], []))
        stored[name][0].append(time_ms)
        stored[name][1].append(json.loads(value))
    assert sorted(charts) == ["reading", "temperature"]
    assert {k: (v[0], v[1]) for k, v in charts.items()} == stored
    assert timings["values"] == 8 and timings["charts"] == 2
    demo.page.screenshot(os.path.join(SHOTS, "points.png"))


def test_csv_export_equals_the_database_rows(demo, tmp_path):
    demo.run_until(4)
    demo.driver.show_points(DEVICE)
    path = demo.driver.download_csv(demo.browser, str(tmp_path / "dl"))
    with open(path, newline="") as f:
        got = list(csv.DictReader(f))
    rows = demo.rows("SELECT id, pk, dk, name, value, quality, time_ms, topic, received, "
                     "deliveries FROM points WHERE dk=? ORDER BY time_ms, id", DK)
    assert len(got) == len(rows) == 8
    for g, r in zip(got, rows):
        assert (int(g["id"]), g["productKey"], g["deviceKey"], g["point"]) == r[:4]
        assert json.loads(g["value"]) == json.loads(r[4])
        assert g["quality"] == ("" if r[5] is None else str(r[5]))
        assert int(g["time_ms"]) == r[6] and g["topic"] == r[7]
        assert float(g["received"]) == r[8] and int(g["deliveries"]) == r[9]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_decoded_log_matches_tsharks_decode_of_the_same_runs_pcap(demo):
    demo.run_until(4)
    demo.close_pcap()
    rows = demo.driver.log_rows(DEVICE)
    # The answer that carries the command (option 2100), opened.
    demo.page.eval("Array.from(document.querySelectorAll('#log-table tr.entry.coap')).find(r => "
                   "r.querySelector('.command')).click()")
    demo.page.screenshot(os.path.join(SHOTS, "log.png"))
    port = demo.dtls_port
    coap = coap_rows_of_tshark(_tshark(
        demo.pcap, "-d", "udp.port==%d,dtls" % port, "-d", "dtls.port==%d,coap" % port,
        "-o", "dtls.psk:" + psk_hex(), "-Y", "coap", "-T", "fields", "-E", "separator=|",
        "-e", "udp.srcport", "-e", "coap.type", "-e", "coap.code", "-e", "coap.mid",
        "-e", "coap.token", "-e", "coap.opt.uri_path_recon"), port)
    page_coap = coap_rows_of_page([r for r in rows if r["kind"] == "coap"])
    # 4 reports, the command's GET and its reply: a request and its answer each.
    assert len(coap) >= 12
    assert page_coap == coap
    # The DTLS rows: every datagram that is not only application data, record by record.
    names = {"20": "ChangeCipherSpec", "21": "Alert", "22": "Handshake", "23": "ApplicationData"}
    flights = [("down" if int(src) == port else "up", [names[c] for c in types.split(",")])
               for src, types in (ln.split("|") for ln in _tshark(
                   demo.pcap, "-d", "udp.port==%d,dtls" % port, "-Y", "dtls", "-T", "fields",
                   "-E", "separator=|", "-e", "udp.srcport", "-e", "dtls.record.content_type"))
               if set(types.split(",")) != {"23"}]
    page_dtls = demo.page.eval(
        "fetch('/api/log?limit=5000&device=%s').then(r => r.json()).then(d => d.entries"
        ".filter(e => e.kind === 'dtls').map(e => [e.dir, e.dtls.records.map(x => x.content)]))"
        % DEVICE)
    assert [tuple(f) for f in page_dtls] == flights
    dtls_cells = [(r["c-code"], r["c-path"]) for r in rows if r["kind"] == "dtls"]
    assert [c for c, _ in dtls_cells] == ["handshake", "hello verify", "handshake",
                                          "full handshake", "key exchange", "handshake complete"]
    assert "identity %s,%s,2,3600" % (PK, DK) in dtls_cells[4][1]
    # The command rides on a response in option 2100 and shows there.
    assert any("command: /topic/sys/%s/%s/thing/service/measurepoint/set" % (PK, DK)
               in r["c-path"] for r in rows)
    assert demo.page.errors() == []


def test_the_page_loads_nothing_from_elsewhere(demo):
    demo.driver.tab("points")
    origin = demo.twin.server.web.url
    urls = [u for u in demo.page.requested_urls() if not u.startswith("data:")]
    assert urls and all(u.startswith(origin) for u in urls)
    assert demo.page.eval("typeof uPlot") == "function"


# --- 50,000 points ---------------------------------------------------------------------------

def test_fifty_thousand_points_render_and_zoom_to_a_range_with_its_csv(browser, tmp_path):
    db_path = str(tmp_path / "big.sqlite")
    with EnosServer(db_path=db_path, port=0, dtls_port=None, log=None, web_port=0) as srv:
        stored = fill_points(db_path, PK, DK, "temperature", 50000)
        drv = PageDriver(browser.new_page(), srv.web.url)
        drv.open("devices")
        timings = drv.show_points(DEVICE, timeout=60)
        print("web.render_50k_ms: %d ms" % timings["ms"])
        t, v = drv.chart_data()["temperature"]
        assert len(t) == 50000 and list(zip(t, v)) == stored
        # A ceiling far above the figure (printed above; about 0.3 s here): only a page that
        # cannot draw 50k points at all fails it, a busy machine does not.
        assert timings["ms"] < 20000
        drv.page.screenshot(os.path.join(SHOTS, "points-50k.png"))
        drv.zoom("temperature", 0.25, 0.5)
        lo, hi = drv.x_range("temperature")
        assert stored[0][0] < lo < hi < stored[-1][0]
        href = drv.page.eval("document.querySelector('#csv-all').href")
        text = drv.page.eval("fetch(%s).then(r => r.text())" % json.dumps(href))
        got = [int(r["time_ms"]) for r in csv.DictReader(text.splitlines())]
        f, to = drv.page.eval("[new Date(document.querySelector('#range-from').value).getTime(),"
                              " new Date(document.querySelector('#range-to').value).getTime()]")
        want = [ms for ms, _ in stored if f <= ms <= to + 999]
        assert got == want and 0 < len(got) < 50000
        assert drv.page.eval("document.querySelector('.point a.csv').href") == \
            href + "&name=temperature"
        assert f <= lo and hi <= to + 999
        drv.page.screenshot(os.path.join(SHOTS, "points-zoomed.png"))
        assert drv.page.errors() == []


# --- secrets, hostile payloads, loopback only -------------------------------------------------

PRODUCT_SECRET = DEMO["products"][0]["productSecret"]
SECRET = DEMO["devices"][0]["deviceSecret"]


def _client(server, mode, cfg, **kw):
    def factory(ep):
        return Client(ep, timing=Timing(ack_timeout_ms=1000, max_retransmit=2))
    if mode == "dtls":
        t = DtlsTransport(lambda: UdpEndpoint("127.0.0.1", server.dtls_port), factory,
                          timers=timers.LOOPBACK)
    else:
        t = PlainTransport(lambda: UdpEndpoint("127.0.0.1", server.port), factory)
    return EnosClient(t, cfg, **kw)


def test_no_secret_and_no_markup_from_a_device_reaches_the_page(browser, tmp_path):
    with EnosServer(db_path=str(tmp_path / "s.sqlite"), port=0, dtls_port=0, log=None,
                    web_port=0) as srv:
        plain = _client(srv, "plain", {"productKey": PK, "deviceKey": DK, "deviceSecret": SECRET,
                                       "lifetime": 3600})
        plain.connect()
        # In plain mode a queued command rides on the next response in options 2100 and 2102.
        db = Db(srv.db_path)
        server_cmds.enqueue_set(db, PK, DK, {"setpoint": 23.5}, cmd_id="777")
        db.close()
        hostile = '<img src=x onerror="window.pwned=1">'
        plain.post_measurepoints({hostile: 1, "t": 2})
        plain.close()
        handed_out = []
        dyn = _client(srv, "dtls", {"productKey": PK, "deviceKey": "demoDynamic01",
                                    "productSecret": PRODUCT_SECRET, "lifetime": 600},
                      on_secret=handed_out.append)
        dyn.connect()
        dyn.close()
        assert handed_out and dyn.activated
        drv = PageDriver(browser.new_page(), srv.web.url)
        drv.open("devices")
        drv.show_points(DEVICE)
        rows = drv.log_rows()
        drv.page.eval("document.querySelectorAll('#log-table tr.detail').forEach(r => "
                      "r.hidden = false)")
        text = drv.page.eval("document.documentElement.outerHTML")
        bodies = [text] + [drv.page.eval("fetch(%s).then(r => r.text())" % json.dumps(u))
                           for u in ("/api/devices", "/api/log?limit=5000",
                                     "/api/points.csv?pk=%s&dk=%s" % (PK, DK))]
        secrets = [SECRET, PRODUCT_SECRET, handed_out[0], expected_sign(PK, DK, 3600, SECRET)]
        for d in DEMO["devices"]:
            if d.get("deviceSecret"):
                secrets += [d["deviceSecret"], psk_key(d["deviceSecret"]).hex()]
        secrets.append(psk_key(PRODUCT_SECRET).hex())
        for body in bodies:
            for s in secrets:
                assert s not in body and s.lower() not in body.lower()
        assert any(r["c-path"] == "/auth/%s/%s" % (PK, DK) for r in rows)
        options = drv.page.eval(
            "fetch('/api/log?limit=5000').then(r => r.json()).then(d => d.entries.filter(e => "
            "e.kind === 'coap' && e.coap.options.some(o => o.number === 2102)).map(e => "
            "e.coap.options))")
        assert len(options) == 1
        topic, payload = [o for o in options[0] if o["number"] in (2100, 2102)]
        assert topic["value"] == "/topic/sys/%s/%s/thing/service/measurepoint/set" % (PK, DK)
        assert json.loads(payload["value"]) == {
            "id": "777", "version": "1.0", "method": "thing.service.measurepoint.set",
            "params": {"setpoint": 23.5}}
        assert payload["value"].startswith('{\n  "id"')    # pretty-printed
        assert text.count(HIDDEN) >= 2    # the sign and the handed-out deviceSecret
        # The point name is shown as text; the page made no element of it.
        assert drv.page.eval("window.pwned === undefined && "
                             "!document.querySelector('img[src=x]')")
        assert drv.page.eval("Array.from(document.querySelectorAll('.point h3')).some(h => "
                             "h.textContent.startsWith(%s))" % json.dumps(hostile))


def test_log_shows_resumptions_and_alerts_of_dtls_peers(tmp_path):
    ident = ("%s,%s,2,3600" % (PK, DK)).encode()
    with EnosServer(db_path=str(tmp_path / "s.sqlite"), port=0, dtls_port=0, log=None,
                    web_port=0) as srv:
        s = DtlsSession(UdpEndpoint("127.0.0.1", srv.dtls_port), ident, psk_key(SECRET),
                        timers=timers.LOOPBACK)
        s.handshake()
        # A wake from deep sleep on a new address: the session resumes (abbreviated handshake).
        s2 = DtlsSession.restore(UdpEndpoint("127.0.0.1", srv.dtls_port), ident,
                                 psk_key(SECRET), s.save(), timers=timers.LOOPBACK)
        s2.resume()
        s2.send(b"\x40\x01\x00\x01")
        assert s2.recv(2000)
        s2.close()
        # The session kept in RTC memory, used on an address the server has no session for.
        lost = DtlsSession.restore(UdpEndpoint("127.0.0.1", srv.dtls_port), ident,
                                   psk_key(SECRET), s.save(), timers=timers.LOOPBACK)
        lost.send(b"\x40\x01\x00\x02")
        assert lost.recv(300) is None
        bad = DtlsSession(UdpEndpoint("127.0.0.1", srv.dtls_port),
                          ("%s,nobody,2,3600" % PK).encode(), bytes(16), timers=timers.LOOPBACK)
        with pytest.raises(DtlsError):
            bad.handshake()
        entries = json.loads(_get(srv.web.url + "api/log")[2])["entries"]
    events = [(e["device"], e["dir"], e["dtls"]["event"]) for e in entries if e["kind"] == "dtls"]
    assert events == [
        (DEVICE, "up", "handshake"), (DEVICE, "down", "hello verify"),
        (DEVICE, "up", "handshake"), (DEVICE, "down", "full handshake"),
        (DEVICE, "up", "key exchange"), (DEVICE, "down", "handshake complete"),
        (DEVICE, "up", "resumption offered"), (DEVICE, "down", "session resumed"),
        (DEVICE, "up", "handshake complete"), (DEVICE, "up", "alert"),
        (None, "up", "no session (dropped)"),
        (PK + "/nobody", "up", "handshake"), (PK + "/nobody", "down", "hello verify"),
        (PK + "/nobody", "up", "handshake"), (PK + "/nobody", "down", "full handshake"),
        (PK + "/nobody", "up", "key exchange"), (PK + "/nobody", "down", "alert")]
    alerts = [e["dtls"]["summary"] for e in entries if e["kind"] == "dtls" and
              e["dtls"]["event"] == "alert"]
    assert alerts == ["Alert (encrypted)", "Alert fatal unknown_psk_identity"]
    # The CoAP inside the resumed session is logged decrypted, on the device's own address.
    coap = [e for e in entries if e["kind"] == "coap"]
    assert [(e["transport"], e["coap"]["code"], e["coap"]["mid"]) for e in coap] == [
        ("coaps", "0.01", 1), ("coaps", "4.04", 1)]
    resumed_from = [e["peer"] for e in entries if e["kind"] == "dtls"][6]
    assert coap[0]["peer"] == resumed_from != [e["peer"] for e in entries][0]


def _get(url, host=None):
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_page_listens_on_loopback_only_and_refuses_other_host_names(tmp_path):
    with EnosServer(db_path=str(tmp_path / "s.sqlite"), port=0, dtls_port=None, log=None,
                    web_port=0) as srv:
        assert [a[0] for a in srv.web._runner.addresses] == ["127.0.0.1"]
        status, headers, body = _get(srv.web.url)
        assert status == 200 and b"Local EnOS server" in body
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        port = srv.web.port
        assert _get(srv.web.url + "api/devices", "localhost:%d" % port)[0] == 200
        assert _get(srv.web.url + "api/devices", "attacker.example:%d" % port)[0] == 421
        assert _get(srv.web.url + "api/series?pk=%s&dk=%s" % (PK, DK))[0] == 400
        assert _get(srv.web.url + "static/../web.py")[0] == 404


def test_serve_prints_the_page_address_and_serves_it(tmp_path):
    p = subprocess.Popen([sys.executable, "-u", "-m", "tools.enos_server", "--db",
                          str(tmp_path / "s.sqlite"), "serve", "--port", "0", "--dtls-port", "-1",
                          "--web-port", "0"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        for _ in range(30):
            line = p.stdout.readline()
            if line.startswith("web page: "):
                url = line.split()[-1]
                break
        assert url and url.startswith("http://127.0.0.1:")
        status, _, body = _get(url + "api/devices")
        assert status == 200 and json.loads(body)["devices"]
    finally:
        p.terminate()
        p.wait(10)
        p.stdout.close()


def test_twin_keep_serves_the_page_until_interrupted(tmp_path):
    p = subprocess.Popen([sys.executable, "-u", os.path.join(ROOT, "tools", "twin.py"),
                          "--cycles", "1", "--keep", "--keep-interval", "0.2", "--web-port", "0",
                          "--sleep-scale", "0.0002", "--out", str(tmp_path)],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        lines = []
        for _ in range(200):
            line = p.stdout.readline()
            lines.append(line)
            if line.startswith("twin: web page "):
                url = line.split()[-1]
            if line.startswith("cycle 3:"):
                break
        assert url, "".join(lines)
        devices = json.loads(_get(url + "api/devices")[2])["devices"]
        assert [d for d in devices if d["dk"] == DK][0]["points"] >= 6
        p.send_signal(signal.SIGINT)
        out = p.communicate(timeout=60)[0]
        assert p.returncode == 0, out
        assert "twin: stopped" in out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# --- the decoders, without a browser ------------------------------------------------------------

def test_log_hides_secrets_in_json_and_in_cut_text():
    auth = b'{"secureMode":2,"lifetime":3600,"sign":"ABCDEF0123"}'
    shown = show_payload(auth)
    assert shown["kind"] == "json" and "ABCDEF0123" not in shown["text"]
    assert json.loads(shown["text"])["sign"] == HIDDEN
    cut = '{"params":{"deviceSecret":"s3cr3t-but-cut'
    assert "s3cr3t" not in redact_text(cut)
    assert show_payload(b"\xff\x00")["kind"] == "hex"


def test_log_decodes_garbage_as_an_error_entry_not_an_exception():
    assert "error" in decode_coap(b"\x40")
    assert "error" in decode_coap(b"\xff" * 20)
    assert decode_dtls(b"\x16\xfe") == []
    # Records cut anywhere decode to what is there, never raise.
    hello = bytes.fromhex("16fefd000000000000000000")
    for n in range(len(hello)):
        decode_dtls(hello[:n])


def test_log_names_alerts_and_connection_id_records():
    alert = bytes.fromhex("15fefd0000000000000001000202" "28")
    assert decode_dtls(alert)[0]["alert"] == "fatal handshake_failure"
    encrypted = bytes.fromhex("15fefd00010000000000050012") + bytes(18)
    assert "alert" not in decode_dtls(encrypted)[0]
    cid = bytes.fromhex("19fefd0001000000000007") + bytes(30)
    assert decode_dtls(cid)[0]["content"] == "tls12_cid"
