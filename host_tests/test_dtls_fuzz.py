"""Hypothesis fuzz of the DTLS record and handshake parsers and of the session's receive path:
garbage is dropped or ends in a DtlsError subclass, never anything else (dtls.md §12)."""
import os

from hypothesis import given, settings, strategies as st, HealthCheck

from vmcheck import VirtualClock
from dtls_fakes import FakeEndpoint
from dtls_peer import MiniServer, serve
from enosnb.dtls.errors import DtlsError
from enosnb.dtls.session import DtlsSession
from enosnb.dtls.timers import Timers
from enosnb.dtls import handshake as hs
from enosnb.dtls import record as rl

HERE = os.path.dirname(os.path.abspath(__file__))


def _corpus(name):
    d = os.path.join(HERE, "corpus", name)
    return [open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d))]


RECORDS = _corpus("dtls_record")
HANDSHAKES = _corpus("dtls_handshake")
PSK = bytes(range(16))
QUICK = Timers(100, 400, 2, 1500)


@st.composite
def mutated(draw, seeds):
    """A seed with random byte flips, truncation and insertions, or plain random bytes."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.integers(0, 2))
        if op == 0 and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif op == 1 and data:
            del data[draw(st.integers(0, len(data) - 1)):]
        else:
            data[draw(st.integers(0, len(data))):0] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def test_corpus_seeds_parse():
    for d in RECORDS:
        assert rl.split_records(d, 2 if d[0] == 25 else 0)
    for h in HANDSHAKES:
        assert hs.parse_fragments(h)


@settings(max_examples=500, deadline=None)
@given(mutated(RECORDS), st.integers(0, 4))
def test_record_parser_never_raises_and_stays_inside_the_datagram(data, cid_len):
    total = 0
    for ctype, version, epoch, seq, cid, frag in rl.split_records(data, cid_len):
        assert version in (b"\xfe\xfd", b"\xfe\xff") and 0 <= seq < 1 << 48
        total += 13 + len(frag) + (len(cid) if cid is not None else 0)
    assert total <= len(data)


@settings(max_examples=500, deadline=None)
@given(mutated(HANDSHAKES))
def test_handshake_parsers_raise_only_dtls_errors(data):
    frags = hs.parse_fragments(data)
    if frags is None:
        return
    r = hs.Reassembler()
    for t, length, seq, off, frag in frags:
        assert off + len(frag) <= length
        r.add(t, length, seq, off, frag, 0)
        for parse in (hs.ServerHello, hs.parse_hello_verify_request, hs.parse_server_key_exchange):
            try:
                parse(frag)
            except DtlsError:
                pass
    m = r.take_any((hs.SERVER_HELLO, hs.HELLO_VERIFY_REQUEST, hs.SERVER_KEY_EXCHANGE))
    if m is not None:
        assert len(m[2]) <= hs.MAX_MESSAGE_LEN


def _run_handshake_with(injected, before_real):
    """Handshake against MiniServer with fuzz datagrams injected in front of (or instead of)
    each real server flight."""
    srv = MiniServer(PSK, hint=b"h")
    real = serve(srv)
    queue = list(injected)

    def responder(data, ep):
        if queue:
            ep.push(queue.pop(0))
        if before_real:
            real(data, ep)

    clock = VirtualClock()
    s = DtlsSession(FakeEndpoint(clock, responder), b"Client_identity", PSK, clock=clock,
                    timers=QUICK)
    try:
        s.handshake()
    except DtlsError:
        return s, False
    return s, True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(RECORDS), min_size=1, max_size=4), st.booleans())
def test_handshake_receive_path_lets_only_dtls_errors_escape(injected, before_real):
    _run_handshake_with(injected, before_real)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(RECORDS), min_size=1, max_size=5))
def test_established_receive_path_drops_garbage_or_raises_dtls_errors(garbage):
    srv = MiniServer(PSK)
    clock = VirtualClock()
    ep = FakeEndpoint(clock, serve(srv))
    s = DtlsSession(ep, b"Client_identity", PSK, clock=clock, timers=QUICK)
    s.handshake()
    for g in garbage:
        ep.push(g)
    try:
        while s.recv(50) is not None:
            pass
    except DtlsError:
        return
    s.send(b"still alive")
    assert s.recv(100) == b"still alive"
