"""Every CoAP code and Content-Format the RFCs register (RFC 7252 §5.8, §5.9, §12.1, §12.3;
RFC 7959 §2.9; RFC 8516), for servers, tools and tests. The device loads enosnb.coap.codes,
which holds only the codes it sends or checks, and never this module.
"""
from micropython import const

from enosnb.coap.codes import *  # noqa: F401,F403 (the device's codes and code_name())

FETCH = const(0x05)
PATCH = const(0x06)
IPATCH = const(0x07)

CREATED = const(0x41)
DELETED = const(0x42)
VALID = const(0x43)
CHANGED = const(0x44)
CONTENT = const(0x45)
CONTINUE = const(0x5F)

BAD_OPTION = const(0x82)
NOT_ACCEPTABLE = const(0x86)
PRECONDITION_FAILED = const(0x8C)
UNSUPPORTED_CONTENT_FORMAT = const(0x8F)
TOO_MANY_REQUESTS = const(0x9D)

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
