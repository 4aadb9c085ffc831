"""Launcher of the tinydtls peer: aiocoap's tinydtls_server transport (aio_psk_server.py,
dtls.md §18.5). CCM suites only, no hint, no session IDs, so no resumption."""
import os
import sys
import tempfile

from tools.dtls_peers.base import HOST, ProcessPeer, free_port

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "aio_psk_server.py")
HELLO = b"hello over coaps"


class TinydtlsServer(ProcessPeer):
    """python -P aio_psk_server.py P: DTLS on .port = P + 1 with GET /hello and POST /echo.

    key and identity are printable bytes (tinydtls: key <= 16, identity <= 32 bytes)."""

    startup_timeout = 20.0

    def __init__(self, key=b"secretPSK", identity=b"Client_identity", lifetime=120):
        ProcessPeer.__init__(self)
        self.host = HOST
        self.key = key
        self.identity = identity
        self.lifetime = lifetime
        self.cwd = tempfile.gettempdir()
        self.ready = rb"ready \d+"
        self.configure()

    def configure(self):
        bind = free_port(span=2)
        self.port = bind + 1
        self.argv = [sys.executable, "-P", "-u", SCRIPT, str(bind), "--identity",
                     self.identity.decode(), "--key", self.key.decode(), "--lifetime",
                     str(self.lifetime)]
        self.udp_ports = (self.port,)

    def name(self):
        return "aiocoap tinydtls_server"
