"""Every input rule the parsers enforce, each with a case that fails when the rule is removed:
versions, lengths, offsets, epochs, 48-bit sequence numbers, the replay window's edges, the
fields a CoAP format error must carry for the RST (RFC 7252 §4.2), and the two faults that
`make fuzz` found (a Block2 server repeating an empty block, a non-string JSON key that
MicroPython's json accepts). Runs under pytest and on MicroPython."""
from coap_fake import FakeEndpoint, reply
from vmcheck import VirtualClock, raises

from enosnb import config
from enosnb.coap import allcodes as codes
from enosnb.coap import options as opt
from enosnb.coap.client import Client
from enosnb.coap.errors import CoapError, CoapFormatError
from enosnb.coap.message import ACK, CON, NON, decode
from enosnb.dtls import handshake as hs
from enosnb.dtls import record as rl


# ---- CoAP: each format rule names itself and keeps the header for the RST --------------------

def _format_error(data):
    return raises(CoapFormatError, decode, data)


def test_coap_format_errors_name_the_rule_and_carry_type_and_mid_for_the_rst():
    cases = [
        (b"\x40\x01\x12", "datagram of 3 bytes is shorter than the 4-byte CoAP header",
         None, None),
        (b"\x80\x01\x12\x34", "CoAP version 2; only version 1 exists", CON, 0x1234),
        (b"\x49\x01\x12\x34", "token length 9 is reserved (9-15)", CON, 0x1234),
        (b"\x58\x01\xab\xcd\x01\x02", "token of 8 bytes runs past the end of the datagram",
         NON, 0xABCD),
        (b"\x40\x01\x00\x07\x0f", "option length nibble 15 is reserved", CON, 7),
        (b"\x40\x01\x00\x07\xf0", "option delta nibble 15 outside the payload marker", CON, 7),
        (b"\x40\x01\x00\x07\xff", "payload marker with no payload", CON, 7),
        (b"\x40\x01\x00\x07\x13ab", "option 1 value of 3 bytes runs past the end", CON, 7),
        (b"\x60\x00\x00\x07\xff\x01", "Empty message (0.00) carries a token, options or payload",
         ACK, 7),
        (b"\x40\x01\x00\x07\xe0\xff\x00", "option number 65549 does not fit 16 bits",
         CON, 7),
    ]
    for data, words, mtype, mid in cases:
        e = _format_error(data)
        assert str(e) == words, (data, str(e))
        assert (e.mtype, e.mid) == (mtype, mid), (data, e.mtype, e.mid)


def test_coap_extended_option_fields_name_delta_or_length_when_cut_short():
    delta = "option delta extension runs past the end"
    length = "option length extension runs past the end"
    assert str(_format_error(b"\x40\x01\x00\x07\xd0")) == delta
    assert str(_format_error(b"\x40\x01\x00\x07\x0d")) == length
    e = _format_error(b"\x40\x01\x00\x07\x0e\x01")
    assert str(e) == length and (e.mtype, e.mid) == (CON, 7)
    e = _format_error(b"\x40\x01\x00\x07\xe0\x01")
    assert str(e) == delta and (e.mtype, e.mid) == (CON, 7)


def test_coap_zero_length_token_and_option_values_decode_as_empty():
    m = decode(b"\x40\x01\x00\x07\xb0\x10")
    assert m.token == b"" and m.options == [(11, b""), (12, b"")]


# ---- CoAP client: Block2 must make progress ----------------------------------------------------

def test_block2_server_repeating_an_empty_block_with_more_set_is_refused_not_looped():
    clock = VirtualClock(1000)
    served = []

    def handler(req, ep):
        if req.mtype == CON and req.code:
            served.append(1)
            ep.deliver(reply(req, codes.CONTENT, b"",
                             options=[(opt.BLOCK2, opt.block_value(0, True, 6))]), 5)
    c = Client(FakeEndpoint(clock, handler), clock=clock)
    e = raises(CoapError, c.get, "/big")
    assert "0-byte Block2 block of size 1024 before the last block" in str(e)
    assert len(served) == 1


def test_block2_short_block_in_the_middle_is_refused():
    clock = VirtualClock(1000)

    def handler(req, ep):
        if req.mtype == CON and req.code:
            b2 = req.uint_option(opt.BLOCK2)
            num = opt.block_parse(b2)[0] if b2 is not None else 0
            body = b"x" * (16 if num == 0 else 5)
            ep.deliver(reply(req, codes.CONTENT, body,
                             options=[(opt.BLOCK2, opt.block_value(num, True, 0))]), 5)
    c = Client(FakeEndpoint(clock, handler), clock=clock, block_szx=0)
    e = raises(CoapError, c.get, "/big")
    assert "5-byte Block2 block of size 16" in str(e)


# ---- DTLS records: version, epoch, 48-bit sequence, lengths -------------------------------------

def test_record_header_fields_are_read_whole_epoch_and_48_bit_sequence():
    head = bytes((23, 0xFE, 0xFD, 0x81, 0x02, 0x80, 0x11, 0x22, 0x33, 0x44, 0x55, 0x00, 0x03))
    (ctype, version, epoch, seq, cid, frag), = rl.split_records(head + b"abc")
    assert (ctype, version, epoch, seq, cid, bytes(frag)) == (
        23, rl.DTLS12, 0x8102, 0x801122334455, None, b"abc")


def test_record_length_field_is_16_bits_and_may_not_pass_the_datagram():
    head = bytes((23, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 1))
    body = b"y" * 0x0102
    (r,) = rl.split_records(head + b"\x01\x02" + body)
    assert len(r[5]) == 0x0102
    assert rl.split_records(head + b"\x01\x03" + body) == []
    # A valid record followed by a cut one: the first is kept (dtls.md §12 step 1).
    good = head + b"\x00\x01z"
    assert [bytes(x[5]) for x in rl.split_records(good + head + b"\x00\x05ab")] == [b"z"]


def test_record_versions_other_than_dtls_1_0_and_1_2_end_parsing():
    for v in (b"\xfe\xfc", b"\xfd\xfd", b"\x03\x03", b"\xfe\xfe"):
        assert rl.split_records(b"\x17" + v + bytes(8) + b"\x00\x00") == []
    (r,) = rl.split_records(b"\x16\xfe\xff" + bytes(8) + b"\x00\x00")
    assert r[1] == rl.DTLS10


def test_cid_record_needs_its_cid_and_length_inside_the_datagram():
    head = bytes((rl.CT_TLS12_CID, 0xFE, 0xFD, 0, 1)) + bytes(6)
    (r,) = rl.split_records(head + b"CIDX" + b"\x00\x01q", 4)
    assert r[4] == b"CIDX" and bytes(r[5]) == b"q"
    assert rl.split_records(head + b"CIDX" + b"\x00", 4) == []
    assert rl.split_records(head + b"CID", 4) == []
    (r,) = rl.split_records(head + b"CIDX" + b"\x00\x00", 4)
    assert bytes(r[5]) == b""


# ---- replay window edges (RFC 6347 §4.1.2.6) -------------------------------------------------------

def test_replay_window_is_exactly_64_records_wide():
    w = rl.ReplayWindow()
    w.accept(100)
    assert not w.seen(101) and w.seen(100)
    assert not w.seen(37) and w.seen(36)       # 100 - 63 is inside, 100 - 64 is not
    w.accept(37)
    assert w.seen(37) and not w.seen(38)
    w.accept(101)                               # slides by one: 37 is now 64 behind
    assert w.seen(37) and not w.seen(39)


def test_replay_window_keeps_newer_records_marked_when_an_older_one_arrives():
    w = rl.ReplayWindow()
    w.accept(10)
    w.accept(8)
    w.accept(9)
    assert w.seen(10) and w.seen(9) and w.seen(8) and not w.seen(7)


def test_replay_window_jumps_any_distance_of_the_48_bit_space_at_once():
    w = rl.ReplayWindow()
    w.accept(0)
    w.accept((1 << 48) - 1)
    assert (w.top, w.bits) == ((1 << 48) - 1, 1) and w.seen(0)


def test_replay_window_slides_and_forgets_beyond_64():
    w = rl.ReplayWindow()
    w.accept(5)
    w.accept(5 + 63)
    assert w.seen(5) and not w.seen(6)
    w.accept(5 + 64 + 63)                       # a jump of 64 or more clears the window
    assert w.bits == 1 and w.top == 132
    assert not w.seen(131) and w.seen(68)
    w = rl.ReplayWindow()
    w.accept(0)
    assert w.seen(0) and w.top == 0 and w.bits == 1


# ---- handshake fragments and messages ------------------------------------------------------------

def _frag(t, length, seq, off, body):
    return bytes((t,)) + hs.u24(length) + hs.u16(seq) + hs.u24(off) + hs.u24(len(body)) + body


def test_fragment_header_fields_are_read_as_24_and_16_bit_numbers():
    body = b"b" * 3
    data = _frag(2, 0x010203, 0x0405, 0x010200, body)
    assert hs.parse_fragments(data) == [(2, 0x010203, 0x0405, 0x010200, body)]
    big = b"f" * 0x0101
    assert hs.parse_fragments(_frag(11, 0x020000, 1, 0x01FEFF, big)) == [
        (11, 0x020000, 1, 0x01FEFF, big)]


def test_fragment_beyond_its_message_or_the_record_is_malformed():
    assert hs.parse_fragments(_frag(2, 4, 0, 1, b"abc")) is not None
    assert hs.parse_fragments(_frag(2, 4, 0, 2, b"abc")) is None
    assert hs.parse_fragments(_frag(2, 4, 0, 0, b"abcd")[:-1]) is None
    assert hs.parse_fragments(_frag(2, 0, 0, 0, b"") + b"\x02" + bytes(10)) is None
    assert hs.parse_fragments(b"") == []
    two = _frag(2, 1, 0, 0, b"a") + _frag(14, 0, 1, 0, b"")
    assert [f[0] for f in hs.parse_fragments(two)] == [2, 14]


def test_hello_verify_request_cookie_length_must_match_the_body():
    assert hs.parse_hello_verify_request(b"\xfe\xff\x02ab") == b"ab"
    assert hs.parse_hello_verify_request(b"\xfe\xfd\x00") == b""
    for bad in (b"\xfe\xff", b"\xfe\xff\x03ab", b"\xfe\xff\x01ab", b"\xfd\xff\x02ab"):
        e = raises(hs.DtlsDecodeError, hs.parse_hello_verify_request, bad)
        assert str(e) == "malformed HelloVerifyRequest"


def test_server_key_exchange_hint_length_is_16_bits_and_must_match():
    assert hs.parse_server_key_exchange(b"\x00\x00") == b""
    hint = b"h" * 0x0102
    assert hs.parse_server_key_exchange(b"\x01\x02" + hint) == hint
    for bad in (b"\x00", b"\x00\x02a", b"\x00\x01ab", b"\x01\x01" + hint):
        e = raises(hs.DtlsDecodeError, hs.parse_server_key_exchange, bad)
        assert str(e) == "malformed ServerKeyExchange"


# ---- config: what MicroPython's json lets through ------------------------------------------------

def test_a_field_name_that_is_not_a_string_is_a_config_error_not_a_crash():
    secrets = {"productKey": "MuGsF6W4", "deviceKey": "15bBZlRknc",
               "deviceSecret": "ExampleDeviceSecret0123456789abc", 1: 2}
    e = raises(config.ConfigError, config.parse_secrets, secrets)
    assert "is not a string" in str(e) and "double quotes" in str(e)


# ---- deep-sleep state blob: magic, version, CRC, entry lengths ----------------------------------

def _state_blob(body):
    """body with its CRC, as state.encode writes it."""
    import binascii
    import struct
    return body + struct.pack("<I", binascii.crc32(body) & 0xFFFFFFFF)


def test_state_blob_needs_its_magic_and_version_even_with_a_good_crc():
    from enosnb.state import decode
    assert decode(_state_blob(b"ES\x01" + bytes(5))) == (0, {})
    assert decode(_state_blob(b"ES\x02" + bytes(5))) is None
    assert decode(_state_blob(b"EX\x01" + bytes(5))) is None
    assert decode(_state_blob(b"ES\x01" + bytes(5))[:-1] + b"\x00") is None  # CRC


def test_state_blob_shorter_than_header_and_crc_is_rejected_even_when_the_crc_matches():
    from enosnb.state import decode
    for blob in (None, b"", bytes(4), _state_blob(b"ES\x01\x00"), _state_blob(b"ES\x01" + bytes(4))):
        assert decode(blob) is None


def test_state_entries_are_read_by_their_lengths_and_must_end_with_the_body():
    from enosnb.state import decode, encode
    big = bytes(range(256)) * 2
    assert decode(encode({"k" * 255: big, "z": b""}, 9)) == (9, {"k" * 255: big, "z": b""})
    head = b"ES\x01\x09\x00\x00\x00"
    one = b"\x01a\x02\x00hi"
    assert decode(_state_blob(head + b"\x01" + one)) == (9, {"a": b"hi"})
    assert decode(_state_blob(head + b"\x02" + one)) is None           # count says 2
    assert decode(_state_blob(head + b"\x01" + one[:-1])) is None      # value cut short
    assert decode(_state_blob(head + b"\x01" + b"\x01a\x00")) is None  # vlen cut short
    assert decode(_state_blob(head + b"\x01" + b"\x05a")) is None      # key cut short
    assert decode(_state_blob(head + b"\x01" + one + b"!")) is None    # bytes after the last
    assert decode(_state_blob(head + b"\x01" + b"\x01\xff\x00\x00")) is None  # key not UTF-8
    assert decode(_state_blob(head + b"\x00" + b"\x00")) is None
