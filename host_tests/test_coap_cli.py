"""tools/coap_client.py, the command-line client, against an aiocoap server: output, -v
datagram trace, payload from a file, block size, and exit statuses."""
import hashlib
import io
import os
import subprocess
import sys

import pytest

from tools import coap_client as cli
from tools.aiocoap_server import AiocoapServer, big_body
from tools.netutil import free_udp_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def server():
    with AiocoapServer() as srv:
        yield srv


def run(*argv):
    out, err = io.BytesIO(), io.StringIO()
    rc = cli.run(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def uri(server, path):
    return "coap://127.0.0.1:%d%s" % (server.port, path)


def test_get_prints_the_payload_and_exits_zero(server):
    assert run(uri(server, "/hello")) == (0, b"world", "")


def test_error_response_exits_one_and_names_the_code(server):
    rc, out, err = run(uri(server, "/missing"))
    assert rc == 1 and "4.04 Not Found" in err


def test_verbose_prints_every_datagram_decoded(server):
    rc, out, err = run("-v", "-m", "post", "-t", "json", "-e", '{"v":1}', uri(server, "/echo"))
    assert rc == 0 and out == b'{"v":1}'
    assert "-> CON 0.02 POST" in err and "Uri-Path:echo" in err and "Content-Format:50" in err
    assert "<- ACK 2.04 Changed" in err
    assert "retransmissions" in err


def test_payload_from_file_is_uploaded_block_wise(server, tmp_path):
    body = big_body(1500)[::-1]
    f = tmp_path / "body.bin"
    f.write_bytes(body)
    rc, out, err = run("-m", "put", "-f", str(f), "-b", "128", "-v", uri(server, "/upload"))
    assert rc == 0
    assert out == b"1500 " + hashlib.sha256(body).hexdigest().encode()
    assert "Block1:11/0/128" in err


def test_output_file_receives_a_block2_download(server, tmp_path):
    target = tmp_path / "out.bin"
    rc, out, err = run("-b", "1,64", "-o", str(target), uri(server, "/big?n=700"))
    assert rc == 0 and out == b"" and target.read_bytes() == big_body(700)


def test_no_server_exits_three_with_a_timeout_message():
    rc, out, err = run("--ack-timeout", "50", "--retransmit", "1",
                       "coap://127.0.0.1:%d/x" % free_udp_port())
    assert rc == 3 and "timeout" in err and "no answer" in err


@pytest.mark.parametrize("argv, words", [
    (["http://127.0.0.1/x"], "coap://"),
    (["-t", "nonsense", "coap://127.0.0.1/x"], "Content-Format"),
    (["-b", "100", "coap://127.0.0.1/x"], "block size"),
    (["-m", "fetch", "coap://127.0.0.1/x"], ""),
    (["-f", "/nonexistent/file", "coap://127.0.0.1/x"], "cannot read"),
    (["coaps://127.0.0.1/x"], "--psk-identity"),
    (["coap://127.0.0.1:99999/x"], "port"),
])
def test_usage_errors_exit_two_with_a_message(argv, words, capsys):
    rc, out, err = run(*argv)
    assert rc == 2
    assert words in err + capsys.readouterr().err


def test_parse_uri_takes_default_ports_paths_queries_and_ipv6_hosts():
    assert cli.parse_uri("coap://h/a/b?x=1") == ("coap", "h", 5683, "/a/b?x=1")
    assert cli.parse_uri("coaps://[::1]:7000") == ("coaps", "::1", 7000, "/")


def test_command_line_process_exit_status(server):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "coap_client.py"),
                        uri(server, "/hello")], capture_output=True, timeout=30)
    assert p.returncode == 0 and p.stdout == b"world"
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "coap_client.py"),
                        uri(server, "/missing")], capture_output=True, timeout=30)
    assert p.returncode == 1 and b"4.04" in p.stderr


DTLS_KEY = "secretPSK0123456"


@pytest.fixture(scope="module")
def dtls_server():
    from coap_peers import LibcoapDtlsServer
    import shutil
    if shutil.which("coap-server-openssl") is None:
        pytest.skip("coap-server-openssl (libcoap3-bin) not installed")
    with LibcoapDtlsServer(DTLS_KEY) as srv:
        yield srv


def test_coaps_get_through_our_dtls_session(dtls_server):
    pytest.importorskip("enosnb.dtls.session")
    rc, out, err = run("-v", "--psk-identity", "device-1", "--psk-key", DTLS_KEY,
                       "coaps://127.0.0.1:%d/" % dtls_server.port)
    assert rc == 0, err
    assert out.startswith(b"This is a test server made with libcoap")
    assert "<- ACK 2.05 Content" in err


def test_coaps_with_a_wrong_key_exits_three_and_says_why(dtls_server):
    pytest.importorskip("enosnb.dtls.session")
    rc, out, err = run("--psk-identity", "device-1", "--psk-key", "0x" + "00" * 16,
                       "coaps://127.0.0.1:%d/" % dtls_server.port)
    assert rc == 3 and "timeout" in err and "PSK" in err
