"""The local EnOS server checked with clients nobody here wrote: aiocoap (plain, and DTLS with
tinydtls) and libcoap's coap-client (plain, and DTLS with OpenSSL and GnuTLS), its DTLS front
end's stateless cookie exchange (RFC 6347 §4.2.1) with hand-made ClientHellos, plus its CLI
and its limits."""
import asyncio
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

import aiocoap
from aiocoap.numbers.codes import Code

from enosnb.coap import message as cm
from tools.enos_server.registry import Registry, expected_sign, parse_identity, psk_key
from tools.enos_server import dtls_front
from tools.enos_server.server import free_port
from tools.netutil import udp_socket

import enos_fixtures
from enos_fixtures import DK, PK, SECRET

server = enos_fixtures.server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRINTABLE_DK = "printablePsk01"
PRINTABLE_KEY = "W1IRooQo_H;d<KRw"
SIGN = "D67FA0998B09ACD507369F68D3E68EA88B93D9716ADC89B8B833A1F2DCA55EDF"
AUTH_BODY = '{"secureMode":2,"lifetime":3600,"sign":"%s"}' % SIGN


_TIMES = itertools.count(1764115200000, 1000)


def post_body(msg_id, temp):
    """A measurement-point post; each body has its own time, since the server keeps one value
    per point and timestamp (as EnOS does)."""
    return ('{"id":"%s","version":"1.0","method":"thing.measurepoint.post",'
            '"params":{"measurepoints":{"temp":%s},"time":%d}}' % (msg_id, temp, next(_TIMES)))


def mp_path(dk):
    return "/topic/sys/%s/%s/thing/measurepoint/post" % (PK, dk)


def temps(server, dk):
    return [json.loads(p["value"]) for p in server.db_view.points(dk, 1000) if p["name"] == "temp"]


def test_registry_derives_the_documented_vector_psk_and_sign():
    assert psk_key(SECRET).hex() == "61eac41c4ca1ee3d6d09e262804b12c9"
    assert psk_key(SECRET, 9).hex() == "eac41c4ca1ee3d6d09e262804b12c9ba"
    assert expected_sign(PK, DK, 3600, SECRET) == SIGN
    assert parse_identity("MuGsF6W4,15bBZlRknc,2,3600") == (PK, DK, 2, 3600)
    assert parse_identity("a,b,2,29") is None and parse_identity("a,b,4,60") is None


def test_demo_device_has_a_printable_psk_for_text_key_clients():
    reg = Registry.load()
    key, _ = reg.psk_for("%s,%s,2,3600" % (PK, PRINTABLE_DK))
    assert key == PRINTABLE_KEY.encode()


def test_aiocoap_client_authenticates_and_posts_a_measurepoint(server):
    async def run():
        ctx = await aiocoap.Context.create_client_context()
        try:
            base = "coap://127.0.0.1:%d" % server.port
            r = await ctx.request(aiocoap.Message(
                code=Code.POST, uri=base + "/auth/%s/%s" % (PK, DK),
                payload=AUTH_BODY.encode(), content_format=50)).response
            assert r.code.is_successful()
            r = await ctx.request(aiocoap.Message(
                code=Code.POST, uri=base + mp_path(DK), payload=post_body("a1", 31.5).encode(),
                content_format=50)).response
            return r
        finally:
            await ctx.shutdown()
    r = asyncio.run(asyncio.wait_for(run(), 20))
    assert r.code == Code.CHANGED
    assert json.loads(r.payload) == {"id": "a1", "code": 200, "data": {}}
    assert 31.5 in temps(server, DK)


def test_request_without_auth_gets_unauthorized(server):
    async def run():
        ctx = await aiocoap.Context.create_client_context()
        try:
            return await ctx.request(aiocoap.Message(
                code=Code.POST, uri="coap://127.0.0.1:%d%s" % (server.port, mp_path(DK)),
                payload=post_body("x", 1).encode())).response
        finally:
            await ctx.shutdown()
    assert asyncio.run(asyncio.wait_for(run(), 20)).code == Code.UNAUTHORIZED


def _raw_exchange(port, msg, local=None, timeout=5):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if local is not None:
            s.bind(("127.0.0.1", local))
        s.settimeout(timeout)
        s.sendto(msg.encode(), ("127.0.0.1", port))
        return cm.decode(s.recv(4096))
    finally:
        s.close()


def test_single_datagram_over_1kb_gets_request_entity_too_large(server):
    local = free_port()
    auth = cm.Message(cm.CON, 2, 0x1000, b"\x01\x02\x03\x04", AUTH_BODY.encode())
    auth.set_path("/auth/%s/%s" % (PK, DK))
    assert _raw_exchange(server.port, auth, local).code == 0x44
    big = cm.Message(cm.CON, 2, 0x1001, b"\x01\x02\x03\x05", b"x" * 1100)
    big.set_path(mp_path(DK))
    resp = _raw_exchange(server.port, big, local)
    assert resp.code == 0x8D
    assert resp.uint_option(60) == 1024


def test_retransmitted_request_is_answered_from_the_cache_not_processed_twice(server):
    local = free_port()
    auth = cm.Message(cm.CON, 2, 0x2000, b"\x09\x09\x09\x01", AUTH_BODY.encode())
    auth.set_path("/auth/%s/%s" % (PK, DK))
    _raw_exchange(server.port, auth, local)
    before = len(temps(server, DK))
    req = cm.Message(cm.CON, 2, 0x2001, b"\x09\x09\x09\x02", post_body("dup", 55.5).encode())
    req.set_path(mp_path(DK))
    first = _raw_exchange(server.port, req, local)
    again = _raw_exchange(server.port, req, local)
    assert first.payload == again.payload and first.mid == again.mid
    assert len(temps(server, DK)) == before + 1


def _coap_client(binary):
    path = shutil.which(binary)
    if path is None:
        pytest.skip("%s is not installed (Debian package libcoap3-bin)" % binary)
    return path


def _run(args, timeout=20):
    return subprocess.run(args, capture_output=True, timeout=timeout, text=True)


def test_libcoap_client_authenticates_and_posts_in_plain_mode(server):
    exe = _coap_client("coap-client-notls")
    local = str(free_port())
    base = "coap://127.0.0.1:%d" % server.port
    r = _run([exe, "-B", "5", "-p", local, "-m", "post", "-t", "50", "-e", AUTH_BODY,
              base + "/auth/%s/%s" % (PK, DK)])
    assert r.returncode == 0, r.stderr
    r = _run([exe, "-B", "5", "-p", local, "-m", "post", "-t", "50", "-e",
              post_body("lc1", 41.5), base + mp_path(DK)])
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"id": "lc1", "code": 200, "data": {}}
    assert 41.5 in temps(server, DK)


@pytest.mark.parametrize("binary", ["coap-client-openssl", "coap-client-gnutls"])
def test_libcoap_client_posts_over_dtls_psk(server, binary):
    exe = _coap_client(binary)
    temp = 51.5 if "openssl" in binary else 52.5
    r = _run([exe, "-B", "5", "-m", "post", "-t", "50",
              "-u", "%s,%s,2,3600" % (PK, PRINTABLE_DK), "-k", PRINTABLE_KEY,
              "-e", post_body("d1", temp),
              "coaps://127.0.0.1:%d%s" % (server.dtls_port, mp_path(PRINTABLE_DK))])
    assert json.loads(r.stdout.strip().splitlines()[-1])["code"] == 200, r.stderr
    assert temp in temps(server, PRINTABLE_DK)


def test_libcoap_client_with_a_wrong_key_gets_no_answer(server):
    exe = _coap_client("coap-client-openssl")
    r = _run([exe, "-B", "3", "-m", "post", "-t", "50",
              "-u", "%s,%s,2,3600" % (PK, PRINTABLE_DK), "-k", "not-the-right-key",
              "-e", post_body("d2", 1),
              "coaps://127.0.0.1:%d%s" % (server.dtls_port, mp_path(PRINTABLE_DK))])
    assert '"code"' not in r.stdout


def test_tinydtls_client_posts_over_dtls_psk(server):
    pytest.importorskip("DTLSSocket")
    before = _hello_verifies(server)
    ident = "%s,%s,2,3600" % (PK, PRINTABLE_DK)
    uri = "coaps://127.0.0.1:%d%s" % (server.dtls_port, mp_path(PRINTABLE_DK))

    async def run():
        ctx = await aiocoap.Context.create_client_context()
        try:
            ctx.client_credentials.load_from_dict({uri: {"dtls": {
                "psk": {"ascii": PRINTABLE_KEY}, "client-identity": {"ascii": ident}}}})
            return await ctx.request(aiocoap.Message(
                code=Code.POST, uri=uri, payload=post_body("t1", 53.5).encode(),
                content_format=50)).response
        finally:
            await ctx.shutdown()
    r = asyncio.run(asyncio.wait_for(run(), 20))
    assert r.code == Code.CHANGED and json.loads(r.payload)["code"] == 200
    assert 53.5 in temps(server, PRINTABLE_DK)
    assert _hello_verifies(server) > before


# ---- the DTLS front end's cookie exchange, with hand-made ClientHellos (dtls.md §5, §6) ----

def _client_hello(random, session_id=b"", cookie=b"", message_seq=0, record_seq=0):
    """A ClientHello datagram shaped like the dtls.md §5 template (CCM-8, CBC-SHA256, SCSV, EMS)."""
    body = b"\xfe\xfd" + random + bytes((len(session_id),)) + session_id + \
        bytes((len(cookie),)) + cookie + bytes.fromhex("0006c0a800ae00ff0100000400170000")
    n = len(body).to_bytes(3, "big")
    hs = b"\x01" + n + message_seq.to_bytes(2, "big") + b"\x00\x00\x00" + n + body
    return b"\x16\xfe\xff\x00\x00" + record_seq.to_bytes(6, "big") + \
        len(hs).to_bytes(2, "big") + hs


@pytest.fixture
def udp():
    with udp_socket(5) as s:
        yield s


def _hello(server, sock, datagram):
    sock.sendto(datagram, ("127.0.0.1", server.dtls_port))
    return sock.recv(4096)


def _hvr_cookie(datagram):
    """The cookie of a HelloVerifyRequest datagram (record 13 + handshake 12 + version 2)."""
    assert datagram[0] == 22 and datagram[13] == 3
    return datagram[28:28 + datagram[27]]


def _peer_of(server, sock):
    return server.call(server.front.peers.get, sock.getsockname())


def _hello_verifies(server):
    return server.call(lambda: server.front.hello_verifies)


def test_first_client_hello_gets_a_stateless_hello_verify_request_with_a_16_byte_cookie(
        server, udp):
    hvr = _hello(server, udp, _client_hello(os.urandom(32), record_seq=7))
    # 16 FEFF epoch 0, the ClientHello's record sequence number, then HelloVerifyRequest
    # message_seq 0, server_version FE FF and a 16-byte cookie: 44 bytes in all.
    assert len(hvr) == 13 + 12 + 3 + 16
    assert hvr[:13] == bytes.fromhex("16feff0000000000000007001f")
    assert hvr[13:25] == bytes.fromhex("030000130000000000000013")
    assert hvr[25:28] == bytes.fromhex("feff10")
    assert _peer_of(server, udp) is None


def test_client_hello_with_the_cookie_starts_the_handshake(server, udp):
    rnd = os.urandom(32)
    cookie = _hvr_cookie(_hello(server, udp, _client_hello(rnd)))
    reply = _hello(server, udp, _client_hello(rnd, cookie=cookie, message_seq=1, record_seq=1))
    # Mbed TLS answers with ServerHello, continuing the sequence numbers the cookie
    # exchange started (message_seq 1, the ClientHello's record sequence number 1).
    assert reply[0] == 22 and reply[13] == 2
    assert reply[5:11] == bytes.fromhex("000000000001") and reply[17:19] == b"\x00\x01"
    assert _peer_of(server, udp) is not None


def test_forged_or_old_cookie_gets_a_fresh_hello_verify_request_and_no_handshake(server, udp):
    rnd = os.urandom(32)
    cookie = _hvr_cookie(_hello(server, udp, _client_hello(rnd)))
    before = _hello_verifies(server)
    forged = bytes(16)
    fresh = _hvr_cookie(_hello(server, udp, _client_hello(rnd, cookie=forged, message_seq=1)))
    assert len(fresh) == 16 and fresh != forged
    # The cookie binds the ClientHello's parameters: another random needs another cookie.
    other = _hello(server, udp, _client_hello(os.urandom(32), cookie=cookie, message_seq=1))
    assert _hvr_cookie(other) != cookie
    # After two secret rotations the cookie is too old.
    server.call(server.front.cookies.rotate)
    server.call(server.front.cookies.rotate)
    old = _hello(server, udp, _client_hello(rnd, cookie=cookie, message_seq=1))
    assert len(_hvr_cookie(old)) == 16
    assert _hello_verifies(server) == before + 3
    assert _peer_of(server, udp) is None


def test_cookie_from_another_address_is_refused(server, udp):
    rnd = os.urandom(32)
    cookie = _hvr_cookie(_hello(server, udp, _client_hello(rnd)))
    with udp_socket(5) as other:
        reply = _hello(server, other, _client_hello(rnd, cookie=cookie, message_seq=1))
        assert reply[13] == 3 and _peer_of(server, other) is None


def _session_id(server):
    """A session id the front end issued, after a libcoap client's full handshake."""
    test_libcoap_client_posts_over_dtls_psk(server, "coap-client-openssl")
    sessions = server.call(lambda: list(server.front.sessions))
    assert sessions
    return sessions[-1]


def test_resuming_client_hello_skips_the_cookie(server, udp):
    sid = _session_id(server)
    before = _hello_verifies(server)
    reply = _hello(server, udp, _client_hello(os.urandom(32), session_id=sid))
    # An abbreviated handshake at once: ServerHello echoing the session id (message_seq 0).
    assert reply[0] == 22 and reply[13] == 2 and reply[17:19] == b"\x00\x00"
    assert dtls_front.server_hello_session_id(reply) == sid
    assert _hello_verifies(server) == before


def test_unknown_session_id_gets_a_hello_verify_request(server, udp):
    hvr = _hello(server, udp, _client_hello(os.urandom(32), session_id=os.urandom(32)))
    assert len(_hvr_cookie(hvr)) == 16 and _peer_of(server, udp) is None


def test_malformed_client_hellos_are_dropped_without_an_answer(server, udp):
    good = _client_hello(os.urandom(32))
    udp.settimeout(0.3)
    for bad in (good[:40], good[:13] + b"\x01\x00\x00\x50" + good[17:],
                good[:11] + b"\xff\xff" + good[13:]):
        udp.sendto(bad, ("127.0.0.1", server.dtls_port))
        with pytest.raises(socket.timeout):
            udp.recv(4096)
    assert _peer_of(server, udp) is None


def test_client_hello_parser_reads_the_fields_the_cookie_covers():
    rnd, sid, cookie = os.urandom(32), os.urandom(32), os.urandom(16)
    h = dtls_front.parse_client_hello(_client_hello(rnd, sid, cookie, 1, 5))
    assert (h.random, h.session_id, h.cookie, h.message_seq) == (rnd, sid, cookie, 1)
    assert h.record_seq == bytes.fromhex("000000000005")
    assert h.params == dtls_front.parse_client_hello(_client_hello(rnd, sid)).params
    assert dtls_front.parse_client_hello(b"\x17" + _client_hello(rnd)[1:]) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 120), st.binary(max_size=8))
def test_client_hello_parser_takes_any_bytes_without_raising(noise, cut, patch):
    for data in (noise, b"\x16\xfe\xff\x00\x00" + noise,
                 (lambda g: g[:cut] + patch + g[cut + len(patch):])(_client_hello(bytes(32)))):
        h = dtls_front.parse_client_hello(data)
        assert h is None or (len(h.random) == 32 and len(h.session_id) <= 32)


def _cli(db_path, *args):
    return subprocess.run([sys.executable, "-m", "tools.enos_server", "--db", db_path] + list(args),
                          capture_output=True, text=True, timeout=30, cwd=ROOT)


def test_cli_lists_devices_and_points_and_queues_commands(server):
    test_aiocoap_client_authenticates_and_posts_a_measurepoint(server)
    r = _cli(server.db_path, "devices")
    assert DK in r.stdout and "online" in r.stdout
    r = _cli(server.db_path, "points", "--device", DK)
    assert "temp = 31.5" in r.stdout
    r = _cli(server.db_path, "command", DK, "set-point", "target=22.5")
    assert r.returncode == 0 and "queued command" in r.stdout
    r = _cli(server.db_path, "command", DK, "raw", "0a0b")
    assert r.returncode == 0
    rows = server.db_view.commands(DK)
    topics = [row["topic"] for row in rows[-2:]]
    assert topics == ["/sys/%s/%s/thing/service/measurepoint/set" % (PK, DK),
                      "/sys/%s/%s/thing/model/down_raw" % (PK, DK)]
    assert json.loads(rows[-2]["payload"])["params"] == {"target": 22.5}


def test_serve_starts_with_the_demo_registry_and_prints_what_arrives(tmp_path):
    port, dport = free_port(), free_port()
    p = subprocess.Popen([sys.executable, "-u", "-m", "tools.enos_server", "--db",
                          str(tmp_path / "s.sqlite"), "serve", "--port", str(port),
                          "--dtls-port", str(dport), "--web-port", "-1"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for _ in range(20):
            line = p.stdout.readline()
            lines.append(line)
            if "local EnOS server" in line:
                break
        assert any("demo registry" in ln for ln in lines)
        auth = cm.Message(cm.CON, 2, 0x3000, b"\x05\x05\x05\x05", AUTH_BODY.encode())
        auth.set_path("/auth/%s/%s" % (PK, DK))
        assert _raw_exchange(port, auth).code == 0x44
        for _ in range(20):
            line = p.stdout.readline()
            if "auth %s/%s" % (PK, DK) in line:
                break
        else:
            pytest.fail("serve did not print the authentication")
    finally:
        p.terminate()
        p.wait(10)
        p.stdout.close()


def test_example_registry_file_is_the_demo_registry():
    example = Registry.load(os.path.join(ROOT, "tools", "enos_server", "registry.example.json"))
    demo = Registry.load()
    assert example.devices == demo.devices and example.products == demo.products


def test_cli_rejects_bad_raw_hex_and_unknown_devices(tmp_path):
    db = str(tmp_path / "c.sqlite")
    r = _cli(db, "command", DK, "raw", "zz")
    assert r.returncode != 0 and "hex" in r.stderr
    r = _cli(db, "command", "nobody", "raw", "00")
    assert r.returncode != 0 and "unknown device" in r.stderr


def test_resent_report_with_the_same_time_is_stored_once_and_counted(server):
    """A device that lost power between the server's answer and its queue acknowledgement sends
    the same report again (new MID and token): EnOS keeps one value per point and time."""
    local = free_port()
    auth = cm.Message(cm.CON, 2, 0x2100, b"\x09\x09\x08\x01", AUTH_BODY.encode())
    auth.set_path("/auth/%s/%s" % (PK, DK))
    _raw_exchange(server.port, auth, local)
    body = post_body("resent", 66.5).encode()
    for mid, token in ((0x2101, b"\x09\x09\x08\x02"), (0x2102, b"\x09\x09\x08\x03")):
        req = cm.Message(cm.CON, 2, mid, token, body)
        req.set_path(mp_path(DK))
        assert _raw_exchange(server.port, req, local).code == 0x44
    rows = [p for p in server.db_view.points(DK, 1000) if p["name"] == "temp"
            and json.loads(p["value"]) == 66.5]
    assert len(rows) == 1 and rows[0]["deliveries"] == 2
