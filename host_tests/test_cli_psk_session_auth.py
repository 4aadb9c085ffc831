"""The host CLIs (tools/coap_client.py, tools/dtls_client.py): one rule for reading a PSK, the key
from a file or the environment and never in -v, a DTLS session kept in a file between runs
(resumed by openssl s_server, libcoap's coap-server and the local EnOS server; a full handshake
when the server declines), and plain-mode /auth on the same socket as the request."""
import binascii
import io
import json
import os
import stat
import subprocess
import sys

import pytest

import enos_fixtures
from enos_fixtures import DK, PK, SECRET
from enosnb.enos import identity
from tools import coap_client as cli
from tools import psk_option, session_file
from tools.dtls_peers import BANNER, LibcoapServer
from test_dtls_openssl import SServer

server = enos_fixtures.server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT_KEY = "secretPSK"
HEX_KEY = binascii.hexlify(TEXT_KEY.encode()).decode()
FAST = ["--ack-timeout", "300", "--retransmit", "1"]
OPENSSL_KEY = bytes(range(16))


def run(*argv, env=None):
    out, err = io.BytesIO(), io.StringIO()
    old = os.environ.copy()
    if env is not None:
        os.environ.update(env)
    try:
        rc = cli.run(FAST + list(argv), stdout=out, stderr=err)
    finally:
        os.environ.clear()
        os.environ.update(old)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def libcoap():
    with LibcoapServer("openssl", TEXT_KEY.encode()) as srv:
        yield srv


def _uri(port, path="/"):
    return "coaps://127.0.0.1:%d%s" % (port, path)


# ---- one rule for the PSK -----------------------------------------------------------------

@pytest.mark.parametrize("text,key,how", [
    ("0102", b"\x01\x02", "hex"), ("0x0102", b"\x01\x02", "hex"), ("hex:0102", b"\x01\x02", "hex"),
    ("text:0102", b"0102", "text"), ("secret", b"secret", "text"), ("abc", b"abc", "text"),
    ("text:hex:00", b"hex:00", "text")])
def test_psk_notation_is_read_the_same_by_both_clis(text, key, how):
    assert psk_option.parse_key(text) == (key, how)
    from tools import dtls_client
    assert dtls_client.psk_option is cli.psk_option


@pytest.mark.parametrize("text", ["0x", "hex:abc", "0xzz", "text:"])
def test_unreadable_psk_is_an_error_that_does_not_echo_the_key(text):
    with pytest.raises(psk_option.PskError) as e:
        psk_option.parse_key(text)
    assert text.partition(":")[2] not in str(e.value) or not text.partition(":")[2]


def test_bare_hex_key_on_the_command_line_reaches_libcoap_as_bytes(libcoap):
    rc, out, err = run("-v", "--psk-identity", "Client_identity", "--psk-key", HEX_KEY,
                       _uri(libcoap.port))
    assert rc == 0, err
    assert out.startswith(BANNER)
    assert "# PSK: 9 bytes read as hex from the command line" in err


def test_key_file_works_and_verbose_output_names_its_notation_but_never_the_key(libcoap,
                                                                                tmp_path):
    kf = tmp_path / "psk"
    kf.write_text(TEXT_KEY + "\n")
    kf.chmod(0o600)
    rc, out, err = run("-v", "--psk-identity", "Client_identity", "--psk-key-file", str(kf),
                       _uri(libcoap.port))
    assert rc == 0, err
    assert "# PSK: 9 bytes read as text from --psk-key-file" in err
    assert TEXT_KEY not in err and HEX_KEY not in err.lower()


def test_key_from_the_environment_variable(libcoap):
    rc, out, err = run("-v", "--psk-identity", "Client_identity", _uri(libcoap.port),
                       env={"ENOSNB_PSK_KEY": "hex:" + HEX_KEY})
    assert rc == 0, err
    assert "read as hex from $ENOSNB_PSK_KEY" in err and HEX_KEY not in err


def test_key_on_the_command_line_and_in_a_file_is_a_usage_error(tmp_path):
    kf = tmp_path / "psk"
    kf.write_text("x")
    rc, out, err = run("--psk-identity", "i", "--psk-key", "k", "--psk-key-file", str(kf),
                       _uri(9))
    assert rc == 2 and "not both" in err


def test_coaps_without_any_key_names_the_three_ways_to_give_one():
    rc, out, err = run("--psk-identity", "i", _uri(9), env={"ENOSNB_PSK_KEY": ""})
    assert rc == 2 and "--psk-key-file" in err and "ENOSNB_PSK_KEY" in err


def test_missing_key_file_is_a_usage_error():
    rc, out, err = run("--psk-identity", "i", "--psk-key-file", "/nonexistent/psk", _uri(9))
    assert rc == 2 and "cannot read the PSK file" in err


def test_help_of_both_clis_states_the_psk_rule():
    for tool in ("coap_client.py", "dtls_client.py"):
        p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", tool), "--help"],
                           capture_output=True, text=True, timeout=30)
        flat = " ".join(p.stdout.split())
        assert "even number of hex digits" in flat and "text:" in flat, tool
        assert "psk-key-file" in flat, tool


def test_dtls_client_reads_a_bare_hex_key_from_the_environment_like_openssl():
    srv = SServer("PSK-AES128-CCM8", key=OPENSSL_KEY)
    try:
        p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "dtls_client.py"), "-v",
                            "127.0.0.1", str(srv.port), "--identity", "Client_identity"],
                           input=b"hello s_server\n", capture_output=True, timeout=60,
                           env=dict(os.environ, ENOSNB_PSK_KEY=OPENSSL_KEY.hex()))
        srv.wait_for(b"hello s_server")
    finally:
        srv.stop()
    assert p.returncode == 0, p.stderr
    assert b"# PSK: 16 bytes read as hex from $ENOSNB_PSK_KEY" in p.stderr
    assert OPENSSL_KEY.hex().encode() not in p.stderr + p.stdout


def test_block_size_defaults_to_1024_on_the_host():
    args = cli.build_parser().parse_args(["coap://h/"])
    assert cli._szx(args.block_size) == 6


# ---- --session ----------------------------------------------------------------------------

def test_session_file_is_resumed_by_openssl_s_server_which_reports_the_reused_id(tmp_path):
    sf = str(tmp_path / "s.session")
    srv = SServer("PSK-AES128-CCM8", naccept=2, key=OPENSSL_KEY)
    try:
        argv = ["-v", "--retransmit", "0", "--psk-identity", "Client_identity",
                "--psk-key", OPENSSL_KEY.hex(), "--session", sf, _uri(srv.port)]
        # s_server is no CoAP server: the request times out, the session is still kept.
        rc, out, err = run(*argv)
        assert rc == 3 and "no saved session" in err and "session saved" in err
        srv.wait_for(b"DONE")
        rc, out, err = run(*argv)
        assert "# session resumed (abbreviated handshake)" in err
        srv.wait_for(b"Reused session-id")
    finally:
        srv.stop()


def test_session_file_is_owner_only_and_holds_neither_key_nor_identity_key(tmp_path, libcoap):
    sf = tmp_path / "s.session"
    rc, out, err = run("--psk-identity", "Client_identity", "--psk-key", TEXT_KEY,
                       "--session", str(sf), _uri(libcoap.port))
    assert rc == 0, err
    assert stat.S_IMODE(os.stat(sf).st_mode) == 0o600
    doc = json.loads(sf.read_text())
    assert doc["peer"] == "127.0.0.1:%d" % libcoap.port and doc["identity"] == "Client_identity"
    assert HEX_KEY not in sf.read_text() and TEXT_KEY not in sf.read_text()


def test_second_run_resumes_with_libcoap_and_still_gets_the_answer(tmp_path, libcoap):
    sf = str(tmp_path / "s.session")
    argv = ["-v", "--psk-identity", "Client_identity", "--psk-key", TEXT_KEY, "--session", sf,
            _uri(libcoap.port)]
    rc, out, err = run(*argv)
    assert rc == 0 and "full handshake" in err, err
    rc, out, err = run(*argv)
    assert rc == 0, err
    assert out.startswith(BANNER)
    assert "# session resumed (abbreviated handshake)" in err


def test_server_that_forgot_the_session_gets_a_full_handshake_and_the_request_succeeds(tmp_path):
    sf = str(tmp_path / "s.session")
    with LibcoapServer("openssl", TEXT_KEY.encode()) as first:
        rc, out, err = run("--psk-identity", "Client_identity", "--psk-key", TEXT_KEY,
                           "--session", sf, _uri(first.port))
        assert rc == 0, err
        blob = session_file.load(sf, "127.0.0.1:%d" % first.port, "Client_identity")
    with LibcoapServer("openssl", TEXT_KEY.encode()) as restarted:
        # The same server after a restart: its session cache is empty.
        session_file.save(sf, "127.0.0.1:%d" % restarted.port, "Client_identity", blob)
        rc, out, err = run("-v", "--psk-identity", "Client_identity", "--psk-key", TEXT_KEY,
                           "--session", sf, _uri(restarted.port))
    assert rc == 0, err
    assert out.startswith(BANNER)
    assert "did not resume the saved session: full handshake" in err


def test_session_saved_for_another_server_is_not_offered(tmp_path, libcoap):
    sf = str(tmp_path / "s.session")
    session_file.save(sf, "127.0.0.1:1", "Client_identity", b"\x01" * 100)
    rc, out, err = run("-v", "--psk-identity", "Client_identity", "--psk-key", TEXT_KEY,
                       "--session", sf, _uri(libcoap.port))
    assert rc == 0, err
    assert "belongs to another server or PSK identity: full handshake" in err


def test_damaged_session_file_falls_back_to_a_full_handshake(tmp_path, libcoap):
    sf = tmp_path / "s.session"
    sf.write_text("{not json")
    rc, out, err = run("-v", "--psk-identity", "Client_identity", "--psk-key", TEXT_KEY,
                       "--session", str(sf), _uri(libcoap.port))
    assert rc == 0 and "unreadable" in err, err
    session_file.save(str(sf), "127.0.0.1:%d" % libcoap.port, "Client_identity", b"\x09" * 30)
    rc, out, err = run("-v", "--psk-identity", "Client_identity", "--psk-key", TEXT_KEY,
                       "--session", str(sf), _uri(libcoap.port))
    assert rc == 0 and "corrupt" in err and "full handshake" in err, err


def test_session_file_is_resumed_by_the_local_enos_server(tmp_path, server):
    sf = str(tmp_path / "s.session")
    ident = identity.psk_identity(PK, DK, identity.MODE_DEVICE, 3600).decode()
    key = identity.psk_key(SECRET).hex()
    path = "/topic/sys/%s/%s/thing/measurepoint/post" % (PK, DK)

    def post(msg_id, temp):
        body = ('{"id":"%s","version":"1.0","method":"thing.measurepoint.post",'
                '"params":{"measurepoints":{"temp":%s},"time":%d}}' % (
                    msg_id, temp, 1764200000000 + int(temp * 10)))
        return run("-v", "-m", "post", "-t", "json", "-e", body, "--psk-identity", ident,
                   "--psk-key", key, "--session", sf, _uri(server.dtls_port, path))
    rc, out, err = post("s1", 61.5)
    assert rc == 0, err
    rc, out, err = post("s2", 62.5)
    assert rc == 0, err
    assert "# session resumed (abbreviated handshake)" in err
    assert json.loads(out)["code"] == 200


def test_session_needs_coaps():
    rc, out, err = run("--session", "/tmp/x", "coap://127.0.0.1:9/")
    assert rc == 2 and "coaps://" in err


# ---- --auth -------------------------------------------------------------------------------

def _measurepoint(msg_id, temp):
    return ('{"id":"%s","version":"1.0","method":"thing.measurepoint.post",'
            '"params":{"measurepoints":{"temp":%s},"time":%d}}' % (
                msg_id, temp, 1764300000000 + int(temp * 10)))


def test_auth_and_the_request_share_one_socket_in_plain_mode(server, tmp_path):
    sf = tmp_path / "secret"
    sf.write_text(SECRET + "\n")
    path = "coap://127.0.0.1:%d/topic/sys/%s/%s/thing/measurepoint/post" % (server.port, PK, DK)
    rc, out, err = run("-v", "-m", "post", "-t", "json", "-e", _measurepoint("a1", 71.5),
                       "--auth", "%s/%s" % (PK, DK), "--device-secret-file", str(sf), path)
    assert rc == 0, err
    assert json.loads(out) == {"id": "a1", "code": 200, "data": {}}
    sent = [line for line in err.splitlines() if line.startswith("-> CON")]
    assert "auth" in sent[0] and "measurepoint" in sent[1]
    assert SECRET not in err
    # Without --auth the same request from a new port is refused: /auth is bound to the port.
    rc, out, err = run("-m", "post", "-t", "json", "-e", _measurepoint("a2", 72.5), path)
    assert rc == 1 and "4.01" in err


def test_auth_with_a_wrong_device_secret_stops_before_the_request(server):
    path = "coap://127.0.0.1:%d/topic/sys/%s/%s/thing/measurepoint/post" % (server.port, PK, DK)
    rc, out, err = run("-v", "-m", "post", "-e", _measurepoint("a3", 73.5),
                       "--auth", "%s/%s" % (PK, DK), path,
                       env={"ENOSNB_DEVICE_SECRET": "not the secret"})
    assert rc == 1 and "/auth answered" in err
    assert "measurepoint" not in "".join(l for l in err.splitlines() if l.startswith("-> "))


@pytest.mark.parametrize("auth", ["PK", "/DK", "PK/", "a/b/c"])
def test_auth_needs_product_and_device_key(auth):
    rc, out, err = run("--auth", auth, "coap://127.0.0.1:9/",
                       env={"ENOSNB_DEVICE_SECRET": "s"})
    assert rc == 2 and "PRODUCT_KEY/DEVICE_KEY" in err


def test_auth_without_a_device_secret_is_a_usage_error(server):
    rc, out, err = run("--auth", "%s/%s" % (PK, DK), "coap://127.0.0.1:%d/" % server.port,
                       env={"ENOSNB_DEVICE_SECRET": ""})
    assert rc == 2 and "device secret" in err
