"""CoAP client behaviour on a virtual clock with a scripted server (CPython and MicroPython VM).

RFC 7252 §4.2 retransmission bounds, §5.2 separate responses, §4.5 duplicates, §5.3.2
matching, RST; RFC 7959 block-wise; message-ID state across reboots.
"""
from coap_fake import FakeEndpoint, con_response, empty, reply
from vmcheck import VirtualClock, raises

from enosnb import rng
from enosnb.coap import allcodes as codes
from enosnb.coap import options as opt
from enosnb.coap.client import MID_JUMP, RFC_TIMING, NBIOT_TIMING, Client, Timing
from enosnb.coap.errors import CoapError, CoapReset, CoapTimeout
from enosnb.coap.message import ACK, CON, NON, RST, Message


def _setup(handler=None, **kw):
    clock = VirtualClock(1000)
    ep = FakeEndpoint(clock, handler)
    return clock, ep, Client(ep, clock=clock, **kw)


def _echo(code=codes.CONTENT, payload=b"hi"):
    def handler(req, ep):
        if req.mtype == CON and req.code:
            ep.deliver(reply(req, code, payload), 20)
    return handler


def test_piggybacked_response_returns_code_payload_and_cost():
    clock, ep, c = _setup(_echo(payload=b"21.5"))
    res = c.get("/sensors/temp")
    assert res.code == codes.CONTENT
    assert res.payload == b"21.5"
    assert res.ok()
    assert res.retransmissions == 0 and res.round_trips == 1
    assert res.datagrams_sent == 1 and res.datagrams_received == 1
    assert res.bytes_sent == len(ep.sent[0][1]) and res.bytes_received > 4
    req = ep.requests()[0]
    assert req.mtype == CON and req.code == codes.GET and req.path() == "/sensors/temp"


def test_the_query_starts_at_the_first_question_mark_and_may_stand_alone():
    clock, ep, c = _setup(_echo())
    c.get("/a?b=?c")
    c.get("?x")
    first, second = ep.requests()
    assert (first.path(), first.options_of(opt.URI_QUERY)) == ("/a", [b"b=?c"])
    assert (second.path(), second.options_of(opt.URI_QUERY)) == ("/", [b"x"])


def test_query_content_format_and_extra_options_are_sent():
    clock, ep, c = _setup(_echo(codes.CHANGED, b""))
    c.post("/topic/a?x=1&y", b"{}", content_format=codes.JSON, accept=codes.JSON,
           options=((opt.ENOS_TOPIC, "/t"),))
    req = ep.requests()[0]
    assert req.options_of(opt.URI_QUERY) == [b"x=1", b"y"]
    assert req.uint_option(opt.CONTENT_FORMAT) == codes.JSON
    assert req.uint_option(opt.ACCEPT) == codes.JSON
    assert req.option(opt.ENOS_TOPIC) == b"/t"


def test_retransmission_times_stay_within_rfc_bounds_and_it_gives_up_with_timeout():
    for _ in range(5):
        clock, ep, c = _setup()
        start = clock.now
        e = raises(CoapTimeout, c.post, "/x", b"1")
        times = [t - start for t, _ in ep.sent]
        assert len(times) == 1 + RFC_TIMING.max_retransmit
        assert all(d == ep.sent[0][1] for _, d in ep.sent)  # same MID and token each time
        t0 = times[1] - times[0]
        assert 2000 <= t0 <= 3000
        for i in range(1, len(times) - 1):
            assert times[i + 1] - times[i] == 2 * (times[i] - times[i - 1])
        # gives up one doubled timeout after the last retransmission: 31 * T0 in all
        assert clock.now - start == 31 * t0
        assert "no answer" in str(e) and "5 transmissions" in str(e)
        assert e.result.retransmissions == 4


def test_initial_timeout_is_random_within_ack_timeout_and_random_factor():
    seen = set()
    for _ in range(200):
        t = RFC_TIMING.initial_timeout_ms()
        assert 2000 <= t <= 3000
        seen.add(t)
    assert len(seen) > 20
    assert 15000 <= NBIOT_TIMING.initial_timeout_ms() <= 22500
    assert RFC_TIMING.max_transmit_wait_ms() == 93000
    assert RFC_TIMING.exchange_lifetime_ms() == 247000


def test_retransmits_until_answered_then_stops():
    seen = []

    def handler(req, ep):
        seen.append(req.mid)
        if len(seen) == 3:
            ep.deliver(reply(req, codes.CHANGED), 50)

    clock, ep, c = _setup(handler)
    res = c.post("/x", b"1")
    assert res.code == codes.CHANGED
    assert res.retransmissions == 2 and len(ep.sent) == 3
    assert len(set(seen)) == 1
    clock.advance(100000)
    assert len(ep.sent) == 3


def test_separate_response_is_acked_with_an_empty_ack_and_retransmission_stops():
    def handler(req, ep):
        if req.code == codes.GET:
            ep.deliver(empty(ACK, req.mid), 10)
            ep.deliver(con_response(req, codes.CONTENT, b"late", mid=0x1234), 40000)

    clock, ep, c = _setup(handler)
    res = c.get("/slow")
    assert res.payload == b"late"
    msgs = ep.sent_messages()
    assert len(msgs) == 2  # no retransmission during the 40 s wait
    ack = msgs[1]
    assert ack.mtype == ACK and ack.code == 0 and ack.mid == 0x1234 and ack.token == b""
    assert res.retransmissions == 0 and res.round_trips == 1


def test_separate_response_before_its_empty_ack_is_accepted():
    def handler(req, ep):
        if req.code == codes.GET:
            ep.deliver(con_response(req, codes.CONTENT, b"x", mid=77), 10)
            ep.deliver(empty(ACK, req.mid), 20)

    clock, ep, c = _setup(handler)
    assert c.get("/a").payload == b"x"


def test_non_separate_response_is_accepted_without_ack():
    def handler(req, ep):
        if req.code == codes.GET:
            ep.deliver(empty(ACK, req.mid), 10)
            ep.deliver(reply(req, codes.CONTENT, b"n", mtype=NON, mid=99), 500)

    clock, ep, c = _setup(handler)
    assert c.get("/a").payload == b"n"
    assert len(ep.sent) == 1


def test_separate_response_wait_is_bounded_by_the_exchange_timeout():
    def handler(req, ep):
        ep.deliver(empty(ACK, req.mid), 10)

    clock, ep, c = _setup(handler, timing=Timing(exchange_timeout_ms=30000))
    start = clock.now
    e = raises(CoapTimeout, c.get, "/never")
    assert clock.now - start == 30000
    assert "empty ACK" in str(e)
    assert len(ep.sent) == 1


def test_duplicate_con_response_is_acked_again_and_not_taken_as_the_next_answer():
    first = []

    def handler(req, ep):
        if req.code == 0:
            return
        if not first:
            first.append(con_response(req, codes.CONTENT, b"one", mid=500))
            ep.deliver(empty(ACK, req.mid), 5)
            ep.deliver(first[0], 10)
        else:
            ep.deliver(first[0], 5)  # the earlier response again, before the real one
            ep.deliver(reply(req, codes.CONTENT, b"two"), 30)

    clock, ep, c = _setup(handler)
    assert c.get("/a").payload == b"one"
    res = c.get("/b")
    assert res.payload == b"two"
    acks = [m for m in ep.sent_messages() if m.mtype == ACK]
    assert [a.mid for a in acks] == [500, 500]


def test_duplicate_piggybacked_response_of_an_earlier_request_is_dropped():
    old = []

    def handler(req, ep):
        if old:
            ep.deliver(old[0], 5)
        r = reply(req, codes.CONTENT, b"%d" % len(old))
        old.append(r)
        ep.deliver(r, 20)

    clock, ep, c = _setup(handler)
    assert c.get("/a").payload == b"0"
    assert c.get("/a").payload == b"1"
    assert not [m for m in ep.sent_messages() if m.mtype == RST]


def test_reset_ends_the_exchange_with_coap_reset():
    def handler(req, ep):
        ep.deliver(empty(RST, req.mid), 10)

    clock, ep, c = _setup(handler)
    e = raises(CoapReset, c.post, "/topic/x", b"1")
    assert "reset" in str(e) and "/topic/x" in str(e)


def test_stray_malformed_and_late_datagrams_do_not_disturb_the_exchange():
    def handler(req, ep):
        if req.code == 0:
            return
        ep.deliver(b"\xff\x00", 1)                                   # too short
        ep.deliver(b"\x80\x45\x00\x01", 2)                           # version 2
        ep.deliver(b"\x48\x45\x00\x01", 3)                           # token past the end
        ep.deliver(reply(req, codes.CONTENT, b"bad", mid=(req.mid + 1) & 0xFFFF), 4)
        ep.deliver(reply(req, codes.CONTENT, b"bad", token=b"zzzz"), 5)
        ep.deliver(empty(RST, (req.mid - 1) & 0xFFFF), 6)            # RST of another MID
        stray = Message(CON, codes.CONTENT, 4243, b"\x01\x02\x03\x04", b"bad")
        ep.deliver(stray, 8)
        ep.deliver(Message(CON, codes.GET, 4244, b"\x09", b""), 9)  # a request to us
        ep.deliver(reply(req, codes.CONTENT, b"good"), 50)

    clock, ep, c = _setup(handler)
    res = c.get("/a")
    assert res.payload == b"good"
    assert res.datagrams_received == 9
    rsts = [m for m in ep.sent_messages() if m.mtype == RST]
    assert sorted(m.mid for m in rsts) == [1, 4243, 4244]  # malformed CON, stray, request


def test_malformed_con_is_rejected_with_rst():
    def handler(req, ep):
        if req.code:
            ep.deliver(b"\x40\x45\x10\x00\xd1", 1)  # CON, option header runs past the end
            ep.deliver(reply(req, codes.CONTENT, b"ok"), 5)

    clock, ep, c = _setup(handler)
    assert c.get("/a").payload == b"ok"
    assert [m.mid for m in ep.sent_messages() if m.mtype == RST] == [0x1000]


def test_random_datagrams_never_raise_anything_but_coap_errors():
    for i in range(60):
        def handler(req, ep, i=i):
            if req.code == 0:
                return
            for k in range(5):
                junk = bytearray(rng.urandom(1 + i % 20))
                if k & 1 and len(junk) >= 4:
                    junk[0] = 0x40 | (junk[0] & 0x3F)
                    junk[2] = req.mid >> 8
                    junk[3] = req.mid & 0xFF
                ep.deliver(bytes(junk), k)

        clock, ep, c = _setup(handler, timing=Timing(max_retransmit=1))
        try:
            c.get("/a")
        except CoapError:
            pass


def test_response_with_unknown_critical_option_is_rejected():
    def handler(req, ep):
        ep.deliver(reply(req, codes.CONTENT, b"x", options=((65001, b"1"),)), 5)

    clock, ep, c = _setup(handler)
    e = raises(CoapError, c.get, "/a")
    assert "65001" in str(e)


def test_every_request_gets_a_new_message_id_and_a_random_token():
    clock, ep, c = _setup(_echo())
    for _ in range(20):
        c.get("/a")
    reqs = ep.requests()
    mids = [m.mid for m in reqs]
    assert len(set(mids)) == 20
    assert all((mids[i] + 1) & 0xFFFF == mids[i + 1] for i in range(19))
    tokens = [m.token for m in reqs]
    assert len(set(tokens)) == 20 and all(len(t) >= 4 for t in tokens)


def test_restored_state_never_reuses_a_message_id_used_before_the_reboot():
    clock, ep, before = _setup(_echo())
    for _ in range(3):
        before.get("/a")
    saved = before.state()
    for _ in range(40):  # requests after the save, e.g. a crash before the next save
        before.get("/a")
    used = set(m.mid for m in ep.requests())
    clock2, ep2, after = _setup(_echo())
    after.restore(saved)
    for _ in range(40):
        after.get("/a")
    again = set(m.mid for m in ep2.requests())
    assert not used & again
    assert len(saved) == 3 and MID_JUMP >= 256


def test_restore_rejects_state_that_is_not_from_state():
    clock, ep, c = _setup()
    e = raises(CoapError, c.restore, b"\x09\x00")
    assert "state" in str(e)


def test_send_failure_becomes_a_coap_error_naming_the_cause():
    clock, ep, c = _setup()
    ep.fail_send = OSError(101)
    e = raises(CoapError, c.get, "/a")
    assert "send" in str(e)


def test_request_larger_than_the_link_mtu_is_refused_before_sending():
    clock, ep, c = _setup(block_szx=6)
    ep.mtu = 100
    e = raises(CoapError, c.get, "/" + "p" * 200)
    assert "MTU" in str(e) and not ep.sent


# --- block-wise (RFC 7959) ---

class Block1Server:
    """Assembles Block1 uploads like a server; can ask for smaller blocks or forget."""

    def __init__(self, want_szx=None, forget_at=None, too_large_szx=None):
        self.body = bytearray()
        self.want_szx = want_szx
        self.forget_at = forget_at
        self.too_large_szx = too_large_szx
        self.final = None
        self.blocks = []

    def __call__(self, req, ep):
        if req.code == 0:
            return
        b1 = req.uint_option(opt.BLOCK1)
        if b1 is None:
            if self.too_large_szx is not None and len(req.payload) > 16 << self.too_large_szx:
                ep.deliver(reply(req, codes.REQUEST_ENTITY_TOO_LARGE, options=(
                    (opt.BLOCK1, opt.block_value(0, False, self.too_large_szx)),)), 5)
                return
            self.final = bytes(req.payload)
            ep.deliver(reply(req, codes.CHANGED), 5)
            return
        num, more, szx = opt.block_parse(b1)
        self.blocks.append((num, more, szx, req.uint_option(opt.SIZE1)))
        if self.forget_at is not None and num == self.forget_at:
            self.forget_at = None
            self.body = bytearray()
            ep.deliver(reply(req, codes.REQUEST_ENTITY_INCOMPLETE), 5)
            return
        if num * (16 << szx) != len(self.body):
            ep.deliver(reply(req, codes.REQUEST_ENTITY_INCOMPLETE), 5)
            return
        self.body.extend(req.payload)
        rszx = szx if self.want_szx is None else min(szx, self.want_szx)
        code = codes.CONTINUE if more else codes.CHANGED
        if not more:
            self.final = bytes(self.body)
            self.body = bytearray()
        ep.deliver(reply(req, code, options=((opt.BLOCK1, opt.block_value(num, more, rszx)),)),
                   5)


def _body(n):
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


def _post_whole(srv, size, **kw):
    """POSTs `size` bytes to `srv` (a Block1Server): it must end 2.04 Changed with exactly
    those bytes assembled, however the client had to split them."""
    clock, ep, c = _setup(srv, **kw)
    data = _body(size)
    assert c.post("/x", data).code == codes.CHANGED
    assert srv.final == data


def test_block1_upload_sends_256_byte_blocks_with_fresh_ids_and_size1():
    srv = Block1Server()
    clock, ep, c = _setup(srv)
    data = _body(1000)
    res = c.put("/fw", data)
    assert res.code == codes.CHANGED and srv.final == data
    assert [(b[0], b[1], b[2]) for b in srv.blocks] == [
        (0, True, 4), (1, True, 4), (2, True, 4), (3, False, 4)]
    assert srv.blocks[0][3] == 1000 and srv.blocks[1][3] is None
    reqs = ep.requests()
    assert len(set(m.mid for m in reqs)) == 4 and len(set(m.token for m in reqs)) == 4
    assert res.round_trips == 4


def test_payload_of_exactly_one_block_is_sent_whole():
    srv = Block1Server()
    clock, ep, c = _setup(srv)
    c.post("/x", _body(256))
    assert srv.final == _body(256) and not srv.blocks


def test_block1_follows_a_smaller_block_size_asked_by_the_server():
    srv = Block1Server(want_szx=2)
    _post_whole(srv, 700)
    assert srv.blocks[0][:3] == (0, True, 4)
    assert srv.blocks[1][:3] == (4, True, 2)
    assert all(b[2] == 2 for b in srv.blocks[1:])


def test_block1_upload_starts_over_after_request_entity_incomplete():
    srv = Block1Server(forget_at=2)
    _post_whole(srv, 900)
    assert [b[0] for b in srv.blocks] == [0, 1, 2, 0, 1, 2, 3]


def test_request_entity_too_large_with_block1_switches_to_block_wise():
    srv = Block1Server(too_large_szx=2)
    _post_whole(srv, 500, block_szx=6)
    assert all(b[2] == 2 for b in srv.blocks)


def test_request_entity_too_large_with_size1_is_returned_to_the_caller():
    def handler(req, ep):
        if req.code:
            ep.deliver(reply(req, codes.REQUEST_ENTITY_TOO_LARGE,
                             options=((opt.SIZE1, 100),)), 5)

    clock, ep, c = _setup(handler)
    res = c.post("/x", _body(600))
    assert res.code == codes.REQUEST_ENTITY_TOO_LARGE
    assert res.uint_option(opt.SIZE1) == 100
    assert len(ep.requests()) == 1


def test_upload_to_a_server_without_block1_support_fails_clearly():
    def handler(req, ep):
        if req.code:
            ep.deliver(reply(req, codes.CHANGED), 5)

    clock, ep, c = _setup(handler)
    e = raises(CoapError, c.post, "/x", _body(600))
    assert "block-wise" in str(e)


def _block2_server(resource, etag_change_at=None, server_szx=None):
    def handler(req, ep):
        if req.code == 0:
            return
        b2 = req.uint_option(opt.BLOCK2)
        num, _, szx = opt.block_parse(b2) if b2 is not None else (0, False, 6)
        if server_szx is not None:
            szx = min(szx, server_szx)
        size = 16 << szx
        chunk = resource[num * size:(num + 1) * size]
        more = (num + 1) * size < len(resource)
        etag = b"v2" if etag_change_at is not None and num >= etag_change_at else b"v1"
        o = [(opt.ETAG, etag), (opt.BLOCK2, opt.block_value(num, more, szx))]
        if num == 0:
            o.append((opt.SIZE2, len(resource)))
        ep.deliver(reply(req, codes.CONTENT, chunk, options=o), 5)
    return handler


def test_block2_download_negotiates_block_size_early_and_assembles_the_body():
    resource = _body(2000)
    clock, ep, c = _setup(_block2_server(resource))
    res = c.get("/big")
    assert res.payload == resource
    assert res.uint_option(opt.SIZE2) is None  # Size2 came with block 0 only
    reqs = ep.requests()
    assert opt.block_parse(reqs[0].uint_option(opt.BLOCK2)) == (0, False, 4)
    assert len(reqs) == 8 and res.round_trips == 8


def test_block2_download_follows_the_servers_smaller_block_size():
    resource = _body(300)
    clock, ep, c = _setup(_block2_server(resource, server_szx=1))
    assert c.get("/big").payload == resource
    assert len(ep.requests()) == 10


def test_block2_download_stops_when_the_resource_changes_midway():
    clock, ep, c = _setup(_block2_server(_body(1000), etag_change_at=2))
    e = raises(CoapError, c.get, "/big")
    assert "ETag" in str(e)


def test_block2_download_larger_than_max_body_is_refused():
    clock, ep, c = _setup(_block2_server(_body(5000)), max_body=4096)
    e = raises(CoapError, c.get, "/big")
    assert "max_body" in str(e)


def test_request_entity_too_large_retries_whole_payload_in_the_servers_block_size():
    srv = Block1Server(too_large_szx=3)
    _post_whole(srv, 200)
    assert [b[:3] for b in srv.blocks] == [(0, True, 3), (1, False, 3)]
