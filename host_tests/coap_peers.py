"""Test helpers shared by the CoAP client host tests: a libcoap coap-server-notls process
on 127.0.0.1:<free port>, started and stopped with bounded waits."""
import shutil
import subprocess
import time

from enosnb.coap.client import Client, Timing
from enosnb.coap.errors import CoapError
from enosnb.udp import UdpEndpoint
from tools.aiocoap_server import free_udp_port


class LibcoapServer:
    """coap-server-notls -A 127.0.0.1 -p <free> -d <dynamic> ; .port; stop()."""

    def __init__(self, dynamic=20):
        exe = shutil.which("coap-server-notls")
        if exe is None:
            raise RuntimeError("coap-server-notls not found: install Debian package libcoap3-bin")
        self.port = free_udp_port()
        self.proc = subprocess.Popen([exe, "-A", "127.0.0.1", "-p", str(self.port),
                                      "-d", str(dynamic), "-v", "0"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._wait_ready()
        except Exception:
            self.stop()
            raise

    def _wait_ready(self):
        deadline = time.monotonic() + 10
        probe = Timing(ack_timeout_ms=100, max_retransmit=0)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("coap-server-notls exited with %d" % self.proc.returncode)
            ep = UdpEndpoint("127.0.0.1", self.port)
            try:
                Client(ep, timing=probe).get("/")
                return
            except CoapError:
                pass
            finally:
                ep.close()
        raise RuntimeError("coap-server-notls did not answer within 10 s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def free_port_pair():
    """P such that UDP and TCP P and P+1 are free (coap-server-openssl takes all four)."""
    import socket
    for _ in range(50):
        p = free_udp_port()
        if p >= 65535:
            continue
        socks = []
        try:
            for port in (p, p + 1):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    s = socket.socket(socket.AF_INET, kind)
                    socks.append(s)
                    s.bind(("127.0.0.1", port))
            return p
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free pair of ports")


class LibcoapDtlsServer:
    """coap-server-openssl with a PSK: plain CoAP on .coap_port, DTLS on .port."""

    def __init__(self, key):
        exe = shutil.which("coap-server-openssl")
        if exe is None:
            raise RuntimeError("coap-server-openssl not found: install libcoap3-bin")
        self.coap_port = free_port_pair()
        self.port = self.coap_port  # probed as plain CoAP until ready
        self.proc = subprocess.Popen([exe, "-A", "127.0.0.1", "-p", str(self.coap_port),
                                      "-k", key, "-v", "0"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            LibcoapServer._wait_ready(self)
        except Exception:
            LibcoapServer.stop(self)
            raise
        self.port = self.coap_port + 1

    def stop(self):
        LibcoapServer.stop(self)
