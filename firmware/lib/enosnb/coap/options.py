"""CoAP option numbers and value helpers.

RFC 7252 §5.10 and §12.2 (option numbers and formats), §3.2 (uint values);
RFC 7959 §2.2 (Block option value), §4 (Size1/Size2);
RFC 7967 (No-Response); EnOS options 2100 (command topic) and 2102 (command payload),
enos-coap.md §11.5.
"""
from micropython import const

from enosnb.coap.errors import CoapError, CoapFormatError

IF_MATCH = const(1)
URI_HOST = const(3)
ETAG = const(4)
IF_NONE_MATCH = const(5)
OBSERVE = const(6)
URI_PORT = const(7)
LOCATION_PATH = const(8)
URI_PATH = const(11)
CONTENT_FORMAT = const(12)
MAX_AGE = const(14)
URI_QUERY = const(15)
ACCEPT = const(17)
LOCATION_QUERY = const(20)
BLOCK2 = const(23)
BLOCK1 = const(27)
SIZE2 = const(28)
PROXY_URI = const(35)
PROXY_SCHEME = const(39)
SIZE1 = const(60)
NO_RESPONSE = const(258)
ENOS_TOPIC = const(2100)
ENOS_PAYLOAD = const(2102)

# Value formats of §3.2.
EMPTY = const(0)
OPAQUE = const(1)
UINT = const(2)
STRING = const(3)

# number -> (format, min length, max length): §5.10 table, RFC 7959 §2.1 and §4,
# RFC 7641 §2, RFC 7967 §2, EnOS §11.5 (2102 holds up to about 1 KB).
FORMATS = {
    IF_MATCH: (OPAQUE, 0, 8),
    URI_HOST: (STRING, 1, 255),
    ETAG: (OPAQUE, 1, 8),
    IF_NONE_MATCH: (EMPTY, 0, 0),
    OBSERVE: (UINT, 0, 3),
    URI_PORT: (UINT, 0, 2),
    LOCATION_PATH: (STRING, 0, 255),
    URI_PATH: (STRING, 0, 255),
    CONTENT_FORMAT: (UINT, 0, 2),
    MAX_AGE: (UINT, 0, 4),
    URI_QUERY: (STRING, 0, 255),
    ACCEPT: (UINT, 0, 2),
    LOCATION_QUERY: (STRING, 0, 255),
    BLOCK2: (UINT, 0, 3),
    BLOCK1: (UINT, 0, 3),
    SIZE2: (UINT, 0, 4),
    PROXY_URI: (STRING, 1, 1034),
    PROXY_SCHEME: (STRING, 1, 255),
    SIZE1: (UINT, 0, 4),
    NO_RESPONSE: (UINT, 0, 1),
    ENOS_TOPIC: (STRING, 0, 255),
    ENOS_PAYLOAD: (OPAQUE, 0, 1100),
}


def uint_bytes(value):
    """§3.2 uint in the fewest bytes, 0 as the empty string."""
    if value < 0:
        raise CoapError("option uint %d is negative; CoAP uints are unsigned" % value)
    n = 0
    v = value
    while v:
        v >>= 8
        n += 1
    if n > 8:
        raise CoapError("option uint %d does not fit 8 bytes" % value)
    return value.to_bytes(n, "big")


def block_value(num, more, szx):
    """RFC 7959 §2.2: NUM, M and SZX packed into the Block1/Block2 option's uint."""
    if not 0 <= szx <= 6:
        raise CoapError("block SZX %d is out of range; use 0..6 (16..1024-byte blocks)" % szx)
    if not 0 <= num < 0x100000:
        raise CoapError("block number %d does not fit 20 bits; use bigger blocks" % num)
    return (num << 4) | (8 if more else 0) | szx


def block_parse(value):
    """RFC 7959 §2.2: Block option uint -> (num, more, szx). SZX 7 is reserved (§2.2) and
    raises CoapFormatError; a server answers it with 4.00."""
    szx = value & 7
    if szx == 7:
        raise CoapFormatError("block option with reserved SZX 7")
    return value >> 4, value & 8 == 8, szx


def szx_size(szx):
    """Block size in bytes of an SZX: 16 << szx."""
    if not 0 <= szx <= 6:
        raise CoapError("block SZX %d is out of range; use 0..6 (16..1024-byte blocks)" % szx)
    return 16 << szx
