"""DtlsSession driven over an in-memory endpoint and a VirtualClock against a scripted server:
flights, cookies, fragments, reordering, retransmission, alerts, resumption, CID (dtls.md §4-§17)."""
from vmcheck import VirtualClock, raises, unhex
from dtls_fakes import FakeEndpoint, records_of
from dtls_peer import MiniServer, serve

from enosnb.dtls.errors import DtlsError, DtlsAlert, DtlsTimeout, DtlsClosed
from enosnb.dtls.session import DtlsSession
from enosnb.dtls.timers import Timers, LOOPBACK
from enosnb.dtls import handshake as hs
from enosnb.dtls import record as rl

PSK = bytes(range(1, 17))
ID = b"Client_identity"


def _session(server=None, drop=(), timers=LOOPBACK, mtu=1280, psk=PSK, responder=None, **kw):
    """A session over a FakeEndpoint answered by `server` (a MiniServer, losing the client
    datagrams numbered in `drop`) or by a hand-written responder(data, ep)."""
    if responder is None and server:
        responder = serve(server, drop)
    clock = VirtualClock()
    ep = FakeEndpoint(clock, responder, mtu)
    return DtlsSession(ep, ID, psk, clock=clock, timers=timers, **kw), ep, clock


def _handshaken(server=None, **kw):
    """_session() whose handshake with `server` has completed."""
    s, ep, clock = _session(server, **kw)
    s.handshake()
    return s, ep, clock


def _echoes(s, data):
    """`data` sent over the session comes back from the echoing server."""
    s.send(data)
    assert s.recv(1000) == data


def _hs_seqs(datagram):
    """[(msg_type, message_seq)] of the plaintext handshake records of a client datagram."""
    out = []
    for ctype, version, epoch, seq, cid, frag in rl.split_records(datagram):
        if ctype == 22 and epoch == 0:
            out += [(f[0], f[2]) for f in hs.parse_fragments(frag)]
    return out


def test_first_client_hello_is_the_77_byte_template():
    s, ep, clock = _session(None, timers=Timers(1000, 60000, 0, 5000))
    raises(DtlsTimeout, s.handshake)
    ch = ep.sent[0]
    assert len(ch) == 77
    assert ch[:25] == unhex("16feff00000000000000000040010000340000000000000034")
    assert ch[25:27] == b"\xfe\xfd"
    assert ch[59:] == bytes((0, 0, 0, 6, 0xC0, 0xA8, 0x00, 0xAE, 0x00, 0xFF, 1, 0, 0, 4, 0, 0x17, 0, 0))


def test_full_handshake_with_cookie_uses_message_seqs_0_to_3_and_one_datagram_per_flight():
    srv = MiniServer(PSK, hint=b"CoAP")
    s, ep, clock = _handshaken(srv)
    assert len(ep.sent) == 3 and srv.hvr_sent == 1
    assert _hs_seqs(ep.sent[0]) == [(1, 0)]
    assert _hs_seqs(ep.sent[1]) == [(1, 1)]
    assert _hs_seqs(ep.sent[2]) == [(16, 2)]
    assert [(r[0], r[1], r[2]) for r in records_of(ep.sent[2])] == [(22, 0, 2), (20, 0, 3), (22, 1, 0)]
    assert s.psk_identity_hint == b"CoAP" and srv.identities == [ID]
    assert s.suite == 0xC0A8 and s.established
    _echoes(s, b"ping")


def test_each_hello_verify_request_moves_the_next_client_hello_to_the_next_message_seq():
    # A server that rotates its cookie secret sends a second HelloVerifyRequest; the third
    # ClientHello is message_seq 2 (RFC 6347 §4.2.2), the client flight continues at 3 and 4,
    # and both Finished messages verify over a transcript that starts at the last ClientHello.
    srv = MiniServer(PSK, hvrs=2)
    s, ep, clock = _handshaken(srv)
    assert srv.hvr_sent == 2 and srv.hello_seqs == [0, 1, 2]
    assert [_hs_seqs(d) for d in ep.sent[:3]] == [[(1, 0)], [(1, 1)], [(1, 2)]]
    assert _hs_seqs(ep.sent[3]) == [(16, 3)]
    assert srv.handshakes == 1 and s.established
    _echoes(s, b"after two cookies")


def test_handshake_without_cookie_starts_the_transcript_with_the_only_client_hello():
    srv = MiniServer(PSK, cookie=False)
    s, ep, clock = _handshaken(srv)
    assert len(ep.sent) == 2
    assert _hs_seqs(ep.sent[1]) == [(16, 1)]
    _echoes(s, b"x")


def test_cbc_sha256_suite_handshake_and_data():
    srv = MiniServer(PSK, suites=(0x00AE,))
    s, ep, clock = _handshaken(srv)
    assert s.suite == 0x00AE
    _echoes(s, b"over cbc")


def test_fragmented_server_flight_is_reassembled():
    srv = MiniServer(PSK, hint=b"a-longer-identity-hint", fragment=5, split_flight=True)
    s, ep, clock = _handshaken(srv)
    assert s.psk_identity_hint == b"a-longer-identity-hint"
    assert len(ep.sent) == 3 and s.retransmissions == 0


def test_finished_before_change_cipher_spec_is_buffered_not_fatal():
    srv = MiniServer(PSK, fin_before_ccs=True)
    s, ep, clock = _handshaken(srv)
    assert s.retransmissions == 0 and clock.now == 0


def test_retransmission_timer_doubles_and_gives_up_after_the_retry_limit():
    s, ep, clock = _session(None, timers=Timers(1000, 60000, 4, 100000))
    e = raises(DtlsTimeout, s.handshake)
    assert ep.sent_at == [0, 1000, 3000, 7000, 15000]
    assert clock.now == 31000
    assert "server is reachable" in str(e)


def test_retransmission_timer_is_capped():
    s, ep, clock = _session(None, timers=Timers(1000, 3000, 6, 100000))
    raises(DtlsTimeout, s.handshake)
    assert ep.sent_at == [0, 1000, 3000, 6000, 9000, 12000, 15000]


def test_overall_deadline_ends_the_handshake():
    s, ep, clock = _session(None, timers=Timers(1000, 60000, 50, 5000))
    raises(DtlsTimeout, s.handshake)
    assert clock.now == 5000


def test_retransmitted_flight_gets_new_record_sequence_numbers():
    s, ep, clock = _session(None, timers=Timers(1000, 60000, 2, 100000))
    raises(DtlsTimeout, s.handshake)
    assert [records_of(d)[0][2] for d in ep.sent] == [0, 1, 2]
    assert ep.sent[0][13:] == ep.sent[1][13:]


def test_lost_server_flight_is_recovered_by_retransmission():
    srv = MiniServer(PSK)
    s, ep, clock = _handshaken(srv, drop=(2,))
    assert s.retransmissions == 1 and clock.now == 1000


def test_repeated_server_flight_makes_the_client_resend_at_once():
    srv = MiniServer(PSK)
    flights = {}

    def responder(data, ep):
        n = len(ep.sent)
        answers = srv.handle(data)
        flights[n] = answers
        if n == 3:
            for a in flights[2]:
                ep.push(a, 300)  # flight 6 lost; the server repeats flight 4
            return
        for a in answers:
            ep.push(a)

    s, ep, clock = _handshaken(responder=responder)
    assert ep.sent_at[3] == 300
    assert s.retransmissions == 1


def test_wrong_key_is_a_bounded_timeout_that_names_the_psk():
    srv = MiniServer(PSK)
    s, ep, clock = _session(srv, psk=b"0123456789abcdef")
    e = raises(DtlsTimeout, s.handshake)
    assert "check the PSK and identity" in str(e)
    assert clock.now <= LOOPBACK.deadline_ms
    assert "0123456789abcdef" not in str(e) and "0123456789abcdef" not in repr(s)


def test_connection_refused_counts_as_a_lost_flight():
    s, ep, clock = _session(None, timers=Timers(1000, 60000, 3, 100000))
    ep.refuse = True
    raises(DtlsTimeout, s.handshake)
    assert len(ep.sent) == 4 and clock.now == 15000


def test_fatal_alert_from_the_server_raises_dtls_alert():
    def responder(data, ep):
        ep.push(rl.header(21, rl.DTLS12, 0, 0, 2) + b"\x02\x28")

    s, ep, clock = _session(responder=responder)
    e = raises(DtlsAlert, s.handshake)
    assert (e.level, e.description, e.sent) == (2, 40, False)
    assert "handshake_failure" in str(e)
    raises(DtlsError, s.send, b"x")


def test_server_without_a_shared_suite_fails_with_handshake_failure():
    srv = MiniServer(PSK, suites=(0x00AE,))
    s, ep, clock = _session(srv, suites=(0xC0A8,))
    e = raises(DtlsAlert, s.handshake)
    assert e.description == 40


def _answer_with(msgs):
    """A responder that answers every ClientHello with the given handshake messages."""
    def responder(data, ep):
        out = b""
        for i, m in enumerate(msgs):
            out += rl.header(22, rl.DTLS12, 0, i, len(m)) + m
        ep.push(out)
    return responder


def _server_hello(version=b"\xfe\xfd", suite=0xC0A8, ext=None, seq=0):
    if ext is None:
        ext = hs.extension(23, b"")
    body = version + bytes(32) + b"\x00" + hs.u16(suite) + b"\x00" + hs.u16(len(ext)) + ext
    return hs.message(hs.SERVER_HELLO, seq, body)


def _alert_sent(ep):
    last = ep.sent[-1]
    return (last[0], last[13:15])


def _fails_with(msgs, description, **kw):
    clock = VirtualClock()
    ep = FakeEndpoint(clock, _answer_with(msgs))
    s = DtlsSession(ep, ID, PSK, clock=clock, timers=LOOPBACK, **kw)
    e = raises(DtlsAlert, s.handshake)
    assert (e.level, e.description, e.sent) == (2, description, True), str(e)
    assert _alert_sent(ep) == (21, bytes((2, description)))


def test_unexpected_message_in_the_server_flight_gets_unexpected_message_alert():
    _fails_with([_server_hello(seq=0), hs.message(hs.FINISHED, 1, bytes(12))], 10)
    _fails_with([_server_hello(seq=0), hs.message(hs.HELLO_VERIFY_REQUEST, 1, b"\xfe\xff\x00")], 10)


def test_server_flight_without_its_server_hello_waits_for_it_and_times_out():
    clock = VirtualClock()
    ep = FakeEndpoint(clock, _answer_with([hs.message(hs.SERVER_HELLO_DONE, 1, b"")]))
    s = DtlsSession(ep, ID, PSK, clock=clock, timers=LOOPBACK)
    raises(DtlsTimeout, s.handshake)
    assert all(d[0] == 22 for d in ep.sent)


def test_server_hello_checks_version_suite_and_extensions():
    _fails_with([_server_hello(version=b"\xfe\xff")], 70)
    _fails_with([_server_hello(suite=0x00AE)], 47, suites=(0xC0A8,))
    _fails_with([_server_hello(ext=hs.extension(13, b"\x00\x00"))], 110)
    _fails_with([_server_hello(ext=hs.extension(0xFF01, b"\x01\x00"))], 40)
    _fails_with([_server_hello(ext=b"")], 40, require_ems=True)


def test_malformed_server_hello_gets_decode_error():
    _fails_with([hs.message(hs.SERVER_HELLO, 0, b"\xfe\xfd" + bytes(10))], 50)
    body = b"\xfe\xfd" + bytes(32) + b"\x00\xc0\xa8\x00" + b"\x00\x09\x00\x17\x00\x05"
    _fails_with([hs.message(hs.SERVER_HELLO, 0, body)], 50)


def test_server_without_ems_falls_back_to_the_classic_master_secret():
    srv = MiniServer(PSK, ems=False)
    s, ep, clock = _handshaken(srv)
    _echoes(s, b"classic")


def test_oversize_and_garbage_datagrams_are_dropped_and_the_handshake_completes():
    srv = MiniServer(PSK)
    real = serve(srv)

    def responder(data, ep):
        huge = bytes((2,)) + b"\xff\xff\xff" + b"\x00\x01" + b"\x00\x00\x00" + b"\x00\x00\x04" + b"abcd"
        ep.push(rl.header(22, rl.DTLS12, 0, 9, len(huge)) + huge)
        ep.push(b"\x16\xfe\xfd\x00")
        ep.push(rl.header(22, rl.DTLS12, 0, 9, 500) + b"short")
        ep.push(rl.header(23, rl.DTLS12, 7, 0, 3) + b"abc")
        real(data, ep)

    s, ep, clock = _handshaken(responder=responder)
    assert s.established


def test_replayed_and_tampered_application_records_are_dropped():
    srv = MiniServer(PSK, echo=False)
    s, ep, clock = _handshaken(srv)
    rec = srv.app(b"once")
    ep.push(rec)
    ep.push(rec)
    bad = bytearray(srv.app(b"tampered"))
    bad[-1] ^= 1
    ep.push(bytes(bad))
    assert s.recv(1000) == b"once"
    assert s.recv(1000) is None
    ep.push(srv.app(b"later"))
    assert s.recv(1000) == b"later"


def test_hello_request_after_the_handshake_gets_no_renegotiation():
    srv = MiniServer(PSK, echo=False)
    s, ep, clock = _handshaken(srv)
    ep.push(srv._rec(22, 1, hs.message(hs.HELLO_REQUEST, 9, b"")))
    assert s.recv(500) is None
    assert srv.alerts_in == [(1, 100)]


def test_close_notify_both_ways():
    srv = MiniServer(PSK)
    s, ep, clock = _handshaken(srv)
    s.close()
    assert srv.alerts_in == [(1, 0)] and ep.closed
    raises(DtlsClosed, s.recv, 100)
    srv2 = MiniServer(PSK)
    s3, ep3, clock3 = _session(srv2)
    s3.handshake()
    ep3.push(srv2.alert(1, 0))
    e = raises(DtlsClosed, s3.recv, 100)
    assert e.description == 0 and not e.sent


def test_session_is_a_datagram_endpoint_with_payload_mtu():
    s, ep, clock = _session(MiniServer(PSK), mtu=512)
    assert s.mtu == 447
    s.handshake()
    assert s.mtu == 483
    raises(DtlsError, s.send, bytes(484))
    s.send(bytes(483))
    assert len(ep.sent[-1]) == 512
    assert s.datagrams_sent == len(ep.sent)
    s2, ep2, clock2 = _session(MiniServer(PSK, suites=(0x00AE,)), mtu=512)
    s2.handshake()
    assert s2.mtu == 447
    s2.send(bytes(447))
    assert len(ep2.sent[-1]) <= 512


def test_send_before_handshake_is_an_error():
    s, ep, clock = _session(None)
    raises(DtlsError, s.send, b"x")
    raises(DtlsError, s.recv, 10)


def test_secrets_never_show_in_repr_or_errors():
    psk = b"\x5a" * 16
    s, ep, clock = _handshaken(MiniServer(psk), psk=psk)
    blob = s.save()
    for text in (repr(s), repr(s._w_cipher), repr(s._r_cipher)):
        assert "5a5a" not in text and "ZZZZ" not in text
    e = raises(DtlsError, DtlsSession.restore, ep, ID, psk, blob[:-3])
    assert "ZZZZ" not in str(e)


def _resumable():
    srv = MiniServer(PSK)
    s, ep, clock = _handshaken(srv)
    _echoes(s, b"first")
    return srv, s.save(), clock


def _restored():
    """(server, session, endpoint): a session saved after a full handshake and an echo with a
    MiniServer, restored over a fresh endpoint to the same server, as after deep sleep."""
    srv, blob, clock = _resumable()
    ep = FakeEndpoint(clock, serve(srv))
    return srv, DtlsSession.restore(ep, ID, PSK, blob, clock=clock, timers=LOOPBACK), ep


def test_restored_session_sends_and_receives_at_once():
    srv, s, ep = _restored()
    _echoes(s, b"after deep sleep")
    assert len(ep.sent) == 1


def test_resumption_costs_two_round_trips_with_the_final_flight_in_the_first_data_datagram():
    srv, s, ep = _restored()
    srv.cookie = False
    s.resume()
    assert s.resumed and len(ep.sent) == 1
    s.send(b"report")
    assert [r[0] for r in records_of(ep.sent[1])] == [20, 22, 23]
    assert s.recv(1000) == b"report"
    assert len(ep.sent) == 2 and srv.resumptions == 1


def test_resumption_with_cookie_and_flush_then_recv():
    srv, s, ep = _restored()
    s.handshake()
    assert s.resumed
    s.flush()
    assert [r[0] for r in records_of(ep.sent[-1])] == [20, 22]
    ep.push(srv.app(b"server first"))
    assert s.recv(1000) == b"server first"


def test_resumed_client_resends_its_final_flight_when_the_server_repeats():
    srv, s, ep = _restored()
    srv.cookie = False
    s.resume()
    s.flush()
    for d in srv.last_flight:
        ep.push(d)
    assert s.recv(200) is None
    assert [r[0] for r in records_of(ep.sent[-1])] == [20, 22]
    assert len(ep.sent) == 3


def test_resumption_falls_back_to_a_full_handshake_when_the_server_forgot():
    srv, s, ep = _restored()
    srv.cache = {}
    s.resume()
    assert s.resumed is False and srv.handshakes == 2
    _echoes(s, b"y")


def test_corrupt_saved_state_is_a_dtls_error():
    srv, blob, clock = _resumable()
    ep = FakeEndpoint(clock)
    raises(DtlsError, DtlsSession.restore, ep, ID, PSK, b"")
    raises(DtlsError, DtlsSession.restore, ep, ID, PSK, b"\x09" + blob[1:])
    raises(DtlsError, DtlsSession.restore, ep, ID, PSK, blob + b"\x00")


def test_connection_id_is_negotiated_and_used_when_the_server_supports_it():
    srv = MiniServer(PSK, cid=b"\xc1\xd2\xe3")
    s, ep, clock = _handshaken(srv, cid=True)
    assert len(ep.sent[0]) == 82
    assert s.cid == b"\xc1\xd2\xe3"
    assert records_of(ep.sent[2])[2][0] == 25
    s.send(b"with cid")
    assert ep.sent[-1][0] == 25 and ep.sent[-1][11:14] == b"\xc1\xd2\xe3"
    assert s.recv(1000) == b"with cid" and srv.app_in == [b"with cid"]
    assert s.mtu == 1280 - 13 - 4 - 16
    blob = s.save()
    s2 = DtlsSession.restore(FakeEndpoint(clock, serve(srv)), ID, PSK, blob, clock=clock,
                             timers=LOOPBACK)
    assert s2.cid == b"\xc1\xd2\xe3"
    _echoes(s2, b"after restore")


def test_connection_id_is_not_used_when_the_server_ignores_it():
    srv = MiniServer(PSK)
    s, ep, clock = _handshaken(srv, cid=True)
    assert s.cid is None
    s.send(b"plain")
    assert ep.sent[-1][0] == 23 and s.recv(1000) == b"plain"


def test_lost_server_hello_datagram_is_recovered_when_the_rest_of_the_flight_arrived():
    srv = MiniServer(PSK, hint=b"hint", split_flight=True)
    lost = []

    def responder(data, ep):
        answers = srv.handle(data)
        if len(ep.sent) == 2 and not lost:
            lost.append(answers.pop(0))  # the ServerHello datagram of flight 4
        for a in answers:
            ep.push(a)

    s, ep, clock = _handshaken(responder=responder)
    assert lost and s.retransmissions >= 1 and s.psk_identity_hint == b"hint"
    _echoes(s, b"ok")


def test_restored_session_continues_sequence_numbers_and_replay_window():
    srv = MiniServer(PSK, echo=False)
    s, ep, clock = _handshaken(srv)
    s.send(b"a")
    s.send(b"b")
    old = srv.app(b"from before the sleep")
    ep.push(old)
    assert s.recv(100) == b"from before the sleep"
    blob = s.save()
    ep2 = FakeEndpoint(clock, serve(srv))
    s2 = DtlsSession.restore(ep2, ID, PSK, blob, clock=clock, timers=LOOPBACK)
    s2.send(b"c")
    assert records_of(ep2.sent[0])[0][1:3] == (1, 3)
    ep2.push(old)
    assert s2.recv(100) is None
    ep2.push(srv.app(b"new"))
    assert s2.recv(100) == b"new"
