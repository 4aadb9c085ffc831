"""Runs on the MicroPython unix port (host_tests/test_micropython_udp.py starts it): the
device's UdpEndpoint over MicroPython's socket module, then the EnOS client over it against
the local EnOS server, plain CoAP + /auth and DTLS. One result line per check.

    micropython host_tests/mp/udp_enos.py LIB ECHO_PORT REFUSED_PORT PLAIN_PORT DTLS_PORT TIME_MS
"""
import sys

sys.path.insert(0, sys.argv[1])

from enosnb.coap.client import Client, Timing  # noqa: E402
from enosnb.dtls import timers  # noqa: E402
from enosnb.enos.client import EnosClient  # noqa: E402
from enosnb.enos.transport import DtlsTransport, PlainTransport  # noqa: E402
from enosnb.udp import UdpEndpoint  # noqa: E402

ECHO, REFUSED, PLAIN, DTLS, TIME_MS = [int(a) for a in sys.argv[2:7]]
CONFIG = {"productKey": "MuGsF6W4", "deviceKey": "15bBZlRknc",
          "deviceSecret": "ExampleDeviceSecret0123456789abc", "lifetime": 3600}
TIMING = Timing(ack_timeout_ms=1000, max_retransmit=2)


def check(name, ok):
    print("%s %s" % ("ok" if ok else "FAIL", name))


def endpoint_checks():
    ep = UdpEndpoint("127.0.0.1", ECHO, mtu=64)
    check("no getsockname on this port", not hasattr(ep._sock, "getsockname"))
    ep.send(b"ping")
    check("echo comes back", ep.recv(2000) == b"PING")
    ep.send(b"intruder please")  # the peer answers from another socket, then once more
    check("datagram from another address is not delivered", ep.recv(2000) == b"INTRUDER PLEASE")
    ep.send(b"big")
    check("datagram larger than the mtu is dropped", ep.recv(500) is None)
    check("counters", (ep.datagrams_sent, ep.datagrams_received) == (3, 2))
    ep.close()
    ep = UdpEndpoint("127.0.0.1", REFUSED)
    ep.send(b"x")
    check("refused port counts as nothing arrived", ep.recv(200) is None)
    ep.send(b"y")
    check("send after a refusal still works", ep.datagrams_sent == 2)
    ep.close()


def report(name, transport, value):
    c = EnosClient(transport, CONFIG)
    c.connect()
    reply = c.post_measurepoints({"mp_" + name: value}, TIME_MS)
    c.close()
    check("%s report answered 200" % name, reply.get("code") == 200)


def client(ep):
    return Client(ep, timing=TIMING)


endpoint_checks()
report("plain", PlainTransport(lambda: UdpEndpoint("127.0.0.1", PLAIN), client), 1.5)
report("dtls", DtlsTransport(lambda: UdpEndpoint("127.0.0.1", DTLS), client,
                             timers=timers.LOOPBACK), 2.5)
print("done")
