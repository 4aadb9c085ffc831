"""The carrier's NAT between the emulated modem and the internet (docs/power.md, "NAT").

An NB-IoT device reaches the internet through the carrier's NAT. Each modem socket has a
binding there (its public source port, here the host UDP socket's port); the binding
lives `timeout` seconds after the last datagram the device sent (RFC 4787 REQ-6: outbound
traffic refreshes it; carriers often keep a binding 20 s to a few minutes, far below
REQ-5's 2 minutes). Once it has expired:
- the next uplink leaves from a new source port, so a server that keys its sessions on the
  client's address (DTLS without Connection ID, EnOS's plain /auth binding) no longer
  recognises the device;
- downlinks still addressed to the old port are dropped, as the carrier's NAT drops them.

timeout None ("none") is a private APN with public addresses: no NAT, the port never
changes. The clock is time.monotonic() plus whatever advance() added: the host twin adds
each deep sleep's requested length, since it sleeps only a scaled fraction of it for real.

ModemEmulator hooks this in one place of its UDP forwarding (uplink(), before sendto, and
_downlink_arrived()); the `rebinds` counter says how many new ports the NAT gave out.
"""
import socket
import time

DEFAULT_TIMEOUT_S = 45.0


def parse_timeout(value):
    """None for "none"/None (no NAT), else seconds as a float > 0."""
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    t = float(value)
    if t <= 0:
        raise ValueError("NAT timeout must be > 0 seconds or 'none'")
    return t


class CarrierNat:
    def __init__(self, timeout=DEFAULT_TIMEOUT_S, clock=time.monotonic):
        self.timeout = parse_timeout(timeout)
        self._clock = clock
        self.skew = 0.0
        self.rebinds = 0
        self._last_out = {}  # id(ModemSocket) -> clock of its last uplink

    def now(self):
        return self._clock() + self.skew

    def advance(self, seconds):
        """Time passes for the NAT that did not pass for real (a scaled deep sleep)."""
        self.skew += max(0.0, seconds)

    def expired(self, s):
        if self.timeout is None:
            return False
        last = self._last_out.get(id(s))
        return last is not None and self.now() - last > self.timeout

    def outbound(self, s):
        """Before an uplink of modem socket s: a new public port if the binding expired."""
        if self.expired(s):
            self._rebind(s)
        self._last_out[id(s)] = self.now()

    def inbound_dropped(self, s):
        """Whether a downlink to s's public port arrives after its binding expired."""
        return self.expired(s)

    def forget(self, s):
        self._last_out.pop(id(s), None)

    def _rebind(self, s):
        host = s.local[0]
        try:
            s.sock.close()
        except OSError:
            pass
        s.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sock.bind((host, 0))
        s.sock.setblocking(False)
        s.local = s.sock.getsockname()
        self.rebinds += 1
