"""Test helpers shared by the CoAP client host tests: libcoap's coap-server-notls, and
coap-server-openssl with a PSK, on 127.0.0.1:<free port>, started and stopped with bounded
waits; client_to(port), our CoAP client on a UDP endpoint that is always closed."""
import shutil
import subprocess
from contextlib import contextmanager

from enosnb.coap.client import Client, Timing
from enosnb.coap.errors import CoapError
from enosnb.udp import UdpEndpoint
from tools.netutil import Process, free_port_pair, free_udp_port, wait_until


@contextmanager
def client_to(port, **kw):
    """Client(UdpEndpoint(127.0.0.1:port), **kw), its endpoint closed on leaving."""
    ep = UdpEndpoint("127.0.0.1", port)
    try:
        yield Client(ep, **kw)
    finally:
        ep.close()


def _answers(port):
    try:
        with client_to(port, timing=Timing(ack_timeout_ms=100, max_retransmit=0)) as c:
            c.get("/")
        return True
    except CoapError:
        return False


def _libcoap(exe, port, *args):
    """The server on port, once it answers a CoAP GET there (then its DTLS port is up too)."""
    path = shutil.which(exe)
    if path is None:
        raise RuntimeError("%s not found: install Debian package libcoap3-bin" % exe)
    proc = Process([path, "-A", "127.0.0.1", "-p", str(port), "-v", "0"] + list(args),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _answers(port), 10, exe, proc.proc)
    except Exception:
        proc.stop()
        raise
    return proc


class LibcoapServer:
    """coap-server-notls -A 127.0.0.1 -p <free> -d <dynamic> ; .port; stop()."""

    def __init__(self, dynamic=20):
        self.port = free_udp_port()
        self.proc = _libcoap("coap-server-notls", self.port, "-d", str(dynamic))

    def stop(self):
        self.proc.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class LibcoapDtlsServer(LibcoapServer):
    """coap-server-openssl with a PSK: plain CoAP on .coap_port, DTLS on .port."""

    def __init__(self, key):
        self.coap_port = free_port_pair()
        self.port = self.coap_port + 1
        self.proc = _libcoap("coap-server-openssl", self.coap_port, "-k", key)
