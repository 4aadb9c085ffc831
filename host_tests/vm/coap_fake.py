"""An in-memory datagram endpoint on a virtual clock, with a scripted CoAP server behind it.

Used by test_coap_client (CPython and the MicroPython VM). recv() moves the virtual clock:
to the due time of the next queued datagram, or to the end of the timeout.
"""
from enosnb.coap.message import ACK, CON, Message, decode


class FakeEndpoint:
    def __init__(self, clock, handler=None, mtu=1280):
        self.clock = clock
        self.mtu = mtu
        self.handler = handler  # handler(request Message, endpoint) on every datagram sent
        self.sent = []          # (time_ms, datagram)
        self.inbox = []         # (due_ms, seq, datagram)
        self._seq = 0
        self.fail_send = None

    def deliver(self, data, delay_ms=0):
        if isinstance(data, Message):
            data = data.encode()
        self._seq += 1
        self.inbox.append((self.clock.now + delay_ms, self._seq, data))

    def send(self, data):
        if self.fail_send is not None:
            raise self.fail_send
        self.sent.append((self.clock.now, bytes(data)))
        if self.handler is not None:
            self.handler(decode(data), self)

    def recv(self, timeout_ms):
        deadline = self.clock.now + max(0, timeout_ms)
        best = None
        for item in self.inbox:
            if item[0] <= deadline and (best is None or item[:2] < best[:2]):
                best = item
        if best is None:
            self.clock.now = deadline
            return None
        self.inbox.remove(best)
        if best[0] > self.clock.now:
            self.clock.now = best[0]
        return best[2]

    def close(self):
        pass

    def sent_messages(self):
        return [decode(d) for _, d in self.sent]

    def requests(self):
        return [m for m in self.sent_messages() if m.code != 0 and m.code < 32]


def reply(req, code, payload=b"", options=(), mtype=ACK, mid=None, token=None):
    """A response to req: piggybacked in an ACK by default."""
    m = Message(mtype, code, req.mid if mid is None else mid,
                req.token if token is None else token, payload)
    for n, v in options:
        m.add_option(n, v)
    return m


def empty(mtype, mid):
    return Message(mtype, 0, mid)


def con_response(req, code, payload=b"", mid=0x7000):
    return reply(req, code, payload, mtype=CON, mid=mid)
