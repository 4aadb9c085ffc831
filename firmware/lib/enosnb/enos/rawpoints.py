"""A compact binary form of a measurement-point report for the passthrough topics
(enos-coap.md §8.3 `up_raw` / `down_raw`, §8.4 "Passthrough").

EnOS decodes passthrough bytes with the product's parsing script; tools/enos_parser/script.js
is that script for this format. Device and script share one point table: a list of point
names whose position is the point's index on the wire (the device maker edits both together).

All integers are big-endian. Every message starts with a type byte.

  0x11 measurepoint post, time in seconds   type | id u32 | time u32 (s)  | points
  0x12 measurepoint post, time in ms        type | id u32 | time u48 (ms) | points
  0x10 measurepoint post, no time (server   type | id u32 | points
       time is used, §8.2)
  0x21 measurepoint set (down_raw command)  type | id u32 | points
  0x22 reply to a command (up_raw)          type | id u32 | code u16

  points: per point  index u8 (bit 7: a quality byte follows) | value float32 | [quality u8]

The script turns 0x1x into thing.measurepoint.post JSON, 0x22 into {"id","code","data"} and
writes 0x21 from thing.service.measurepoint.set JSON. The §17 reference report (one point,
time a whole second) is 14 bytes, against 123 bytes of JSON. Values are float32: about 7
significant digits, which the script rounds to.
"""
import struct

from micropython import const

from enosnb.enos.errors import EnosError, EnosProtocolError

POST_NO_TIME = const(0x10)
POST_SECONDS = const(0x11)
POST_MS = const(0x12)
SET = const(0x21)
REPLY = const(0x22)

# The table of the demo sensor, the same list as POINTS in tools/enos_parser/script.js.
DEMO_TABLE = ("temp", "humidity", "pressure", "battery", "rssi")

_QUALITY = const(0x80)
_MAX_POINTS = const(127)
_U48 = 1 << 48


def _index(table, name):
    try:
        i = table.index(name)
    except ValueError:
        raise EnosError("point %r is not in the point table: add it to the device table and "
                        "to POINTS in the parsing script, at the same position" % (name,))
    if i >= _MAX_POINTS:
        raise EnosError("the point table holds at most %d names" % _MAX_POINTS)
    return i


def _points(table, points, out):
    # Sorted by index so that both runtimes write the same bytes (dict order differs).
    items = sorted((_index(table, k), v) for k, v in points.items())
    for i, v in items:
        quality = None
        if isinstance(v, tuple):
            v, quality = v
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise EnosError("point %s: the raw form carries numbers only" % table[i])
        if quality is None:
            out += struct.pack(">Bf", i, v)
        else:
            if not 0 <= quality <= 9:
                raise EnosError("point %s: quality must be 0..9" % table[i])
            out += struct.pack(">BfB", i | _QUALITY, v, quality)


def encode_post(msg_id, points, time_ms, table):
    """The up_raw bytes of one measurement-point post.

    msg_id: int 0..2**32-1 (the JSON id the script writes); points: {name: value} or
    {name: (value, quality)}; time_ms: epoch ms or None; table: the point-name list.
    Whole seconds travel as u32 seconds, other times as u48 milliseconds.
    """
    if not points:
        raise EnosError("a raw report needs at least one point")
    if time_ms is None:
        out = bytearray(struct.pack(">BI", POST_NO_TIME, msg_id))
    else:
        if not 0 <= time_ms < _U48:
            raise EnosError("time must be epoch milliseconds below 2**48")
        seconds, ms = divmod(time_ms, 1000)
        if ms == 0 and seconds < (1 << 32):
            out = bytearray(struct.pack(">BII", POST_SECONDS, msg_id, seconds))
        else:
            out = bytearray(struct.pack(">BIHI", POST_MS, msg_id, time_ms >> 32,
                                        time_ms & 0xFFFFFFFF))
    _points(table, points, out)
    return bytes(out)


def encode_reply(msg_id, code=200):
    """The up_raw bytes of a reply to a down_raw command (script -> {"id","code","data"})."""
    return struct.pack(">BIH", REPLY, msg_id, code)


def decode_set(data, table):
    """(msg_id, {name: value}) of a down_raw measurepoint-set command (type 0x21)."""
    if len(data) < 5 or data[0] != SET:
        raise EnosProtocolError("down_raw command is not a raw measurepoint set (type 0x21)")
    msg_id = struct.unpack(">I", data[1:5])[0]
    points = {}
    p = 5
    while p < len(data):
        if p + 5 > len(data):
            raise EnosProtocolError("down_raw command ends inside a point")
        i = data[p] & 0x7F
        v = struct.unpack(">f", data[p + 1:p + 5])[0]
        p += 5
        if data[p - 5] & _QUALITY:
            p += 1
        if i >= len(table):
            raise EnosProtocolError("down_raw command names point %d, beyond the table" % i)
        points[table[i]] = v
    if p != len(data):
        raise EnosProtocolError("down_raw command ends inside a point")
    return msg_id, points
