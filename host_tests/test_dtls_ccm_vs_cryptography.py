"""CCM-8 and AES against the `cryptography` package on Hypothesis-random inputs (spec §10)."""
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from hypothesis import given, settings, strategies as st

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
