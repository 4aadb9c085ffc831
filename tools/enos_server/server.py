"""EnosServer: the site on plain CoAP plus the DTLS front end, in this thread or a background one."""
import asyncio
import socket
import threading

import aiocoap

from tools.enos_server.db import Db
from tools.enos_server.dtls_front import DtlsFront, flush_session_cache
from tools.enos_server.registry import Registry
from tools.enos_server.site import EnosSite
from tools.netutil import free_tcp_port, free_udp_port


def free_port(kind=socket.SOCK_DGRAM):
    """A free 127.0.0.1 port for UDP (or TCP with kind SOCK_STREAM), from tools.netutil."""
    return free_tcp_port() if kind == socket.SOCK_STREAM else free_udp_port()


class EnosServer:
    """host/port: plain CoAP; dtls_port: DTLS-PSK (None: no DTLS). Port 0 picks a free one.

    dtls_commands / plain_commands: "get" (2100 only, the device GETs the topic) or
    "option" (2100 + 2102 with the payload). The DTLS front end sends a 16-byte cookie
    before a full handshake; hello_verify=False skips the cookie exchange. DTLS sessions can
    be resumed by session id (Mbed TLS session cache), without a cookie.
    web_port: the web page (tools.enos_server.web) on 127.0.0.1, 0 for a free port; None: none.

    dtls_variant: "resume" (that default), "hvr" (a cookie on resumption too), "full" (no
    resumption) or "cid" (RFC 9146 Connection ID: a session survives a new client address;
    cid_front.py).
    """
    DTLS_VARIANTS = ("resume", "hvr", "full", "cid")

    def __init__(self, registry=None, db_path=":memory:", host="127.0.0.1", port=5683,
                 dtls_port=5684, log=print, dtls_commands="get", plain_commands="option",
                 hello_verify=True, web_port=None, dtls_variant="resume"):
        if dtls_variant not in self.DTLS_VARIANTS:
            raise ValueError("dtls_variant must be one of %s" % ", ".join(self.DTLS_VARIANTS))
        self.dtls_variant = dtls_variant
        self.registry = registry if registry is not None else Registry.load()
        self.db_path = db_path
        self.host = host
        self.port = port or free_port()
        self.dtls_port = dtls_port if dtls_port is None or dtls_port else free_port()
        self.log = log or _quiet
        self.dtls_commands = dtls_commands
        self.plain_commands = plain_commands
        self.hello_verify = hello_verify
        self.web_port = web_port
        self.web = None
        self.front = None
        self.site = None
        self.db = None
        self._loop = None
        self._thread = None
        self._stop = None
        self._ready = threading.Event()
        self._error = None

    async def run(self):
        """Serve until stop() (or cancellation)."""
        self.db = Db(self.db_path)
        self.registry.adopt_secrets(self.db.activated_secrets())
        self.site = EnosSite(self.registry, self.db, self.log, self.dtls_commands,
                             self.plain_commands)
        ctx = await aiocoap.Context.create_server_context(self.site, bind=(self.host, self.port))
        front_transport = None
        try:
            if self.dtls_port is not None:
                loop = asyncio.get_running_loop()
                front_transport, self.front = await loop.create_datagram_endpoint(
                    self._front, local_addr=(self.host, self.dtls_port))
            if self.web_port is not None:
                from tools.enos_server import web  # aiohttp only where the page is served
                self.web = await web.start(self, ctx, self.web_port)
            self._stop = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            self.log("local EnOS server: coap://%s:%d%s" % (
                self.host, self.port,
                "" if self.dtls_port is None else ", coaps://%s:%d" % (self.host, self.dtls_port)))
            if self.web is not None:
                self.log("web page: %s" % self.web.url)
            await self._stop.wait()
        finally:
            if self.web is not None:
                await self.web.stop()
            if front_transport is not None:
                self.front.close()
                front_transport.close()
            await ctx.shutdown()
            self.db.close()

    def _front(self):
        v = self.dtls_variant
        if v == "cid":
            from tools.enos_server.cid_front import CidFront
            return CidFront(self.registry, self.site, self.port, self.log, self.hello_verify)
        return DtlsFront(self.registry, self.site, self.port, self.log, self.hello_verify,
                         resume_cookie=v == "hvr", resumption=v != "full")

    def start(self):
        """Run in a background thread; returns once both ports are bound."""
        def main():
            try:
                asyncio.run(self.run())
            except BaseException as e:
                self._error = e
                self._ready.set()
        self._thread = threading.Thread(target=main, name="enos-server", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def call(self, fn, *args):
        """Run fn(*args) on the server's loop thread and return its result."""
        fut = asyncio.run_coroutine_threadsafe(_acall(fn, args), self._loop)
        return fut.result(10)

    def recreate_device(self, pk, dk):
        """The device deleted and created again in the console: it has no deviceSecret until
        it activates again (a new one), and its DTLS sessions are gone."""
        def run():
            self.registry.devices[(pk, dk)] = {"productKey": pk, "deviceKey": dk}
            front = self.front
            if front is None:
                return
            context = getattr(front, "context", None)
            if context is not None:
                flush_session_cache(context)
            sessions = getattr(front, "sessions", {})
            for sid in [s for s, v in sessions.items() if tuple(v[0][:2]) == (pk, dk)]:
                del sessions[sid]
            for addr, peer in list(getattr(front, "peers", {}).items()):
                ident = getattr(peer, "identity", None)
                if ident is not None and tuple(ident[:2]) == (pk, dk):
                    front.drop(addr)
        self.call(run)

    def stop(self):
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _quiet(message):
    pass


async def _acall(fn, args):
    return fn(*args)
