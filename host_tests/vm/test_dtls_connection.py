# The warm path's DTLS: a DtlsConnection restored from the state saved before deep sleep, with
# none of the handshake code (dtls/connection.py; enosnb.link uses it when the saved session
# may be used as is). What it does with records a server sends it.
from vmcheck import VirtualClock
from dtls_fakes import FakeEndpoint
from dtls_peer import MiniServer, serve
from test_dtls_handshake_replay import ID, PSK, _handshaken

from enosnb.dtls.connection import DtlsConnection
from enosnb.dtls import handshake as hs


def _restored():
    """(server, connection, endpoint): a connection saved after a full handshake and restored
    over a fresh endpoint to the same server, as after deep sleep."""
    srv = MiniServer(PSK, echo=False)
    s, ep, clock = _handshaken(srv)
    blob = s.save()
    ep2 = FakeEndpoint(clock, serve(srv))
    return srv, DtlsConnection.restore(ep2, ID, PSK, blob, clock=clock), ep2


def _hs_header(t=hs.HELLO_REQUEST, length=0, seq=0, off=0, flen=0):
    return bytes((t,)) + hs.u24(length) + hs.u16(seq) + hs.u24(off) + hs.u24(flen)


def test_a_restored_connection_refuses_renegotiation_with_a_warning_and_keeps_working():
    srv, c, ep = _restored()
    assert type(c) is DtlsConnection and c.established
    # Any message_seq: a server counts on from its handshake.
    ep.push(srv._rec(22, 1, _hs_header(seq=0x0102)))
    assert c.recv(100) is None
    assert srv.alerts_in == [(1, 100)]                    # warning no_renegotiation
    ep.push(srv.app(b"still here"))
    assert c.recv(100) == b"still here"


def test_a_restored_connection_ignores_handshake_messages_that_are_not_a_bare_hello_request():
    for frag in (_hs_header(t=hs.CLIENT_HELLO),           # another type, empty
                 _hs_header(t=hs.FINISHED),
                 _hs_header(length=1, flen=1) + b"\x00",  # a HelloRequest with a body
                 _hs_header(length=1),                    # a length but no body
                 _hs_header(length=0x10000),
                 _hs_header(off=0x10000),                 # a fragment offset
                 _hs_header(off=1),
                 _hs_header(flen=1)):                     # a fragment length
        srv, c, ep = _restored()
        n = len(ep.sent)
        ep.push(srv._rec(22, 1, frag))
        ep.push(srv.app(b"data"))
        assert c.recv(100) == b"data", frag
        assert srv.alerts_in == [] and len(ep.sent) == n, frag


def test_a_restored_connection_drops_a_change_cipher_spec_and_reads_on():
    srv, c, ep = _restored()
    ep.push(srv._rec(20, 0, b"\x01") + srv._rec(20, 1, b"\x01") + srv.app(b"after"))
    assert c.recv(100) == b"after"
    assert srv.alerts_in == []
