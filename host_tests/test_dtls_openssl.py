"""Our DTLS client against `openssl s_server -dtls1_2 -nocert -psk` on 127.0.0.1 (dtls.md §18.2):
both suites, with and without a hint, data both ways, resumption, wrong key."""
import subprocess
import time

import pytest

from enosnb.dtls.errors import DtlsTimeout
from enosnb.dtls.session import DtlsSession
from enosnb.dtls.timers import Timers
from enosnb.udp import UdpEndpoint
from tools.netutil import Process, free_udp_port

KEY = bytes(range(16))
FAST = Timers(initial_ms=300, cap_ms=1200, max_retransmit=4, deadline_ms=4000)


class SServer(Process):
    """openssl s_server in DTLS PSK mode; its output is collected line by line."""

    def __init__(self, cipher, naccept=1, hint=None, key=KEY):
        self.port = free_udp_port()
        cmd = ["openssl", "s_server", "-dtls1_2", "-accept", "127.0.0.1:%d" % self.port,
               "-nocert", "-psk", key.hex(), "-cipher", cipher, "-naccept", str(naccept)]
        if hint:
            cmd += ["-psk_hint", hint]
        Process.__init__(self, cmd, lines=True, stdin=subprocess.PIPE)
        self.wait_for(b"ACCEPT")

    def say(self, text):
        self.proc.stdin.write(text)
        self.proc.stdin.flush()


@pytest.fixture
def sserver():
    servers = []

    def start(*args, **kw):
        servers.append(SServer(*args, **kw))
        return servers[-1]
    yield start
    for s in servers:
        s.stop()


@pytest.mark.parametrize("cipher,suite,hint", [
    ("PSK-AES128-CCM8", 0xC0A8, None),
    ("PSK-AES128-CCM8", 0xC0A8, "myhint"),
    ("PSK-AES128-CBC-SHA256", 0x00AE, "myhint"),
])
def test_handshake_and_data_both_ways_with_openssl(sserver, cipher, suite, hint):
    srv = sserver(cipher, hint=hint)
    s = DtlsSession(UdpEndpoint("127.0.0.1", srv.port), b"Client_identity", KEY, timers=FAST)
    s.handshake()
    assert s.suite == suite and len(s.session_id) == 32
    assert s.psk_identity_hint == (hint.encode() if hint else None)
    s.send(b"hello from enosnb\n")
    srv.wait_for(b"hello from enosnb")
    srv.say(b"hello from openssl\n")
    assert s.recv(3000) == b"hello from openssl\n"
    s.close()
    srv.wait_for(b"DONE")


def test_resumption_with_openssl_after_save_and_restore(sserver):
    srv = sserver("PSK-AES128-CCM8", naccept=2)
    first = DtlsSession(UdpEndpoint("127.0.0.1", srv.port), b"Client_identity", KEY, timers=FAST)
    first.handshake()
    first.send(b"first connection\n")
    srv.wait_for(b"first connection")
    blob = first.save()
    first.close()
    srv.wait_for(b"DONE")
    again = DtlsSession.restore(UdpEndpoint("127.0.0.1", srv.port), b"Client_identity", KEY,
                                blob, timers=FAST)
    again.resume()
    assert again.resumed
    again.send(b"resumed connection\n")
    srv.wait_for(b"resumed connection")
    srv.wait_for(b"Reused session-id")
    srv.say(b"welcome back\n")
    assert again.recv(3000) == b"welcome back\n"
    again.close()


def test_wrong_key_against_openssl_is_a_bounded_timeout(sserver):
    srv = sserver("PSK-AES128-CCM8")
    s = DtlsSession(UdpEndpoint("127.0.0.1", srv.port), b"Client_identity", b"another key 1234",
                    timers=FAST)
    start = time.monotonic()
    with pytest.raises(DtlsTimeout) as e:
        s.handshake()
    assert time.monotonic() - start < FAST.deadline_ms / 1000 + 1.0
    assert "check the PSK and identity" in str(e.value)
    s.close()
