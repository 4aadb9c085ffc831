"""What one EnOS measurement report costs on the wire, against the local EnOS server.

Counts UDP payload datagrams and bytes at the device's endpoint (both directions) for:
plain mode (POST /auth, then the report), DTLS with a full handshake then the report, and
a wake from deep sleep that resumes the saved DTLS session, with and without the server's
HelloVerifyRequest cookie round trip. The report is the §17 reference body.
"""
import tempfile

from enosnb.coap.client import Client, Timing
from enosnb.dtls import timers
from enosnb.enos import bodies
from enosnb.enos.client import EnosClient
from enosnb.enos.transport import DtlsTransport, PlainTransport
from enosnb.udp import UdpEndpoint
from tools.enos_server.server import EnosServer

CFG = {"productKey": "MuGsF6W4", "deviceKey": "15bBZlRknc",
       "deviceSecret": "ExampleDeviceSecret0123456789abc", "lifetime": 3600}
POINTS = {"temp": 21.5}
TIME_MS = 1764115200000
TIMING = Timing(ack_timeout_ms=1000, max_retransmit=2)


class Counted:
    """Makes UdpEndpoints and keeps them, to sum their counters afterwards."""

    def __init__(self, port):
        self.port = port
        self.made = []

    def __call__(self):
        ep = UdpEndpoint("127.0.0.1", self.port)
        self.made.append(ep)
        return ep

    def totals(self):
        return (sum(e.datagrams_sent + e.datagrams_received for e in self.made),
                sum(e.bytes_sent + e.bytes_received for e in self.made))


def _client(transport):
    return EnosClient(transport, CFG)


def _report(c):
    c.post_measurepoints(POINTS, TIME_MS)


def _dtls(srv, eps):
    return DtlsTransport(eps, lambda ep: Client(ep, timing=TIMING), timers=timers.LOOPBACK)


def _measure(hello_verify):
    with tempfile.TemporaryDirectory() as d:
        srv = EnosServer(db_path=d + "/b.sqlite", port=0, dtls_port=0, log=None,
                         hello_verify=hello_verify).start()
        try:
            out = {}
            eps = Counted(srv.port)
            c = _client(PlainTransport(eps, lambda ep: Client(ep, timing=TIMING)))
            c.connect()
            _report(c)
            out["plain"] = eps.totals()
            c.close()
            eps = Counted(srv.dtls_port)
            c = _client(_dtls(srv, eps))
            c.connect()
            _report(c)
            out["full"] = eps.totals()
            blob = c.save_session()
            c.close()
            eps = Counted(srv.dtls_port)
            c = _client(_dtls(srv, eps))
            c.resume_session(blob)
            _report(c)
            out["resumed"] = eps.totals()
            c.close()
            return out
        finally:
            srv.stop()


def main():
    print("enos.reference_body: %d bytes" % len(bodies.measurepoints("1", POINTS, TIME_MS)))
    with_hv = _measure(True)
    without = _measure(False)
    print("enos.plain_auth_and_report: %d datagrams" % with_hv["plain"][0])
    print("enos.plain_auth_and_report_bytes: %d bytes" % with_hv["plain"][1])
    print("enos.dtls_full_handshake_and_report: %d datagrams" % with_hv["full"][0])
    print("enos.dtls_full_handshake_and_report_bytes: %d bytes" % with_hv["full"][1])
    print("enos.dtls_resumed_report: %d datagrams" % with_hv["resumed"][0])
    print("enos.dtls_resumed_report_bytes: %d bytes" % with_hv["resumed"][1])
    print("enos.dtls_resumed_report_no_hvr: %d datagrams" % without["resumed"][0])
    print("enos.dtls_resumed_report_no_hvr_bytes: %d bytes" % without["resumed"][1])
    print("enos.dtls_full_handshake_and_report_no_hvr: %d datagrams" % without["full"][0])


if __name__ == "__main__":
    import sys
    sys.path[:0] = ["firmware/lib", "tools/host", "."]
    main()
