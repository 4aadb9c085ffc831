"""CoAP message codec (enosnb.coap): exact bytes of RFC 7252 Appendix A, enos-coap.md
§16 and §17, decode validation (RFC 7252 §3, §4.1), option encoding (§3.1) and the
RFC 7959 Block helpers. Runs under pytest and in the MicroPython VM."""
from vmcheck import raises, unhex

from enosnb.coap import allcodes as codes, options
from enosnb.coap.errors import CoapError, CoapFormatError
from enosnb.coap.message import ACK, CON, NON, RST, Message, decode, unknown_critical

TOKEN = unhex("a1b2c3d4")

REPORT_PATH = "/topic/sys/MuGsF6W4/15bBZlRknc/thing/measurepoint/post"
REPORT_BODY = (b'{"id":"1","version":"1.0","method":"thing.measurepoint.post",'
               b'"params":{"measurepoints":{"temp":21.5},"time":1764115200000}}')
REPORT_REQUEST = unhex(
    "44021234a1b2c3d4b5746f70696303737973084d754773463657340a313562425a6c526b6e63057468696e67"
    "0c6d656173757265706f696e7404706f73741132ff7b226964223a2231222c2276657273696f6e223a22312e"
    "30222c226d6574686f64223a227468696e672e6d656173757265706f696e742e706f7374222c22706172616d"
    "73223a7b226d656173757265706f696e7473223a7b2274656d70223a32312e357d2c2274696d65223a313736"
    "343131353230303030307d7d")
REPORT_RESPONSE = unhex(
    "64441234a1b2c3d4ff7b226964223a2231222c22636f6465223a3230302c2264617461223a7b7d7d")

AUTH_BODY = (b'{"secureMode":2,"lifetime":3600,'
             b'"sign":"D67FA0998B09ACD507369F68D3E68EA88B93D9716ADC89B8B833A1F2DCA55EDF"}')
AUTH_DATAGRAM = unhex(
    "44021234a1b2c3d4b461757468084d754773463657340a313562425a6c526b6e631132ff7b227365637572654d"
    "6f6465223a322c226c69666574696d65223a333630302c227369676e223a22443637464130393938423039"
    "41434435303733363946363844334536384541383842393344393731364144433839423842383333413146"
    "324443413535454446227d")
COMMAND_TOPIC = b"/topic/sys/MuGsF6W4/15bBZlRknc/thing/model/down_raw"
COMMAND_RESPONSE = unhex(
    "64441234a1b2c3d4c132ed071b262f746f7069632f7379732f4d754773463657342f313562425a6c526b6e632f"
    "7468696e672f6d6f64656c2f646f776e5f72617723010203ff7b226964223a2231222c22636f6465223a3230"
    "302c2264617461223a7b7d7d")


def msg(mtype, code, mid, token=b"", payload=b"", opts=()):
    m = Message(mtype, code, mid, token, payload)
    for number, value in opts:
        m.add_option(number, value)
    return m


def same(a, b):
    return (a.mtype == b.mtype and a.code == b.code and a.mid == b.mid and a.token == b.token
            and a.options == b.options and a.payload == b.payload)


def check_both_ways(m, wire):
    assert m.encode() == wire
    got = decode(wire)
    assert same(got, m), (got, m)


# --- RFC 7252 Appendix A -------------------------------------------------------------------

def test_rfc7252_figure16_get_without_token_and_piggybacked_content():
    check_both_ways(msg(CON, codes.GET, 0x7D34, opts=[(options.URI_PATH, "temperature")]),
                    b"\x40\x01\x7d\x34\xbbtemperature")
    check_both_ways(msg(ACK, codes.CONTENT, 0x7D34, payload=b"22.3 C"),
                    b"\x60\x45\x7d\x34\xff22.3 C")
    assert len(msg(CON, codes.GET, 0x7D34, opts=[(options.URI_PATH, "temperature")]).encode()) == 16


def test_rfc7252_figure17_one_byte_token_is_echoed():
    req = b"\x41\x01\x7d\x35\x20\xbbtemperature"
    resp = b"\x61\x45\x7d\x35\x20\xff22.3 C"
    check_both_ways(msg(CON, codes.GET, 0x7D35, b"\x20", opts=[(options.URI_PATH, "temperature")]),
                    req)
    check_both_ways(msg(ACK, codes.CONTENT, 0x7D35, b"\x20", b"22.3 C"), resp)
    assert (len(req), len(resp)) == (17, 12)


def test_rfc7252_figures18_19_retransmission_is_the_same_datagram():
    for mid, tok in ((0x7D36, b"\x31"), (0x7D37, b"\x42")):
        m = msg(CON, codes.GET, mid, tok, opts=[(options.URI_PATH, "temperature")])
        assert m.encode() == m.encode()
        assert m.encode() == bytes([0x41, 0x01, mid >> 8, mid & 0xFF]) + tok + b"\xbbtemperature"


def test_rfc7252_figures20_21_empty_ack_and_reset_are_four_bytes():
    check_both_ways(msg(ACK, codes.EMPTY, 0x7D38), b"\x60\x00\x7d\x38")
    check_both_ways(msg(CON, codes.CONTENT, 0xAD7B, b"\x53", b"22.3 C"),
                    b"\x41\x45\xad\x7b\x53\xff22.3 C")
    check_both_ways(msg(ACK, codes.EMPTY, 0xAD7B), b"\x60\x00\xad\x7b")
    check_both_ways(msg(RST, codes.EMPTY, 0xAD7C), b"\x70\x00\xad\x7c")


def test_rfc7252_figures22_23_non_confirmable_exchange():
    check_both_ways(msg(NON, codes.GET, 0x7D40, b"\x75", opts=[(options.URI_PATH, "temperature")]),
                    b"\x51\x01\x7d\x40\x75\xbbtemperature")
    check_both_ways(msg(NON, codes.CONTENT, 0xAD7D, b"\x75", b"22.3 C"),
                    b"\x51\x45\xad\x7d\x75\xff22.3 C")
    check_both_ways(msg(NON, codes.NOT_FOUND, 0x952A, b"\x86"), b"\x51\x84\x95\x2a\x86")


def test_rfc7252_appendix_b_empty_and_slash_segments_survive():
    m = msg(CON, codes.GET, 1, opts=[(options.URI_PATH, ""), (options.URI_PATH, "/"),
                                    (options.URI_PATH, ""), (options.URI_PATH, ""),
                                    (options.URI_QUERY, "//"), (options.URI_QUERY, "?&")])
    wire = m.encode()
    assert wire == b"\x40\x01\x00\x01\xb0\x01/\x00\x00\x42//\x02?&"
    got = decode(wire)
    assert got.options_of(options.URI_PATH) == [b"", b"/", b"", b""]
    assert got.options_of(options.URI_QUERY) == [b"//", b"?&"]


# --- enos-coap.md §16 and §17 ---------------------------------------------------------

def test_reference_report_request_encodes_to_the_188_bytes_of_the_reference_report():
    m = Message(CON, codes.POST, 0x1234, TOKEN, REPORT_BODY)
    m.set_path(REPORT_PATH)
    m.add_option(options.CONTENT_FORMAT, codes.JSON)
    assert m.encode() == REPORT_REQUEST
    assert len(REPORT_REQUEST) == 188


def test_reference_report_request_decodes_to_its_fields():
    m = decode(REPORT_REQUEST)
    assert (m.mtype, m.code, m.mid, m.token) == (CON, codes.POST, 0x1234, TOKEN)
    assert m.path() == REPORT_PATH
    assert m.uint_option(options.CONTENT_FORMAT) == codes.JSON
    assert m.payload == REPORT_BODY


def test_reference_report_response_is_a_piggybacked_changed_ack():
    m = decode(REPORT_RESPONSE)
    assert (m.mtype, m.code, m.mid, m.token) == (ACK, codes.CHANGED, 0x1234, TOKEN)
    assert m.options == []
    assert m.payload == b'{"id":"1","code":200,"data":{}}'
    assert Message(ACK, codes.CHANGED, 0x1234, TOKEN, m.payload).encode() == REPORT_RESPONSE


def test_documented_auth_request_is_142_bytes():
    m = Message(CON, codes.POST, 0x1234, TOKEN, AUTH_BODY)
    m.set_path("/auth/MuGsF6W4/15bBZlRknc")
    m.add_option(options.CONTENT_FORMAT, codes.JSON)
    assert m.encode() == AUTH_DATAGRAM
    assert len(AUTH_DATAGRAM) == 142
    assert decode(AUTH_DATAGRAM).path() == "/auth/MuGsF6W4/15bBZlRknc"


def test_documented_command_response_carries_options_2100_and_2102():
    m = decode(COMMAND_RESPONSE)
    assert len(COMMAND_RESPONSE) == 101
    assert (m.mtype, m.code, m.mid, m.token) == (ACK, codes.CHANGED, 0x1234, TOKEN)
    assert m.option(options.ENOS_TOPIC) == COMMAND_TOPIC
    assert m.option(options.ENOS_PAYLOAD) == b"\x01\x02\x03"
    assert m.uint_option(options.CONTENT_FORMAT) == codes.JSON
    assert m.payload == b'{"id":"1","code":200,"data":{}}'
    assert unknown_critical(m) == []
    out = Message(ACK, codes.CHANGED, 0x1234, TOKEN, m.payload)
    out.add_option(options.ENOS_PAYLOAD, b"\x01\x02\x03")
    out.add_option(options.ENOS_TOPIC, COMMAND_TOPIC)
    out.add_option(options.CONTENT_FORMAT, codes.JSON)
    assert out.encode() == COMMAND_RESPONSE


def test_decode_accepts_bytearray_and_memoryview():
    for data in (bytearray(REPORT_REQUEST), memoryview(REPORT_REQUEST),
                 memoryview(bytearray(b"xx" + REPORT_REQUEST))[2:]):
        m = decode(data)
        assert same(m, decode(REPORT_REQUEST))
        assert type(m.payload) is bytes and type(m.token) is bytes
        assert type(m.options[0][1]) is bytes


# --- decode validation ----------------------------------------------------------------------

def fault(data):
    return str(raises(CoapFormatError, decode, data))


def test_short_datagram_is_a_format_error():
    assert "4-byte" in fault(b"\x40\x01\x00")
    assert "4-byte" in fault(b"")


def test_version_other_than_1_is_rejected():
    for b0 in (0x00, 0x80, 0xC0):
        assert "version" in fault(bytes([b0, 1, 0, 1]))


def test_token_lengths_9_to_15_are_rejected():
    for tkl in range(9, 16):
        assert "token length" in fault(bytes([0x40 | tkl, 1, 0, 1]) + b"\x00" * 15)


def test_token_running_past_the_end_is_rejected():
    assert "token" in fault(b"\x44\x01\x00\x01\xaa\xbb")


def test_nibble_15_in_delta_or_length_is_rejected_but_ff_is_the_payload_marker():
    assert "delta nibble 15" in fault(b"\x40\x01\x00\x01\xf1\x00")
    assert "length nibble 15" in fault(b"\x40\x01\x00\x01\xbf" + b"a" * 20)
    assert decode(b"\x40\x01\x00\x01\xffhi").payload == b"hi"


def test_option_running_past_the_end_is_rejected():
    assert "runs past the end" in fault(b"\x40\x01\x00\x01\xb5abc")
    assert "extension runs past" in fault(b"\x40\x01\x00\x01\xd0")
    assert "extension runs past" in fault(b"\x40\x01\x00\x01\xe0\x01")
    assert "extension runs past" in fault(b"\x40\x01\x00\x01\x0d")
    assert "extension runs past" in fault(b"\x40\x01\x00\x01\x0e\x00")
    assert "runs past the end" in fault(b"\x40\x01\x00\x01\x0d\x05" + b"x" * 17)


def test_payload_marker_without_payload_is_rejected():
    assert "payload marker" in fault(b"\x40\x01\x00\x01\xff")
    assert "payload marker" in fault(b"\x40\x01\x00\x01\xb1a\xff")


def test_empty_message_with_token_options_or_payload_is_rejected():
    assert "Empty" in fault(b"\x41\x00\x00\x01\x20")
    assert "Empty" in fault(b"\x60\x00\x00\x01\xb1a")
    assert "Empty" in fault(b"\x60\x00\x00\x01\xffhi")


def test_format_error_tells_the_type_and_mid_for_a_reset():
    e = raises(CoapFormatError, decode, b"\x40\x01\x12\x34\xff")
    assert (e.mtype, e.mid) == (CON, 0x1234)
    assert isinstance(e, CoapError)
    e = raises(CoapFormatError, decode, b"\x40")
    assert e.mid is None


def test_option_number_beyond_16_bits_is_rejected():
    data = b"\x40\x01\x00\x01" + b"\xe0\xff\xff" + b"\xe0\x00\x00"
    assert "16 bits" in fault(data)


# --- option encoding (§3.1) -----------------------------------------------------------------

def test_option_delta_13_form_one_extension_byte():
    m = msg(CON, codes.GET, 1, opts=[(options.SIZE1, 100)])
    assert m.encode() == b"\x40\x01\x00\x01\xd1\x2f\x64"
    assert decode(m.encode()).uint_option(options.SIZE1) == 100


def test_option_delta_14_form_two_extension_bytes():
    m = msg(CON, codes.GET, 1, opts=[(options.CONTENT_FORMAT, codes.JSON),
                                    (options.ENOS_TOPIC, "t")])
    # enos-coap.md §11.5: 2100 after Content-Format (12) has delta 2088 = 269 + 0x071b -> "e? 07 1b"
    assert m.encode() == b"\x40\x01\x00\x01\xc1\x32\xe1\x07\x1bt"
    assert decode(m.encode()).option(options.ENOS_TOPIC) == b"t"


def test_option_length_13_and_14_forms():
    v13 = b"x" * 13
    v268 = b"y" * 268
    v269 = b"z" * 269
    for value, head in ((v13, b"\x4d\x00"), (v268, b"\x4d\xff"), (v269, b"\x4e\x00\x00")):
        m = msg(CON, codes.GET, 1, opts=[(options.ETAG, value)])
        assert m.encode() == b"\x40\x01\x00\x01" + head + value
        assert decode(m.encode()).option(options.ETAG) == value


def test_kilobyte_option_2102_round_trips():
    value = bytes(range(256)) * 4 + b"tail"
    m = Message(ACK, codes.CHANGED, 7, b"\x01")
    m.add_option(options.ENOS_TOPIC, COMMAND_TOPIC)
    m.add_option(options.ENOS_PAYLOAD, value)
    wire = m.encode()
    i = wire.index(COMMAND_TOPIC) + len(COMMAND_TOPIC)
    n = len(value) - 269
    assert wire[i:i + 3] == bytes([0x2E, n >> 8, n & 0xFF])
    got = decode(wire)
    assert got.option(options.ENOS_PAYLOAD) == value
    assert got.option(options.ENOS_TOPIC) == COMMAND_TOPIC


def test_options_are_sorted_by_number_and_repeatable_ones_keep_their_order():
    m = Message(CON, codes.POST, 9)
    m.add_option(options.URI_QUERY, "q2")
    m.add_option(options.CONTENT_FORMAT, codes.JSON)
    for seg in ("topic", "sys", "b", "a", "c", "z", "y", "x", "post"):
        m.add_option(options.URI_PATH, seg)
    m.add_option(options.URI_QUERY, "q1")
    m.add_option(options.URI_HOST, "h")
    got = decode(m.encode())
    assert [o[0] for o in got.options] == [3] + [11] * 9 + [12, 15, 15]
    assert got.path() == "/topic/sys/b/a/c/z/y/x/post"
    assert got.options_of(options.URI_QUERY) == [b"q2", b"q1"]
    assert m.options[0] == (options.URI_QUERY, b"q2")


def test_many_equal_numbers_interleaved_stay_stable():
    m = Message(CON, codes.GET, 1)
    for i in range(40):
        m.add_option(options.URI_PATH if i % 2 else options.ETAG, str(i))
    got = decode(m.encode())
    assert got.options_of(options.ETAG) == [str(i).encode() for i in range(0, 40, 2)]
    assert got.options_of(options.URI_PATH) == [str(i).encode() for i in range(1, 40, 2)]


def test_uint_values_use_the_fewest_bytes_and_zero_is_empty():
    cases = ((0, b""), (1, b"\x01"), (255, b"\xff"), (256, b"\x01\x00"),
             (65535, b"\xff\xff"), (65536, b"\x01\x00\x00"), (0xFFFFFFFF, b"\xff\xff\xff\xff"))
    for value, raw in cases:
        assert options.uint_bytes(value) == raw
        m = Message()
        m.code = codes.GET
        m.add_option(options.MAX_AGE, value)
        assert m.option(options.MAX_AGE) == raw
        assert decode(m.encode()).uint_option(options.MAX_AGE) == value
    raises(CoapError, options.uint_bytes, -1)


def test_value_formats_string_opaque_empty():
    m = Message(CON, codes.GET, 1)
    m.add_option(options.URI_HOST, "example.net")
    m.add_option(options.ETAG, b"\x00\xff")
    m.add_option(options.IF_NONE_MATCH)
    m.add_option(options.IF_MATCH, bytearray(b"\x01"))
    got = decode(m.encode())
    assert got.option(options.URI_HOST) == b"example.net"
    assert got.option(options.ETAG) == b"\x00\xff"
    assert got.option(options.IF_NONE_MATCH) == b""
    assert got.option(options.IF_MATCH) == b"\x01"
    assert got.option(options.ACCEPT) is None
    assert got.uint_option(options.ACCEPT) is None
    assert got.options_of(options.ACCEPT) == []


def test_set_path_replaces_the_uri_path_and_path_reads_it_back():
    m = Message(CON, codes.GET, 1)
    m.set_path("/a/b")
    m.add_option(options.CONTENT_FORMAT, 0)
    m.set_path("/c/d/e")
    assert m.path() == "/c/d/e"
    assert m.options_of(options.URI_PATH) == [b"c", b"d", b"e"]
    m.set_path("/")
    assert m.path() == "/" and m.options_of(options.URI_PATH) == []


def test_set_option_replaces_and_remove_option_drops():
    m = Message(CON, codes.GET, 1)
    m.add_option(options.BLOCK2, 1)
    m.add_option(options.BLOCK2, 2)
    m.set_option(options.BLOCK2, 3)
    assert m.options_of(options.BLOCK2) == [b"\x03"]
    m.remove_option(options.BLOCK2)
    assert m.option(options.BLOCK2) is None


def test_encode_refuses_messages_that_cannot_be_sent():
    raises(CoapError, Message(CON, codes.GET, 1, b"123456789").encode)
    raises(CoapError, Message(CON, codes.GET, 0x10000).encode)
    raises(CoapError, Message(4, codes.GET, 1).encode)
    raises(CoapError, Message(CON, 256, 1).encode)
    raises(CoapError, Message(ACK, codes.EMPTY, 1, b"\x01").encode)
    raises(CoapError, Message(ACK, codes.EMPTY, 1, b"", b"x").encode)
    m = Message(CON, codes.GET, 1)
    m.add_option(70000, b"")
    raises(CoapError, m.encode)


def test_eight_byte_token_is_the_longest():
    m = Message(CON, codes.GET, 0xFFFF, b"12345678")
    got = decode(m.encode())
    assert got.token == b"12345678" and got.mid == 0xFFFF


# --- helpers --------------------------------------------------------------------------------

def test_block_value_packs_num_more_szx_both_ways():
    assert options.block_value(0, False, 6) == 0x06
    assert options.block_value(1, True, 4) == 0x1C
    assert options.block_value(0xFFFFF, True, 0) == 0xFFFFF8
    for num, more, szx in ((0, False, 0), (5, True, 2), (4095, False, 6), (0xFFFFF, True, 6)):
        assert options.block_parse(options.block_value(num, more, szx)) == (num, more, szx)
    m = Message(CON, codes.POST, 1)
    m.add_option(options.BLOCK1, options.block_value(2, True, 6))
    got = decode(m.encode())
    assert got.option(options.BLOCK1) == b"\x2e"
    assert options.block_parse(got.uint_option(options.BLOCK1)) == (2, True, 6)
    raises(CoapError, options.block_value, 0, False, 7)
    raises(CoapError, options.block_value, 1 << 20, False, 0)
    raises(CoapFormatError, options.block_parse, 0x0F)


def test_block_sizes_16_to_1024():
    assert [options.szx_size(s) for s in range(7)] == [16, 32, 64, 128, 256, 512, 1024]
    raises(CoapError, options.szx_size, 7)


def test_code_names_and_classes():
    assert codes.code_str(codes.CHANGED) == "2.04"
    assert codes.code_name(codes.CHANGED) == "2.04 Changed"
    assert codes.code_name(codes.CONTINUE) == "2.31 Continue"
    assert codes.code_name(codes.REQUEST_ENTITY_INCOMPLETE) == "4.08 Request Entity Incomplete"
    assert codes.code_name(codes.REQUEST_ENTITY_TOO_LARGE) == "4.13 Request Entity Too Large"
    assert codes.code_name(codes.INTERNAL_SERVER_ERROR) == "5.00 Internal Server Error"
    assert codes.code_name(codes.GET) == "0.01 GET"
    assert codes.code_name(0xE7) == "7.07"
    assert codes.is_success(codes.CONTENT) and not codes.is_success(codes.BAD_REQUEST)
    assert codes.is_response(codes.GATEWAY_TIMEOUT) and not codes.is_response(codes.DELETE)
    assert (codes.TEXT_PLAIN, codes.LINK_FORMAT, codes.OCTET_STREAM, codes.JSON, codes.CBOR) == \
        (0, 40, 42, 50, 60)


def test_unknown_critical_lists_each_unrecognised_odd_option_once():
    m = Message(ACK, codes.CONTENT, 1)
    m.add_option(options.URI_PATH, "a")
    m.add_option(2101, b"old")
    m.add_option(2101, b"again")
    m.add_option(9, b"")
    m.add_option(2104, b"elective")
    m.add_option(options.BLOCK2, 0)
    got = decode(m.encode())
    assert unknown_critical(got) == [9, 2101]
    assert unknown_critical(decode(REPORT_REQUEST)) == []


def test_repr_names_type_and_code_but_stays_short():
    r = repr(decode(REPORT_RESPONSE))
    assert "ACK" in r and "2.04" in r and "a1b2c3d4" in r


def test_path_of_a_non_utf8_segment_is_a_format_error():
    m = decode(b"\x40\x01\x00\x01\xb2\xff\xfe")
    assert m.option(options.URI_PATH) == b"\xff\xfe"
    raises(CoapFormatError, m.path)
