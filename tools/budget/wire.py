"""Wire figures of one measurement-point report, taken from the real device code.

The device side is the firmware itself on CPython: EnosClient over DtlsTransport (DtlsSession)
and the CoAP Client, each datagram through a CountingEndpoint that logs direction, size and
time. The server is the local EnOS server (tools/enos_server) on loopback: its DTLS front end
sends a 16-byte cookie on a full handshake and resumes a session it issued without one.

Figures per scenario: datagrams and UDP payload bytes each way, round trips (each time the
device sent and then got an answer), and IP bytes = UDP payload + 28 per datagram (IPv4 and
UDP headers, no options).
"""
import struct
import time

from enosnb.coap.client import Client, Timing
from enosnb.dtls.timers import Timers
from enosnb.enos import identity, rawpoints
from enosnb.enos.client import EnosClient
from enosnb.enos.transport import DtlsTransport
from enosnb.udp import UdpEndpoint
# The same device and report as the VM cycle, so that wire and heap figures describe one report.
from tools.budget.mpvm_cycle import DK, PK, POINTS, REF_MID, SECRET, TIME_MS

IP_UDP_HEADERS = 28
COAP_TIMING = Timing(ack_timeout_ms=2000, ack_random_factor=1.5, max_retransmit=2)
LOOPBACK_TIMERS = Timers(initial_ms=1000, cap_ms=4000, max_retransmit=4, deadline_ms=20000)


class Wire:
    """The datagrams of one scenario: (direction "up"/"down", bytes, seconds since start)."""

    def __init__(self, name):
        self.name = name
        self.events = []
        self.t0 = time.monotonic()

    def add(self, direction, data):
        self.events.append((direction, bytes(data), time.monotonic() - self.t0))

    def figures(self):
        up = [d for k, d, _ in self.events if k == "up"]
        down = [d for k, d, _ in self.events if k == "down"]
        rts, waiting = 0, False
        for k, _, _ in self.events:
            if k == "up":
                waiting = True
            elif waiting:
                rts += 1
                waiting = False
        n = len(up) + len(down)
        b = sum(map(len, up)) + sum(map(len, down))
        return {"datagrams_up": len(up), "datagrams_down": len(down),
                "bytes_up": sum(map(len, up)), "bytes_down": sum(map(len, down)),
                "bytes": b, "ip_bytes": b + IP_UDP_HEADERS * n, "round_trips": rts}


class CountingEndpoint:
    """A datagram endpoint that logs every datagram of the one it wraps into a Wire."""

    def __init__(self, inner, wire):
        self.inner = inner
        self.wire = wire
        self.mtu = inner.mtu

    def send(self, data):
        self.wire.add("up", data)
        self.inner.send(data)

    def recv(self, timeout_ms):
        d = self.inner.recv(timeout_ms)
        if d is not None:
            self.wire.add("down", d)
        return d

    def close(self):
        self.inner.close()


class Device:
    """One device: its EnOS client, and the wire log the next scenario writes to."""

    def __init__(self, host, port):
        self.host = host
        self.port = port
        self.wire = None
        self.ep = None
        self.coap = None
        self.resumed = None
        self.config = {"productKey": PK, "deviceKey": DK, "deviceSecret": SECRET,
                       "lifetime": 3600}
        self.transport = DtlsTransport(self._endpoint, self._client, timers=LOOPBACK_TIMERS)
        self.enos = EnosClient(self.transport, self.config)
        self.reference_id()

    def reference_id(self):
        """The reference report's JSON id "1" (enos-coap.md §17): restore() skips 1000 ids. Without
        it the id is a random start (up to 9 digits, 8 more bytes) or, after a wake, the
        saved one + 1000."""
        self.enos.restore(struct.pack(">BI", 1, (1 - 1000) % 1000000000))

    def _endpoint(self):
        self.ep = CountingEndpoint(UdpEndpoint(self.host, self.port), self.wire)
        return self.ep

    def _client(self, session):
        c = Client(session, timing=COAP_TIMING)
        # The reference message ID 0x1234: restore() skips MID_JUMP (512) IDs.
        c.restore(bytes((1, ((REF_MID - 512) >> 8) & 0xFF, (REF_MID - 512) & 0xFF)))
        self.coap = c
        return c

    def scenario(self, name):
        self.wire = Wire(name)
        return self.wire

    def cold(self):
        """Power-on: full handshake (with cookie), then the reference report."""
        w = self.scenario("cold")
        self.enos.connect()
        self.enos.post_measurepoints(POINTS, TIME_MS)
        return w

    def warm(self):
        """A report on the open session."""
        self.ep.wire = self.scenario("warm")
        self.enos.post_measurepoints(POINTS, TIME_MS)
        return self.wire

    def raw_warm(self):
        """The same point as a raw up_raw report (rawpoints) on the open session."""
        self.ep.wire = self.scenario("raw_warm")
        msg_id = int(self.enos.next_id())
        self.enos.up_raw(rawpoints.encode_post(msg_id, POINTS, TIME_MS, rawpoints.DEMO_TABLE))
        return self.wire

    def sleep(self):
        """Deep sleep: what the device keeps (DTLS blob, CoAP and EnOS counters); the radio
        and socket go away without a close_notify."""
        kept = (self.transport.save(), self.coap.state(), self.enos.state())
        self._power_off()
        return kept

    def wake(self, kept):
        """Restore and resume (abbreviated handshake, Finished + request in one datagram)."""
        blob, coap_state, enos_state = kept
        w = self.scenario("wake")
        ident = identity.psk_identity(PK, DK, identity.MODE_DEVICE, 3600)
        coap = self.transport.resume(ident, identity.psk_key(SECRET), blob)
        self.resumed = self.transport.session.resumed
        coap.restore(coap_state)
        self.enos.restore(enos_state)
        self.reference_id()
        self.enos.attach(coap)
        self.enos.post_measurepoints(POINTS, TIME_MS)
        return w

    def close(self):
        """Power off: no close_notify either."""
        self._power_off()

    def _power_off(self):
        # DtlsTransport.close() would send close_notify, which a sleeping device does not.
        if self.ep is not None:
            self.ep.close()
        self.ep = None
        self.transport.session = None
        self.transport._endpoint = None


def cookie_lengths(w):
    """The cookie length of each HelloVerifyRequest the server sent in a scenario."""
    # Record header 13, handshake header 12, server_version 2, then the cookie length.
    return [d[27] for k, d, _ in w.events
            if k == "down" and len(d) > 27 and d[0] == 22 and d[13] == 3]


def run_local(server):
    """Scenarios against a running EnosServer. Returns {scenario: Wire} plus the notes the
    budget prints as comments."""
    wires = {}
    dev = Device(server.host, server.dtls_port)
    hvr = server.front.hello_verifies
    wires["cold"] = dev.cold()
    cold_hvr = server.front.hello_verifies - hvr
    wires["warm"] = dev.warm()
    wires["raw_warm"] = dev.raw_warm()
    kept = dev.sleep()
    hvr = server.front.hello_verifies
    wires["wake"] = dev.wake(kept)
    notes = ["cold: %d HelloVerifyRequest(s), cookie %s bytes; wake: resumed=%s, %d "
             "HelloVerifyRequest(s) (the local server skips the cookie for a session it "
             "issued, dtls.md §16)" % (
                 cold_hvr, ", ".join(str(n) for n in cookie_lengths(wires["cold"])) or "no",
                 dev.resumed, server.front.hello_verifies - hvr)]
    dev.close()
    return wires, notes
