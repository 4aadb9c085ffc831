"""The CoAP client against libcoap's coap-server-notls (Debian libcoap3-bin): GET, PUT, POST,
DELETE, a separate response, a large Block2 resource and a Block1 upload to a dynamic
resource (-d)."""
import pytest

from coap_peers import LibcoapServer, client_to
from enosnb.coap import allcodes as codes


@pytest.fixture(scope="module")
def server():
    with LibcoapServer() as srv:
        yield srv


@pytest.fixture
def client(server):
    with client_to(server.port) as c:
        yield c


def test_get_root_returns_libcoaps_banner(client):
    res = client.get("/")
    assert res.code == codes.CONTENT and b"libcoap" in res.payload


def test_put_creates_a_dynamic_resource_that_get_returns(client):
    assert client.put("/dyn/put", b"first", content_format=codes.TEXT_PLAIN).code == \
        codes.CREATED
    assert client.get("/dyn/put").payload == b"first"
    assert client.put("/dyn/put", b"second").code == codes.CHANGED
    assert client.get("/dyn/put").payload == b"second"


def test_post_creates_and_delete_removes_a_resource(client):
    assert client.post("/dyn/post", b"posted").code in (codes.CREATED, codes.CHANGED)
    assert client.get("/dyn/post").payload == b"posted"
    assert client.delete("/dyn/post").code == codes.DELETED
    assert client.get("/dyn/post").code == codes.NOT_FOUND


def test_method_not_allowed_is_a_result(client):
    assert client.post("/time").code == codes.METHOD_NOT_ALLOWED


def test_separate_response_from_async_resource(client):
    res = client.get("/async?1")
    assert res.code == codes.CONTENT and res.payload == b"done"
    assert res.datagrams_sent == 2 and res.retransmissions == 0


def test_large_example_data_arrives_through_block2(client):
    res = client.get("/example_data")
    assert res.code == codes.CONTENT
    assert len(res.payload) > 1000 and res.round_trips == (len(res.payload) + 255) // 256
    assert res.payload.startswith(b"a123456789b123456789")


def test_block1_upload_to_a_dynamic_resource_reads_back_whole(client):
    body = bytes((i * 13 + 5) & 0xFF for i in range(4000))
    res = client.put("/dyn/big", body, content_format=codes.OCTET_STREAM)
    assert res.code in (codes.CREATED, codes.CHANGED)
    assert res.round_trips == 16
    back = client.get("/dyn/big")
    assert back.payload == body and back.round_trips == 16


def test_block1_upload_in_small_blocks(server):
    with client_to(server.port, block_szx=2) as c:
        body = b"0123456789abcdef" * 40
        assert c.put("/dyn/small", body).code in (codes.CREATED, codes.CHANGED)
        assert c.get("/dyn/small").payload == body
