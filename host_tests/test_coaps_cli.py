"""tools/coap_client.py over coaps://: the command-line client runs our DTLS
session against libcoap's coap-server-openssl and coap-server-gnutls, with the PSK given as
text, as 0x-hex and as hex:-hex."""
import binascii
import io
import os
import subprocess
import sys

import pytest

from tools import coap_client as cli
from tools import psk_option
from tools.dtls_peers import BANNER, LibcoapServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT_KEY = "secretPSK"
HEX_KEY = binascii.hexlify(TEXT_KEY.encode()).decode()


# Short CoAP retransmission so that a failure shows in seconds, not RFC 7252's 93.
FAST = ["--ack-timeout", "300", "--retransmit", "2"]


def run(*argv):
    out, err = io.BytesIO(), io.StringIO()
    rc = cli.run(FAST + list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def openssl_server():
    with LibcoapServer("openssl", TEXT_KEY.encode()) as srv:
        yield srv


@pytest.mark.parametrize("key", [TEXT_KEY, "0x" + HEX_KEY, "hex:" + HEX_KEY, HEX_KEY],
                         ids=["text", "0x_hex", "hex_prefix", "bare_hex"])
def test_coaps_get_prints_the_banner_whatever_the_key_notation(openssl_server, key):
    rc, out, err = run("--psk-identity", "Client_identity", "--psk-key", key,
                       "coaps://127.0.0.1:%d/" % openssl_server.port)
    assert rc == 0, err
    assert out.startswith(BANNER)


def test_text_prefix_forces_text_for_a_key_that_reads_as_hex_too():
    assert psk_option.parse_key("text:cafe") == (b"cafe", "text")
    assert psk_option.parse_key("cafe") == (b"\xca\xfe", "hex")
    assert psk_option.parse_key("HEX:00ff") == (b"\x00\xff", "hex")
    assert psk_option.parse_key("secretPSK") == (b"secretPSK", "text")


@pytest.mark.parametrize("key", ["hex:abc", "hex:", "0xzz"])
def test_malformed_hex_key_is_a_usage_error(key):
    rc, out, err = run("--psk-identity", "Client_identity", "--psk-key", key,
                       "coaps://127.0.0.1:9/")
    assert rc == 2 and "hex digits" in err and out == b""


def test_coaps_command_line_against_coap_server_gnutls_with_verbose_trace():
    with LibcoapServer("gnutls", TEXT_KEY.encode(), hint="") as srv:
        p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "coap_client.py"), "-v",
                            *FAST, "--psk-identity", "Client_identity", "--psk-key", TEXT_KEY,
                            "coaps://127.0.0.1:%d/" % srv.port], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(BANNER)
    assert b"2.05 Content" in p.stderr
