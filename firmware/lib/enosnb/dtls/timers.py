"""Handshake retransmission settings (RFC 6347 §4.2.4.1, RFC 7925 §11, dtls.md §8)."""


class Timers:
    """initial_ms doubles on each retransmission up to cap_ms; at most max_retransmit
    retransmissions of one flight; the whole handshake ends after deadline_ms."""

    def __init__(self, initial_ms=9000, cap_ms=60000, max_retransmit=4, deadline_ms=180000):
        self.initial_ms = initial_ms
        self.cap_ms = cap_ms
        self.max_retransmit = max_retransmit
        self.deadline_ms = deadline_ms

    def __repr__(self):
        return "Timers(initial_ms=%d, cap_ms=%d, max_retransmit=%d, deadline_ms=%d)" % (
            self.initial_ms, self.cap_ms, self.max_retransmit, self.deadline_ms)


NBIOT = Timers(9000, 60000, 4, 180000)
LOOPBACK = Timers(1000, 60000, 4, 10000)
