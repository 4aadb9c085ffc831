"""CCM-8 and AES against the `cryptography` package (dtls.md §10): Hypothesis-random inputs, and
every block and buffer boundary on each AES backend (cryptolib, cryptography, pure Python)."""
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from hypothesis import given, settings, strategies as st

import dtls_backends
from enosnb.dtls import aes_py, ccm

keys = st.binary(min_size=16, max_size=16)
nonces = st.binary(min_size=12, max_size=12)


@settings(max_examples=200, deadline=None)
@given(keys, nonces, st.binary(max_size=40), st.binary(max_size=600))
def test_ccm8_seal_equals_aesccm_tag8_and_opens(key, nonce, aad, pt):
    sealed = ccm.seal(key, nonce, aad, pt)
    assert sealed == AESCCM(key, tag_length=8).encrypt(nonce, pt, aad)
    assert ccm.open(key, nonce, aad, sealed) == pt


@settings(max_examples=100, deadline=None)
@given(keys, nonces, st.binary(max_size=20), st.binary(min_size=1, max_size=100), st.data())
def test_ccm8_open_rejects_any_single_bit_flip(key, nonce, aad, pt, data):
    sealed = bytearray(ccm.seal(key, nonce, aad, pt))
    i = data.draw(st.integers(0, len(sealed) - 1))
    sealed[i] ^= 1 << data.draw(st.integers(0, 7))
    assert ccm.open(key, nonce, aad, bytes(sealed)) is None


@settings(max_examples=100, deadline=None)
@given(keys, st.binary(min_size=16, max_size=16), st.integers(1, 8).map(lambda n: n * 16).flatmap(
    lambda n: st.binary(min_size=n, max_size=n)))
def test_pure_python_aes_equals_cryptography(key, iv, data):
    def run(mode, dec=False):
        c = Cipher(algorithms.AES(key), mode)
        o = c.decryptor() if dec else c.encryptor()
        return o.update(data) + o.finalize()
    assert aes_py.ecb_encrypt(key, data) == run(modes.ECB())
    assert aes_py.cbc_encrypt(key, iv, data) == run(modes.CBC(iv))
    assert aes_py.cbc_decrypt(key, iv, data) == run(modes.CBC(iv), True)


# ---- every backend of dtls/aes.py, at the block and buffer boundaries -----------------------

PT_LENGTHS = (0, 1, 15, 16, 17, 63, 64, 65, 129, 300, 483, 1000)
AAD_LENGTHS = (0, 13, 62, 63, 64, 140)
KEY = bytes(range(0x40, 0x50))
NONCE = bytes(range(0xA0, 0xAC))


def _data(n, salt):
    return bytes((i * 31 + salt) & 0xFF for i in range(n))


@pytest.fixture(scope="module", params=dtls_backends.BACKENDS)
def backend(request):
    """(aes, ccm, record) modules freshly imported on one backend; see dtls_backends."""
    with dtls_backends.backend(request.param) as mods:
        yield mods


@pytest.mark.parametrize("n", PT_LENGTHS)
def test_ccm8_seal_equals_aesccm_and_opens_at_every_boundary_length(backend, n):
    _, bccm, _ = backend
    pt = _data(n, 1)
    for la in AAD_LENGTHS:
        aad = _data(la, 2)
        sealed = bccm.seal(KEY, NONCE, aad, pt)
        assert sealed == AESCCM(KEY, tag_length=8).encrypt(NONCE, pt, aad), (n, la)
        assert bccm.open(KEY, NONCE, aad, sealed) == pt, (n, la)
        if n:
            bad = bytearray(sealed)
            bad[n - 1] ^= 1
            assert bccm.open(KEY, NONCE, aad, bytes(bad)) is None, (n, la)


def test_one_ccm8_seals_and_opens_records_of_every_size_in_turn(backend):
    # A session's Ccm8 keeps its scratch: records larger than a 512-byte datagram's make it
    # grow, and a smaller one after a larger must not see stale bytes.
    _, bccm, _ = backend
    c = bccm.Ccm8(KEY)
    for n in PT_LENGTHS + tuple(reversed(PT_LENGTHS)):
        for la in (13, 140, 0):
            pt = _data(n, n)
            aad = _data(la, la)
            out = bytearray(n + 8 + 3)
            assert c.seal_into(NONCE, aad, memoryview(pt), out, 3) == n + 11
            assert bytes(out[3:]) == AESCCM(KEY, tag_length=8).encrypt(NONCE, pt, aad), (n, la)
            assert c.open(NONCE, aad, memoryview(out)[3:]) == pt, (n, la)
            assert c.open(NONCE, aad + b"\x00", bytes(out[3:])) is None


def _count_aes_key_calls(baes, monkeypatch):
    calls = []
    for name in ("ecb_in_place", "cbc_mac_in_place"):
        real = getattr(baes.AesKey, name)

        def counted(self, buf, real=real, name=name):
            calls.append((name, len(buf)))
            return real(self, buf)
        monkeypatch.setattr(baes.AesKey, name, counted)
    return calls


@pytest.mark.parametrize("n", (0, 5, 188, 483))
def test_each_record_costs_one_ecb_and_one_cbc_call(backend, monkeypatch, n):
    baes, _, brecord = backend
    calls = _count_aes_key_calls(baes, monkeypatch)
    cipher = brecord.RecordCipher(brecord.TLS_PSK_WITH_AES_128_CCM_8, KEY, NONCE[:4])
    content = _data(n, 7)
    m = (n + 15) // 16
    for step in ("seal", "open"):
        del calls[:]
        del dtls_backends.CALLS[:]
        if step == "seal":
            frag = cipher.seal(brecord.CT_APPLICATION_DATA, brecord.DTLS12, 1, 9, content)
        else:
            opened = cipher.open(brecord.CT_APPLICATION_DATA, brecord.DTLS12, 1, 9, frag)
            assert opened == (brecord.CT_APPLICATION_DATA, content)
        # All counter blocks A_0..A_m in one ECB call; B_0 | AAD block | plaintext in one CBC.
        assert calls == [("ecb_in_place", 16 * (m + 1)), ("cbc_mac_in_place", 32 + 16 * m)], step
        if baes.BACKEND == "cryptolib":
            # The kept ECB object encrypts; a new CBC object per record, never a decrypt.
            assert dtls_backends.CALLS == [("encrypt", 1, 16 * (m + 1)), ("new", 2),
                                           ("encrypt", 2, 32 + 16 * m)], step


def test_fake_cryptolib_enforces_the_esp32_rules():
    aes = dtls_backends.FakeCryptolibAes
    with pytest.raises(ValueError):
        aes(KEY, 6, bytes(16))
    e = aes(KEY, 2, bytes(16))
    data = _data(48, 3)
    whole = Cipher(algorithms.AES(KEY), modes.CBC(bytes(16))).encryptor().update(data)
    buf = bytearray(data)
    assert e.encrypt(memoryview(buf)[0:16], memoryview(buf)[0:16]) is not None
    assert e.encrypt(memoryview(buf)[16:48], memoryview(buf)[16:48]) is not None
    assert bytes(buf) == whole  # chained across calls, in place
    with pytest.raises(ValueError):
        e.decrypt(bytes(16))
    with pytest.raises(ValueError):
        aes(KEY, 1).encrypt(bytes(15))
