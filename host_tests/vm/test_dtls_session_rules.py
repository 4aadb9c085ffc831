"""DtlsSession at its edges, against the scripted server: the limits of its settings, what a new
and a finished session report, the words of every alert and give-up, ChangeCipherSpec and
early-record rules, repeated flights, packing flights into the MTU, and the saved-state format.
Runs under pytest and on MicroPython."""
from vmcheck import VirtualClock, raises
from dtls_fakes import FakeEndpoint, records_of
import dtls_peer
from dtls_peer import MiniServer, serve
from test_dtls_handshake_replay import ID, PSK, _answer_with, _echoes, _handshaken, _session

from enosnb.dtls.connection import DtlsTransportError
from enosnb.dtls.errors import DtlsAlert, DtlsClosed, DtlsError, DtlsTimeout
from enosnb.dtls.session import DtlsSession
from enosnb.dtls.timers import LOOPBACK, Timers
from enosnb.dtls import handshake as hs
from enosnb.dtls import record as rl

CCM8, CBC = 0xC0A8, 0x00AE
SLOW = Timers(1000, 60000, 2, 60000)


def _frag(t, seq, body=b"", off=0, length=None):
    n = len(body) if length is None else length
    return bytes((t,)) + hs.u24(n) + hs.u16(seq) + hs.u24(off) + hs.u24(len(body)) + body


def _server_hello(version=b"\xfe\xfd", suite=0xC0A8, ext=None, seq=0, sid=b""):
    if ext is None:
        ext = hs.extension(23, b"")
    body = (version + bytes(32) + bytes((len(sid),)) + sid + hs.u16(suite) + b"\x00"
            + hs.u16(len(ext)) + ext)
    return hs.message(hs.SERVER_HELLO, seq, body)


def _records(datagram):
    return [(c, e, s, bytes(f)) for c, v, e, s, cid, f in rl.split_records(datagram)]


def _datagram(records):
    return b"".join(rl.header(c, rl.DTLS12, e, s, len(f)) + f for c, e, s, f in records)


# ---- settings --------------------------------------------------------------------------------

def test_identity_psk_and_suites_are_checked_with_the_limits_to_keep():
    ep = FakeEndpoint(VirtualClock())
    DtlsSession(ep, "i" * 128, b"k" * 64)
    for ident in ("", "i" * 129):
        e = raises(DtlsError, DtlsSession, ep, ident, PSK)
        assert str(e) == "PSK identity must be 1..128 bytes"
    for psk in (b"", b"k" * 65):
        assert str(raises(DtlsError, DtlsSession, ep, ID, psk)) == "PSK must be 1..64 bytes"
    e = raises(DtlsError, DtlsSession, ep, ID, PSK, suites=(CCM8, 0xABCD))
    assert str(e) == "unsupported cipher suite 0xABCD (use 0xC0A8 or 0x00AE)"


def test_an_identity_given_as_text_goes_out_as_its_bytes():
    srv = MiniServer(PSK)
    clock = VirtualClock()
    s = DtlsSession(FakeEndpoint(clock, serve(srv)), "Client_identity", PSK, clock=clock,
                    timers=LOOPBACK)
    s.handshake()
    assert srv.identities == [b"Client_identity"]


def test_a_new_session_reports_nothing_yet_and_the_payload_limit_of_its_suites():
    s, ep, clock = _session(None)
    assert (s.datagrams_sent, s.datagrams_received, s.bytes_sent, s.bytes_received) == (0,) * 4
    assert (s.psk_identity_hint, s.resumed, s.session_id, s.extended_master_secret) == (
        None, False, b"", False)
    assert not s.established and s.cid is None and s.retransmissions == 0
    assert repr(s) == "<DtlsSession suite=- phase=0>"
    assert s.mtu == (1280 - 13 - 16) // 16 * 16 - 33
    assert _session(None, suites=(CCM8,))[0].mtu == 1280 - 13 - 16


def test_counters_add_up_every_datagram_and_byte_of_a_handshake():
    srv = MiniServer(PSK, hint=b"hint")
    answered = []

    def responder(data, ep):
        for a in srv.handle(data):
            answered.append(a)
            ep.push(a)
    s, ep, clock = _handshaken(responder=responder)
    assert (s.datagrams_sent, s.bytes_sent) == (len(ep.sent), sum(len(d) for d in ep.sent))
    assert (s.datagrams_received, s.bytes_received) == (
        len(answered), sum(len(d) for d in answered))
    assert repr(s) == "<DtlsSession suite=C0A8 phase=4>"
    assert s.extended_master_secret and s.session_id == srv.sid and not s.resumed


def test_transport_failures_other_than_oserror_name_their_cause():
    cause = ValueError("boom")
    for direction in ("send", "recv"):
        s, ep, clock = _session(MiniServer(PSK))

        def fail(*args):
            raise cause
        setattr(ep, direction, fail)
        e = raises(DtlsTransportError, s.handshake)
        assert str(e) == "datagram transport failed: ValueError: boom" and e.cause is cause


# ---- giving up ---------------------------------------------------------------------------------

def _gives_up(s):
    e = raises(DtlsTimeout, s.handshake)
    return str(e)


REACHABLE = ("; check that the server is reachable and speaks DTLS 1.2 with PSK, and the PSK "
             "and identity")
WRONG_KEY = "; check the PSK and identity: a wrong key looks like packet loss"


def test_a_silent_server_is_reported_as_unreachable_after_the_first_flight():
    s, ep, clock = _session(None, timers=SLOW)
    assert _gives_up(s) == "DTLS handshake failed: no valid answer from the server (2 " \
                           "retransmissions of flight 1 went unanswered)" + REACHABLE
    s, ep, clock = _session(None, timers=Timers(1000, 60000, 10, 5000))
    assert _gives_up(s) == "DTLS handshake failed: no valid answer from the server (the " \
                           "5000 ms handshake deadline passed)" + REACHABLE


def test_a_server_that_only_sent_its_cookie_points_at_the_psk_after_flight_3():
    def responder(data, ep):
        if len(ep.sent) == 1:
            ep.push(rl.header(22, rl.DTLS10, 0, 0, 15)
                    + hs.message(hs.HELLO_VERIFY_REQUEST, 0, b"\xfe\xff\x00"))
    s, ep, clock = _session(responder=responder, timers=SLOW)
    assert _gives_up(s) == "DTLS handshake failed: no valid answer from the server (2 " \
                           "retransmissions of flight 3 went unanswered)" + WRONG_KEY


def test_a_wrong_key_points_at_the_psk_after_flight_5():
    s, ep, clock = _session(MiniServer(PSK), psk=b"wrong key", timers=SLOW)
    assert _gives_up(s) == "DTLS handshake failed: no valid answer from the server (2 " \
                           "retransmissions of flight 5 went unanswered)" + WRONG_KEY


def test_a_resumption_the_server_never_finishes_retransmits_the_client_hello():
    srv = MiniServer(PSK, cookie=False)
    s, ep, clock = _handshaken(srv, timers=SLOW)
    sh = hs.message(hs.SERVER_HELLO, 0, b"\xfe\xfd" + bytes(32) + bytes((len(s.session_id),))
                    + s.session_id + b"\xc0\xa8\x00" + hs.u16(4) + hs.extension(23, b""))
    ep.responder = _answer_with([sh])
    assert _gives_up(s) == "DTLS handshake failed: no valid answer from the server (2 " \
                           "retransmissions of flight 1 went unanswered)" + WRONG_KEY


# ---- alerts the client sends (RFC 5246 §7.2) ---------------------------------------------------

def _alert(msgs, description, detail, **kw):
    clock = VirtualClock()
    ep = FakeEndpoint(clock, _answer_with(msgs))
    s = DtlsSession(ep, ID, PSK, clock=clock, timers=LOOPBACK, **kw)
    e = raises(DtlsAlert, s.handshake)
    assert (e.level, e.description, e.sent) == (2, description, True)
    assert str(e).endswith(" sent to the peer: " + detail), str(e)
    assert records_of(ep.sent[-1])[0][:2] == (21, 0) and ep.sent[-1][13:] == bytes((2, description))
    return s


def test_server_hello_faults_are_answered_with_the_alert_that_names_them():
    _alert([_server_hello(version=b"\xfe\xff")], 70, "the server does not speak DTLS 1.2")
    _alert([_server_hello(suite=CBC)], 47, "the server chose a suite or compression not offered",
           suites=(CCM8,))
    compressed = hs.message(hs.SERVER_HELLO, 0, b"\xfe\xfd" + bytes(33) + b"\xc0\xa8\x01")
    _alert([compressed], 47, "the server chose a suite or compression not offered")
    _alert([_server_hello(ext=hs.extension(13, b""))], 110, "ServerHello has extension 13 not "
                                                             "offered")
    _alert([_server_hello(ext=hs.extension(0xFF01, b"\x01\x00"))], 40,
           "renegotiation_info is not empty")
    _alert([_server_hello(ext=b"")], 40, "the server does not support extended_master_secret",
           require_ems=True)
    _alert([_server_hello(ext=hs.extension(23, b"x"))], 50, "extended_master_secret with a body")
    for cid in (b"", b"\x02c"):
        _alert([_server_hello(ext=hs.extension(54, cid))], 50, "malformed connection_id", cid=True)
    _alert([hs.message(hs.SERVER_HELLO, 0, bytes(37))], 50, "ServerHello too short")


def test_server_flight_faults_are_answered_with_the_alert_that_names_them():
    _alert([_server_hello(seq=0), hs.message(hs.SERVER_HELLO_DONE, 1, b"x")], 50,
           "ServerHelloDone with a body")
    _alert([_server_hello(seq=0), hs.message(hs.FINISHED, 1, bytes(12))], 10,
           "handshake message type 20 not expected now")


def _wrong_server_finished(fn):
    real = dtls_peer.prf

    def prf(secret, label, seed, n):
        out = real(secret, label, seed, n)
        return bytes(12) if label == b"server finished" else out
    dtls_peer.prf = prf
    try:
        return fn()
    finally:
        dtls_peer.prf = real


def test_a_server_finished_that_does_not_verify_ends_the_handshake_with_decrypt_error():
    s, ep, clock = _session(MiniServer(PSK))
    e = _wrong_server_finished(lambda: raises(DtlsAlert, s.handshake))
    assert str(e) == "fatal alert decrypt_error (51) sent to the peer: the server Finished " \
                     "does not verify"
    assert records_of(ep.sent[-1])[0][:2] == (21, 1)     # the client's keys are in use


def test_in_a_resumption_the_decrypt_error_goes_out_before_the_client_used_its_keys():
    srv = MiniServer(PSK, cookie=False)
    s, ep, clock = _handshaken(srv)
    e = _wrong_server_finished(lambda: raises(DtlsAlert, s.resume))
    assert e.description == 51 and records_of(ep.sent[-1])[0][:2] == (21, 0)


def test_a_resumed_session_must_keep_its_extended_master_secret():
    srv = MiniServer(PSK, cookie=False)
    s, ep, clock = _handshaken(srv)
    sh = hs.message(hs.SERVER_HELLO, 0, b"\xfe\xfd" + bytes(32) + bytes((len(s.session_id),))
                    + s.session_id + b"\xc0\xa8\x00")
    ep.responder = _answer_with([sh])
    e = raises(DtlsAlert, s.resume)
    assert str(e) == "fatal alert handshake_failure (40) sent to the peer: resumed session " \
                     "changes extended_master_secret"


def test_after_the_peer_closes_the_session_says_it_is_closed_and_a_failed_one_stays_failed():
    srv = MiniServer(PSK)
    s, ep, clock = _handshaken(srv)
    ep.push(srv.alert(1, 0))
    e = raises(DtlsClosed, s.recv, 100)
    assert e.sent is False
    e = raises(DtlsClosed, s.send, b"x")
    assert e.sent is False and str(e).endswith("the session is closed; start a new handshake")
    s, ep, clock = _session(None)
    assert str(raises(DtlsError, s.send, b"x")) == \
        "the DTLS session is not established: call handshake() first"
    for fail in (lambda srv: srv.alert(2, 40, 0), None):
        clock = VirtualClock()
        if fail:
            ep = FakeEndpoint(clock, lambda d, ep: ep.push(fail(MiniServer(PSK))))
        else:
            ep = FakeEndpoint(clock, _answer_with([_server_hello(version=b"\xfe\xff")]))
        s = DtlsSession(ep, ID, PSK, clock=clock, timers=LOOPBACK)
        e = raises(DtlsAlert, s.handshake)
        assert e.sent is (fail is None)
        s.close()
        assert type(raises(DtlsError, s.send, b"x")) is DtlsError


def test_unexpected_handshake_messages_after_the_client_flight_get_unexpected_message():
    for epoch in (0, 1):
        srv = MiniServer(PSK, cookie=False)

        def responder(data, ep, epoch=epoch):
            answers = srv.handle(data)
            recs = _records(answers[0]) if answers else []
            if recs and recs[0][0] == 20:                  # the final flight: CCS, Finished
                odd = hs.message(11, 2, b"cert")
                if epoch:
                    ep.push(_datagram(recs[:1]) + srv._rec(22, 1, odd))
                else:
                    ep.push(rl.header(22, rl.DTLS12, 0, 9, len(odd)) + odd)
                return
            for a in answers:
                ep.push(a)
        s, ep, clock = _session(responder=responder)
        e = raises(DtlsAlert, s.handshake)
        assert (e.description, e.sent) == (10, True), epoch


def test_a_server_without_extended_master_secret_leaves_the_flag_false():
    s, ep, clock = _handshaken(MiniServer(PSK, ems=False))
    assert s.extended_master_secret is False and s.save()[1] == 0


def test_a_cbc_session_names_its_suite_in_both_directions():
    s, ep, clock = _handshaken(MiniServer(PSK, suites=(CBC,)))
    assert repr(s._w_cipher) == repr(s._r_cipher) == "<RecordCipher 00AE>"


def test_payloads_across_the_cbc_block_boundaries_fit_their_datagram_with_a_connection_id():
    for suite, sizes in ((CBC, range(30, 82)), (CCM8, (0, 47, 63, 200))):
        for cid in (b"C", b"CCCC"):
            srv = MiniServer(PSK, suites=(suite,), cid=cid)
            s, ep, clock = _handshaken(srv, cid=True)
            for n in sizes:
                _echoes(s, bytes(n))


def test_an_alert_or_silence_that_ends_the_handshake_is_marked_as_refusing_the_keys():
    s, ep, clock = _session(MiniServer(PSK), psk=b"wrong key", timers=SLOW)
    assert raises(DtlsTimeout, s.handshake).refused is True          # silence after flight 5

    def cookie_only(data, ep):
        if len(ep.sent) == 1:
            ep.push(rl.header(22, rl.DTLS10, 0, 0, 15)
                    + hs.message(hs.HELLO_VERIFY_REQUEST, 0, b"\xfe\xff\x00"))
    s, ep, clock = _session(responder=cookie_only, timers=SLOW)
    assert raises(DtlsTimeout, s.handshake).refused is False
    s, ep, clock = _session(None, timers=SLOW)
    assert getattr(raises(DtlsTimeout, s.handshake), "refused", None) is None
    for level, desc, cls in ((2, 40, DtlsAlert), (1, 0, DtlsClosed)):
        s, ep, clock = _session(responder=lambda d, ep, a=(level, desc): ep.push(
            rl.header(21, rl.DTLS12, 0, 0, 2) + bytes(a)))
        e = raises(cls, s.handshake)
        assert e.refused is True and (e.level, e.description, e.sent) == (level, desc, False)
    srv = MiniServer(PSK)
    s, ep, clock = _handshaken(srv)
    ep.push(srv.alert(2, 80))
    e = raises(DtlsAlert, s.recv, 100)
    assert e.refused is False and (e.level, e.description, e.sent) == (2, 80, False)


def test_a_close_after_the_handshake_is_protected_with_the_session_keys():
    srv = MiniServer(PSK)
    s, ep, clock = _handshaken(srv)
    s.close()
    assert records_of(ep.sent[-1])[0][:2] == (21, 1) and srv.alerts_in == [(1, 0)]


# ---- extensions and connection IDs ---------------------------------------------------------------

def test_a_zero_length_connection_id_from_the_server_means_plain_records():
    srv = MiniServer(PSK, cid=b"")
    s, ep, clock = _handshaken(srv, cid=True)
    assert s.cid is None
    s.send(b"plain")
    assert ep.sent[-1][0] == 23 and s.mtu == 1280 - 13 - 16


def test_only_extensions_the_client_offered_are_accepted_whatever_their_number():
    wide = hs.extension(0x1234, b"\x07" * 301) + hs.extension(23, b"")
    for ext, fails in ((hs.extension(0x1234, b"") + hs.extension(23, b""), False),
                       (hs.extension(0x0034, b""), True), (hs.extension(0x3400, b""), True)):
        s, ep, clock = _session(responder=_answer_with([_server_hello(ext=ext)]), timers=SLOW)
        s.hello_extensions = wide
        if fails:
            assert raises(DtlsAlert, s.handshake).description == 110
        else:
            raises(DtlsTimeout, s.handshake)


def test_a_session_id_whose_handshake_never_finished_is_not_offered_again():
    s, ep, clock = _session(responder=_answer_with([_server_hello(sid=b"abc")]), timers=SLOW)
    raises(DtlsTimeout, s.handshake)
    assert s.session_id == b"abc"
    ep.responder = None
    raises(DtlsTimeout, s.handshake)
    assert s.session_id == b"" and ep.sent[-1][59] == 0       # an empty session_id offered


# ---- ChangeCipherSpec and records that come early (RFC 6347 §4.1, §4.2.4) ------------------------

def _rewrite(srv, change):
    """A responder passing srv's answers through change(list of records) -> list of records."""
    def responder(data, ep):
        for a in srv.handle(data):
            ep.push(_datagram(change(_records(a))))
    return responder


def test_a_change_cipher_spec_other_than_the_single_byte_1_is_ignored():
    for body in (b"\x02", b"\x01\x00"):
        srv = MiniServer(PSK, cookie=False)
        change = lambda recs: [(c, e, s, body if c == 20 else f) for c, e, s, f in recs]
        s, ep, clock = _session(responder=_rewrite(srv, change), timers=SLOW)
        raises(DtlsTimeout, s.handshake)


def test_a_repeated_change_cipher_spec_does_not_disturb_the_handshake():
    srv = MiniServer(PSK, cookie=False)

    def twice(recs):
        out = []
        for r in recs:
            out += [r, (r[0], r[1], r[2] + 100, r[3])] if r[0] == 20 else [r]
        return out
    s, ep, clock = _handshaken(responder=_rewrite(srv, twice))
    _echoes(s, b"ok")


def test_at_most_four_records_of_the_next_epoch_wait_for_the_change_cipher_spec():
    srv = MiniServer(PSK, cookie=False, fin_before_ccs=True, echo=False)

    def responder(data, ep):
        answers = srv.handle(data)
        for a in answers:
            recs = _records(a)
            if recs and recs[-1][0] == 20:          # the final flight: Finished, then CCS
                extra = b"".join(srv.app(b"a%d" % i) for i in range(4))
                a = _datagram(recs[:-1]) + extra + _datagram(recs[-1:])
            ep.push(a)
    s, ep, clock = _handshaken(responder=responder)
    assert [s.recv(10) for _ in range(4)] == [b"a0", b"a1", b"a2", None]


def test_a_resumption_finished_arriving_before_the_server_hello_waits_for_it():
    srv = MiniServer(PSK, cookie=False, split_flight=True)
    s, ep, clock = _handshaken(srv)

    def responder(data, ep):
        answers = srv.handle(data)
        if len(answers) == 3:                        # ServerHello, CCS, Finished
            answers = [answers[2], answers[0], answers[1]]
        for a in answers:
            ep.push(a)
    ep.responder = responder
    s.resume()
    assert s.resumed and s.retransmissions == 0 and len(ep.sent) == 2 + 1


def test_only_protected_application_data_reaches_recv():
    srv = MiniServer(PSK, echo=False, cookie=False)

    def responder(data, ep):
        answers = srv.handle(data)
        if answers and len(ep.sent) == 1:
            ep.push(rl.header(23, rl.DTLS12, 0, 50, 5) + b"plain")   # epoch 0: never data
        for a in answers:
            ep.push(a)
    s, ep, clock = _handshaken(responder=responder)
    ep.push(srv._rec(24, 1, b"heartbeat") + b"".join(srv.app(b"d%d" % i) for i in range(10)))
    got = [s.recv(10) for _ in range(9)]
    assert got == [b"d%d" % i for i in range(8)] + [None]


# ---- handshake records holding several fragments --------------------------------------------------

def test_a_hello_request_before_the_server_hello_in_one_record_is_skipped_not_a_stop():
    srv = MiniServer(PSK, cookie=False)

    def change(recs):
        c, e, s, f = recs[0]
        if c != 22 or f[0] != hs.SERVER_HELLO:
            return recs
        return [(c, e, s, _frag(hs.HELLO_REQUEST, 0) + f)] + recs[1:]
    s, ep, clock = _handshaken(responder=_rewrite(srv, change))
    assert s.retransmissions == 0


def test_a_repeated_fragment_before_a_new_one_in_one_record_does_not_hide_it():
    srv = MiniServer(PSK, cookie=False)
    first = []

    def responder(data, ep):
        answers = srv.handle(data)
        if not first:
            recs = _records(answers[0])
            first.append(recs)
            ep.push(_datagram(recs[:1]))                       # ServerHello alone
            c, e, sq, f = recs[1]
            ep.push(_datagram([(c, e, sq, recs[0][3] + f)]))   # ServerHello again + Done
            return
        for a in answers:
            ep.push(a)
    s, ep, clock = _handshaken(responder=responder)
    assert clock.now < 1000                                    # no timer had to fire
    assert _records(ep.sent[1])[0][3][0] == hs.CLIENT_KEY_EXCHANGE


def test_after_the_handshake_a_hello_request_behind_another_fragment_is_still_refused():
    srv = MiniServer(PSK, echo=False)
    s, ep, clock = _handshaken(srv)
    n = len(ep.sent)
    ep.push(srv._rec(22, 1, _frag(hs.FINISHED, 99, bytes(12)) + _frag(hs.HELLO_REQUEST, 100)))
    assert s.recv(10) is None
    assert len(ep.sent) == n + 1 and ep.sent[-1][0] == 21


# ---- a server repeating its flight (RFC 6347 §4.2.4) ------------------------------------------------

def test_a_repeated_server_flight_gets_one_immediate_resend_per_timer_period():
    srv = MiniServer(PSK, cookie=False)
    seen = {"n": 0, "first": None}

    def responder(data, ep):
        seen["n"] += 1
        answers = srv.handle(data)
        n = seen["n"]
        if n == 1:
            seen["first"] = answers
            push = answers
        elif n in (2, 4):       # the answer to the client flight is lost; the old flight twice
            push = seen["first"] * 2
        else:
            push = answers if n == 5 else []
        for a in push:
            ep.push(a)
    s, ep, clock = _handshaken(responder=responder)
    assert ep.sent_at[1:] == [0, 0, 1000, 1000] and s.retransmissions == 3


def test_after_a_resumption_only_an_older_handshake_message_counts_as_a_repeat():
    srv = MiniServer(PSK, cookie=False)
    s, ep, clock = _handshaken(srv)
    ep.responder = serve(srv)
    s.resume()
    s.flush()
    n = len(ep.sent)
    rec = lambda body: rl.header(22, rl.DTLS12, 0, 70, len(body)) + body
    for body in (_frag(hs.SERVER_HELLO, 2, b"x"), b"\x02\x00"):
        ep.push(rec(body))                     # the next message_seq, then garbage
        s.recv(10)
    assert len(ep.sent) == n
    ep.push(rec(_frag(hs.SERVER_HELLO, 0, b"x", off=5, length=10)))   # a part of seq 0
    s.recv(10)
    assert len(ep.sent) == n + 1 and s.retransmissions == 1
    assert [r[0] for r in records_of(ep.sent[-1])] == [20, 22]


def test_after_a_resumption_whose_flight_rode_with_data_a_repeat_resends_it_and_data_flows():
    srv = MiniServer(PSK, cookie=False)
    s, ep, clock = _handshaken(srv)
    ep.responder = serve(srv)
    s.resume()
    s.send(b"one")
    assert s.recv(100) == b"one"
    for n in (1, 2):
        for d in srv.last_flight:
            ep.push(d)
        assert s.recv(100) is None
        assert [r[0] for r in records_of(ep.sent[-1])] == [20, 22] and s.retransmissions == n
    _echoes(s, b"two")


def test_a_resumed_client_finishes_with_the_next_message_seq_and_a_proper_ccs():
    for cookie, seq in ((False, 1), (True, 2)):
        srv = MiniServer(PSK, cookie=cookie)
        s, ep, clock = _handshaken(srv)
        ep.responder = serve(srv)
        s.resume()
        s.flush()
        assert (hs.FINISHED, seq) in srv.seen and srv.resumptions == 1
        ccs = _records(ep.sent[-1])[0]
        assert (ccs[0], ccs[3]) == (20, b"\x01")


def test_after_a_resumption_only_plaintext_handshake_records_count_as_a_repeat():
    srv = MiniServer(PSK, cookie=False)
    s, ep, clock = _handshaken(srv)
    ep.responder = serve(srv)
    s.resume()
    s.flush()
    n = len(ep.sent)
    old = _frag(hs.SERVER_HELLO, 0, b"x")
    for ctype, epoch in ((23, 0), (21, 0), (22, 2)):
        ep.push(rl.header(ctype, rl.DTLS12, epoch, 80, len(old)) + old)
        s.recv(10)
    assert len(ep.sent) == n


# ---- sending -----------------------------------------------------------------------------------

def test_a_flight_fills_datagrams_up_to_the_mtu_exactly():
    sizes = []
    for mtu in (1280, 0):
        s, ep, clock = _handshaken(MiniServer(PSK, cookie=False), mtu=mtu or sizes[0])
        sizes.append(len(ep.sent[1]))
    assert sizes[0] == sizes[1]
    s, ep, clock = _handshaken(MiniServer(PSK, cookie=False), mtu=sizes[0] - 1)
    assert [[r[0] for r in records_of(d)] for d in ep.sent[1:3]] == [[22, 20], [22]]
    _echoes(s, b"small mtu")


def test_a_datagram_over_the_payload_limit_is_refused_with_the_limit():
    s, ep, clock = _handshaken(MiniServer(PSK))
    e = raises(DtlsError, s.send, bytes(s.mtu + 1))
    assert str(e) == "datagram of %d bytes exceeds the DTLS payload limit of %d" % (
        s.mtu + 1, s.mtu)
    s.send(bytes(s.mtu))


def test_a_warm_report_reuses_the_datagram_buffer():
    s, ep, clock = _handshaken(MiniServer(PSK, echo=False))
    s.send(bytes(100))
    buf = s._dgram
    s.send(bytes(100))
    s.send(bytes(90))
    assert s._dgram is buf
    s.send(bytes(400))
    assert s._dgram is not buf


def test_recv_takes_an_answer_that_comes_in_its_last_millisecond():
    srv = MiniServer(PSK, echo=False)
    s, ep, clock = _handshaken(srv)
    ep.push(b"\x17garbage", 999)
    ep.push(srv.app(b"late"), 999)
    assert s.recv(1000) == b"late"


def test_save_needs_an_established_session():
    s, ep, clock = _session(None)
    assert str(raises(DtlsError, s.save)) == "only an established session can be saved"


# ---- saved state: the format of save() ---------------------------------------------------------

KB = bytes(range(100, 140))
MS = bytes(range(150, 198))


def _blob(flags=1, suite=CCM8, kb=KB, sid=b"sid", cid=None):
    out = bytes((1, flags)) + hs.u16(suite) + bytes((1, 2, 3, 4, 5, 6)) + bytes((7, 8, 9, 10, 11, 12))
    out += bytes(range(0x11, 0x19)) + kb + MS + bytes((len(sid),)) + sid
    if cid is not None:
        out += bytes((len(cid),)) + cid
    return out


def test_a_saved_state_is_read_field_by_field_and_saved_again_unchanged():
    clock = VirtualClock()
    ep = FakeEndpoint(clock)
    for blob in (_blob(), _blob(flags=2, cid=b"CI"), _blob(flags=0, suite=CBC, kb=bytes(96))):
        s = DtlsSession.restore(ep, ID, PSK, blob, clock=clock)
        assert s.save() == blob and s.established
    s = DtlsSession.restore(ep, ID, PSK, _blob(), clock=clock)
    assert (s.suite, s.session_id, s.extended_master_secret, s.cid) == (CCM8, b"sid", True, None)
    assert s._replay.top == 0x0708090A0B0B and s._replay.bits == 0x1112131415161718
    s.send(b"x")
    assert records_of(ep.sent[-1])[0][:3] == (23, 1, 0x010203040506)
    s = DtlsSession.restore(ep, ID, PSK, _blob(flags=2, cid=b"CI"), clock=clock)
    assert (s.cid, s.extended_master_secret) == (b"CI", False)


def test_a_restored_session_keeps_the_settings_it_was_given():
    clock = VirtualClock()
    t = Timers(1, 2, 3, 4)
    s = DtlsSession.restore(FakeEndpoint(clock), ID, PSK, _blob(), clock=clock, timers=t,
                            suites=(CCM8,), require_ems=True)
    assert s.timers is t and s.suites == (CCM8,) and s.require_ems


def test_a_saved_state_of_another_layout_is_refused_with_what_to_do():
    clock = VirtualClock()
    ep = FakeEndpoint(clock)
    good = _blob()
    for bad in (b"", b"\x02" + good[1:], _blob(suite=0x1234), good[:-1], good + b"\x00",
                _blob(kb=KB[:-1]), _blob(flags=2), good[:30]):
        e = raises(DtlsError, DtlsSession.restore, ep, ID, PSK, bad, clock=clock)
        assert str(e) == "saved DTLS state is corrupt or from another version: do a new handshake"


def test_a_restored_session_ignores_a_handshake_message_from_the_server():
    srv = MiniServer(PSK, echo=False)
    s, ep, clock = _handshaken(srv)
    blob = s.save()
    ep2 = FakeEndpoint(clock)
    s2 = DtlsSession.restore(ep2, ID, PSK, blob, clock=clock)
    ep2.push(srv._rec(22, 1, _frag(hs.FINISHED, 3, bytes(12))))
    ep2.push(srv.app(b"after"))
    assert s2.recv(100) == b"after"
