"""Fuzzing what the device reads back from flash and RTC memory: the queue's segment and
head files (enosnb.store) and the deep-sleep blob (enosnb.state), plus secrets.json shapes
(enosnb.config). Corrupt input must never crash the boot: the store opens and returns only
records whose CRC holds, the state blob decodes or is ignored, config raises ConfigError.
Seed corpora: host_tests/corpus/store/*.bin, host_tests/corpus/state/*.bin (see READMEs)."""
import binascii
import os
import random
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enosnb.config import ConfigError, parse_board, parse_secrets
from enosnb.state import decode, encode
from enosnb.store import Store
from test_store_powercut import CutFs

HERE = os.path.dirname(__file__)
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _corpus(name):
    d = os.path.join(HERE, "corpus", name)
    return [open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d))
            if f.endswith(".bin")]


STORE_SEEDS = _corpus("store")
STATE_SEEDS = _corpus("state")


def _record_ok(seq, payload):
    """What a returned record must satisfy: it is in the segment with a matching CRC."""
    h = struct.pack("<BHI", 0xA7, len(payload), seq)
    return h + struct.pack("<I", binascii.crc32(payload, binascii.crc32(h)) & 0xFFFFFFFF) \
        + payload


def _open_with(segment, head=None, extra=None):
    fs = CutFs(random.Random(0))
    fs.mkdir("/q")
    fs.files["/q/s1"] = bytearray(segment)
    if head is not None:
        fs.files["/q/h0"] = bytearray(head)
    if extra is not None:
        fs.files["/q/s2"] = bytearray(extra)
    s = Store("/q", max_record_bytes=1024, fs=fs)
    got = s.peek(10 ** 6)
    for seq, payload in got:
        assert _record_ok(seq, payload) in bytes(segment) + bytes(extra or b"")
    seqs = [q for q, _ in got]
    assert seqs == sorted(set(seqs))
    s.append(b"after")
    again = Store("/q", max_record_bytes=1024, fs=fs)
    assert [p for _, p in again.peek(10 ** 6)][-1] == b"after"
    assert again.next_seq > max(seqs + [0])
    return got


def test_every_store_seed_opens_and_reads_only_sound_records():
    assert len(STORE_SEEDS) >= 8
    counts = [len(_open_with(seed)) for seed in STORE_SEEDS]
    assert max(counts) == 3


@SETTINGS
@given(st.sampled_from(STORE_SEEDS), st.binary(max_size=64), st.integers(0, 200),
       st.binary(max_size=24))
def test_mutated_segments_and_heads_never_break_the_queue(seed, junk, at, head):
    data = bytearray(seed)
    at = min(at, len(data))
    data[at:at + len(junk)] = junk
    _open_with(bytes(data), head=head, extra=seed)


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_segment_bytes_never_break_the_queue(data):
    _open_with(data)


@SETTINGS
@given(st.sampled_from(STATE_SEEDS), st.integers(0, 100), st.binary(min_size=1, max_size=8))
def test_mutated_state_blobs_decode_or_are_ignored(seed, at, junk):
    data = bytearray(seed)
    at = min(at, len(data))
    data[at:at + len(junk)] = junk
    got = decode(bytes(data))
    if got is not None:
        assert encode(got[1], got[0]) == bytes(data)


@SETTINGS
@given(st.dictionaries(st.text(min_size=1, max_size=4).filter(lambda k: not k.startswith("_")),
                       st.binary(max_size=40), max_size=5), st.integers(0, 2 ** 32 - 1))
def test_state_blobs_round_trip(entries, gen):
    assert decode(encode(entries, gen)) == (gen, entries)


JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-10, 100000) | st.floats()
                       | st.text(max_size=12),
                       lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6),
                                                                           c, max_size=3),
                       max_leaves=6)
FIELDS = ["productKey", "deviceKey", "deviceSecret", "productSecret", "secureMode", "lifetime",
          "host", "dtls", "port_dtls", "apn", "report_interval_s", "psk_slice", "batch_max"]
BOARD_FIELDS = ["name", "modem", "uart", "pwrkey", "reset", "led", "bands", "wdt_timeout_ms"]


@SETTINGS
@given(st.dictionaries(st.sampled_from(FIELDS), JSONISH, max_size=10))
def test_any_secrets_shape_is_accepted_or_a_config_error_without_its_strings(obj):
    for k in obj:
        if isinstance(obj[k], str):
            obj[k] = "ZQSECRETZQ" + obj[k]
    try:
        parse_secrets(obj)
    except ConfigError as e:
        assert "ZQSECRETZQ" not in str(e)


@SETTINGS
@given(st.dictionaries(st.sampled_from(BOARD_FIELDS), JSONISH, max_size=8),
       st.dictionaries(st.sampled_from(["id", "baudrate", "tx", "rx", "rxbuf"]), JSONISH))
def test_any_board_shape_is_accepted_or_a_config_error(obj, uart):
    obj["uart"] = uart
    try:
        parse_board(obj)
    except ConfigError:
        pass
