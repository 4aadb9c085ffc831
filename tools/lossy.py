"""A lossy link for tests and benchmarks (CPython only).

LossyRelay: a UDP relay on 127.0.0.1, run by one thread, between clients and a server. Each
datagram, in each direction, is dropped, duplicated, delayed and reordered at the given
rates, drawn from a seeded random generator. Each client address gets its own upstream
socket, so the server sees one peer per client, as it would behind a NAT.

LossyEndpoint: the same faults applied in-process around any datagram endpoint (no thread).

Rates are probabilities per datagram: loss (each copy independently), dup (a second copy),
reorder (the datagram is held back by reorder_ms so later ones overtake it); delay_ms is a
(min, max) uniform one-way delay.
"""
import heapq
import random
import select
import socket
import threading
import time


class LinkModel:
    """The fault model of one direction; also counts what it did."""

    def __init__(self, loss=0.0, dup=0.0, reorder=0.0, delay_ms=(0, 0), reorder_ms=20,
                 rand=None):
        self.loss = loss
        self.dup = dup
        self.reorder = reorder
        self.delay_ms = delay_ms
        self.reorder_ms = reorder_ms
        self.rand = rand or random.Random(0)
        self.passed = self.dropped = self.duplicated = self.reordered = 0

    def schedule(self, now_s):
        """Delivery times (seconds) of the copies of one datagram; empty when all are lost."""
        r = self.rand
        copies = 2 if r.random() < self.dup else 1
        if copies == 2:
            self.duplicated += 1
        out = []
        for i in range(copies):
            if r.random() < self.loss:
                self.dropped += 1
                continue
            d = r.uniform(self.delay_ms[0], self.delay_ms[1]) if self.delay_ms[1] else 0.0
            if r.random() < self.reorder:
                self.reordered += 1
                d += self.reorder_ms
            out.append(now_s + (d + i) / 1000.0)
            self.passed += 1
        return out


class LossyRelay:
    """UDP relay 127.0.0.1:<port> -> target with faults; use as a context manager."""

    def __init__(self, target, loss=0.0, dup=0.0, reorder=0.0, delay_ms=(0, 0), seed=0,
                 loss_up=None, loss_down=None, reorder_ms=20):
        rand = random.Random(seed)
        self.target = target
        self.up = LinkModel(loss if loss_up is None else loss_up, dup, reorder, delay_ms,
                            reorder_ms, random.Random(rand.random()))
        self.down = LinkModel(loss if loss_down is None else loss_down, dup, reorder,
                              delay_ms, reorder_ms, random.Random(rand.random()))
        self._front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._front.bind(("127.0.0.1", 0))
        self.port = self._front.getsockname()[1]
        self._upstream = {}   # client addr -> socket connected to target
        self._client_of = {}  # upstream socket fileno -> client addr
        self._queue = []      # (due_s, seq, socket, data, addr or None)
        self._seq = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lossy-relay", daemon=True)
        self._thread.start()

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    def _push(self, times, sock, data, addr):
        for t in times:
            self._seq += 1
            heapq.heappush(self._queue, (t, self._seq, sock, data, addr))

    def _run(self):
        while not self._stop.is_set():
            now = time.monotonic()
            while self._queue and self._queue[0][0] <= now:
                _, _, sock, data, addr = heapq.heappop(self._queue)
                try:
                    if addr is None:
                        sock.send(data)
                    else:
                        sock.sendto(data, addr)
                except OSError:
                    pass
            wait = 0.05
            if self._queue:
                wait = max(0.0, min(wait, self._queue[0][0] - now))
            socks = [self._front] + list(self._upstream.values())
            try:
                readable, _, _ = select.select(socks, [], [], wait)
            except (OSError, ValueError):
                return
            now = time.monotonic()
            for s in readable:
                try:
                    data, addr = s.recvfrom(65535)
                except OSError:
                    continue
                if s is self._front:
                    up = self._upstream.get(addr)
                    if up is None:
                        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        up.bind(("127.0.0.1", 0))
                        up.connect(self.target)
                        self._upstream[addr] = up
                        self._client_of[up.fileno()] = addr
                    self._push(self.up.schedule(now), up, data, None)
                else:
                    client = self._client_of.get(s.fileno())
                    if client is not None:
                        self._push(self.down.schedule(now), self._front, data, client)

    def stop(self):
        self._stop.set()
        self._thread.join(2)
        for s in list(self._upstream.values()) + [self._front]:
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class LossyEndpoint:
    """Wraps a datagram endpoint in-process: faults on send and on recv, seeded."""

    def __init__(self, inner, loss=0.0, dup=0.0, seed=0, loss_up=None, loss_down=None):
        rand = random.Random(seed)
        self.inner = inner
        self.mtu = inner.mtu
        self.loss_up = loss if loss_up is None else loss_up
        self.loss_down = loss if loss_down is None else loss_down
        self.dup = dup
        self._rand = random.Random(rand.random())
        self._pending = []

    def send(self, data):
        r = self._rand
        copies = 2 if r.random() < self.dup else 1
        for _ in range(copies):
            if r.random() >= self.loss_up:
                self.inner.send(data)

    def recv(self, timeout_ms):
        if self._pending:
            return self._pending.pop(0)
        deadline = time.monotonic() + timeout_ms / 1000.0
        while True:
            left = int((deadline - time.monotonic()) * 1000)
            data = self.inner.recv(max(0, left))
            if data is None:
                return None
            if self._rand.random() < self.loss_down:
                if left <= 0:
                    return None
                continue
            if self._rand.random() < self.dup:
                self._pending.append(data)
            return data

    def close(self):
        self.inner.close()
