"""Record protection primitives: AES, HMAC/PRF, CCM-8 and CBC-SHA256 seal/open (dtls.md §9-§11)."""
from vmcheck import unhex

from enosnb.dtls import aes, aes_py, ccm, cbc
from enosnb.dtls import record as rl
from enosnb.dtls.ct import ct_equal
from enosnb.dtls.hmac_prf import HmacSha256, hmac_sha256, prf

KEY = unhex("000102030405060708090a0b0c0d0e0f")
NONCE = unhex("0a0b0c0d00010000000000ff")
AAD = unhex("00010000000000ff17fefd0005")


def test_pure_python_aes_matches_fips197_and_inverts():
    pt = unhex("00112233445566778899aabbccddeeff")
    ct = unhex("69c4e0d86a7b0430d8cdb78070b4c55a")
    assert aes_py.ecb_encrypt(KEY, pt) == ct
    assert aes_py.cbc_decrypt(KEY, bytes(16), ct) == pt
    data = bytes(range(64))
    iv = bytes(range(100, 116))
    assert aes_py.cbc_decrypt(KEY, iv, aes_py.cbc_encrypt(KEY, iv, data)) == data
    assert aes.cbc_encrypt(KEY, iv, data) == aes_py.cbc_encrypt(KEY, iv, data)


def test_hmac_sha256_matches_rfc4231():
    assert hmac_sha256(b"Jefe", b"what do ya want ", b"for nothing?") == unhex(
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    long_key = b"\xaa" * 131
    msg = b"Test Using Larger Than Block-Size Key - Hash Key First"
    assert HmacSha256(long_key).mac(msg) == unhex(
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")


def test_tls12_prf_sha256_known_answer():
    out = prf(unhex("9bbe436ba940f017b17652849a71db35"), b"test label",
              unhex("a0ba9f936cda311827a6f796ffd5198c"), 100)
    assert out == unhex(
        "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af"
        "0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff7"
        "0187347b66")


def test_ct_equal_compares_whole_values():
    assert ct_equal(b"abc", b"abc")
    assert not ct_equal(b"abc", b"abd")
    assert not ct_equal(b"abc", b"ab")
    assert ct_equal(b"", b"")


def test_ccm8_round_trips_every_length_and_adds_8_bytes():
    for n in range(0, 70):
        pt = bytes((i * 7) & 0xFF for i in range(n))
        sealed = ccm.seal(KEY, NONCE, AAD, pt)
        assert len(sealed) == n + 8
        assert ccm.open(KEY, NONCE, AAD, sealed) == pt


def test_ccm8_rejects_tampered_tag_aad_nonce_and_truncation():
    sealed = ccm.seal(KEY, NONCE, AAD, b"hello")
    for i in range(len(sealed)):
        bad = bytearray(sealed)
        bad[i] ^= 0x80
        assert ccm.open(KEY, NONCE, AAD, bytes(bad)) is None
    assert ccm.open(KEY, NONCE, AAD[:-1] + b"\x06", sealed) is None
    assert ccm.open(KEY, NONCE[:-1] + b"\x00", AAD, sealed) is None
    assert ccm.open(KEY, NONCE, AAD, sealed[:-1]) is None
    assert ccm.open(KEY, NONCE, AAD, sealed[:7]) is None


def test_ccm8_record_overhead_is_29_bytes():
    c = rl.RecordCipher(0xC0A8, KEY, b"salt")
    frag = c.seal(23, rl.DTLS12, 1, 5, b"hello")
    assert len(rl.header(23, rl.DTLS12, 1, 5, len(frag)) + frag) == 5 + 29
    assert c.open(23, rl.DTLS12, 1, 5, frag) == (23, b"hello")


def _cbc_pair():
    mac = HmacSha256(bytes(range(32)))
    return mac, KEY, rl.seq8(1, 7) + b"\x17\xfe\xfd"


def test_cbc_sha256_round_trips_with_minimal_padding():
    mac, key, prefix = _cbc_pair()
    for n in range(0, 60):
        content = bytes((i * 3) & 0xFF for i in range(n))
        iv = bytes((n,)) * 16
        frag = cbc.seal(mac, key, iv, prefix, content)
        assert len(frag) == 16 + 16 * ((n + 33 + 15) // 16)
        assert cbc.open(mac, key, prefix, frag) == content
        plain = aes.cbc_decrypt(key, iv, frag[16:])
        p = plain[-1]
        assert p == 15 - (n + 32) % 16 and plain[n + 32:] == bytes((p,)) * (p + 1)
        assert plain[n:n + 32] == mac.mac(prefix, bytes((0, n)), content)


def test_cbc_sizes_match_openssl_for_finished_and_alert():
    mac, key, prefix = _cbc_pair()
    assert len(cbc.seal(mac, key, bytes(16), prefix, bytes(24))) == 80
    assert len(cbc.seal(mac, key, bytes(16), prefix, b"\x01\x00")) == 64


def test_cbc_rejects_tampering_bad_padding_wrong_header_and_short_fragments():
    mac, key, prefix = _cbc_pair()
    frag = cbc.seal(mac, key, bytes(range(16)), prefix, b"some content")
    for i in range(len(frag)):
        bad = bytearray(frag)
        bad[i] ^= 0x01
        assert cbc.open(mac, key, prefix, bytes(bad)) is None, i
    assert cbc.open(mac, key, rl.seq8(1, 8) + b"\x17\xfe\xfd", frag) is None
    assert cbc.open(mac, key, prefix, frag[:-16]) is None
    assert cbc.open(mac, key, prefix, frag[:63]) is None
    assert cbc.open(mac, key, prefix, frag + b"\x00") is None
    # A valid MAC under wrong padding bytes is still rejected; right padding is accepted.
    content = b"x" * 10
    tag = mac.mac(prefix, bytes((0, 10)), content)
    iv = bytes(16)
    good = iv + aes.cbc_encrypt(key, iv, content + tag + b"\x05" * 6)
    assert cbc.open(mac, key, prefix, good) == content
    bogus = iv + aes.cbc_encrypt(key, iv, content + tag + b"\x05\x05\x05\x05\x04\x05")
    assert cbc.open(mac, key, prefix, bogus) is None
    huge_pad = iv + aes.cbc_encrypt(key, iv, content + tag + b"\xff" * 6)
    assert cbc.open(mac, key, prefix, huge_pad) is None


def test_cbc_record_cipher_with_connection_id_round_trips():
    c = rl.RecordCipher(0x00AE, KEY, bytes(range(32)))
    frag = c.seal(23, rl.DTLS12, 1, 3, b"payload", b"\x07\x08")
    assert c.open(25, rl.DTLS12, 1, 3, frag, b"\x07\x08") == (23, b"payload")
    assert c.open(25, rl.DTLS12, 1, 3, frag, b"\x07\x09") is None
