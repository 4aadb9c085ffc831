"""Host datagram endpoint: one connected UDP socket (ARCHITECTURE "Datagram endpoint").

Works with the socket module of CPython and of MicroPython (ESP32 Wi-Fi builds, Unix port).
The socket is connected, so the kernel delivers only datagrams from the peer: this is the
"expected peer" check of RFC 7252 §5.3.2 for the CoAP client above it.

On Linux a connected UDP socket reports an ICMP port-unreachable from an earlier datagram
as ECONNREFUSED on the next call. Nothing arrived in that case, so recv keeps waiting until
its deadline, and send retries once because the error belonged to an earlier datagram.
"""
import errno
import socket

try:
    import select
except ImportError:
    select = None

from enosnb.clock import SYSTEM

_ECONNREFUSED = getattr(errno, "ECONNREFUSED", 111)


class UdpEndpoint:
    def __init__(self, host, port, mtu=1280, local_port=0, clock=SYSTEM):
        self.mtu = mtu
        self.datagrams_sent = 0
        self.datagrams_received = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self._clock = clock
        try:
            info = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0]
        except TypeError:  # ports whose getaddrinfo takes only host and port
            info = socket.getaddrinfo(host, port)[0]
        family, addr = info[0], info[-1]
        self.peer = addr
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if local_port:
                any_addr = "::" if family == getattr(socket, "AF_INET6", -1) else "0.0.0.0"
                self._sock.bind(socket.getaddrinfo(any_addr, local_port)[0][-1])
            self._sock.connect(addr)
        except OSError:
            self._sock.close()
            raise
        self._poll = None
        if select is not None and hasattr(select, "poll"):
            self._poll = select.poll()
            self._poll.register(self._sock, select.POLLIN)

    def local_port(self):
        """The UDP port the socket is bound to (CPython only: MicroPython has no getsockname)."""
        return self._sock.getsockname()[1]

    def send(self, data):
        try:
            self._sock.send(data)
        except OSError as e:
            if e.args[0] != _ECONNREFUSED:
                raise
            self._sock.send(data)
        self.datagrams_sent += 1
        self.bytes_sent += len(data)

    def recv(self, timeout_ms):
        clock = self._clock
        deadline = clock.ticks_add(clock.ticks_ms(), max(0, timeout_ms))
        while True:
            left = clock.ticks_diff(deadline, clock.ticks_ms())
            if left < 0:
                left = 0
            if not self._readable(left):
                return None
            try:
                data = self._sock.recv(self.mtu + 1)
            except OSError as e:
                if e.args[0] != _ECONNREFUSED:
                    if self._poll is None:
                        return None  # the settimeout fallback: the time ran out
                    raise
                data = None
            if data is not None and len(data) <= self.mtu:
                self.datagrams_received += 1
                self.bytes_received += len(data)
                return data
            # A refused earlier send or an oversized datagram (not ours to carry): keep waiting.
            if left == 0:
                return None

    def _readable(self, timeout_ms):
        if self._poll is not None:
            return bool(self._poll.poll(timeout_ms))
        self._sock.settimeout(timeout_ms / 1000)
        return True

    def close(self):
        if self._sock is not None:
            if self._poll is not None:
                try:
                    self._poll.unregister(self._sock)
                except (OSError, KeyError, ValueError):
                    pass
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
