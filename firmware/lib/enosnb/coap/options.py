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

# The options this codec knows (§5.10 table, RFC 7959 §2.1 and §4, RFC 7641 §2, RFC 7967 §2,
# EnOS §11.5): a critical option not among them is unrecognized (§5.4.1). A tuple of numbers:
# a table of formats and lengths would be built in RAM at import and read only for its keys.
KNOWN = (IF_MATCH, URI_HOST, ETAG, IF_NONE_MATCH, OBSERVE, URI_PORT, LOCATION_PATH, URI_PATH,
         CONTENT_FORMAT, MAX_AGE, URI_QUERY, ACCEPT, LOCATION_QUERY, BLOCK2, BLOCK1, SIZE2,
         PROXY_URI, PROXY_SCHEME, SIZE1, NO_RESPONSE, ENOS_TOPIC, ENOS_PAYLOAD)


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
