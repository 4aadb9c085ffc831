"""DTLS client figures (dtls.md §5, §7, §10).

- dtls.clienthello_bytes: our first ClientHello datagram (template: 77 B).
- dtls.handshake_bytes: bytes on the wire, both directions, of a full CCM-8 handshake with
  cookie against `openssl s_server -nocert -psk` (no hint), up to the server's Finished.
- dtls.record_overhead_bytes: datagram bytes added to 5 bytes of application data (CCM-8: 29).
- dtls.saved_state_bytes: size of save()'s blob for deep sleep (with a 32-byte session id).
- dtls.tinydtls.*: the same handshake of our client and of tinydtls's client (aiocoap-client)
  against aiocoap's tinydtls server, through a byte-counting relay, and the ratio ours/theirs
  (target: within 10 %).
- dtls.mpvm.*: a full handshake in the MicroPython VM (tools/benches/mpvm_dtls.py).
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from enosnb.dtls.session import DtlsSession  # noqa: E402
from enosnb.dtls.timers import Timers  # noqa: E402
from enosnb.udp import UdpEndpoint  # noqa: E402
from tools.netutil import Process, free_udp_port  # noqa: E402

KEY = bytes(range(16))
FAST = Timers(300, 1200, 4, 5000)


class Counting:
    """Wraps an endpoint and keeps the size of every datagram in each direction."""

    def __init__(self, ep):
        self.ep = ep
        self.mtu = ep.mtu
        self.out = []
        self.inp = []

    def send(self, data):
        self.out.append(len(data))
        self.ep.send(data)

    def recv(self, timeout_ms):
        d = self.ep.recv(timeout_ms)
        if d is not None:
            self.inp.append(len(d))
        return d

    def close(self):
        self.ep.close()


def openssl_figures():
    port = free_udp_port()
    with Process(["openssl", "s_server", "-dtls1_2", "-accept", "127.0.0.1:%d" % port,
                  "-nocert", "-psk", KEY.hex(), "-cipher", "PSK-AES128-CCM8", "-naccept", "1"],
                 lines=True, stdin=subprocess.PIPE) as server:
        server.wait_for(b"ACCEPT")
        ep = Counting(UdpEndpoint("127.0.0.1", port))
        s = DtlsSession(ep, b"Client_identity", KEY, timers=FAST)
        s.handshake()
        hs_bytes = sum(ep.out) + sum(ep.inp)
        s.send(b"hello")
        print("dtls.clienthello_bytes: %d B" % ep.out[0])
        print("dtls.handshake_bytes: %d B" % hs_bytes)
        print("dtls.handshake_datagrams: %d" % (len(ep.out) - 1 + len(ep.inp)))
        print("dtls.record_overhead_bytes: %d B" % (ep.out[-1] - 5))
        print("dtls.saved_state_bytes: %d B" % len(s.save()))
        s.close()


def _handshake_bytes(log):
    """Bytes of the datagrams before the first one that carries application data."""
    total = 0
    for _, d in log:
        p = 0
        app = False
        while p + 13 <= len(d):
            app = app or d[p] == 23
            p += 13 + ((d[p + 11] << 8) | d[p + 12])
        if app:
            break
        total += len(d)
    return total


def tinydtls_figures():
    sys.path.insert(0, ROOT)
    from tools.dtls_peers import TinydtlsServer, UdpRelay

    key = b"secretPSK"
    with TinydtlsServer(key) as srv:
        with UdpRelay(srv.port) as relay:
            s = DtlsSession(UdpEndpoint("127.0.0.1", relay.port), b"Client_identity", key,
                            timers=FAST)
            s.handshake()
            s.send(b"\x40\x01\x00\x01")
            time.sleep(0.2)
            ours = _handshake_bytes(relay.log)
            s.close()
        with UdpRelay(srv.port) as relay, tempfile.TemporaryDirectory() as tmp:
            creds = os.path.join(tmp, "creds.json")
            with open(creds, "w") as f:
                json.dump({"coaps://127.0.0.1:%d/*" % relay.port: {"dtls": {
                    "psk": {"ascii": key.decode()},
                    "client-identity": {"ascii": "Client_identity"}}}}, f)
            client = os.path.join(os.path.dirname(sys.executable), "aiocoap-client")
            subprocess.run([client, "coaps://127.0.0.1:%d/hello" % relay.port, "--credentials",
                            creds], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=30, cwd=tmp)
            theirs = _handshake_bytes(relay.log)
    print("dtls.tinydtls.ours_handshake_bytes: %d B" % ours)
    print("dtls.tinydtls.tinydtls_handshake_bytes: %d B" % theirs)
    if theirs:
        print("dtls.tinydtls.ratio: %.3f" % (ours / theirs))


def mpvm_figures():
    out = subprocess.run(["node", os.path.join(ROOT, "tools", "mpvm", "run.mjs"), "--script",
                          os.path.join(ROOT, "tools", "benches", "mpvm_dtls.py"), "--steps"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in out.stdout.splitlines() if re.match(r"^dtls\.mpvm\.\S+: ", ln)]
    if out.returncode or not lines:
        raise RuntimeError("VM bench failed: %s" % (out.stderr or out.stdout)[-2000:])
    for ln in lines:
        print(ln)


def main():
    openssl_figures()
    try:
        tinydtls_figures()
    except Exception as e:
        print("# dtls.tinydtls skipped: %s: %s" % (type(e).__name__, e))
    mpvm_figures()


if __name__ == "__main__":
    main()
