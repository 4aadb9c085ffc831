"""A CoAP server made with aiocoap (not our code) for tests, the CLI demo and the lossy bench.

Resources:
  GET  /hello            "world", piggybacked
  GET  /slow?ms=N        answers after N ms (default 600): empty ACK, then a CON response
  GET  /big?n=N          N bytes (default 5000) of a known pattern (big_body(n)): Block2
  POST|PUT /upload       assembles a Block1 upload; answers 2.04 with "<len> <sha256 hex>"
  GET  /upload           the last body uploaded
  POST /echo             echoes the payload
  POST /count            payload "<unique id>": counts requests processed, and ids seen twice
  GET  /stats            JSON {"processed": n, "double": n}
  DELETE /hello          2.02 Deleted

Run in a thread (AiocoapServer) or as a process: python tools/aiocoap_server.py [--port N]
(prints "port N" once it listens, then serves until killed).
"""
import asyncio
import hashlib
import json
import os
import sys
import threading

import aiocoap
import aiocoap.resource as resource

# Run as a script, only tools/ is on the path; tools.netutil needs the repository root.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
from tools.netutil import free_udp_port  # noqa: E402


def big_body(n):
    return bytes((i * 31 + 7) & 0xFF for i in range(n))


def _query(request):
    out = {}
    for q in request.opt.uri_query:
        k, _, v = q.partition("=")
        out[k] = v
    return out


class Hello(resource.Resource):
    async def render_get(self, request):
        return aiocoap.Message(code=aiocoap.CONTENT, payload=b"world")

    async def render_delete(self, request):
        return aiocoap.Message(code=aiocoap.DELETED)


class Slow(resource.Resource):
    async def render_get(self, request):
        await asyncio.sleep(int(_query(request).get("ms", "600")) / 1000)
        return aiocoap.Message(code=aiocoap.CONTENT, payload=b"finally")


class Big(resource.Resource):
    async def render_get(self, request):
        return aiocoap.Message(code=aiocoap.CONTENT,
                               payload=big_body(int(_query(request).get("n", "5000"))))


class Upload(resource.Resource):
    def __init__(self):
        super().__init__()
        self.last = b""

    async def render_post(self, request):
        self.last = request.payload
        digest = hashlib.sha256(request.payload).hexdigest()
        return aiocoap.Message(code=aiocoap.CHANGED,
                               payload=("%d %s" % (len(request.payload), digest)).encode())

    render_put = render_post

    async def render_get(self, request):
        return aiocoap.Message(code=aiocoap.CONTENT, payload=self.last)


class Echo(resource.Resource):
    async def render_post(self, request):
        return aiocoap.Message(code=aiocoap.CHANGED, payload=request.payload)


class Counter(resource.Resource):
    def __init__(self):
        super().__init__()
        self.seen = set()
        self.processed = 0
        self.double = 0

    async def render_post(self, request):
        self.processed += 1
        if request.payload in self.seen:
            self.double += 1
        self.seen.add(request.payload)
        return aiocoap.Message(code=aiocoap.CHANGED, payload=b"ok")


class Stats(resource.Resource):
    def __init__(self, counter):
        super().__init__()
        self.counter = counter

    async def render_get(self, request):
        c = self.counter
        return aiocoap.Message(code=aiocoap.CONTENT, payload=json.dumps(
            {"processed": c.processed, "double": c.double}).encode())


def make_site():
    site = resource.Site()
    counter = Counter()
    site.add_resource(["hello"], Hello())
    site.add_resource(["slow"], Slow())
    site.add_resource(["big"], Big())
    site.add_resource(["upload"], Upload())
    site.add_resource(["echo"], Echo())
    site.add_resource(["count"], counter)
    site.add_resource(["stats"], Stats(counter))
    return site


class AiocoapServer:
    """aiocoap server on 127.0.0.1:<free port> in a thread; .port, .site; stop()."""

    def __init__(self, port=None):
        self.port = port or free_udp_port()
        self.site = make_site()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error = None
        self._ctx = None
        self._thread = threading.Thread(target=self._run, name="aiocoap-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error:
            self.stop()
            raise RuntimeError("aiocoap server did not start: %r" % (self._error,))

    def _run(self):
        asyncio.set_event_loop(self._loop)
        try:
            self._ctx = self._loop.run_until_complete(aiocoap.Context.create_server_context(
                self.site, bind=("127.0.0.1", self.port)))
        except Exception as e:  # reported by __init__
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._ctx.shutdown())
        self._loop.close()

    def stop(self):
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def main(argv):
    port = int(argv[argv.index("--port") + 1]) if "--port" in argv else free_udp_port()

    async def serve():
        await aiocoap.Context.create_server_context(make_site(), bind=("127.0.0.1", port))
        print("port %d" % port, flush=True)
        await asyncio.get_running_loop().create_future()

    asyncio.run(serve())


if __name__ == "__main__":
    main(sys.argv[1:])
