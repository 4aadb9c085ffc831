"""The modem emulator's carrier NAT (tools/modem_emulator/nat.py), through the real modem
drivers: after an idle time longer than the binding's lifetime the device's datagrams leave
from a new source port and downlinks to the old one are lost; without NAT ("none") the port
never changes; traffic within the lifetime keeps the binding."""
import socket

import pytest

from host_tests.test_modem_emulator_drivers import attached, start


class Peer:
    """A UDP server that records each datagram's source address."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]

    def source_of_next(self):
        return self.sock.recvfrom(2048)[1]

    def close(self):
        self.sock.close()


@pytest.fixture
def peer():
    p = Peer()
    yield p
    p.close()


@pytest.mark.parametrize("dialect", ("sim7020", "bc95"))
def test_after_a_long_sleep_the_device_has_a_new_source_port_and_the_old_one_is_dead(
        dialect, peer):
    with start(dialect, nat=45) as emu:
        m = attached(emu, dialect)
        s = m.socket("127.0.0.1", peer.port)
        s.send(b"one")
        first = peer.source_of_next()
        emu.nat.advance(30)  # within the lifetime: same binding, refreshed by the uplink
        s.send(b"two")
        assert peer.source_of_next() == first
        emu.nat.advance(46)
        peer.sock.sendto(b"to the old port", first)  # the NAT drops it
        assert s.recv(300) is None
        s.send(b"three")
        second = peer.source_of_next()
        assert second != first and emu.nat.rebinds == 1
        peer.sock.sendto(b"to the new port", second)
        assert s.recv(3000) == b"to the new port"


def test_without_nat_the_source_port_survives_any_sleep(peer):
    with start("sim7020", nat="none") as emu:
        m = attached(emu, "sim7020")
        s = m.socket("127.0.0.1", peer.port)
        s.send(b"one")
        first = peer.source_of_next()
        emu.nat.advance(86400)
        s.send(b"two")
        assert peer.source_of_next() == first and emu.nat.rebinds == 0
