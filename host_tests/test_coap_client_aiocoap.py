"""The CoAP client against aiocoap (a server nobody here wrote): piggybacked and separate
responses, slow handlers, Block2 downloads, Block1 uploads the server assembles."""
import hashlib
import json

import pytest

from enosnb.coap import allcodes as codes
from enosnb.coap.client import Client, Timing
from enosnb.coap.errors import CoapTimeout
from enosnb.udp import UdpEndpoint
from coap_peers import client_to
from tools.aiocoap_server import AiocoapServer, big_body
from tools.lossy import LossyEndpoint, LossyRelay
from tools.netutil import free_udp_port


@pytest.fixture(scope="module")
def server():
    with AiocoapServer() as srv:
        yield srv


@pytest.fixture
def client(server):
    with client_to(server.port) as c:
        yield c


def test_piggybacked_get_returns_the_resource(client):
    res = client.get("/hello")
    assert res.code == codes.CONTENT and res.payload == b"world"
    assert res.datagrams_sent == 1 and res.datagrams_received == 1 and res.round_trips == 1


def test_unknown_resource_is_a_not_found_result_not_an_exception(client):
    res = client.get("/nothing/here")
    assert res.code == codes.NOT_FOUND and not res.ok()


def test_delete_returns_deleted(client):
    assert client.delete("/hello").code == codes.DELETED


def test_separate_response_is_received_and_acknowledged(client):
    res = client.get("/slow?ms=400")
    assert res.payload == b"finally"
    # the request and our Empty ACK of the server's CON response
    assert res.datagrams_sent == 2 and res.datagrams_received == 2
    assert res.retransmissions == 0


def test_slow_response_beyond_ack_timeout_needs_no_retransmission(client):
    res = client.get("/slow?ms=2500")
    assert res.payload == b"finally" and res.retransmissions == 0


def test_large_resource_arrives_whole_through_block2(client):
    res = client.get("/big?n=5000")
    assert res.payload == big_body(5000)
    assert res.round_trips == 20  # 256-byte blocks


def test_block1_upload_is_assembled_by_the_server(client):
    body = big_body(3000)[::-1]
    res = client.post("/upload", body, content_format=codes.OCTET_STREAM)
    assert res.code == codes.CHANGED
    assert res.payload == b"%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())
    assert res.round_trips == 12
    assert client.get("/upload").payload == body


def test_small_blocks_upload_and_download(server):
    with client_to(server.port, block_szx=1) as c:
        body = bytes(range(256)) * 2
        assert c.put("/upload", body).code == codes.CHANGED
        res = c.get("/upload")
        assert res.payload == body and res.round_trips == 16


def test_no_server_gives_a_timeout_error():
    with client_to(free_udp_port(), timing=Timing(ack_timeout_ms=50, max_retransmit=2)) as c:
        with pytest.raises(CoapTimeout) as e:
            c.get("/hello")
        assert "no answer" in str(e.value)
        assert e.value.result.retransmissions == 2


# --- through a lossy link ---

# Scaled RFC profile (same ratios, shorter ACK_TIMEOUT) so the lossy tests stay quick;
# MAX_RETRANSMIT 8 makes a give-up at 25 % loss a one-in-a-million event.
FAST = Timing(ack_timeout_ms=30, max_retransmit=8)


def _stats(port):
    with client_to(port) as c:
        return json.loads(c.get("/stats").payload)


def test_requests_complete_through_a_lossy_relay_without_double_processing(server):
    before = _stats(server.port)
    with LossyRelay(("127.0.0.1", server.port), loss=0.25, dup=0.1, reorder=0.1,
                    delay_ms=(0, 5), seed=7) as relay:
        with client_to(relay.port, timing=FAST) as c:
            for i in range(30):
                assert c.post("/count", b"lossy-%d" % i).code == codes.CHANGED
        assert relay.up.dropped and relay.down.dropped and relay.up.duplicated
    after = _stats(server.port)
    assert after["double"] == before["double"]
    assert after["processed"] - before["processed"] == 30


def test_block_transfers_survive_a_lossy_relay(server):
    body = big_body(2500)[::-1]
    with LossyRelay(("127.0.0.1", server.port), loss=0.2, dup=0.1, reorder=0.1,
                    seed=3) as relay:
        with client_to(relay.port, timing=FAST) as c:
            res = c.put("/upload", body)
            assert res.payload.startswith(b"2500 " + hashlib.sha256(body).hexdigest().encode())
            assert c.get("/upload").payload == body
            assert c.get("/big?n=3000").payload == big_body(3000)


def test_client_over_a_lossy_endpoint_wrapper_completes(server):
    ep = LossyEndpoint(UdpEndpoint("127.0.0.1", server.port), loss=0.3, dup=0.1, seed=11)
    try:
        c = Client(ep, timing=FAST)
        res = c.get("/big?n=1200")
        assert res.payload == big_body(1200)
    finally:
        ep.close()
