"""The device's UdpEndpoint on the MicroPython unix port's sockets (which have no
getsockname), and the EnOS client over it against the local EnOS server, plain and DTLS."""
import json
import os
import socket
import subprocess
import threading
import time

import pytest

import enos_fixtures
from enos_fixtures import DK
from tools.host import mpruntime

server = enos_fixtures.server
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "host_tests", "mp", "udp_enos.py")

pytestmark = pytest.mark.skipif(mpruntime.why_unavailable() is not None,
                                reason=str(mpruntime.why_unavailable()))


class EchoPeer:
    """Answers each datagram upper-cased; for b"intruder..." it first sends from a second
    socket (which a connected endpoint must ignore); b"big" gets an answer beyond the mtu."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        deadline = time.time() + 60
        while not self.stop and time.time() < deadline:
            try:
                data, addr = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            if data.startswith(b"intruder"):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                    other.sendto(b"not from the peer", addr)
                time.sleep(0.05)
            self.sock.sendto(b"x" * 65 if data == b"big" else data.upper(), addr)

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def _refused_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_udp_endpoint_and_enos_client_work_over_micropython_sockets(server):
    peer = EchoPeer()
    time_ms = 1764115300000
    try:
        r = subprocess.run([mpruntime.micropython(), SCRIPT, os.path.join(ROOT, "firmware", "lib"),
                            str(peer.port), str(_refused_port()), str(server.port),
                            str(server.dtls_port), str(time_ms)],
                           capture_output=True, text=True, timeout=120)
    finally:
        peer.close()
    out = r.stdout + r.stderr
    assert r.returncode == 0 and out.rstrip().endswith("done"), out
    assert "FAIL" not in out, out
    assert out.count("ok ") == 9, out
    got = {p["name"]: json.loads(p["value"]) for p in server.db_view.points(DK, 1000)
           if p["time_ms"] == time_ms}
    assert got == {"mp_plain": 1.5, "mp_dtls": 2.5}
