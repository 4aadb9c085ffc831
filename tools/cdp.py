"""Headless Chromium driven over the Chrome DevTools Protocol, for the tests and the benchmark
of the local server's web page. It runs Debian's /usr/bin/chromium (the Makefile installs it);
it never downloads a browser.

    with Chromium() as browser:
        page = browser.new_page()
        page.goto("http://127.0.0.1:8684/")
        page.wait("document.querySelector('tr.device')")
        page.screenshot("out/page.png")

The protocol runs over the WebSocket Chromium opens on 127.0.0.1 (aiohttp's client, in a
thread of its own); calls block until Chromium answers or `timeout` seconds pass. Events
(exceptions, console errors, requests, downloads) are kept per page for the tests to check.
"""
import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

import aiohttp

CHROMIUM = "/usr/bin/chromium"
# Flags that keep Chromium quiet on a machine without a network or a display.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars")


class CdpError(Exception):
    """Chromium refused a command, a script threw, or a wait ran out of time."""


class Chromium:
    def __init__(self, executable=CHROMIUM, timeout=20.0):
        self.executable = executable
        self.timeout = timeout
        self.proc = None
        self.profile = None
        self._loop = None
        self._thread = None
        self._ws = None
        self._http = None
        self._ids = itertools.count(1)
        self._waiting = {}
        self.events = []            # (sessionId or None, method, params)
        self._events_lock = threading.Lock()

    def start(self):
        if not os.path.exists(self.executable):
            raise CdpError("%s is missing: `make deps` installs Debian's chromium"
                           % self.executable)
        self.profile = tempfile.mkdtemp(prefix="enosnb-chromium-")
        self.proc = subprocess.Popen(
            [self.executable, *FLAGS, "--user-data-dir=" + self.profile,
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        active = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + self.timeout
        while True:
            if os.path.exists(active):
                with open(active) as f:
                    lines = f.read().split()
                if len(lines) >= 2:
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise CdpError("chromium did not open its DevTools port")
            time.sleep(0.05)
        url = "ws://127.0.0.1:%s%s" % (lines[0], lines[1])
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cdp", daemon=True)
        self._thread.start()
        self._run(self._connect(url))
        return self

    async def _connect(self, url):
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(url, max_msg_size=0, autoping=False)
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self):
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = msg.json()
            fut = self._waiting.pop(data.get("id"), None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(data)
            elif "method" in data:
                with self._events_lock:
                    self.events.append((data.get("sessionId"), data["method"],
                                        data.get("params", {})))
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(CdpError("chromium closed the DevTools connection"))

    async def _send(self, method, params, session):
        msg = {"id": next(self._ids), "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        fut = self._loop.create_future()
        self._waiting[msg["id"]] = fut
        await self._ws.send_json(msg)
        return await fut

    def _run(self, coro, timeout=None):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout or self.timeout)

    def call(self, method, session=None, timeout=None, **params):
        """The result of one DevTools command (in the page's session when given)."""
        try:
            data = self._run(self._send(method, params, session), timeout)
        except TimeoutError:
            raise CdpError("%s: no answer in %s s" % (method, timeout or self.timeout))
        if "error" in data:
            raise CdpError("%s: %s" % (method, data["error"].get("message")))
        return data.get("result", {})

    def new_page(self, width=1440, height=900):
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        return Page(self, session, width, height)

    def download_to(self, folder):
        """Downloads of every page go to folder (Browser.setDownloadBehavior)."""
        self.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=folder,
                  eventsEnabled=True)

    def events_of(self, session, method):
        with self._events_lock:
            return [p for s, m, p in self.events if m == method and (session is None or
                                                                       s == session)]

    def stop(self):
        if self._loop is not None:
            if self._ws is not None:
                try:
                    self._run(self._close(), 5)
                except Exception:
                    pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()
            self._loop = None
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.profile is not None:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None

    async def _close(self):
        await self._ws.close()
        await self._http.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Page:
    """One tab: navigate, evaluate JavaScript, wait for a condition, click, drag, screenshot."""

    def __init__(self, browser, session, width, height):
        self.browser = browser
        self.session = session
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(domain + ".enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def call(self, method, **params):
        return self.browser.call(method, self.session, **params)

    def goto(self, url):
        self.call("Page.navigate", url=url)
        self.wait("document.readyState === 'complete' && location.href === %s" % _js(url))

    def eval(self, expression, timeout=None):
        """The value of a JavaScript expression (promises awaited), as JSON data."""
        r = self.browser.call("Runtime.evaluate", self.session, timeout=timeout,
                              expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise CdpError("script failed: %s" % d.get("exception", {}).get(
                "description", d.get("text")))
        return r["result"].get("value")

    def wait(self, expression, timeout=10.0, interval=0.05):
        """Evaluate until the expression is truthy in JavaScript; its value (True for a DOM
        node), or CdpError after timeout."""
        probe = ("Promise.resolve(%s).then(v => v ? [true, v instanceof Node ? true : v] "
                 ": [false, null])" % expression)
        deadline = time.monotonic() + timeout
        while True:
            ok, value = self.eval(probe)
            if ok:
                return value
            if time.monotonic() > deadline:
                raise CdpError("timed out after %s s waiting for: %s" % (timeout, expression))
            time.sleep(interval)

    def click(self, selector):
        self.eval("(() => { const e = document.querySelector(%s); if (!e) throw new Error("
                  "'no element ' + %s); e.click(); return true; })()"
                  % (_js(selector), _js(selector)))

    def box(self, selector):
        """{x, y, width, height} of an element in CSS pixels of the viewport."""
        return self.eval("(() => { const r = document.querySelector(%s)"
                         ".getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, "
                         "height: r.height}; })()" % _js(selector))

    def drag(self, x0, y0, x1, y1, steps=8):
        """Press the left mouse button at (x0, y0), move to (x1, y1), release."""
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x0, y=y0)
        self.call("Input.dispatchMouseEvent", type="mousePressed", x=x0, y=y0,
                  button="left", clickCount=1, buttons=1)
        for i in range(1, steps + 1):
            self.call("Input.dispatchMouseEvent", type="mouseMoved", button="left", buttons=1,
                      x=x0 + (x1 - x0) * i / steps, y=y0 + (y1 - y0) * i / steps)
        self.call("Input.dispatchMouseEvent", type="mouseReleased", x=x1, y=y1,
                  button="left", clickCount=1, buttons=0)

    def screenshot(self, path, full_page=False):
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.eval("[document.documentElement.scrollWidth, "
                             "document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}
        data = base64.b64decode(self.call("Page.captureScreenshot", **params)["data"])
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def errors(self):
        """Uncaught exceptions and console or browser errors of this page, as text."""
        out = [e["exceptionDetails"].get("exception", {}).get("description")
               or e["exceptionDetails"].get("text")
               for e in self.browser.events_of(self.session, "Runtime.exceptionThrown")]
        out += [" ".join(str(a.get("value", a.get("description", ""))) for a in e["args"])
                for e in self.browser.events_of(self.session, "Runtime.consoleAPICalled")
                if e["type"] in ("error", "assert")]
        out += [e["entry"]["text"] for e in self.browser.events_of(self.session, "Log.entryAdded")
                if e["entry"]["level"] == "error"]
        return out

    def requested_urls(self):
        return [e["request"]["url"]
                for e in self.browser.events_of(self.session, "Network.requestWillBeSent")]


def _js(text):
    """A Python string as a JavaScript string literal."""
    return json.dumps(text)
