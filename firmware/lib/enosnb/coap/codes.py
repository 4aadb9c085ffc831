"""CoAP codes and Content-Formats: RFC 7252 §5.8, §5.9, §12.1, §12.3; RFC 7959 §2.9
(2.31, 4.08, 4.13); RFC 8516 (4.29).

A code is one byte c.dd: class in the top 3 bits, detail in the low 5 (§3). The constants
here are the codes the device sends or checks; every public name a module has is interned
when it loads (RAM), so the rest of the registry, which only servers, tools and tests use,
is enosnb.coap.allcodes. code_name() names every registered code.
"""
from micropython import const

EMPTY = const(0x00)

GET = const(0x01)
POST = const(0x02)
PUT = const(0x03)
DELETE = const(0x04)

BAD_REQUEST = const(0x80)
UNAUTHORIZED = const(0x81)
FORBIDDEN = const(0x83)
NOT_FOUND = const(0x84)
METHOD_NOT_ALLOWED = const(0x85)
REQUEST_ENTITY_INCOMPLETE = const(0x88)
REQUEST_ENTITY_TOO_LARGE = const(0x8D)

INTERNAL_SERVER_ERROR = const(0xA0)

# "|" + code in hex + name for every registered code: one string takes less flash than a
# dict of 33 entries.
_NAMES = ("|00Empty|01GET|02POST|03PUT|04DELETE|05FETCH|06PATCH|07iPATCH"
          "|41Created|42Deleted|43Valid|44Changed|45Content|5FContinue"
          "|80Bad Request|81Unauthorized|82Bad Option|83Forbidden|84Not Found"
          "|85Method Not Allowed|86Not Acceptable|88Request Entity Incomplete"
          "|8CPrecondition Failed|8DRequest Entity Too Large|8FUnsupported Content-Format"
          "|9DToo Many Requests|A0Internal Server Error|A1Not Implemented|A2Bad Gateway"
          "|A3Service Unavailable|A4Gateway Timeout|A5Proxying Not Supported|")


def code_str(code):
    """Dotted form: 0x44 -> "2.04"."""
    return "%d.%02d" % (code >> 5, code & 0x1F)

def code_name(code):
    """0x44 -> "2.04 Changed"; a code without a registered name gives only "c.dd"."""
    i = _NAMES.find("|%02X" % code) + 3
    if i < 3:
        return code_str(code)
    return code_str(code) + " " + _NAMES[i:_NAMES.index("|", i)]

def is_response(code):
    return 2 <= (code >> 5) <= 5

def is_success(code):
    return (code >> 5) == 2
