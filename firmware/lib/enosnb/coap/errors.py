"""Errors of the CoAP layer (RFC 7252).

CoapFormatError is what the decoder raises for a malformed datagram (RFC 7252 §3, §4.2:
the receiver rejects it, i.e. drops it, or answers a CON with RST). When the 4-byte header
was readable it carries .mtype and .mid so the caller can send that RST; otherwise both
are None.
"""


class CoapError(Exception):
    pass


class CoapFormatError(CoapError):
    def __init__(self, message, mtype=None, mid=None):
        super().__init__(message)
        self.mtype = mtype
        self.mid = mid


class CoapTimeout(CoapError):
    pass


class CoapReset(CoapError):
    pass
