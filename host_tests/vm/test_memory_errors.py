"""A MemoryError anywhere below the app reaches it as itself, not as a link failure
("check the link"), so the app can log it as memory and collect (CPython and the VM)."""
from vmcheck import raises, VirtualClock
from enosnb.coap.client import Client
from enosnb.dtls.session import DtlsSession
from enosnb.dtls.timers import LOOPBACK


class Starved:
    """A datagram endpoint whose buffers cannot be allocated."""
    mtu = 1280

    def __init__(self, on_send=True):
        self.on_send = on_send

    def send(self, data):
        if self.on_send:
            raise MemoryError("memory allocation failed, allocating 512 bytes")

    def recv(self, timeout_ms):
        raise MemoryError("memory allocation failed, allocating 512 bytes")

    def close(self):
        pass


def test_a_memory_error_below_coap_is_not_reported_as_a_broken_link():
    for ep in (Starved(), Starved(on_send=False)):
        c = Client(ep, clock=VirtualClock())
        e = raises(MemoryError, c.post, "/topic/x", b"{}")
        assert "check the link" not in str(e)


def test_a_memory_error_inside_dtls_passes_through_the_session_and_coap():
    s = DtlsSession(Starved(), b"id", bytes(16), clock=VirtualClock(), timers=LOOPBACK)
    raises(MemoryError, s.handshake)
    s = DtlsSession(Starved(on_send=False), b"id", bytes(16), clock=VirtualClock(),
                    timers=LOOPBACK)
    raises(MemoryError, s.handshake)
