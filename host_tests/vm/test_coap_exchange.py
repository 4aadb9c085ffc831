"""CoAP client behaviour at its edges, on a virtual clock with a scripted server: message-ID
state, timing bounds to the millisecond, the duplicate memory, block-wise corner cases, what the
caller gets back (Result, trace, counters) and the words of every error the client raises.
Runs under pytest and on MicroPython."""
from coap_fake import FakeEndpoint, con_response, empty, reply
from vmcheck import VirtualClock, raises

from enosnb import rng
from enosnb.coap import allcodes as codes
from enosnb.coap import options as opt
from enosnb.coap.client import Client, Result, Timing
from enosnb.coap.errors import CoapError, CoapReset, CoapTimeout
from enosnb.coap.message import ACK, CON, NON, RST, Message, decode


def _setup(handler=None, **kw):
    clock = VirtualClock(1000)
    ep = FakeEndpoint(clock, handler)
    return clock, ep, Client(ep, clock=clock, **kw)


def _answer(code=codes.CHANGED, payload=b""):
    def handler(req, ep):
        if req.mtype == CON and req.code:
            ep.deliver(reply(req, code, payload), 10)
    return handler


def _with_random(pattern, fn):
    """Runs fn() while rng.urandom(n) returns the first n bytes of pattern repeated."""
    saved = rng.urandom
    rng.urandom = lambda n: (pattern * (n // len(pattern) + 1))[:n]
    try:
        return fn()
    finally:
        rng.urandom = saved


# ---- message IDs across reboots (RFC 7252 §4.4) ------------------------------------------------

def test_a_client_without_saved_state_starts_at_a_random_16_bit_message_id():
    clock, ep, c = _with_random(b"\x12\x34", lambda: _setup(_answer()))
    c.post("/x", b"1")
    assert ep.requests()[0].mid == 0x1234


def test_restore_continues_512_ids_after_the_saved_one_and_wraps_at_16_bits():
    clock, ep, c = _setup(_answer())
    c.restore(b"\x01\x12\x34")
    assert c.state() == b"\x01\x14\x34"
    c.post("/x", b"1")
    c.restore(b"\x01\xff\x00")
    c.post("/x", b"1")
    assert [m.mid for m in ep.requests()] == [0x1434, 0x0100]
    assert c.state() == b"\x01\x01\x01"


def test_restore_refuses_anything_but_three_bytes_of_version_1():
    clock, ep, c = _setup()
    for bad in (None, b"\x01\x00", b"\x01\x00\x05\x07", b"\x02\x00\x05"):
        e = raises(CoapError, c.restore, bad)
        assert str(e) == "CoAP client state must be the 3 bytes Client.state() returned; " \
                         "discard it and keep the random start"


# ---- settings -----------------------------------------------------------------------------

def test_block_size_and_token_length_are_checked_with_the_range_to_use():
    ep = FakeEndpoint(VirtualClock())
    for szx in (-1, 7):
        e = raises(CoapError, Client, ep, block_szx=szx)
        assert str(e) == "block SZX %d is out of range; use 0..6 (16..1024-byte blocks)" % szx
    for n in (3, 9):
        e = raises(CoapError, Client, ep, token_len=n)
        assert str(e) == "token length %d: use 4..8 random bytes" % n


def test_tokens_are_4_random_bytes_by_default_and_up_to_8_when_asked():
    clock, ep, c = _setup(_answer())
    c.post("/x", b"1")
    clock, ep8, c8 = _setup(_answer(), token_len=8)
    c8.post("/x", b"1")
    assert len(ep.requests()[0].token) == 4 and len(ep8.requests()[0].token) == 8


def test_timing_defaults_are_rfc_7252s_and_its_limits_are_checked():
    t = Timing()
    assert (t.ack_timeout_ms, t.ack_random_factor, t.max_retransmit) == (2000, 1.5, 4)
    assert t.exchange_timeout_ms == 93000
    assert repr(t) == "Timing(ack_timeout_ms=2000, ack_random_factor=1.5, max_retransmit=4, " \
                      "exchange_timeout_ms=93000)"
    Timing(ack_timeout_ms=1, ack_random_factor=1, max_retransmit=0)
    for kw in ({"ack_timeout_ms": 0}, {"ack_random_factor": 0.99}, {"max_retransmit": -1}):
        e = raises(CoapError, Timing, **kw)
        assert str(e) == "timing needs ACK_TIMEOUT > 0, ACK_RANDOM_FACTOR >= 1 and " \
                         "MAX_RETRANSMIT >= 0"


def test_initial_timeout_spreads_evenly_from_ack_timeout_to_its_random_factor():
    t = Timing()
    assert _with_random(b"\x00\x00", t.initial_timeout_ms) == 2000
    assert _with_random(b"\x01\x00", t.initial_timeout_ms) == 2003
    assert _with_random(b"\x00\xff", t.initial_timeout_ms) == 2003
    assert _with_random(b"\xff\xff", t.initial_timeout_ms) == 3000


# ---- what the caller gets back ---------------------------------------------------------------

def test_trace_sees_every_datagram_sent_and_received_in_order():
    seen = []
    clock = VirtualClock(1000)
    ep = FakeEndpoint(clock, _answer(codes.CONTENT, b"t"))
    c = Client(ep, clock=clock, trace=lambda d, data: seen.append((d, bytes(data))))
    c.get("/a")
    assert [d for d, _ in seen] == ["send", "recv"]
    assert seen[0][1] == ep.sent[0][1] and decode(seen[1][1]).payload == b"t"


def test_byte_and_datagram_counters_add_up_over_retransmissions_and_strays():
    def handler(req, ep):
        if len(ep.sent) == 2:
            ep.deliver(b"\x60\x00\x99\x99", 1)               # a stray ACK: 4 bytes
            ep.deliver(reply(req, codes.CHANGED), 5)
    clock, ep, c = _setup(handler)
    res = c.post("/x", b"1")
    n = len(ep.sent[0][1])
    assert (res.datagrams_sent, res.bytes_sent) == (2, 2 * n)
    assert (res.datagrams_received, res.bytes_received) == (2, 4 + 8)   # header + token
    assert res.retransmissions == 1


def test_a_request_that_got_no_answer_leaves_an_empty_result_on_the_error():
    clock, ep, c = _setup(timing=Timing(max_retransmit=0))
    r = raises(CoapTimeout, c.get, "/a").result
    assert (r.response, r.code, r.payload, r.bytes_received, r.round_trips) == (None, 0, b"", 0, 0)
    assert r.option(opt.ETAG) is None and r.options(opt.ETAG) == []
    assert r.uint_option(opt.SIZE2) is None and not r.ok()


def test_result_options_come_from_the_last_response():
    def handler(req, ep):
        if req.code:
            ep.deliver(reply(req, codes.CONTENT, b"v", options=(
                (opt.ETAG, b"e1"), (opt.LOCATION_PATH, "a"), (opt.LOCATION_PATH, "b"))), 5)
    clock, ep, c = _setup(handler)
    r = c.get("/a")
    assert r.option(opt.ETAG) == b"e1" and r.options(opt.LOCATION_PATH) == [b"a", b"b"]


def test_result_repr_names_the_code_and_the_cost():
    r = Result()
    r.code = codes.CHANGED
    r.payload = b"abc"
    r.datagrams_sent, r.bytes_sent, r.datagrams_received, r.bytes_received = 2, 40, 1, 12
    r.retransmissions, r.round_trips = 1, 1
    assert repr(r) == "<Result 2.04 Changed, 3 bytes; sent 2 datagrams/40 bytes, received " \
                      "1/12, 1 retransmissions, 1 round trips>"


# ---- requests ----------------------------------------------------------------------------------

def test_get_and_delete_send_no_payload_and_take_request_options():
    clock, ep, c = _setup(_answer(codes.CONTENT))
    c.get("/a", accept=codes.JSON)
    c.delete("/a", options=((opt.IF_MATCH, b"m"),))
    c.put("/a")
    c.put("/a", b"p", content_format=codes.TEXT_PLAIN)
    c.post("/a", "text")
    c.post("/a")
    get, delete, put, put2, post, post2 = ep.requests()
    assert (get.code, get.payload, get.uint_option(opt.ACCEPT)) == (codes.GET, b"", codes.JSON)
    assert (delete.code, delete.payload, delete.option(opt.IF_MATCH)) == (codes.DELETE, b"", b"m")
    assert (put.code, put.payload) == (codes.PUT, b"")
    assert (put2.payload, put2.uint_option(opt.CONTENT_FORMAT)) == (b"p", codes.TEXT_PLAIN)
    assert (post.code, post.payload) == (codes.POST, b"text")
    assert (post2.code, post2.payload) == (codes.POST, b"")


def test_a_request_of_exactly_the_link_mtu_is_sent_one_byte_more_is_refused():
    clock, ep, c = _setup(_answer())
    c.post("/x", b"")
    n = len(ep.sent[0][1])
    ep.mtu = n
    c.post("/x", b"")
    ep.mtu = n + 1
    e = raises(CoapError, c.post, "/x", b"12")
    assert str(e) == "request is %d bytes, more than the link's %d-byte MTU; use a smaller " \
                     "block size" % (n + 3, n + 1)
    assert len(ep.sent) == 2


def test_link_failures_name_the_direction_the_cause_and_what_to_check():
    clock, ep, c = _setup()
    cause = ValueError("link down")
    ep.fail_send = cause
    e = raises(CoapError, c.post, "/x", b"1")
    assert str(e) == "cannot send a datagram: ValueError: link down; check the link (modem " \
                     "attached, socket open, DTLS session up)"
    assert e.cause is cause
    ep.fail_send = None

    def fail(timeout_ms):
        raise cause
    ep.recv = fail
    e = raises(CoapError, c.post, "/x", b"1")
    assert str(e) == "cannot receive a datagram: ValueError: link down; check the link " \
                     "(modem attached, socket open, DTLS session up)"
    assert e.cause is cause


def test_a_coap_error_from_the_endpoint_passes_through_unchanged():
    clock, ep, c = _setup()
    mine = CoapError("the modem socket closed")
    ep.fail_send = mine
    assert raises(CoapError, c.post, "/x", b"1") is mine


# ---- retransmission and timeouts (§4.2, §4.8) -----------------------------------------------

def test_giving_up_says_how_many_transmissions_in_how_long_and_what_to_check():
    clock, ep, c = _with_random(b"\x00\x00", lambda: _setup())
    e = _with_random(b"\x00\x00", lambda: raises(CoapTimeout, c.post, "/x", b"1"))
    assert str(e) == "no answer to POST /x (MID 0) after 5 transmissions in 62000 ms; " \
                     "check the server address and the link"


def test_a_method_without_a_name_is_shown_by_its_code_in_errors():
    clock, ep, c = _with_random(b"\x00\x07", lambda: _setup(timing=Timing(max_retransmit=0)))
    e = _with_random(b"\x00\x00", lambda: raises(CoapTimeout, c.request, 8, "/x"))
    assert str(e).startswith("no answer to 0.08 /x (MID 7) after 1 transmissions in 2000 ms")


def test_exchange_timeout_before_the_last_retransmission_names_the_limit():
    clock, ep, c = _with_random(b"\x00\x05", lambda: _setup(
        timing=Timing(exchange_timeout_ms=5000)))
    e = raises(CoapTimeout, c.get, "/a")
    assert str(e) == "GET /a (MID 5): no response within the 5000 ms exchange timeout"


def test_exchange_timeout_after_an_empty_ack_says_the_server_acknowledged():
    def handler(req, ep):
        ep.deliver(empty(ACK, req.mid), 10)
    clock, ep, c = _with_random(b"\x00\x06", lambda: _setup(
        handler, timing=Timing(exchange_timeout_ms=30000)))
    e = raises(CoapTimeout, c.get, "/a")
    assert str(e) == "GET /a (MID 6): no response within the 30000 ms exchange timeout " \
                     "after the server's empty ACK"


def test_a_retransmission_goes_out_when_due_not_a_millisecond_before():
    def handler(req, ep):
        if len(ep.sent) == 1:
            ep.deliver(b"\x60\x00\x99\x99", 1999)           # a stray ACK 1 ms before the due time
    clock, ep, c = _with_random(b"\x00\x00", lambda: _setup(
        handler, timing=Timing(max_retransmit=1)))
    _with_random(b"\x00\x00", lambda: raises(CoapTimeout, c.post, "/x", b"1"))
    assert [t - 1000 for t, _ in ep.sent] == [0, 2000]


def test_an_answer_in_the_last_millisecond_of_the_exchange_is_taken():
    def handler(req, ep):
        ep.deliver(b"\x60\x00\x99\x99", 4999)               # a stray ACK, then the answer
        ep.deliver(reply(req, codes.CONTENT, b"just in time"), 4999)
    clock, ep, c = _setup(handler, timing=Timing(ack_timeout_ms=10000,
                                                 exchange_timeout_ms=5000))
    assert c.get("/a").payload == b"just in time"


# ---- matching and duplicates (§4.2, §4.5, §5.3.2) -----------------------------------------------

def test_reset_names_the_request_and_what_the_server_may_have_rejected():
    def handler(req, ep):
        ep.deliver(empty(RST, req.mid), 10)
    clock, ep, c = _with_random(b"\x12\x34", lambda: _setup(handler))
    e = raises(CoapReset, c.post, "/topic/x", b"1")
    assert str(e) == "server reset POST /topic/x (RST for MID 4660): it rejected the request, " \
                     "e.g. an option it does not support or a context it lost; check the " \
                     "path and options"


def test_a_con_response_with_an_unknown_critical_option_is_reset_not_acknowledged():
    def handler(req, ep):
        if req.code:
            ep.deliver(empty(ACK, req.mid), 5)
            r = con_response(req, codes.CONTENT, b"x", mid=0x4242)
            r.add_option(9, b"")
            ep.deliver(r, 10)
    clock, ep, c = _setup(handler)
    e = raises(CoapError, c.get, "/a")
    assert str(e) == "response 2.05 Content carries critical option(s) [9] this client does " \
                     "not understand (RFC 7252 §5.4.1); it was rejected"
    answers = [m for m in ep.sent_messages() if not m.code]
    assert [(m.mtype, m.mid) for m in answers] == [(RST, 0x4242)]


def test_a_non_response_with_an_unknown_critical_option_is_rejected():
    def handler(req, ep):
        if req.code:
            ep.deliver(empty(ACK, req.mid), 5)
            r = reply(req, codes.CONTENT, b"x", mtype=NON, mid=0x4343, options=((9, b""),))
            ep.deliver(r, 10)
    clock, ep, c = _setup(handler)
    assert "critical option(s) [9]" in str(raises(CoapError, c.get, "/a"))


def test_the_last_8_separate_responses_are_remembered_as_duplicates_not_the_9th():
    sent = []

    def handler(req, ep):
        if not req.code:
            return
        ep.deliver(empty(ACK, req.mid), 1)
        if len(sent) == 9:
            ep.deliver(sent[1], 2)     # 8th-last: a duplicate, ACKed again
            ep.deliver(sent[0], 3)     # 9th-last: forgotten, so a stray CON: RST
        r = con_response(req, codes.CONTENT, b"%d" % len(sent), mid=1000 + len(sent))
        sent.append(r)
        ep.deliver(r, 10)
    clock, ep, c = _setup(handler)
    for i in range(10):
        assert c.get("/a").payload == b"%d" % i
    last = [(m.mtype, m.mid) for m in ep.sent_messages()[-3:]]
    assert last == [(ACK, 1001), (RST, 1000), (ACK, 1009)]


# ---- Block1 uploads (RFC 7959 §2.5, §2.9) ---------------------------------------------------

def _upload_server(answers):
    """Answers each upload block with the next (code, Block1 szx or None, more) of answers;
    when they run out, acknowledges in the client's own block size."""
    blocks = []

    def handler(req, ep):
        if not req.code:
            return
        b1 = req.uint_option(opt.BLOCK1)
        num, more, szx = opt.block_parse(b1)
        blocks.append((num, more, szx, bytes(req.payload)))
        if answers:
            code, rszx, rnum = answers.pop(0)
        else:
            code, rszx, rnum = (codes.CONTINUE if more else codes.CHANGED), szx, num
        o = () if rszx is None else ((opt.BLOCK1, opt.block_value(rnum, more, rszx)),)
        ep.deliver(reply(req, code, options=o), 5)
    return handler, blocks


def test_an_upload_starts_over_at_most_twice_when_the_server_lost_its_blocks():
    lost = (codes.REQUEST_ENTITY_INCOMPLETE, None, 0)
    handler, blocks = _upload_server([lost] * 10)
    clock, ep, c = _setup(handler)
    res = c.post("/x", bytes(300))
    assert res.code == codes.REQUEST_ENTITY_INCOMPLETE
    assert [b[0] for b in blocks] == [0, 0, 0]


def test_an_upload_follows_a_smaller_size_asked_midway_at_most_twice():
    data = bytes(range(256)) * 3
    handler, blocks = _upload_server([(codes.CONTINUE, 4, 0),
                                      (codes.REQUEST_ENTITY_TOO_LARGE, 3, 0)])
    clock, ep, c = _setup(handler)
    assert c.post("/x", data).code == codes.CHANGED
    assert [(b[0], b[2]) for b in blocks[:3]] == [(0, 4), (1, 4), (0, 3)]
    assert b"".join(b[3] for b in blocks[2:]) == data
    too_large = (codes.REQUEST_ENTITY_TOO_LARGE, 0, 0)
    handler, blocks = _upload_server([(codes.REQUEST_ENTITY_TOO_LARGE, 3, 0),
                                      (codes.REQUEST_ENTITY_TOO_LARGE, 2, 0), too_large])
    clock, ep, c = _setup(handler)
    assert c.post("/x", data).code == codes.REQUEST_ENTITY_TOO_LARGE
    assert [(b[0], b[2]) for b in blocks] == [(0, 4), (0, 3), (0, 2)]


def test_a_too_large_answer_naming_the_same_or_a_bigger_block_is_returned_not_retried():
    for szx in (4, 5):
        handler, blocks = _upload_server([(codes.REQUEST_ENTITY_TOO_LARGE, szx, 0)])
        clock, ep, c = _setup(handler)
        assert c.post("/x", bytes(600)).code == codes.REQUEST_ENTITY_TOO_LARGE
        assert len(blocks) == 1


def test_a_too_large_answer_to_a_request_without_payload_is_returned():
    def handler(req, ep):
        if req.code:
            ep.deliver(reply(req, codes.REQUEST_ENTITY_TOO_LARGE,
                             options=((opt.BLOCK1, opt.block_value(0, False, 0)),)), 5)
    clock, ep, c = _setup(handler)
    assert c.post("/x").code == codes.REQUEST_ENTITY_TOO_LARGE
    assert len(ep.requests()) == 1


def test_only_a_too_large_answer_turns_a_single_request_into_an_upload():
    def handler(req, ep):
        if req.code:
            ep.deliver(reply(req, codes.CHANGED,
                             options=((opt.BLOCK1, opt.block_value(0, False, 0)),)), 5)
    clock, ep, c = _setup(handler)
    assert c.post("/x", bytes(100)).code == codes.CHANGED
    assert len(ep.requests()) == 1


def test_an_upload_keeps_its_block_size_when_the_server_acknowledges_a_bigger_one():
    handler, blocks = _upload_server([(codes.CONTINUE, 6, 0)])
    clock, ep, c = _setup(handler)
    assert c.post("/x", bytes(600)).code == codes.CHANGED
    assert [(b[0], b[2]) for b in blocks] == [(0, 4), (1, 4), (2, 4)]


def test_an_upload_to_a_server_without_block1_names_the_limit_to_stay_under():
    def handler(req, ep):
        if req.code:
            ep.deliver(reply(req, codes.CHANGED), 5)
    clock, ep, c = _setup(handler)
    e = raises(CoapError, c.post, "/x?y=1", bytes(600))
    assert str(e) == "server answered block 0 of the 600-byte upload to /x with 2.04 Changed " \
                     "but without Block1: it does not support block-wise uploads; send at " \
                     "most 256 bytes"


def test_an_acknowledgement_of_another_upload_block_is_an_error():
    handler, blocks = _upload_server([(codes.CONTINUE, 4, 1)])
    clock, ep, c = _setup(handler)
    e = raises(CoapError, c.post, "/x", bytes(600))
    assert str(e) == "server acknowledged upload block 1 but block 0 was sent"


# ---- Block2 downloads (RFC 7959 §2.4) ---------------------------------------------------------

def _download_server(resource, size=256, size2=None, script=None):
    """Serves resource in blocks; script maps a block number to a replacement answer
    (code, payload, options) for that block."""
    def handler(req, ep):
        if not req.code:
            return
        b2 = req.uint_option(opt.BLOCK2)
        num = opt.block_parse(b2)[0] if b2 is not None else 0
        if script and num in script:
            code, payload, o = script[num]
            ep.deliver(reply(req, code, payload, options=o), 5)
            return
        szx = {16: 0, 256: 4, 1024: 6}[size]
        more = (num + 1) * size < len(resource)
        o = [(opt.BLOCK2, opt.block_value(num, more, szx))]
        if num == 0 and size2 is not None:
            o.append((opt.SIZE2, size2))
        ep.deliver(reply(req, codes.CONTENT, resource[num * size:(num + 1) * size],
                         options=o), 5)
    return handler


def test_a_resource_in_a_single_block_comes_back_whole_with_its_response():
    clock, ep, c = _setup(_download_server(b"small", size2=5))
    r = c.get("/a")
    assert (r.code, r.payload, r.uint_option(opt.SIZE2)) == (codes.CONTENT, b"small", 5)
    assert len(ep.requests()) == 1


def test_each_next_block_is_asked_for_without_payload_and_without_the_more_flag():
    clock, ep, c = _setup(_download_server(bytes(600)))
    assert c.get("/a").payload == bytes(600)
    later = ep.requests()[1:]
    assert [opt.block_parse(m.uint_option(opt.BLOCK2)) for m in later] == [
        (1, False, 4), (2, False, 4)]
    assert [m.payload for m in later] == [b"", b""]


def test_an_error_answer_in_the_middle_of_a_download_is_the_result():
    script = {1: (codes.SERVICE_UNAVAILABLE, b"busy", ((opt.MAX_AGE, 30),))}
    clock, ep, c = _setup(_download_server(bytes(600), script=script))
    r = c.get("/a")
    assert (r.code, r.payload, r.uint_option(opt.MAX_AGE)) == (
        codes.SERVICE_UNAVAILABLE, b"busy", 30)


def test_download_errors_say_what_the_server_got_wrong():
    cases = [
        ({0: (codes.CONTENT, bytes(256), ((opt.BLOCK2, opt.block_value(1, True, 4)),))},
         "server sent Block2 block 1 for a request of block 0"),
        ({1: (codes.CONTENT, bytes(256), ())},
         "server stopped the block-wise download at byte 256 without Block2"),
        ({1: (codes.CONTENT, bytes(16), ((opt.BLOCK2, opt.block_value(2, False, 4)),))},
         "server sent Block2 block 2/256 bytes, expected byte offset 256"),
        ({1: (codes.CONTENT, bytes(16), ((opt.BLOCK2, opt.block_value(1, False, 4)),
                                         (opt.ETAG, b"new")))},
         "resource changed during the block-wise download (ETag differs); repeat the request"),
    ]
    for script, words in cases:
        clock, ep, c = _setup(_download_server(bytes(600), script=script))
        assert str(raises(CoapError, c.get, "/a")) == words


def test_a_body_of_exactly_max_body_downloads_one_byte_more_is_refused():
    clock, ep, c = _setup(_download_server(bytes(16384), size=1024, size2=16384))
    assert len(c.get("/a").payload) == 16384             # max_body is 16 KiB by default
    clock, ep, c = _setup(_download_server(bytes(16385), size=1024))
    e = raises(CoapError, c.get, "/a")
    assert str(e) == "response body exceeds max_body 16384 bytes"
    assert len(ep.requests()) == 17


def test_a_body_announced_larger_than_max_body_is_refused_after_the_first_block():
    clock, ep, c = _setup(_download_server(bytes(600), size2=20000))
    e = raises(CoapError, c.get, "/a")
    assert str(e) == "response body is 20000 bytes (Size2), more than max_body 16384"
    assert len(ep.requests()) == 1
