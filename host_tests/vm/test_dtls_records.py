"""The DTLS record layer and its ciphers at their edges: records sealed with every header field
at full width match an independent implementation (the `cryptography` package and Python's
hmac, answers kept here), padding and inner-plaintext rules, buffer reuse, the handshake
reassembler, alert and error wording. Runs under pytest and on MicroPython."""
import binascii
from hashlib import sha256

from vmcheck import raises, unhex

from enosnb import rng
from enosnb.dtls import aes, aes_py, cbc, ccm
from enosnb.dtls import handshake as hs
from enosnb.dtls import record as rl
from enosnb.dtls.errors import DtlsAlert, DtlsClosed, alert_name
from enosnb.dtls.hmac_prf import HmacSha256, hmac_sha256, prf
from enosnb.dtls.timers import Timers

KEY = bytes(range(0x40, 0x50))
NONCE = bytes(range(0x10, 0x1C))
EPOCH, SEQ = 0x0102, 0x030405060708
SEQ8 = unhex("0102030405060708")
CCM_KEY, SALT = bytes(range(16)), b"\xa0\xa1\xa2\xa3"
CBC_KEY, MAC_KEY = bytes(range(16, 32)), bytes(range(32, 64))


def _hex_sha(data):
    return binascii.hexlify(sha256(bytes(data)).digest()).decode()


def _pt(n, a=7, b=1):
    return bytes((i * a + b) & 0xFF for i in range(n))


def _with_random(pattern, fn):
    saved = rng.urandom
    rng.urandom = lambda n: (pattern * n)[:n]
    try:
        return fn()
    finally:
        rng.urandom = saved


# ---- CCM-8 (RFC 3610 with M = 8, L = 3) -----------------------------------------------------

def test_ccm8_matches_an_independent_implementation_for_every_length_form():
    cases = [
        (b"", 5, "c29b2c9ccc5a28692b611a7c09"),
        (bytes(13), 0, "499132e79dbb06ac"),
        (bytes(13), 32, "c29b2c9cccb6176f8a758789b4e6aa4e203fe76c1de32730c5925c51ef0be106"
                        "9b682289f625646e"),
        (_pt(300), 20, "c29b2c9cccb6176f8a758789b4e6aa4e203fe76c0c535a5e313eae10"),
        (_pt(14), 5, "c29b2c9cccdd5fe607723fb38f"),
    ]
    for aad, n, want in cases:
        sealed = ccm.seal(KEY, NONCE, aad, _pt(n))
        assert binascii.hexlify(sealed).decode() == want, (len(aad), n)
        assert ccm.open(KEY, NONCE, aad, sealed) == _pt(n)
    long_pt = ccm.seal(KEY, NONCE, bytes(13), _pt(300))
    assert _hex_sha(long_pt) == "2f806576710d7980e24dfdef68eec500aa911c931b8f37e61071810ee35f64cf"
    many_blocks = ccm.seal(KEY, NONCE, bytes(13), _pt(4200))
    assert _hex_sha(many_blocks) == \
        "436ccaa0a403be29e17d2662c6fdb5ad849396b20bff8a9b19b915e3d0f07ec0"
    assert ccm.open(KEY, NONCE, bytes(13), many_blocks) == _pt(4200)


def test_one_ccm8_key_seals_records_of_any_size_in_turn_without_stale_bytes():
    c = ccm.Ccm8(KEY)
    for n in (300, 5, 483, 32, 0, 600, 7):
        out = bytearray(n + 8)
        c.seal_into(NONCE, bytes(13), _pt(n), out, 0)
        assert bytes(out) == ccm.seal(KEY, NONCE, bytes(13), _pt(n)), n
        assert c.open(NONCE, bytes(13), out) == _pt(n)


def test_a_ccm8_key_seals_the_largest_record_of_a_modem_datagram_without_new_buffers():
    c = ccm.Ccm8(KEY)
    ctr, mac = c._ctr, c._mac
    out = bytearray(483 + 8)
    c.seal_into(NONCE, bytes(13), _pt(483), out, 0)
    assert c.open(NONCE, bytes(13), out) == _pt(483)
    assert c._ctr is ctr and c._mac is mac


def test_ccm8_refuses_data_shorter_than_its_tag():
    assert ccm.Ccm8(KEY).open(NONCE, bytes(13), bytes(7)) is None


# ---- records -----------------------------------------------------------------------------------

def test_record_header_and_sequence_fields_are_written_at_full_width():
    assert rl.seq8(EPOCH, SEQ) == SEQ8
    h = rl.header(23, rl.DTLS12, EPOCH, SEQ, 0x0A0B, b"\xc1\xc2")
    assert h == unhex("17fefd0102030405060708c1c20a0b")
    out = bytearray(20)
    assert rl.header_into(out, 3, 23, rl.DTLS12, EPOCH, SEQ, 0x0A0B) == 16
    assert bytes(out[3:16]) == unhex("17fefd01020304050607080a0b")
    assert rl.header_into(out, 1, 25, rl.DTLS12, EPOCH, SEQ, 0x0A0B, b"\xc1\xc2") == 16
    (r,) = rl.split_records(rl.header(25, rl.DTLS12, 1, 2, 1) + b"z")
    assert r[4] == b"" and bytes(r[5]) == b"z"           # no CID bytes unless told


def test_a_ccm8_record_matches_an_independent_implementation():
    c = rl.RecordCipher(rl.TLS_PSK_WITH_AES_128_CCM_8, CCM_KEY, SALT)
    frag = c.seal(23, rl.DTLS12, EPOCH, SEQ, _pt(300, 5, 3))
    assert _hex_sha(frag) == "e1ba1fd066ddb46c6d6bbab2b23055bafc65fcb98c0a216efe638cb31b4f9f3b"
    assert c.open(23, rl.DTLS12, EPOCH, SEQ, frag) == (23, _pt(300, 5, 3))
    frag = c.seal(23, rl.DTLS12, EPOCH, SEQ, _pt(20, 5, 3), b"\xc1\xc2")
    assert binascii.hexlify(frag).decode() == \
        "0102030405060708396498df5f36fc5abeed1838bbaf277d0672267560bd7631564baafa6d"
    assert c.open(25, rl.DTLS12, EPOCH, SEQ, frag, b"\xc1\xc2") == (23, _pt(20, 5, 3))
    out = bytearray(400)
    end = c.seal_into(out, 0, 23, rl.DTLS12, EPOCH, SEQ, _pt(300, 5, 3), b"\xc1\xc2")
    assert _hex_sha(out[:end]) == \
        "631219fcf24db565491c08dcbd1ac200845d39d5c48a695ead4cb8f3ac45981a"
    assert c.open(25, rl.DTLS12, EPOCH, SEQ, out[:end], b"\xc1\xc2") == (23, _pt(300, 5, 3))


def test_a_cbc_sha256_record_matches_an_independent_implementation():
    c = rl.RecordCipher(rl.TLS_PSK_WITH_AES_128_CBC_SHA256, CBC_KEY, MAC_KEY)
    frag = _with_random(b"\x55", lambda: c.seal(23, rl.DTLS12, EPOCH, SEQ, _pt(300, 5, 3)))
    assert _hex_sha(frag) == "950f06e702f257a95807b05dc457cfff1ceaed74b163273fdae805746388c5dd"
    assert c.open(23, rl.DTLS12, EPOCH, SEQ, frag) == (23, _pt(300, 5, 3))
    out = bytearray(100)
    end = _with_random(b"\x55", lambda: c.seal_into(out, 10, 23, rl.DTLS12, EPOCH, SEQ,
                                                     _pt(20, 5, 3), b"\xc1\xc2"))
    assert end == 90
    assert _hex_sha(out[10:90]) == \
        "383b5ecf078ac37dab3c931f0ab21c0024653ad16dbdb5a09e0d5dc88112b31b"
    assert c.open(25, rl.DTLS12, EPOCH, SEQ, out[10:90], b"\xc1\xc2") == (23, _pt(20, 5, 3))


def test_record_ciphers_name_their_suite():
    assert repr(rl.RecordCipher(rl.TLS_PSK_WITH_AES_128_CCM_8, CCM_KEY, SALT)) == \
        "<RecordCipher C0A8>"
    assert repr(rl.RecordCipher(rl.TLS_PSK_WITH_AES_128_CBC_SHA256, CBC_KEY, MAC_KEY)) == \
        "<RecordCipher 00AE>"


def test_an_empty_record_opens_with_either_suite_and_with_a_connection_id():
    for c in (rl.RecordCipher(rl.TLS_PSK_WITH_AES_128_CCM_8, CCM_KEY, SALT),
              rl.RecordCipher(rl.TLS_PSK_WITH_AES_128_CBC_SHA256, CBC_KEY, MAC_KEY)):
        assert c.open(23, rl.DTLS12, 1, 5, c.seal(23, rl.DTLS12, 1, 5, b"")) == (23, b"")
        frag = c.seal(23, rl.DTLS12, 1, 6, b"", b"C")
        assert c.open(25, rl.DTLS12, 1, 6, frag, b"C") == (23, b"")


def _cid_record(c, inner, seq=9):
    """A CID record whose DTLSInnerPlaintext is `inner` exactly (type byte and zeros included)."""
    aad = c._cid_prefix(rl.DTLS12, 1, seq, b"C") + bytes((len(inner) >> 8, len(inner) & 0xFF))
    nonce = SALT + rl.seq8(1, seq)
    return rl.seq8(1, seq) + ccm.seal(CCM_KEY, nonce, aad, inner)


def test_the_inner_type_of_a_cid_record_is_its_last_non_zero_byte():
    c = rl.RecordCipher(rl.TLS_PSK_WITH_AES_128_CCM_8, CCM_KEY, SALT)
    for inner, want in ((b"data\x17\x00\x00", (23, b"data")), (b"\x16", (22, b"")),
                        (b"ab\x17\x00", (23, b"ab")),
                        (b"\x00\x01\x17", (23, b"\x00\x01")), (b"\x00\x00", None), (b"", None)):
        assert c.open(25, rl.DTLS12, 1, 9, _cid_record(c, inner), b"C") == want, inner


# ---- CBC padding (RFC 5246 §6.2.3.2) -------------------------------------------------------------

def _cbc_fragment(plaintext, iv=b"\x33" * 16):
    return iv + aes.cbc_encrypt(CBC_KEY, iv, plaintext)


def _mac(prefix, content):
    n = len(content)
    return HmacSha256(MAC_KEY).mac(prefix, bytes((n >> 8, n & 0xFF)), content)


def test_padding_bytes_are_checked_from_the_last_to_the_first_up_to_the_longest_padding():
    prefix = b"P" * 13
    for p in (0, 1, 15, 255):
        content = _pt(16 + (-(33 + p)) % 16)       # content | MAC | padding fill whole blocks
        good = content + _mac(prefix, content) + bytes((p,)) * (p + 1)
        assert len(good) % 16 == 0
        assert cbc.open(HmacSha256(MAC_KEY), CBC_KEY, prefix, _cbc_fragment(good)) == content
        for k in sorted(set((0, 1, p // 2, p - 1, p))):   # the last, the first, between
            if k < 0:
                continue
            bad = bytearray(good)
            bad[len(good) - 1 - k] ^= 0x01
            frag = _cbc_fragment(bytes(bad))
            assert cbc.open(HmacSha256(MAC_KEY), CBC_KEY, prefix, frag) is None, (p, k)


def test_a_padding_length_beyond_the_record_is_dropped_not_a_crash():
    for n in (48, 64, 240, 304):
        frag = _cbc_fragment(b"\xff" * n)
        assert cbc.open(HmacSha256(MAC_KEY), CBC_KEY, b"P" * 13, frag) is None


def test_cbc_padding_fills_the_last_block_for_every_content_length():
    for n in range(0, 33):
        frag = cbc.seal(HmacSha256(MAC_KEY), CBC_KEY, b"\x44" * 16, b"P" * 13, _pt(n))
        plain = aes.cbc_decrypt(CBC_KEY, frag[:16], frag[16:])
        p = 15 - n % 16
        assert len(frag) == 16 + n + 32 + p + 1 and plain[-p - 1:] == bytes((p,)) * (p + 1)


# ---- HMAC and the TLS PRF ----------------------------------------------------------------------

def test_hmac_keys_up_to_64_bytes_are_used_as_they_are_longer_ones_hashed_first():
    assert binascii.hexlify(hmac_sha256(bytes(range(64)), b"msg")).decode() == \
        "a5347accf12c5c3edf87ddb44e5b3a1c6957591c7092e527c2e63a5e48f8ebc5"
    assert binascii.hexlify(hmac_sha256(bytes(range(65)), b"msg")).decode() == \
        "0b4330970a8c3347598324cd9a56100c0c95ad46a30ae4de0011a39cc6c31dfe"
    assert repr(HmacSha256(b"secret")) == "<HmacSha256>"


def test_prf_output_of_any_length_is_a_prefix_of_the_longer_output():
    full = prf(b"secret", b"label", b"seed", 96)
    for n in (1, 12, 32, 33, 48, 64, 95):
        assert prf(b"secret", b"label", b"seed", n) == full[:n]


# ---- pure-Python AES (ports without cryptolib) ---------------------------------------------------

def test_the_pure_python_aes_keeps_the_schedules_of_a_sessions_two_keys():
    aes_py._cache[:] = [None] * 4           # as in a new process: nothing cached yet
    a, b = bytes(range(16)), bytes(range(1, 17))
    ra = aes_py._expand(a)
    rb = aes_py._expand(b)
    assert aes_py._expand(a) is ra and aes_py._expand(b) is rb
    assert aes_py._expand(bytearray(a)) is ra


def test_the_pure_python_aes_says_which_length_is_wrong():
    assert str(raises(ValueError, aes_py.ecb_encrypt, b"short", bytes(16))) == \
        "AES-128 key must be 16 bytes"
    assert str(raises(ValueError, aes_py.ecb_encrypt, bytes(16), bytes(15))) == \
        "AES data must be a multiple of 16 bytes"


# ---- handshake messages and reassembly (RFC 6347 §4.2.3) ---------------------------------------

def test_handshake_message_header_writes_24_bit_lengths_and_16_bit_sequence_numbers():
    m = hs.message(2, 0x0102, bytes(0x010203))
    assert m[:12] == unhex("02 010203 0102 000000 010203") and len(m) == 12 + 0x010203


def test_a_fragment_length_above_16_bits_is_read_whole():
    head = b"\x02" + hs.u24(3) + hs.u16(0) + hs.u24(0) + b"\x01\x00\x03"
    assert hs.parse_fragments(head + b"abc") is None


def _reassemble(frags, base=0):
    r = hs.Reassembler()
    for seq, off, data, length in frags:
        r.add(2, length, seq, off, data, base)
    return r


def test_fragments_in_any_order_and_repeated_complete_a_message_only_when_all_arrived():
    body = _pt(40)
    r = _reassemble([(0, 20, body[20:], 40), (0, 20, body[20:], 40), (0, 0, body[:19], 40)])
    assert r.take(0) is None
    r.add(2, 40, 0, 19, body[19:20], 0)
    assert r.take(0) == (2, body) and r.take(0) is None


def test_the_reassembler_takes_six_message_seqs_from_its_base_up_to_1024_bytes():
    r = _reassemble([(3, 0, b"a", 1), (8, 0, b"b", 1), (9, 0, b"c", 1), (2, 0, b"d", 1)], base=3)
    assert r.take(3) == (2, b"a") and r.take(8) == (2, b"b")
    assert r.take(9) is None and r.take(2) is None
    r = _reassemble([(0, 0, bytes(1024), 1024), (1, 0, bytes(1025), 1025)])
    assert r.take(0) == (2, bytes(1024)) and r.take(1) is None


def test_a_message_seq_repeated_with_another_type_or_length_starts_over():
    r = hs.Reassembler()
    r.add(2, 4, 0, 0, b"ab", 0)
    r.add(11, 4, 0, 2, b"cd", 0)               # another type: the first half is gone
    assert r.take(0) is None
    r.add(11, 4, 0, 0, b"ab", 0)
    assert r.take(0) == (11, b"abcd")
    r.add(2, 4, 1, 0, b"ab", 0)
    r.add(2, 2, 1, 0, b"xy", 0)                # another length: starts over, and completes
    assert r.take(1) == (2, b"xy")


def test_the_lowest_complete_flight_start_is_taken_first():
    r = hs.Reassembler()
    r.add(hs.SERVER_HELLO, 1, 4, 0, b"h", 0)
    r.add(hs.HELLO_VERIFY_REQUEST, 1, 2, 0, b"v", 0)
    r.add(hs.SERVER_KEY_EXCHANGE, 1, 1, 0, b"k", 0)
    assert r.take_any((hs.SERVER_HELLO, hs.HELLO_VERIFY_REQUEST)) == (
        2, hs.HELLO_VERIFY_REQUEST, b"v")


# ---- ServerHello (RFC 5246 §7.4.1.3) -----------------------------------------------------------

def _server_hello(sid=b"", tail=b""):
    return b"\xfe\xfd" + bytes(32) + bytes((len(sid),)) + sid + b"\xc0\xa8\x01" + tail


def test_server_hello_fields_are_read_from_their_places():
    ext = hs.extension(0xFF01, b"\x00") + hs.extension(0x1234, bytes(300))
    sh = hs.ServerHello(_server_hello(b"s" * 32, hs.u16(len(ext)) + ext))
    assert (sh.session_id, sh.suite, sh.compression) == (b"s" * 32, 0xC0A8, 1)
    assert sh.extensions == [(0xFF01, b"\x00"), (0x1234, bytes(300))]
    assert sh.extension(0x1234) == bytes(300) and sh.extension(23) is None
    assert hs.ServerHello(_server_hello()).extensions == []


def test_malformed_server_hellos_name_what_is_wrong():
    ext = hs.extension(23, b"ab")
    cases = [
        (_server_hello()[:37], "ServerHello too short"),
        (_server_hello(b"s" * 33), "malformed ServerHello session_id"),
        (_server_hello(b"s" * 3)[:40], "malformed ServerHello session_id"),
        (_server_hello(tail=b"\x00"), "malformed ServerHello extensions"),
        (_server_hello(tail=hs.u16(len(ext) + 1) + ext), "ServerHello extension length mismatch"),
        (_server_hello(tail=hs.u16(0x0106) + ext), "ServerHello extension length mismatch"),
        (_server_hello(tail=b"\x00\x02\x00\x17"), "malformed ServerHello extension"),
        (_server_hello(tail=b"\x00\x05\x00\x17\x00\x02\x00"),
         "ServerHello extension overruns the message"),
        (_server_hello(tail=b"\x00\x05\x00\x17\x01\x01\x00"),
         "ServerHello extension overruns the message"),
    ]
    for body, words in cases:
        assert str(raises(hs.DtlsDecodeError, hs.ServerHello, body)) == words, words


# ---- alerts and settings -------------------------------------------------------------------------

def test_alerts_say_who_sent_them_and_what_to_check():
    assert str(DtlsAlert(2, 40)) == "fatal alert handshake_failure (40) received from the " \
        "peer (no shared cipher suite? the server must allow PSK-AES128-CCM8 or " \
        "PSK-AES128-CBC-SHA256)"
    assert str(DtlsAlert(2, 40, True, "renegotiation_info is not empty")) == \
        "fatal alert handshake_failure (40) sent to the peer: renegotiation_info is not empty"
    for code, name in ((115, "unknown_psk_identity"), (51, "decrypt_error")):
        assert str(DtlsAlert(2, code)) == "fatal alert %s (%d) received from the peer " \
                                          "(check the PSK identity and key)" % (name, code)
    assert str(DtlsAlert(2, 51, True)) == "fatal alert decrypt_error (51) sent to the peer"
    assert str(DtlsAlert(1, 200)) == "warning alert alert 200 (200) received from the peer"
    assert str(DtlsAlert(3, 20)) == "warning alert bad_record_mac (20) received from the peer"
    e = DtlsAlert(2, 50)
    assert (e.level, e.description, e.sent) == (2, 50, False)
    assert alert_name(110) == "unsupported_extension" and alert_name(7) == "alert 7"


def test_every_alert_this_client_sends_or_expects_is_named_in_messages():
    names = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
             22: "record_overflow", 40: "handshake_failure", 47: "illegal_parameter",
             50: "decode_error", 51: "decrypt_error", 70: "protocol_version",
             80: "internal_error", 100: "no_renegotiation", 110: "unsupported_extension",
             115: "unknown_psk_identity"}
    for code, name in names.items():
        assert alert_name(code) == name, code
    # Codes that are the start or end of a named one are not taken for it.
    for code in (1, 2, 5, 11, 15, 4, 7, 255):
        assert alert_name(code) == "alert %d" % code, code


def test_a_closed_session_says_to_start_a_new_handshake():
    e = DtlsClosed()
    assert (e.level, e.description, e.sent) == (1, 0, False)
    assert str(e) == "warning alert close_notify (0) received from the peer: the session is " \
                     "closed; start a new handshake"
    assert DtlsClosed(True).sent is True


def test_handshake_timers_default_to_the_nb_iot_values():
    t = Timers()
    assert (t.initial_ms, t.cap_ms, t.max_retransmit, t.deadline_ms) == (9000, 60000, 4, 180000)
    assert repr(t) == "Timers(initial_ms=9000, cap_ms=60000, max_retransmit=4, deadline_ms=180000)"
