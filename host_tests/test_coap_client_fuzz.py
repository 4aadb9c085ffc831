"""Whatever arrives, the CoAP client raises only its own errors (Hypothesis).

Datagrams are random bytes, or well-formed messages of random type and code that carry the
request's MID and/or token, in random order, before or instead of a real answer.
"""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coap_fake import FakeEndpoint, reply
from vmcheck import VirtualClock
from enosnb.coap import allcodes as codes
from enosnb.coap import options as opt
from enosnb.coap.client import Client, Timing
from enosnb.coap.errors import CoapError
from enosnb.coap.message import Message

_piece = st.one_of(
    st.binary(max_size=40),
    st.tuples(st.integers(0, 3), st.integers(0, 255), st.booleans(), st.booleans(),
              st.lists(st.tuples(st.sampled_from([opt.BLOCK1, opt.BLOCK2, opt.SIZE2, opt.ETAG,
                                                   opt.CONTENT_FORMAT, 9, 2100, 2102]),
                                 st.binary(max_size=4)), max_size=3),
              st.binary(max_size=30)),
)


def _build(piece, req):
    if isinstance(piece, bytes):
        return piece
    mtype, code, same_mid, same_token, options, payload = piece
    if code == 0:
        return bytes((0x40 | mtype << 4, 0, req.mid >> 8, req.mid & 0xFF))
    m = Message(mtype, code, req.mid if same_mid else (req.mid + 3) & 0xFFFF,
                req.token if same_token else b"\x00\x01\x02\x03", payload)
    for n, v in options:
        m.add_option(n, v)
    return m.encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_piece, max_size=8), st.booleans(), st.sampled_from([b"", b"x" * 600]))
def test_only_coap_errors_escape_whatever_arrives(pieces, answer, payload):
    def handler(req, ep):
        if req.code == 0 or req.code >= 32:
            return
        for i, p in enumerate(pieces):
            ep.deliver(_build(p, req), i)
        if answer:
            b1 = req.uint_option(opt.BLOCK1)
            o = ((opt.BLOCK1, b1),) if b1 is not None else ()
            code = codes.CONTINUE if b1 is not None and b1 & 8 else codes.CHANGED
            ep.deliver(reply(req, code, b"ok", options=o), len(pieces) + 1)

    clock = VirtualClock(0)
    c = Client(FakeEndpoint(clock, handler), clock=clock,
               timing=Timing(max_retransmit=1, exchange_timeout_ms=20000))
    try:
        c.post("/f", payload)
    except CoapError:
        pass
