"""Known answers from the captured OpenSSL 3.0.19 CCM-8 handshake (docs/vectors.md, steps 1-8)."""
from vmcheck import load_vector, unhex, VirtualClock
from dtls_fakes import FakeEndpoint

from enosnb.dtls import handshake as hs
from enosnb.dtls import record as rl
from enosnb.dtls.hmac_prf import prf, sha256_of
from enosnb.dtls.errors import DtlsClosed
from enosnb.dtls.session import DtlsSession
from enosnb.dtls.timers import LOOPBACK

V = load_vector("dtls_psk_ccm8_openssl.json")
DG = [unhex(d["hex"]) for d in V["datagrams"]]
PSK = unhex(V["psk_hex"])
KB = unhex(V["key_block_hex_40_bytes"])
MS = unhex(V["master_secret_hex"])
PLAIN = V["epoch1_plaintexts_hex"]


def _messages(i):
    """[(type, seq, single-fragment message)] of the epoch-0 handshake records of datagram i."""
    out = []
    for ctype, version, epoch, seq, cid, frag in rl.split_records(DG[i]):
        if ctype == 22 and epoch == 0:
            for t, length, mseq, off, body in hs.parse_fragments(frag):
                assert off == 0 and len(body) == length
                out.append((t, mseq, hs.message(t, mseq, body)))
    return out


def _transcript():
    msgs = _messages(2) + _messages(3) + [m for m in _messages(4) if m[0] == 16]
    return b"".join(m[2] for m in msgs)


def _epoch1_records():
    """[(name, dir, record tuple)] of every epoch-1 record in the capture."""
    out = []
    kinds = {22: "finished", 23: "appdata", 21: "alert"}
    for d, raw in zip(V["datagrams"], DG):
        for r in rl.split_records(raw):
            if r[2] == 1:
                out.append(("%s_%s_epoch1_seq%d" % (d["dir"], kinds[r[0]], r[3]), d["dir"], r))
    return out


def _cipher(direction, kb=KB):
    if direction == "c2s":
        return rl.RecordCipher(0xC0A8, kb[0:16], kb[32:36])
    return rl.RecordCipher(0xC0A8, kb[16:32], kb[36:40])


def test_datagrams_split_into_the_captured_record_counts():
    counts = [len(rl.split_records(d)) for d in DG]
    assert counts == [1, 1, 1, 3, 3, 2, 1, 1, 1]


def test_cookie_comes_from_the_hello_verify_request():
    (t, mseq, msg), = _messages(1)
    assert t == hs.HELLO_VERIFY_REQUEST and mseq == 0
    assert hs.parse_hello_verify_request(msg[12:]) == unhex("f42e6906aac14d28486d0ab4be408b7fd1690c0c")


def test_second_client_hello_is_the_first_with_the_cookie_and_message_seq_1():
    (_, s1, ch1), = _messages(0)
    (_, s2, ch2), = _messages(2)
    cookie = hs.parse_hello_verify_request(_messages(1)[0][2][12:])
    b1 = ch1[12:]
    expect = b1[:34 + 1] + bytes((len(cookie),)) + cookie + b1[36:]
    assert (s1, s2) == (0, 1)
    assert ch2[12:] == expect


def test_transcript_leaves_out_first_hello_and_verify_request():
    t = _transcript()
    assert len(t) == 284
    assert sha256_of(t) == unhex("dad15e5618c8b4631b4999c8df54b77ebd4dae666700d90c35bbefea8a1394c8")


def test_extended_master_secret_and_key_block_match_openssl():
    pms = hs.psk_premaster(PSK)
    assert pms == unhex("0010" + "00" * 16 + "0010") + PSK
    ms = prf(pms, b"extended master secret", sha256_of(_transcript()), 48)
    assert ms == MS
    sr = unhex(V["server_random_hex"])
    cr = unhex(V["client_random_hex"])
    assert prf(ms, b"key expansion", sr + cr, 40) == KB


def test_server_hello_parses_session_id_and_extensions():
    sh = hs.ServerHello(_messages(3)[0][2][12:])
    assert sh.suite == 0xC0A8 and sh.compression == 0
    assert sh.session_id == unhex("1c9430858bdd4e95cc8d177576db31182c0bf98684052ce650208f5aeb3505b1")
    assert sh.random == unhex(V["server_random_hex"])
    assert sh.extension(23) == b"" and sh.extension(0xFF01) == b"\x00"
    assert hs.parse_server_key_exchange(_messages(3)[1][2][12:]) == b"hint"


def test_every_epoch1_record_decrypts_to_the_expected_plaintext():
    recs = _epoch1_records()
    assert len(recs) == 5
    for name, d, (ctype, version, epoch, seq, cid, frag) in recs:
        opened = _cipher(d).open(ctype, version, epoch, seq, frag)
        assert opened == (ctype, unhex(PLAIN[name])), name


def test_resealing_each_plaintext_reproduces_the_captured_record():
    for name, d, (ctype, version, epoch, seq, cid, frag) in _epoch1_records():
        sealed = _cipher(d).seal(ctype, version, epoch, seq, unhex(PLAIN[name]))
        assert sealed == bytes(frag), name


def test_finished_verify_data_both_ways():
    t = _transcript()
    client_vd = prf(MS, b"client finished", sha256_of(t), 12)
    assert client_vd == unhex("8b2d53153c1acfdc5a1045f8")
    t += unhex(PLAIN["c2s_finished_epoch1_seq0"])
    assert prf(MS, b"server finished", sha256_of(t), 12) == unhex("242ef012523e4e060f7c8958")


def test_a_flipped_bit_anywhere_in_a_record_makes_it_invalid():
    for name, d, (ctype, version, epoch, seq, cid, frag) in _epoch1_records():
        for i in range(len(frag)):
            bad = bytearray(frag)
            bad[i] ^= 0x01
            assert _cipher(d).open(ctype, version, epoch, seq, bad) is None, (name, i)
        # The header is authenticated too: a different sequence number fails.
        assert _cipher(d).open(ctype, version, epoch, seq + 1, frag) is None


def test_a_different_psk_fails_to_authenticate_the_finished_records():
    wrong = bytes(16)
    ms = prf(hs.psk_premaster(wrong), b"extended master secret", sha256_of(_transcript()), 48)
    kb = prf(ms, b"key expansion", unhex(V["server_random_hex"]) + unhex(V["client_random_hex"]), 40)
    for name, d, r in _epoch1_records():
        assert _cipher(d, kb).open(r[0], r[1], r[2], r[3], r[5]) is None


def test_replay_window_drops_the_second_copy_of_a_record():
    w = rl.ReplayWindow()
    c = _cipher("c2s")
    got = []
    for _ in range(2):
        for ctype, version, epoch, seq, cid, frag in rl.split_records(DG[6]):
            if w.seen(seq):
                continue
            opened = c.open(ctype, version, epoch, seq, frag)
            if opened is not None:
                w.accept(seq)
                got.append(opened[1])
    assert got == [b"hello"]


def test_client_replay_reproduces_every_client_datagram_byte_for_byte():
    clock = VirtualClock()
    answers = {1: DG[1], 2: DG[3], 3: DG[5]}

    def responder(data, ep):
        if len(ep.sent) in answers:
            ep.push(answers[len(ep.sent)])

    ep = FakeEndpoint(clock, responder)
    s = DtlsSession(ep, V["psk_identity"].encode(), PSK, clock=clock, timers=LOOPBACK,
                    suites=(0xC0A8,))
    s.hello_random = unhex(V["client_random_hex"])
    s.hello_extensions = DG[0][-0x36:]
    s.handshake()
    assert ep.sent == [DG[0], DG[2], DG[4]]
    assert s.psk_identity_hint == b"hint"
    s.send(b"hello")
    assert ep.sent[3] == DG[6]
    ep.push(DG[8])
    try:
        s.recv(1000)
        raise AssertionError("close_notify from the server must end the session")
    except DtlsClosed:
        pass
    s2 = DtlsSession(FakeEndpoint(clock, responder), b"Client_identity", PSK, clock=clock,
                     timers=LOOPBACK, suites=(0xC0A8,))
    s2.hello_random = s.hello_random
    s2.hello_extensions = s.hello_extensions
    s2.handshake()
    s2.send(b"hello")
    s2.close()
    assert s2._ep.sent[3:] == [DG[6], DG[7]]
