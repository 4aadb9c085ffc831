"""The raw (up_raw) measurement-point form on the device side; runs under pytest and in the VM."""
from enosnb.enos import rawpoints
from enosnb.enos.errors import EnosError, EnosProtocolError
from vmcheck import raises, unhex

TABLE = rawpoints.DEMO_TABLE


def test_reference_report_is_14_bytes_with_time_in_seconds():
    data = rawpoints.encode_post(1, {"temp": 21.5}, 1764115200000, TABLE)
    assert data == unhex("11 00000001 69264300 00 41ac0000")


def test_time_with_milliseconds_travels_as_48_bits():
    data = rawpoints.encode_post(7, {"temp": 1.0}, 1764115200123, TABLE)
    assert data[0] == rawpoints.POST_MS and len(data) == 1 + 4 + 6 + 5
    assert data[5:11] == unhex("019abd75b87b")


def test_points_are_written_in_table_order_with_optional_quality():
    data = rawpoints.encode_post(2, {"battery": (3.5, 9), "temp": 20.0}, None, TABLE)
    assert data == unhex("10 00000002 00 41a00000 83 40600000 09")


def test_unknown_point_and_non_numbers_are_refused_with_a_hint():
    e = raises(EnosError, rawpoints.encode_post, 1, {"nope": 1.0}, None, TABLE)
    assert "point table" in str(e)
    raises(EnosError, rawpoints.encode_post, 1, {"temp": "hot"}, None, TABLE)
    raises(EnosError, rawpoints.encode_post, 1, {}, None, TABLE)


def test_set_command_decodes_and_truncated_ones_are_rejected():
    msg_id, points = rawpoints.decode_set(unhex("21 0000002a 01 42480000"), TABLE)
    assert msg_id == 42 and points == {"humidity": 50.0}
    raises(EnosProtocolError, rawpoints.decode_set, unhex("21 0000002a 01 4248"), TABLE)
    raises(EnosProtocolError, rawpoints.decode_set, unhex("11 0000002a"), TABLE)


def test_reply_is_seven_bytes():
    assert rawpoints.encode_reply(42, 200) == unhex("22 0000002a 00c8")
