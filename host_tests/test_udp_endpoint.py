"""enosnb.udp.UdpEndpoint on CPython: a connected socket on 127.0.0.1 that meets the datagram
endpoint contract (send, recv(timeout_ms) -> bytes or None, mtu, close)."""
import socket
import time

import pytest

from enosnb.udp import UdpEndpoint
from tools.netutil import free_udp_port, udp_socket


@pytest.fixture
def peer():
    with udp_socket(2) as s:
        yield s


def test_datagrams_go_both_ways_and_are_counted(peer):
    with UdpEndpoint("127.0.0.1", peer.getsockname()[1]) as ep:
        ep.send(b"ping")
        data, addr = peer.recvfrom(100)
        assert data == b"ping" and addr[1] == ep.local_port()
        peer.sendto(b"pong", addr)
        assert ep.recv(1000) == b"pong"
        assert (ep.datagrams_sent, ep.bytes_sent, ep.datagrams_received) == (1, 4, 1)


def test_recv_returns_none_when_the_time_runs_out(peer):
    with UdpEndpoint("127.0.0.1", peer.getsockname()[1]) as ep:
        t0 = time.monotonic()
        assert ep.recv(50) is None
        assert time.monotonic() - t0 >= 0.04
        assert ep.recv(0) is None


def test_datagrams_from_other_addresses_are_not_delivered(peer):
    with UdpEndpoint("127.0.0.1", peer.getsockname()[1]) as ep:
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            other.sendto(b"intruder", ("127.0.0.1", ep.local_port()))
        finally:
            other.close()
        assert ep.recv(100) is None


def test_refused_port_counts_as_nothing_arrived_and_send_still_works():
    port = free_udp_port()  # nobody listens: the kernel answers with ICMP port unreachable
    with UdpEndpoint("127.0.0.1", port) as ep:
        ep.send(b"a")
        t0 = time.monotonic()
        assert ep.recv(100) is None
        assert time.monotonic() - t0 >= 0.08  # waited to the deadline, no exception
        ep.send(b"b")
        ep.send(b"c")
        assert ep.datagrams_sent == 3


def test_datagram_larger_than_mtu_is_dropped(peer):
    with UdpEndpoint("127.0.0.1", peer.getsockname()[1], mtu=16) as ep:
        ep.send(b"x")
        _, addr = peer.recvfrom(100)
        peer.sendto(b"y" * 17, addr)
        peer.sendto(b"z" * 16, addr)
        assert ep.recv(1000) == b"z" * 16


def test_fixed_local_port_is_used(peer):
    port = free_udp_port()
    with UdpEndpoint("127.0.0.1", peer.getsockname()[1], local_port=port) as ep:
        ep.send(b"x")
        assert peer.recvfrom(10)[1][1] == port
