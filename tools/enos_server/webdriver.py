"""The local server's web page as a user works it, in headless Chromium (tools/cdp.py): open a
tab, find a device, draw its points, zoom, export CSV, read the message log. The browser
tests (host_tests/test_web.py) and `make bench` (tools/benches/bench_web.py) share it.
"""
import json
import os
import random
import sqlite3
import time

from tools.cdp import CdpError

TYPES = {0: "CON", 1: "NON", 2: "ACK", 3: "RST"}


class PageDriver:
    def __init__(self, page, url):
        self.page = page
        self.url = url

    def open(self, tab="devices"):
        self.page.goto(self.url + "#" + tab)
        self.page.wait("window.enos && document.querySelector('#device-table tbody tr')")

    def tab(self, name):
        self.page.eval("location.hash = %s" % json.dumps("#" + name))
        self.page.wait("!document.querySelector('#tab-%s').hidden" % name)

    def device_state(self, key, timeout=10.0):
        """The State cell's text of a device's row, once the row is there."""
        return self.page.wait(
            "(() => { const r = document.querySelector('tr.device[data-device=%s]'); "
            "return r && r.querySelector('.c-state').textContent; })()" % json.dumps(key),
            timeout)

    def wait_device_online(self, key, timeout=10.0):
        self.page.wait(
            "(() => { const r = document.querySelector('tr.device[data-device=%s]'); "
            "return r && r.querySelector('.c-state').textContent === 'online'; })()"
            % json.dumps(key), timeout)

    def device_cells(self, key):
        return self.page.eval(
            "Object.fromEntries(Array.from(document.querySelector('tr.device[data-device=%s]')"
            ".cells).map(c => [c.className.split(' ')[0], c.textContent]))" % json.dumps(key))

    def show_points(self, key, timeout=30.0):
        """Click the device's row (Devices tab) and wait for its charts; the draw's timings
        {ms, values, charts} (ms from the click to the charts painted)."""
        self.tab("devices")
        self.page.eval("window.enos.timings.points = null")
        self.page.click("tr.device[data-device=%s]" % json.dumps(key))
        return self.page.wait("window.enos.state.pointsDevice === %s && "
                              "window.enos.timings.points" % json.dumps(key), timeout)

    def chart_data(self):
        """{point name: [[time ms...], [value...]]} of the charts drawn."""
        return self.page.eval(
            "Object.fromEntries(window.enos.state.charts.map(c => [c.name, "
            "[Array.from(c.plot.data[0], x => Math.round(x * 1000)), "
            "Array.from(c.plot.data[1])]]))")

    def zoom(self, point, start, end):
        """Drag across the point's chart from fraction start to end of its width."""
        sel = ".point[data-point=%s] .u-over" % json.dumps(point)
        box = self.page.box(sel)
        y = box["y"] + box["height"] / 2
        self.page.drag(box["x"] + box["width"] * start, y, box["x"] + box["width"] * end, y)
        return self.page.wait("window.enos.state.zoomed && document.querySelector('#range-from')"
                              ".value && document.querySelector('#csv-all').href")

    def x_range(self, point):
        return self.page.eval(
            "(() => { const c = window.enos.state.charts.find(c => c.name === %s); "
            "return [c.plot.scales.x.min * 1000, c.plot.scales.x.max * 1000]; })()"
            % json.dumps(point))

    def download_csv(self, browser, folder, selector="#csv-all", timeout=20.0):
        """Click an export link; the path of the file Chromium saved in folder."""
        os.makedirs(folder, exist_ok=True)
        browser.download_to(folder)
        before = set(os.listdir(folder))
        self.page.click(selector)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = [e for e in browser.events_of(None, "Browser.downloadProgress")
                    if e["state"] == "completed"]
            new = [f for f in set(os.listdir(folder)) - before if not f.endswith(".crdownload")]
            if done and new:
                return os.path.join(folder, new[0])
            time.sleep(0.05)
        raise CdpError("the CSV download did not finish in %s s" % timeout)

    def log_rows(self, device=None, kind=None, timeout=10.0):
        """The Message log tab's rows (filtered to device "pk/dk" if given) once it shows
        everything the server logged: {cell class: text}, plus kind and dir (up/down)."""
        self.tab("log")
        self.page.eval("(() => { const s = document.querySelector('#log-device'); "
                       "s.value = %s; s.dispatchEvent(new Event('change')); })()"
                       % json.dumps(device or ""))
        query = "/api/log?limit=5000" + ("&device=" + device if device else "")
        expected = self.page.eval("fetch(%s).then(r => r.json()).then(d => d.entries.length)"
                                  % json.dumps(query))
        self.page.wait("window.enos.state.logFilter === %s && document.querySelectorAll("
                       "'#log-table tr.entry').length >= %d" % (json.dumps(device or ""),
                                                                expected), timeout)
        return self.page.eval(
            "Array.from(document.querySelectorAll('#log-table tr.entry%s')).map(r => "
            "Object.assign(Object.fromEntries(Array.from(r.cells).map(c => "
            "[c.className.split(' ')[0], c.textContent])), {kind: r.dataset.kind, "
            "dir: r.querySelector('.c-dir').classList.contains('up') ? 'up' : 'down'}))"
            % ("." + kind if kind else ""))


def coap_rows_of_page(rows):
    """(dir, type, code, mid, token, path) of the page's CoAP rows; a response's path is its
    request's (shown after ↩)."""
    out = []
    for r in rows:
        path = r["c-path"].split(" command: ")[0]
        out.append((r["dir"], r["c-type"], r["c-code"].split(" ")[0], int(r["c-mid"]),
                    r["c-token"], path[2:] if path.startswith("↩ ") else path))
    return out


def coap_rows_of_tshark(lines, server_port):
    """The same tuples from `tshark -T fields -E separator=| -e udp.srcport -e coap.type
    -e coap.code -e coap.mid -e coap.token -e coap.opt.uri_path_recon` lines."""
    out = []
    for ln in lines:
        src, mtype, code, mid, token, path = ln.split("|")
        code = int(code)
        out.append(("down" if int(src) == server_port else "up", TYPES[int(mtype)],
                    "%d.%02d" % (code >> 5, code & 31), int(mid), token, path))
    return out


def fill_points(db_path, pk, dk, name, n, seed=1, start_ms=1767225600000, step_ms=60000):
    """n synthetic readings of one point (a seeded random walk, one a minute) straight into
    the server's SQLite file; their (time_ms, value) in time order."""
    rnd = random.Random(seed)
    v = 20.0
    rows = []
    for i in range(n):
        v = round(v + rnd.uniform(-0.5, 0.5), 2)
        rows.append((pk, dk, name, json.dumps(v), start_ms + i * step_ms,
                     "/sys/%s/%s/thing/measurepoint/post" % (pk, dk), start_ms / 1000 + i * 60))
    conn = sqlite3.connect(db_path, timeout=10)
    with conn:
        conn.executemany("INSERT INTO points (pk, dk, name, value, time_ms, topic, received) "
                         "VALUES (?,?,?,?,?,?,?)", rows)
    conn.close()
    return [(r[4], json.loads(r[3])) for r in rows]
