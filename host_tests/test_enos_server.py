"""The local EnOS server checked with clients nobody here wrote: aiocoap and libcoap's
coap-client (plain, and DTLS with OpenSSL and GnuTLS), plus its CLI and its limits."""
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

import aiocoap
from aiocoap.numbers.codes import Code

from enosnb.coap import message as cm
from tools.enos_server.db import Db
from tools.enos_server.registry import Registry, expected_sign, parse_identity, psk_key
from tools.enos_server.server import EnosServer, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PK = "MuGsF6W4"
DK = "15bBZlRknc"
SECRET = "ExampleDeviceSecret0123456789abc"
PRINTABLE_DK = "printablePsk01"
PRINTABLE_KEY = "W1IRooQo_H;d<KRw"
SIGN = "D67FA0998B09ACD507369F68D3E68EA88B93D9716ADC89B8B833A1F2DCA55EDF"
AUTH_BODY = '{"secureMode":2,"lifetime":3600,"sign":"%s"}' % SIGN


def post_body(msg_id, temp):
    return ('{"id":"%s","version":"1.0","method":"thing.measurepoint.post",'
            '"params":{"measurepoints":{"temp":%s},"time":1764115200000}}' % (msg_id, temp))


def mp_path(dk):
    return "/topic/sys/%s/%s/thing/measurepoint/post" % (PK, dk)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db_path = str(tmp_path_factory.mktemp("enos") / "enos.sqlite")
    srv = EnosServer(db_path=db_path, port=0, dtls_port=0, log=None)
    srv.start()
    srv.db_view = Db(db_path)
    try:
        yield srv
    finally:
        srv.db_view.close()
        srv.stop()


def temps(server, dk):
    return [json.loads(p["value"]) for p in server.db_view.points(dk, 1000) if p["name"] == "temp"]


def test_registry_derives_the_spec_vector_psk_and_sign():
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
                          "--dtls-port", str(dport)], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
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
