"""What the CoAP codec writes at the edges of RFC 7252 §3.1 and §3.2, the Message API a caller
uses, and the exact words of the codec's errors (a user reads them in a log).
Runs under pytest and on MicroPython."""
from vmcheck import raises

from enosnb.coap import allcodes as codes
from enosnb.coap import options as opt
from enosnb.coap.errors import CoapError, CoapFormatError
from enosnb.coap.message import ACK, CON, NON, RST, Message, decode


def _one_option(number, value):
    m = Message(CON, codes.GET, 0x0102)
    m.add_option(number, value)
    return m.encode()[4:]


# ---- option header forms (§3.1): each nibble form up to its last value ---------------------

def test_option_delta_uses_the_nibble_up_to_12_then_one_byte_up_to_268_then_two():
    cases = ((12, b"\xc0"), (13, b"\xd0\x00"), (268, b"\xd0\xff"), (269, b"\xe0\x00\x00"),
             (525, b"\xe0\x01\x00"), (0xFFFF, b"\xe0\xfe\xf2"))
    for number, header in cases:
        assert _one_option(number, b"") == header, number
        assert decode(b"\x40\x01\x01\x02" + header).options == [(number, b"")]


def test_option_length_uses_the_nibble_up_to_12_then_one_byte_up_to_268_then_two():
    cases = ((12, b"\x1c"), (13, b"\x1d\x00"), (268, b"\x1d\xff"), (269, b"\x1e\x00\x00"),
             (525, b"\x1e\x01\x00"))
    for length, header in cases:
        value = b"v" * length
        assert _one_option(1, value) == header + value, length
        assert decode(b"\x40\x01\x01\x02" + header + value).options == [(1, value)]


def test_both_extended_forms_in_one_option_header_write_delta_then_length():
    value = b"w" * 300
    assert _one_option(200, value) == b"\xde" + bytes((200 - 13, 0, 300 - 269)) + value
    assert _one_option(13, b"y" * 13) == b"\xdd\x00\x00" + b"y" * 13


def test_the_longest_option_value_the_two_byte_form_can_carry_is_sent_one_more_is_refused():
    value = b"\x00" * 65804
    assert _one_option(1, value)[:3] == b"\x1e\xff\xff"
    e = raises(CoapError, _one_option, 1, value + b"\x00")
    assert str(e) == "option 1 value of 65805 bytes is too long for CoAP"


def test_option_numbers_end_at_65535_on_both_sides():
    e = raises(CoapError, _one_option, 0x10000, b"")
    assert str(e) == "option number 65536 does not fit 16 bits"
    m = Message(CON, codes.GET, 1)
    m.add_option(65530, b"")
    m.add_option(65540, b"")  # a small delta after a big number
    assert str(raises(CoapError, m.encode)) == "option number 65540 does not fit 16 bits"
    e = raises(CoapFormatError, decode, b"\x40\x01\x00\x07\xe0\xfe\xf3")
    assert str(e) == "option number 65536 does not fit 16 bits"
    assert (e.mtype, e.mid) == (CON, 7)


def test_negative_option_number_is_refused_with_the_valid_range():
    m = Message(CON, codes.GET, 1)
    m.add_option(-1, b"")
    assert str(raises(CoapError, m.encode)) == \
        "negative option number; option numbers are 0..65535"


# ---- uint values (§3.2) -------------------------------------------------------------------

def test_uint_option_values_take_the_fewest_bytes_up_to_eight():
    cases = ((0xFFFFFF, 3), (0x1000000, 4), (0xFFFFFFFF, 4), (1 << 32, 5), (1 << 40, 6),
             ((1 << 64) - 1, 8))
    for value, n in cases:
        raw = opt.uint_bytes(value)
        assert len(raw) == n and int.from_bytes(raw, "big") == value, value
    e = raises(CoapError, opt.uint_bytes, 1 << 64)
    assert str(e) == "option uint 18446744073709551616 does not fit 8 bytes"
    assert str(raises(CoapError, opt.uint_bytes, -1)) == \
        "option uint -1 is negative; CoAP uints are unsigned"


def test_an_empty_uint_option_reads_as_zero():
    m = decode(b"\x40\x01\x00\x07\xe0\x00\x00")
    assert m.uint_option(269) == 0


# ---- Message API --------------------------------------------------------------------------

def test_a_new_message_is_an_empty_con_with_id_0():
    m = Message()
    assert (m.mtype, m.code, m.mid, m.token, m.payload, m.options) == (CON, 0, 0, b"", b"", [])
    assert m.encode() == b"\x40\x00\x00\x00"


def test_an_option_given_as_a_bytearray_is_copied_not_shared():
    value = bytearray(b"ab")
    m = Message(CON, codes.GET, 1)
    m.add_option(opt.ETAG, value)
    value[0] = 0x7A
    assert m.option(opt.ETAG) == b"ab" and type(m.option(opt.ETAG)) is bytes


def test_set_option_without_a_value_leaves_an_empty_option():
    m = Message(CON, codes.GET, 1)
    m.add_option(opt.IF_NONE_MATCH, b"x")
    m.set_option(opt.IF_NONE_MATCH)
    assert m.options == [(opt.IF_NONE_MATCH, b"")]


def test_paths_without_a_leading_slash_empty_and_with_a_trailing_slash():
    m = Message(CON, codes.GET, 1)
    m.set_path("a/b")
    assert m.options_of(opt.URI_PATH) == [b"a", b"b"] and m.path() == "/a/b"
    m.set_path("")
    assert m.options_of(opt.URI_PATH) == [] and m.path() == "/"
    m.set_path("/a/")
    assert m.options_of(opt.URI_PATH) == [b"a", b""] and m.path() == "/a/"


def test_the_same_path_report_after_report_reuses_its_encoded_segments():
    path = "/topic/sys/p/d/thing/measurepoint/post"
    first = Message(CON, codes.POST, 1)
    first.set_path(path)
    second = Message(CON, codes.POST, 2)
    second.set_path(path)
    assert all(a is b for a, b in zip(first.options, second.options))
    other = Message(CON, codes.POST, 3)
    other.set_path("/auth")
    assert other.path() == "/auth" and second.path() == path


def test_a_path_that_is_not_utf8_names_the_rule_and_keeps_type_and_mid_for_the_rst():
    m = decode(b"\x50\x01\x12\x34\xb2\xff\xfe")
    e = raises(CoapFormatError, m.path)
    assert str(e) == "Uri-Path is not UTF-8 (RFC 7252 §3.2 string format)"
    assert (e.mtype, e.mid) == (NON, 0x1234)


def test_repr_shows_type_code_mid_token_options_and_payload_size():
    m = Message(ACK, codes.CHANGED, 0x1234, b"\xa1\x0b", b"xy")
    m.add_option(opt.CONTENT_FORMAT, 50)
    assert repr(m) == "<Message ACK 2.04 mid=4660 token=a10b options=[(12, b'2')] " \
                      "payload=2 bytes>"
    assert repr(Message(RST)) == "<Message RST 0.00 mid=0 token= options=[] payload=0 bytes>"


def test_messages_that_cannot_be_sent_say_what_is_out_of_range():
    e = raises(CoapError, Message(CON, codes.GET, 1, b"123456789").encode)
    assert str(e) == "token of 9 bytes; CoAP allows 0 to 8"
    e = raises(CoapError, Message(CON, codes.GET, 0x10000).encode)
    assert str(e) == "type 0, code 1 or message ID 65536 out of range"
    e = raises(CoapError, Message(ACK, codes.EMPTY, 1, b"\x01").encode)
    assert str(e) == "an Empty message (0.00) carries no token, options or payload"


# ---- codes (§5.9, §12.1) ----------------------------------------------------------------------

def test_code_names_start_at_the_empty_code_and_classes_6_and_7_are_not_responses():
    assert codes.code_name(codes.EMPTY) == "0.00 Empty"
    assert codes.code_name(codes.PROXYING_NOT_SUPPORTED) == "5.05 Proxying Not Supported"
    assert codes.is_response(0x40) and codes.is_response(0xBF)
    assert not codes.is_response(0x3F) and not codes.is_response(0xC0)


# ---- Block options (RFC 7959 §2.2) ------------------------------------------------------------

def test_block_option_errors_say_what_to_use_instead():
    e = raises(CoapError, opt.block_value, 0, False, 7)
    assert str(e) == "block SZX 7 is out of range; use 0..6 (16..1024-byte blocks)"
    e = raises(CoapError, opt.block_value, 1 << 20, False, 0)
    assert str(e) == "block number 1048576 does not fit 20 bits; use bigger blocks"
    e = raises(CoapError, opt.szx_size, -1)
    assert str(e) == "block SZX -1 is out of range; use 0..6 (16..1024-byte blocks)"
    e = raises(CoapFormatError, opt.block_parse, 0x17)
    assert str(e) == "block option with reserved SZX 7"
