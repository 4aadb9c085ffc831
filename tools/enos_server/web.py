"""The local server's web page on 127.0.0.1: devices, point charts with CSV export, and the
decoded message log (docs/local-server.md). aiohttp serves it from the server's own asyncio
loop, next to the CoAP site and the DTLS front end.

    GET /                                  the page (tools/enos_server/webui/)
    GET /vendor/uPlot.iife.min.js, .css    the chart library, from node_modules (npm uplot)
    GET /api/devices                       webdata.devices
    GET /api/points?pk=&dk=                webdata.point_names
    GET /api/series?pk=&dk=&name=[&from=&to=]          webdata.series (times in ms)
    GET /api/points.csv?pk=&dk=[&name=&from=&to=]      webdata.csv_text, as a download
    GET /api/log?[since=&device=pk/dk&limit=]          msglog entries after `since`

It listens on 127.0.0.1 only, whatever address the CoAP ports use, and answers only requests
addressed to 127.0.0.1 or localhost (a page elsewhere cannot reach it by DNS rebinding). The
page is read-only, loads nothing from elsewhere (Content-Security-Policy 'self'), and shows
no secret: see webdata and msglog.
"""
import os

from aiohttp import web

from tools.enos_server import webdata
from tools.enos_server.msglog import MessageLog, Tap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "webui")
UPLOT = os.path.join(ROOT, "node_modules", "uplot", "dist")
HOST = "127.0.0.1"
STATIC = {"app.js": "text/javascript", "app.css": "text/css"}
VENDOR = {"uPlot.iife.min.js": "text/javascript", "uPlot.min.css": "text/css"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class WebPage:
    """The page of one EnosServer; start() once its sockets are open, stop() before they close."""

    def __init__(self, server, port=0):
        self.server = server
        self.port = port
        self.log = MessageLog()
        self.tap = Tap(self.log)
        self._runner = None
        self._hosts = ()

    @property
    def url(self):
        return "http://%s:%d/" % (HOST, self.port)

    async def start(self, ctx):
        self.tap.attach(self.server, ctx)
        app = web.Application(middlewares=[self._guard])
        app.add_routes([
            web.get("/", self._index),
            web.get("/static/{name}", self._static),
            web.get("/vendor/{name}", self._vendor),
            web.get("/api/devices", self._devices),
            web.get("/api/points", self._points),
            web.get("/api/series", self._series),
            web.get("/api/points.csv", self._csv),
            web.get("/api/log", self._log),
        ])
        # A poll the browser has open must not hold the server's shutdown up for long.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._hosts = ("%s:%d" % (HOST, self.port), "localhost:%d" % self.port)
        return self

    async def stop(self):
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _guard(self, request, handler):
        if request.host not in self._hosts:
            return web.Response(status=421, text="this page answers only at %s\n" % self.url)
        try:
            resp = await handler(request)
        except web.HTTPException as e:
            resp = web.Response(status=e.status, text=e.text)
        resp.headers.update(SECURITY_HEADERS)
        return resp

    # --- files ---

    async def _index(self, request):
        return web.FileResponse(os.path.join(UI, "index.html"),
                                headers={"Content-Type": "text/html; charset=utf-8"})

    async def _static(self, request):
        return _file(UI, STATIC, request.match_info["name"])

    async def _vendor(self, request):
        return _file(UPLOT, VENDOR, request.match_info["name"])

    # --- data ---

    def _device(self, request):
        pk, dk = request.query.get("pk"), request.query.get("dk")
        if not pk or not dk:
            raise web.HTTPBadRequest(text="pk and dk are required")
        return pk, dk

    async def _devices(self, request):
        s = self.server
        return web.json_response({
            "devices": webdata.devices(s.db, s.registry),
            "server": {"coap": "coap://%s:%d" % (s.host, s.port),
                       "coaps": None if s.dtls_port is None else
                       "coaps://%s:%d" % (s.host, s.dtls_port),
                       "vendor": os.path.exists(os.path.join(UPLOT, "uPlot.iife.min.js"))}})

    async def _points(self, request):
        return web.json_response(webdata.point_names(self.server.db, *self._device(request)))

    async def _series(self, request):
        pk, dk = self._device(request)
        name = request.query.get("name")
        if not name:
            raise web.HTTPBadRequest(text="name is required")
        return web.json_response(webdata.series(self.server.db, pk, dk, name,
                                                *_time_range(request)))

    async def _csv(self, request):
        pk, dk = self._device(request)
        name = request.query.get("name") or None
        text = webdata.csv_text(self.server.db, pk, dk, name, *_time_range(request))
        filename = "%s_%s%s.csv" % (pk, dk, "_" + name if name else "")
        return web.Response(text=text, content_type="text/csv", headers={
            "Content-Disposition": 'attachment; filename="%s"' % _safe_name(filename)})

    async def _log(self, request):
        since = _int(request, "since", 0)
        limit = min(_int(request, "limit", 1000), 5000)
        device = request.query.get("device") or None
        return web.json_response({"entries": self.log.since(since, device, limit),
                                  "last": self.log.seq,
                                  "oldest": self.log.entries[0]["seq"] if self.log.entries
                                  else None})


def _file(folder, allowed, name):
    if name not in allowed:
        raise web.HTTPNotFound()
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        raise web.HTTPNotFound(text="%s is missing: run `make deps` (npm ci)" % name)
    return web.FileResponse(path, headers={"Content-Type": allowed[name] + "; charset=utf-8"})


def _int(request, key, default):
    try:
        return int(request.query.get(key, default))
    except ValueError:
        raise web.HTTPBadRequest(text="%s must be an integer" % key)


def _time_range(request):
    return (_int(request, "from", None) if request.query.get("from") else None,
            _int(request, "to", None) if request.query.get("to") else None)


def _safe_name(name):
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


async def start(server, ctx, port=0):
    """Serve the page of a running EnosServer (its aiocoap context ctx) on 127.0.0.1:port."""
    return await WebPage(server, port).start(ctx)
