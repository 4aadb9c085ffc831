"""CoAP codes and Content-Formats: RFC 7252 §5.8, §5.9, §12.1, §12.3; RFC 7959 §2.9
(2.31, 4.08, 4.13); RFC 8516 (4.29).

A code is one byte c.dd: class in the top 3 bits, detail in the low 5 (§3).
"""
from micropython import const

EMPTY = const(0x00)

GET = const(0x01)
POST = const(0x02)
PUT = const(0x03)
DELETE = const(0x04)
FETCH = const(0x05)
PATCH = const(0x06)
IPATCH = const(0x07)

CREATED = const(0x41)
DELETED = const(0x42)
VALID = const(0x43)
CHANGED = const(0x44)
CONTENT = const(0x45)
CONTINUE = const(0x5F)

BAD_REQUEST = const(0x80)
UNAUTHORIZED = const(0x81)
BAD_OPTION = const(0x82)
FORBIDDEN = const(0x83)
NOT_FOUND = const(0x84)
METHOD_NOT_ALLOWED = const(0x85)
NOT_ACCEPTABLE = const(0x86)
REQUEST_ENTITY_INCOMPLETE = const(0x88)
PRECONDITION_FAILED = const(0x8C)
REQUEST_ENTITY_TOO_LARGE = const(0x8D)
UNSUPPORTED_CONTENT_FORMAT = const(0x8F)
TOO_MANY_REQUESTS = const(0x9D)

INTERNAL_SERVER_ERROR = const(0xA0)
NOT_IMPLEMENTED = const(0xA1)
BAD_GATEWAY = const(0xA2)
SERVICE_UNAVAILABLE = const(0xA3)
GATEWAY_TIMEOUT = const(0xA4)
PROXYING_NOT_SUPPORTED = const(0xA5)

# Content-Format numbers (§12.3; CBOR from RFC 7049 §7.4).
TEXT_PLAIN = const(0)
LINK_FORMAT = const(40)
XML = const(41)
OCTET_STREAM = const(42)
EXI = const(47)
JSON = const(50)
CBOR = const(60)

_NAMES = {
    0x00: "Empty",
    0x01: "GET", 0x02: "POST", 0x03: "PUT", 0x04: "DELETE",
    0x05: "FETCH", 0x06: "PATCH", 0x07: "iPATCH",
    0x41: "Created", 0x42: "Deleted", 0x43: "Valid", 0x44: "Changed", 0x45: "Content",
    0x5F: "Continue",
    0x80: "Bad Request", 0x81: "Unauthorized", 0x82: "Bad Option", 0x83: "Forbidden",
    0x84: "Not Found", 0x85: "Method Not Allowed", 0x86: "Not Acceptable",
    0x88: "Request Entity Incomplete", 0x8C: "Precondition Failed",
    0x8D: "Request Entity Too Large", 0x8F: "Unsupported Content-Format",
    0x9D: "Too Many Requests",
    0xA0: "Internal Server Error", 0xA1: "Not Implemented", 0xA2: "Bad Gateway",
    0xA3: "Service Unavailable", 0xA4: "Gateway Timeout", 0xA5: "Proxying Not Supported",
}


def code_class(code):
    """0 request (or Empty), 2 success, 4 client error, 5 server error."""
    return code >> 5


def code_detail(code):
    return code & 0x1F


def code_str(code):
    """Dotted form: 0x44 -> "2.04"."""
    return "%d.%02d" % (code >> 5, code & 0x1F)


def code_name(code):
    """0x44 -> "2.04 Changed"; a code without a registered name gives only "c.dd"."""
    name = _NAMES.get(code)
    if name is None:
        return code_str(code)
    return code_str(code) + " " + name


def is_request(code):
    return 1 <= code <= 31


def is_response(code):
    return 2 <= (code >> 5) <= 5


def is_success(code):
    return (code >> 5) == 2
