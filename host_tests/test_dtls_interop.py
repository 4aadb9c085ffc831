"""Interop of our DTLS 1.2 PSK client (enosnb.dtls.DtlsSession) with four DTLS stacks nobody
here wrote, all on 127.0.0.1 (dtls.md §18):

- OpenSSL 3.0 `openssl s_server` (CCM-8, CBC-SHA256, hint, resumption, loss via a relay);
- libcoap 4.3.1 `coap-server-openssl` and `coap-server-gnutls` (CoAP GET and block-wise
  PUT/GET over the session, hint, loss injected with `-l`, resumption / fallback);
- Mbed TLS 2.28 through python-mbedtls (echo, both suites, full-MTU records, close_notify
  from the server, lost Finished, fallback from resumption);
- tinydtls through aiocoap's tinydtls_server (CoAP over CCM-8, fallback, loss via a relay).

Every peer: a session saved before deep sleep carries on after restore() without a handshake,
and a Connection ID offer is ignored harmlessly (no local peer supports RFC 9146).

Negative cases: wrong key and a black hole end in a bounded DtlsTimeout, unknown identities
and unsupported suites in a clear DtlsError. Timers are loopback-short so the whole file runs
in well under a minute.
"""
import time

import pytest

from enosnb.coap import allcodes as codes
from enosnb.coap.client import Client, Timing
from enosnb.dtls.errors import DtlsAlert, DtlsClosed, DtlsError, DtlsTimeout
from enosnb.dtls.session import DtlsSession
from enosnb.dtls.timers import Timers
from enosnb.udp import UdpEndpoint
from tools.dtls_peers import (BANNER, C2S, HELLO, S2C, BlackHole, LibcoapServer, MbedServer,
                              OpensslServer, TinydtlsServer, UdpRelay, drop_nth)

CCM8 = 0xC0A8
CBC = 0x00AE
SUITE_IDS = {CCM8: "ccm8", CBC: "cbc_sha256"}
IDENTITY = b"Client_identity"
KEY16 = bytes(range(16))            # hex key for s_server and Mbed TLS
TEXT_KEY = b"secretPSK"             # libcoap's -k and aiocoap take text keys

# Loopback profiles: a lost flight costs 200 ms, not RFC 7925's 9 s.
FAST = Timers(initial_ms=200, cap_ms=1000, max_retransmit=6, deadline_ms=10000)
# Failures must be bounded: give up after 3 retransmissions or 2 s, whichever comes first.
GIVE_UP = Timers(initial_ms=200, cap_ms=1000, max_retransmit=3, deadline_ms=2000)
# Random loss: more patience per flight, still bounded.
LOSSY = Timers(initial_ms=200, cap_ms=1000, max_retransmit=10, deadline_ms=20000)
COAP_TIMING = Timing(ack_timeout_ms=200, ack_random_factor=1.5, max_retransmit=5,
                     exchange_timeout_ms=10000)

CT_CHANGE_CIPHER_SPEC = 20
CT_APPLICATION_DATA = 23


def session(peer, identity=IDENTITY, key=None, timers=FAST, port=None, **kw):
    key = peer.key if key is None else key
    return DtlsSession(UdpEndpoint(peer.host, port or peer.port), identity, key,
                       timers=timers, **kw)


def handshaken(peer, **kw):
    """A session with `peer` whose full handshake has completed."""
    s = session(peer, **kw)
    s.handshake()
    return s


def saved_blob(peer):
    """State saved after a full handshake and a close: what a later resume() starts from."""
    first = handshaken(peer)
    blob = first.save()
    first.close()
    return blob


def resumed(peer, blob, port=None):
    """A session restored from `blob` after its resumption handshake (abbreviated or full)."""
    again = DtlsSession.restore(UdpEndpoint(peer.host, port or peer.port), IDENTITY, peer.key,
                                blob, timers=FAST)
    again.resume()
    return again


def record_types(datagram):
    """Content types of the DTLS records packed in one datagram."""
    types, p = [], 0
    while p + 13 <= len(datagram):
        types.append(datagram[p])
        p += 13 + int.from_bytes(datagram[p + 11:p + 13], "big")
    return types


def expect_give_up(peer, error=DtlsTimeout, timers=GIVE_UP, **kw):
    """A handshake with `peer` must fail with `error` no later than the profile's deadline."""
    s = session(peer, timers=timers, **kw)
    start = time.monotonic()
    with pytest.raises(error) as info:
        s.handshake()
    elapsed_ms = (time.monotonic() - start) * 1000
    s.close()
    assert elapsed_ms < timers.deadline_ms + 1500, "gave up only after %d ms" % elapsed_ms
    return info.value


def coap_get(sess, path):
    return Client(sess, timing=COAP_TIMING).get(path)


both_suites = pytest.mark.parametrize("suite", [CCM8, CBC], ids=SUITE_IDS.get)
hint_or_not = pytest.mark.parametrize("hint", [None, "myhint"], ids=["no_hint", "hint"])


# ---- OpenSSL s_server -------------------------------------------------------------------

@both_suites
@hint_or_not
def test_handshake_and_echo_with_openssl_s_server(suite, hint):
    with OpensslServer(KEY16, hint=hint, suites=(suite,)) as srv:
        s = handshaken(srv)
        assert s.suite == suite
        assert s.psk_identity_hint == (hint.encode() if hint else None)
        srv.wait_for(rb"CIPHER is PSK-AES128-" + (b"CCM8" if suite == CCM8 else b"CBC-SHA256"))
        s.send(b"ping from enosnb")
        srv.wait_for(rb"ping from enosnb")
        srv.send_line("pong from s_server")
        assert s.recv(3000) == b"pong from s_server\n"
        s.close()
        srv.wait_for(rb"DONE")       # our close_notify ended the connection


def test_offering_both_suites_settles_on_the_one_openssl_allows():
    with OpensslServer(KEY16, suites=(CBC,)) as srv:
        s = handshaken(srv)          # offers C0A8, 00AE
        assert s.suite == CBC
        s.close()


@both_suites
def test_session_resumes_with_openssl_s_server_after_save_and_restore(suite):
    with OpensslServer(KEY16, suites=(suite,)) as srv:
        first = handshaken(srv)
        first.send(b"first connection")
        srv.wait_for(rb"first connection")
        blob = first.save()
        first.close()
        srv.wait_for(rb"DONE")
        with UdpRelay(srv.port) as relay:
            mark = srv.mark()
            again = resumed(srv, blob, port=relay.port)
            assert again.resumed
            again.send(b"after deep sleep")
            srv.wait_for(rb"after deep sleep", start=mark)
            assert b"Reused session-id" in srv.output()[mark:]
            # The held-back CCS + Finished travel with the first application record.
            final = [d for (w, d) in relay.log if w == C2S
                     and CT_CHANGE_CIPHER_SPEC in record_types(d)]
            assert len(final) == 1
            assert CT_APPLICATION_DATA in record_types(final[0])
            again.close()


def test_handshake_survives_lost_flights_with_openssl_s_server():
    # Lose the server's ServerHello flight once and our Finished flight once.
    lose = {(S2C, 2), (C2S, 3)}
    with OpensslServer(KEY16, hint="myhint") as srv, \
            UdpRelay(srv.port, drop=lambda d, i, data: (d, i) in lose) as relay:
        s = handshaken(srv, port=relay.port)
        assert s.retransmissions >= 2
        s.send(b"after loss")
        srv.wait_for(rb"after loss")
        s.close()
        assert len(relay.dropped) == 2


def test_resumed_final_flight_is_resent_when_openssl_repeats_its_flight():
    # The datagram with our CCS + Finished (and the first record) is lost; s_server repeats
    # ServerHello/CCS/Finished, and the client answers with its final flight again (dtls.md §16).
    with OpensslServer(KEY16) as srv:
        blob = saved_blob(srv)
        srv.wait_for(rb"DONE")
        final_lost = [False]

        def drop(direction, index, data):
            if direction == C2S and not final_lost[0] and \
                    CT_CHANGE_CIPHER_SPEC in record_types(data):
                final_lost[0] = True
                return True
            return False

        with UdpRelay(srv.port, drop=drop) as relay:
            mark = srv.mark()
            again = resumed(srv, blob, port=relay.port)
            assert again.resumed
            again.send(b"lost with the final flight")
            assert again.recv(2500) is None     # meanwhile the repeat is answered
            again.send(b"second record")
            srv.wait_for(rb"second record", start=mark)
            assert final_lost[0]
            assert b"Reused session-id" in srv.output()[mark:]
            again.close()


def test_wrong_key_with_openssl_s_server_times_out_within_the_deadline():
    with OpensslServer(KEY16) as srv:
        err = expect_give_up(srv, key=b"another key 1234")
    assert "PSK" in str(err)


# ---- libcoap: coap-server-openssl and coap-server-gnutls ---------------------------------

LIBCOAP_CASES = [("openssl", CCM8), ("gnutls", CCM8), ("gnutls", CBC)]


@pytest.mark.parametrize("backend,suite", LIBCOAP_CASES,
                         ids=["openssl-ccm8", "gnutls-ccm8", "gnutls-cbc_sha256"])
@pytest.mark.parametrize("hint", ["CoAP", ""], ids=["hint", "no_hint"])
def test_coap_get_over_dtls_with_libcoap_server(backend, suite, hint):
    with LibcoapServer(backend, TEXT_KEY, hint=hint) as srv:
        s = handshaken(srv, suites=(suite,))
        assert s.suite == suite
        assert s.psk_identity_hint == (hint.encode() if hint else None)
        res = coap_get(s, "/")
        assert res.code == codes.CONTENT
        assert res.payload.startswith(BANNER)
        s.close()
        srv.wait_for(rb"got psk_identity: 'Client_identity'")


@pytest.mark.parametrize("backend", ["openssl", "gnutls"])
def test_blockwise_put_and_get_over_dtls_with_libcoap_server(backend):
    body = bytes(range(256)) * 12           # 3 KB: Block1 up, Block2 down, 256-byte blocks
    with LibcoapServer(backend, TEXT_KEY) as srv:
        s = handshaken(srv)
        client = Client(s, timing=COAP_TIMING)
        assert client.put("/example_data", body).code in (codes.CREATED, codes.CHANGED)
        res = client.get("/example_data")
        assert (res.code, res.payload) == (codes.CONTENT, body)
        s.close()


def test_cbc_only_client_is_refused_by_coap_server_openssl_with_an_alert():
    with LibcoapServer("openssl", TEXT_KEY) as srv:
        err = expect_give_up(srv, suites=(CBC,), error=DtlsAlert)
    assert err.description == 40 and not err.sent
    assert "cipher suite" in str(err)


@pytest.mark.parametrize("backend", ["openssl", "gnutls"])
@pytest.mark.parametrize("loss", ["1,2", "20%"], ids=["first_two", "20pct"])
def test_coap_get_over_dtls_survives_server_side_loss_with_libcoap(backend, loss):
    with LibcoapServer(backend, TEXT_KEY, loss=loss) as srv:
        s = handshaken(srv, timers=LOSSY)
        res = coap_get(s, "/")
        assert res.payload.startswith(BANNER)
        if loss == "1,2":
            assert s.retransmissions >= 1
        s.close()


def test_lost_server_hello_datagram_from_gnutls_is_recovered_by_retransmission():
    # GnuTLS sends ServerHello, ServerKeyExchange and ServerHelloDone in three datagrams;
    # losing the first one leaves the later two ahead of their turn. RFC 6347 §4.2.2: queue
    # or discard them, never a fatal alert; the retransmitted flight completes the handshake.
    with LibcoapServer("gnutls", TEXT_KEY) as srv, \
            UdpRelay(srv.port, drop=drop_nth(S2C, 2)) as relay:
        s = handshaken(srv, port=relay.port)
        assert s.retransmissions >= 1
        assert coap_get(s, "/").payload.startswith(BANNER)
        s.close()


@pytest.mark.parametrize("backend,resumes", [("openssl", True), ("gnutls", False)])
def test_resume_with_libcoap_server_resumes_or_falls_back(backend, resumes):
    # libcoap's OpenSSL back end keeps a session cache; with GnuTLS the server sends a session
    # ID but answers the resumption attempt with a full handshake.
    with LibcoapServer(backend, TEXT_KEY) as srv:
        first = handshaken(srv)
        assert coap_get(first, "/").payload.startswith(BANNER)
        assert len(first.session_id) == 32
        blob = first.save()
        first.close()
        again = resumed(srv, blob)
        assert again.resumed is resumes
        # Final flight on its own: see the next test for why libcoap needs it.
        again.flush()
        assert coap_get(again, "/").payload.startswith(BANNER)
        again.close()


@pytest.mark.xfail(reason="libcoap 4.3.1 (OpenSSL back end) takes a CoAP request that shares "
                          "a datagram with the resumed handshake's Finished but never answers "
                          "it, and drops its retransmissions as 'mid already in-use'")
def test_coap_request_bundled_with_the_resumed_finished_is_answered_by_coap_server_openssl():
    with LibcoapServer("openssl", TEXT_KEY) as srv:
        blob = saved_blob(srv)
        again = resumed(srv, blob)
        assert again.resumed
        try:
            res = Client(again, timing=Timing(ack_timeout_ms=200, max_retransmit=1)).get("/")
        finally:
            again.close()
        assert res.payload.startswith(BANNER)


@pytest.mark.parametrize("backend", ["openssl", "gnutls"])
def test_wrong_key_with_libcoap_server_times_out_within_the_deadline(backend):
    with LibcoapServer(backend, TEXT_KEY) as srv:
        expect_give_up(srv, key=b"wrongPSK!")


# ---- Mbed TLS (python-mbedtls server) ---------------------------------------------------

@both_suites
def test_handshake_and_echo_with_mbedtls_server(suite):
    with MbedServer(KEY16, suites=(suite,)) as srv:
        s = handshaken(srv)
        assert s.suite == suite
        assert s.psk_identity_hint is None
        assert len(s.session_id) == 32
        srv.wait_for(rb"cipher: TLS-PSK-WITH-AES-128-" + (b"CCM-8" if suite == CCM8
                                                         else b"CBC-SHA256"))
        for i in range(3):
            s.send(b"echo me %d" % i)
            assert s.recv(3000) == b"echo me %d" % i
        s.close()
        srv.wait_for(rb"closed")


def test_resume_with_mbedtls_server_falls_back_to_a_full_handshake():
    # python-mbedtls 2.10.1 sends a session ID but configures no session cache.
    with MbedServer(KEY16) as srv:
        blob = saved_blob(srv)
        again = resumed(srv, blob)
        assert not again.resumed
        again.send(b"after fallback")
        assert again.recv(3000) == b"after fallback"
        again.close()


@both_suites
def test_full_mtu_datagram_round_trips_through_mbedtls_server(suite):
    with MbedServer(KEY16, suites=(suite,)) as srv, UdpRelay(srv.port) as relay:
        s = handshaken(srv, port=relay.port)
        data = bytes(range(256)) * (s.mtu // 256) + bytes(s.mtu % 256)
        s.send(data)
        assert s.recv(3000) == data
        with pytest.raises(DtlsError):
            s.send(data + b"!")
        s.close()
    assert max(len(d) for (w, d) in relay.log) <= 1280     # UdpEndpoint's default mtu


def test_server_close_notify_ends_the_session_with_mbedtls_server():
    with MbedServer(KEY16) as srv:
        s = handshaken(srv)
        s.send(b"bye")                  # the echo server answers, then sends close_notify
        assert s.recv(3000) == b"bye"
        with pytest.raises(DtlsClosed):
            s.recv(3000)
        with pytest.raises(DtlsClosed):
            s.send(b"too late")
        s.close()


def test_lost_server_finished_flight_is_recovered_with_mbedtls_server():
    # Server datagrams: 1 HelloVerifyRequest, 2 ServerHello..Done, 3 CCS + Finished (lost).
    with MbedServer(KEY16) as srv, UdpRelay(srv.port, drop=drop_nth(S2C, 3)) as relay:
        s = handshaken(srv, port=relay.port)
        assert s.retransmissions >= 1
        s.send(b"after a lost Finished")
        assert s.recv(3000) == b"after a lost Finished"
        s.close()


def test_unknown_identity_with_mbedtls_server_is_a_bounded_failure_naming_the_identity():
    # Mbed TLS rejects the identity without an alert ("Unknown identity received").
    with MbedServer(KEY16) as srv:
        err = expect_give_up(srv, identity=b"nobody")
        srv.wait_for(rb"Unknown identity")
    assert "identity" in str(err)


def test_wrong_key_with_mbedtls_server_times_out_within_the_deadline():
    with MbedServer(KEY16) as srv:
        expect_give_up(srv, key=b"another key 1234")


# ---- tinydtls (aiocoap tinydtls_server) --------------------------------------------------

def test_coap_get_and_post_over_ccm8_with_tinydtls():
    with TinydtlsServer(TEXT_KEY) as srv:
        s = handshaken(srv)
        assert s.suite == CCM8
        assert s.psk_identity_hint is None
        assert s.session_id == b""
        client = Client(s, timing=COAP_TIMING)
        res = client.get("/hello")
        assert (res.code, res.payload) == (codes.CONTENT, HELLO)
        res = client.post("/echo", b"posted over tinydtls")
        assert (res.code, res.payload) == (codes.CHANGED, b"posted over tinydtls")
        s.close()


def test_resume_with_tinydtls_is_a_full_handshake_because_it_sends_no_session_id():
    with TinydtlsServer(TEXT_KEY) as srv:
        blob = saved_blob(srv)
        again = resumed(srv, blob)
        assert not again.resumed
        assert coap_get(again, "/hello").payload == HELLO
        again.close()


def test_coap_over_tinydtls_survives_lost_flights():
    lose = {(S2C, 1), (S2C, 2), (C2S, 3)}   # HelloVerifyRequest twice, then our Finished
    with TinydtlsServer(TEXT_KEY) as srv, \
            UdpRelay(srv.port, drop=lambda d, i, data: (d, i) in lose) as relay:
        s = handshaken(srv, port=relay.port)
        assert s.retransmissions >= 3
        assert coap_get(s, "/hello").payload == HELLO
        s.close()


def test_cbc_only_client_is_refused_by_tinydtls_with_an_alert():
    with TinydtlsServer(TEXT_KEY) as srv:
        expect_give_up(srv, suites=(CBC,), error=DtlsAlert)


def test_unknown_identity_with_tinydtls_is_a_fatal_alert():
    with TinydtlsServer(TEXT_KEY) as srv:
        err = expect_give_up(srv, identity=b"nobody", error=DtlsAlert)
    assert not err.sent


def test_wrong_key_with_tinydtls_times_out_within_the_deadline():
    with TinydtlsServer(TEXT_KEY) as srv:
        expect_give_up(srv, key=b"wrongPSK!")


# ---- deep sleep: save(), close the socket, restore() from the same port -------------------

PEERS = {
    "openssl_s_server": lambda: OpensslServer(KEY16),
    "coap_server_openssl": lambda: LibcoapServer("openssl", TEXT_KEY),
    "coap_server_gnutls": lambda: LibcoapServer("gnutls", TEXT_KEY),
    "mbedtls": lambda: MbedServer(KEY16),
    "tinydtls": lambda: TinydtlsServer(TEXT_KEY),
}


def exchange(peer, sess, tag):
    """One application round trip in the peer's own terms."""
    if isinstance(peer, OpensslServer):
        sess.send(tag + b"\n")
        peer.wait_for(tag)
    elif isinstance(peer, MbedServer):
        sess.send(tag)
        assert sess.recv(3000) == tag
    else:
        patient = Timing(ack_timeout_ms=1000, ack_random_factor=1.0, max_retransmit=2)
        res = Client(sess, timing=patient).get("/" if isinstance(peer, LibcoapServer)
                                               else "/hello")
        assert res.payload.startswith(BANNER if isinstance(peer, LibcoapServer) else HELLO)


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_saved_session_carries_on_after_restore_without_a_handshake(peer):
    # A device keeps its session across deep sleep: same keys, epoch and sequence numbers,
    # same UDP source port (the server's association is keyed by address).
    with PEERS[peer]() as srv:
        ep = UdpEndpoint(srv.host, srv.port)
        local_port = ep.local_port()
        s = DtlsSession(ep, IDENTITY, srv.key, timers=FAST)
        s.handshake()
        exchange(srv, s, b"before deep sleep")
        blob = s.save()
        ep.close()                      # no close_notify: the device just sleeps
        woken = DtlsSession.restore(UdpEndpoint(srv.host, srv.port, local_port=local_port),
                                    IDENTITY, srv.key, blob, timers=FAST)
        exchange(srv, woken, b"after deep sleep")
        assert woken.datagrams_sent == 1    # the request alone: no handshake
        woken.close()


# ---- Connection ID offer (RFC 9146) -----------------------------------------------------

@pytest.mark.parametrize("peer", sorted(PEERS))
def test_cid_offer_is_ignored_by_peers_without_cid_support(peer):
    # None of the local stacks (OpenSSL 3.0, libcoap 4.3.1, Mbed TLS 2.28 via python-mbedtls,
    # tinydtls in DTLSSocket 0.2.3) negotiates connection_id: the offer must cost nothing.
    with PEERS[peer]() as srv:
        s = handshaken(srv, cid=True)
        assert s.cid is None
        s.close()


# ---- no server at all --------------------------------------------------------------------

def test_black_hole_peer_gives_dtls_timeout_within_the_deadline():
    with BlackHole() as hole:
        err = expect_give_up(hole, key=KEY16)
        assert "reachable" in str(err)
        time.sleep(0.1)
        # The first ClientHello and at most max_retransmit copies of it, nothing more.
        assert 1 <= hole.received <= 1 + GIVE_UP.max_retransmit


def test_closed_port_gives_dtls_timeout_not_connection_refused():
    with BlackHole() as hole:
        port = hole.port
    s = DtlsSession(UdpEndpoint("127.0.0.1", port), IDENTITY, KEY16, timers=GIVE_UP)
    with pytest.raises(DtlsTimeout):
        s.handshake()
    s.close()

