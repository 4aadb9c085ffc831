"""Fuzzing the CoAP decoder (enosnb.coap.message.decode): arbitrary and mutated datagrams
give a Message or CoapFormatError and nothing else; whatever decodes re-encodes to the
same bytes (the wire format has one encoding per message); generated messages survive
encode -> decode. The seed corpus is host_tests/corpus/coap/*.bin (see its README)."""
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enosnb.coap.errors import CoapFormatError
from enosnb.coap.message import Message, decode, unknown_critical

CORPUS = os.path.join(os.path.dirname(__file__), "corpus", "coap")
SEEDS = sorted(f for f in os.listdir(CORPUS) if f.endswith(".bin"))
SEED_DATA = [open(os.path.join(CORPUS, f), "rb").read() for f in SEEDS]

SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def decode_or_format_error(data):
    """Decodes; a valid datagram must re-encode to itself. Any exception other than
    CoapFormatError propagates and fails the test."""
    try:
        m = decode(data)
    except CoapFormatError as e:
        assert str(e)
        return None
    assert m.encode() == bytes(data)
    unknown_critical(m)
    try:
        m.path()
    except CoapFormatError:
        pass
    return m


def test_every_seed_decodes_or_is_a_format_error():
    assert len(SEEDS) >= 20
    readme = open(os.path.join(CORPUS, "README")).read()
    for name, data in zip(SEEDS, SEED_DATA):
        assert name in readme, name + " is not described in the corpus README"
        marked_error = ("error:" in readme.split(name, 1)[1].split("\n", 1)[0])
        got = decode_or_format_error(data)
        assert (got is None) == marked_error, name


@SETTINGS
@given(st.binary(max_size=64))
def test_arbitrary_bytes_give_a_message_or_a_format_error(data):
    decode_or_format_error(data)


@SETTINGS
@given(st.binary(min_size=4, max_size=60).map(lambda b: bytes([0x40 | (b[0] & 0x3F)]) + b[1:]))
def test_arbitrary_bytes_with_version_1_give_a_message_or_a_format_error(data):
    decode_or_format_error(data)


@st.composite
def mutated_seed(draw):
    data = bytearray(draw(st.sampled_from(SEED_DATA)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(("flip", "set", "insert", "delete", "truncate")))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.sampled_from((0x00, 0x0D, 0x0E, 0x0F, 0xD0, 0xE0, 0xF0, 0xFF,
                                              draw(st.integers(0, 255)))))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and data:
            del data[pos]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_seed())
def test_mutated_seeds_give_a_message_or_a_format_error(data):
    decode_or_format_error(data)


@SETTINGS
@given(mutated_seed(), st.sampled_from((bytes, bytearray, memoryview)))
def test_input_type_does_not_change_the_result(data, kind):
    try:
        ref = decode(data)
    except CoapFormatError as e:
        try:
            decode(kind(data))
        except CoapFormatError as e2:
            assert str(e2) == str(e)
            return
        raise AssertionError("accepted as %s but not as bytes" % kind.__name__)
    got = decode(kind(data))
    assert got.encode() == ref.encode()


@st.composite
def messages(draw):
    m = Message(draw(st.integers(0, 3)), draw(st.integers(1, 255)),
                draw(st.integers(0, 0xFFFF)), draw(st.binary(max_size=8)),
                draw(st.binary(max_size=200)))
    for number, value in draw(st.lists(st.tuples(
            st.one_of(st.integers(0, 300), st.integers(0, 0xFFFF)),
            st.one_of(st.binary(max_size=14), st.binary(min_size=260, max_size=1100),
                      st.integers(0, 2 ** 32 - 1), st.text(max_size=20))), max_size=10)):
        m.add_option(number, value)
    return m


@SETTINGS
@given(messages())
def test_decode_of_encode_gives_back_the_message(m):
    got = decode(m.encode())
    expected = [o for _, _, o in sorted((o[0], i, o) for i, o in enumerate(m.options))]
    assert (got.mtype, got.code, got.mid, got.token, got.options, got.payload) == \
        (m.mtype, m.code, m.mid, m.token, expected, m.payload)
