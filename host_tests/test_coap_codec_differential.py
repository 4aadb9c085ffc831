"""Differential tests of the CoAP codec (enosnb.coap.message) against two codecs nobody here
wrote: aiocoap 0.4.17 (aiocoap.Message.encode/decode) and scapy 2.8.0
(scapy.contrib.coap.CoAP). Hypothesis generates messages; both directions are checked:
same bytes out for the same message, same fields in for the same bytes.

Peer quirks, and how the strategies stay inside what each peer supports:
- aiocoap parses the options it knows into typed values and re-encodes them: string options
  (Uri-Host, Uri-Path, Uri-Query, Location-*, Proxy-*) must be valid UTF-8 (it raises
  UnicodeDecodeError otherwise), and uint options (Observe, Uri-Port, Content-Format, Max-Age,
  Hop-Limit, Accept, Size1/2, No-Response, Block1/2) come back in the fewest bytes, so the
  strategies generate those values in minimal form.
- aiocoap keeps options in a dict by number and writes them sorted, keeping the order of a
  repeated option; the comparison is against a stable sort of what was added.
- scapy's option parser always reads one option first: a datagram with no options at all
  decodes as a bogus option 0 (and with a payload, the 0xFF marker is read as a delta-15
  option). Messages decoded by scapy therefore carry at least one option.
- scapy sorts options with list.sort (stable on CPython), names the options it knows
  ("Uri-Path"...) and keeps the payload in a Raw layer after an explicit paymark field.
- Neither peer validates version, TKL or Empty messages; only well-formed messages are
  generated here (the fuzz tests cover malformed ones).
"""
import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiocoap
from aiocoap import optiontypes
from aiocoap.numbers import Code, Type
from scapy.contrib.coap import CoAP, coap_options
from scapy.packet import Raw

from enosnb.coap import options as O
from enosnb.coap.message import Message, decode

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

STRING_OPTS = (O.URI_HOST, O.LOCATION_PATH, O.URI_PATH, O.URI_QUERY, O.LOCATION_QUERY,
               O.PROXY_URI, O.PROXY_SCHEME)
UINT_OPTS = (O.OBSERVE, O.URI_PORT, O.CONTENT_FORMAT, 13, O.MAX_AGE, 16, O.ACCEPT, O.SIZE2,
             O.SIZE1, O.NO_RESPONSE)
BLOCK_OPTS = (O.BLOCK1, O.BLOCK2)
OPAQUE_OPTS = (O.IF_MATCH, O.ETAG, O.IF_NONE_MATCH, 9, 19, 21, 31, 252, 292, 548,
               O.ENOS_TOPIC, O.ENOS_PAYLOAD, 2101)


def _value_bytes(max_size):
    # Mostly short values, sometimes long enough for the 13 and 14 length forms.
    return st.one_of(st.binary(max_size=12), st.binary(min_size=13, max_size=max_size))


def option_strategy():
    string = st.tuples(st.sampled_from(STRING_OPTS),
                       st.text(max_size=40).map(lambda s: s.encode()).filter(lambda b: len(b) <= 270))
    uint = st.tuples(st.sampled_from(UINT_OPTS),
                     st.integers(0, 0xFFFF).map(O.uint_bytes))
    block = st.tuples(st.sampled_from(BLOCK_OPTS),
                      st.builds(O.block_value, st.integers(0, 0xFFFFF), st.booleans(),
                                st.integers(0, 6)).map(O.uint_bytes))
    opaque = st.tuples(st.sampled_from(OPAQUE_OPTS), _value_bytes(1100))
    # Numbers neither peer knows, spread over the delta 13 and 14 forms; aiocoap keeps them
    # as opaque bytes.
    unknown = st.tuples(st.integers(600, 65000).filter(lambda n: n not in (2100, 2101, 2102)),
                        _value_bytes(300))
    return st.one_of(string, uint, block, opaque, unknown)


@st.composite
def messages(draw, min_options=0):
    code = draw(st.integers(1, 255))
    m = Message(draw(st.integers(0, 3)), code, draw(st.integers(0, 0xFFFF)),
                draw(st.binary(max_size=8)), draw(st.binary(max_size=300)))
    for number, value in draw(st.lists(option_strategy(), min_size=min_options, max_size=12)):
        m.add_option(number, value)
    return m


def stable_sorted(opts):
    return [o for _, _, o in sorted((o[0], i, o) for i, o in enumerate(opts))]


def fields(m):
    return (m.mtype, m.code, m.mid, m.token, stable_sorted(m.options), m.payload)


# --- aiocoap --------------------------------------------------------------------------------

def to_aiocoap(m):
    a = aiocoap.Message(code=Code(m.code), payload=m.payload)
    a.mtype = Type(m.mtype)
    a.mid = m.mid
    a.token = m.token
    for number, value in m.options:
        a.opt.add_option(optiontypes.OpaqueOption(number, value))
    return a


def aiocoap_fields(a):
    return (int(a.mtype), int(a.code), a.mid, a.token,
            [(int(o.number), o.encode()) for o in a.opt.option_list()], a.payload)


@SETTINGS
@given(messages())
def test_aiocoap_decodes_our_datagrams_to_the_same_fields(m):
    assert aiocoap_fields(aiocoap.Message.decode(m.encode())) == fields(m)


@SETTINGS
@given(messages())
def test_we_decode_aiocoap_datagrams_to_the_same_fields_and_bytes(m):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        wire = to_aiocoap(m).encode()
    got = decode(wire)
    assert fields(got) == fields(m)
    assert got.encode() == wire
    assert m.encode() == wire


# --- scapy ----------------------------------------------------------------------------------

def to_scapy(m):
    pkt = CoAP(type=m.mtype, code=m.code, msg_id=m.mid, token=m.token,
               options=list(m.options), paymark=b"\xff" if m.payload else b"")
    return pkt / Raw(m.payload) if m.payload else pkt


def scapy_fields(p):
    opts = [(coap_options[1][n] if isinstance(n, str) else n, v) for n, v in p.options]
    payload = bytes(p.payload) if p.paymark else b""
    return (p.type, p.code, p.msg_id, p.token, opts, payload)


@SETTINGS
@given(messages(min_options=1))
def test_scapy_decodes_our_datagrams_to_the_same_fields(m):
    assert scapy_fields(CoAP(m.encode())) == fields(m)


@SETTINGS
@given(messages())
def test_we_decode_scapy_datagrams_to_the_same_fields_and_bytes(m):
    wire = bytes(to_scapy(m))
    got = decode(wire)
    assert fields(got) == fields(m)
    assert m.encode() == wire


def test_peers_agree_on_the_reference_report():
    from host_tests.vm.test_coap_codec import REPORT_REQUEST
    ours = decode(REPORT_REQUEST)
    assert aiocoap_fields(aiocoap.Message.decode(REPORT_REQUEST)) == fields(ours)
    assert scapy_fields(CoAP(REPORT_REQUEST)) == fields(ours)
