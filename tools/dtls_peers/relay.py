"""Loopback UDP helpers for DTLS tests: a black hole and a logging, lossy relay
(dtls.md §18.7).

BlackHole swallows every datagram (a server that never answers: timeouts and deadlines).
UdpRelay sits between one client and a server, records every datagram with its direction,
and drops the ones a predicate picks: loss for peers without libcoap's -l, and exact byte
counts of a handshake.
"""
import socket
import threading

from tools.dtls_peers.base import HOST

C2S = "c>s"
S2C = "s>c"


class BlackHole:
    """A bound UDP socket on 127.0.0.1:.port that reads and discards; .received counts."""

    def __init__(self):
        self.host = HOST
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((HOST, 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="blackhole", daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self._sock.recvfrom(65536)
                self.received += 1
            except socket.timeout:
                pass
            except OSError:
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


class UdpRelay:
    """Forwards datagrams between the first client that writes to 127.0.0.1:.port and the
    server at (host, port).

    drop(direction, index, data) -> bool decides per datagram (index counts from 1 in each
    direction separately). .log is the list of (direction, bytes) of every datagram seen,
    dropped ones included; .dropped the list of the dropped ones.
    """

    def __init__(self, server_port, server_host=HOST, drop=None):
        self.host = HOST
        self.server = (server_host, server_port)
        self.drop = drop
        self.log = []
        self.dropped = []
        self._count = {C2S: 0, S2C: 0}
        self._client = None
        self._front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._front.bind((HOST, 0))
        self._front.settimeout(0.05)
        self.port = self._front.getsockname()[1]
        self._back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._back.bind((HOST, 0))
        self._back.settimeout(0.05)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._pump, args=(C2S,), daemon=True),
                         threading.Thread(target=self._pump, args=(S2C,), daemon=True)]

    def _pump(self, direction):
        src = self._front if direction == C2S else self._back
        while not self._stop.is_set():
            try:
                data, addr = src.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                if direction == C2S:
                    self._client = addr
                dest = self.server if direction == C2S else self._client
                self._count[direction] += 1
                index = self._count[direction]
                self.log.append((direction, data))
                lose = self.drop is not None and self.drop(direction, index, data)
                if lose:
                    self.dropped.append((direction, data))
            if lose or dest is None:
                continue
            try:
                (self._back if direction == C2S else self._front).sendto(data, dest)
            except OSError:
                pass

    def bytes(self, direction=None):
        """Total datagram payload bytes seen (dropped included), one direction or both."""
        with self._lock:
            return sum(len(d) for (w, d) in self.log if direction in (None, w))

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self._front.close()
        self._back.close()


def drop_nth(direction, *indices):
    """A drop predicate losing the given datagram numbers (from 1) in one direction."""
    wanted = set(indices)
    return lambda d, i, data: d == direction and i in wanted
