"""Test helpers for the DTLS client: an in-memory datagram endpoint driven by a VirtualClock.

Runs under pytest and in the MicroPython VM. `responder(sent_datagram, endpoint)` is called for
every datagram the client sends and may queue answers with endpoint.push().
"""


class FakeEndpoint:
    def __init__(self, clock, responder=None, mtu=1280):
        self.clock = clock
        self.responder = responder
        self.mtu = mtu
        self.sent = []
        self.sent_at = []
        self.inbox = []
        self.closed = False
        self.refuse = False

    def push(self, data, delay_ms=0):
        self.inbox.append((self.clock.ticks_ms() + delay_ms, bytes(data)))

    def send(self, data):
        self.sent.append(bytes(data))
        self.sent_at.append(self.clock.ticks_ms())
        if self.responder is not None:
            self.responder(bytes(data), self)

    def recv(self, timeout_ms):
        if self.refuse:
            raise OSError(111, "ECONNREFUSED")
        end = self.clock.ticks_ms() + timeout_ms
        if self.inbox:
            at, data = self.inbox[0]
            if at <= end:
                if at > self.clock.ticks_ms():
                    self.clock.now = at
                self.inbox.pop(0)
                return data
        self.clock.now = end
        return None

    def close(self):
        self.closed = True


def records_of(datagram):
    """[(type, epoch, seq, length)] of a datagram, for assertions."""
    out = []
    p = 0
    while p + 13 <= len(datagram):
        n = (datagram[p + 11] << 8) | datagram[p + 12]
        out.append((datagram[p], (datagram[p + 3] << 8) | datagram[p + 4],
                    int.from_bytes(datagram[p + 5:p + 11], "big"), n))
        p += 13 + n
    return out
