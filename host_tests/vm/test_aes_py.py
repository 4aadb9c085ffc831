"""The pure-Python AES-128 (enosnb.dtls.aes_py, for ports without cryptolib) against the
published vectors: FIPS 197 appendix C.1 and SP 800-38A F.2.1/F.2.2 (CBC), its S-box tables,
its key-schedule cache across three keys, CBC-MAC in place, and its input checks."""
from vmcheck import raises, unhex

from enosnb.dtls import aes_py

FIPS_KEY = unhex("000102030405060708090a0b0c0d0e0f")
FIPS_PT = unhex("00112233445566778899aabbccddeeff")
FIPS_CT = unhex("69c4e0d86a7b0430d8cdb78070b4c55a")
SP_KEY = unhex("2b7e151628aed2a6abf7158809cf4f3c")
SP_IV = unhex("000102030405060708090a0b0c0d0e0f")
SP_PT = unhex("6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51"
              "30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710")
SP_CT = unhex("7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2"
              "73bed6b8e3c1743b7116e69e22229516 3ff1caa1681fac09120eca307586e1a7")


def test_sbox_inverse_and_xtime_tables_are_the_fips_197_ones():
    sbox, inv, x2 = aes_py._tables()
    assert sbox[0x00] == 0x63 and sbox[0x01] == 0x7C and sbox[0x53] == 0xED
    assert sbox[0xFF] == 0x16 and sbox[0x80] == 0xCD
    assert all(inv[sbox[i]] == i for i in range(256))
    assert x2[0x57] == 0xAE and x2[0xAE] == 0x47 and x2[0x80] == 0x1B and x2[0x01] == 0x02
    assert len(set(sbox)) == 256


def test_fips_197_c1_block():
    assert aes_py.ecb_encrypt(FIPS_KEY, FIPS_PT) == FIPS_CT
    assert aes_py.cbc_decrypt(FIPS_KEY, bytes(16), FIPS_CT) == FIPS_PT


def test_sp800_38a_cbc_encrypt_and_decrypt_four_blocks():
    assert aes_py.cbc_encrypt(SP_KEY, SP_IV, SP_PT) == SP_CT
    assert aes_py.cbc_decrypt(SP_KEY, SP_IV, SP_CT) == SP_PT


def test_ecb_of_several_blocks_is_each_block_alone():
    two = aes_py.ecb_encrypt(FIPS_KEY, FIPS_PT + FIPS_PT)
    assert two == FIPS_CT + FIPS_CT


def test_key_schedule_cache_keeps_two_keys_and_recomputes_a_third():
    third = bytes(range(16, 32))
    c3 = aes_py.ecb_encrypt(third, FIPS_PT)
    for _ in range(2):
        assert aes_py.ecb_encrypt(FIPS_KEY, FIPS_PT) == FIPS_CT
        assert aes_py.cbc_encrypt(SP_KEY, SP_IV, SP_PT[:16]) == SP_CT[:16]
        assert aes_py.ecb_encrypt(third, FIPS_PT) == c3
    assert c3 != FIPS_CT


def test_aes_key_object_encrypts_in_place_and_computes_cbc_mac():
    k = aes_py.AesKey(SP_KEY)
    buf = bytearray(SP_PT)
    k.cbc_mac_in_place(buf)
    assert bytes(buf[-16:]) == aes_py.cbc_encrypt(SP_KEY, bytes(16), SP_PT)[-16:]
    assert bytes(buf) == aes_py.cbc_encrypt(SP_KEY, bytes(16), SP_PT)
    buf = bytearray(FIPS_PT * 2)
    aes_py.AesKey(FIPS_KEY).ecb_in_place(buf)
    assert bytes(buf) == FIPS_CT * 2


def test_wrong_key_or_data_length_is_refused():
    e = raises(ValueError, aes_py.ecb_encrypt, b"short", FIPS_PT)
    assert "16 bytes" in str(e)
    e = raises(ValueError, aes_py.ecb_encrypt, FIPS_KEY, FIPS_PT[:15])
    assert "multiple of 16" in str(e)
    raises(ValueError, aes_py.cbc_encrypt, FIPS_KEY, SP_IV, b"x" * 17)
    raises(ValueError, aes_py.cbc_decrypt, FIPS_KEY, SP_IV, b"x" * 31)
