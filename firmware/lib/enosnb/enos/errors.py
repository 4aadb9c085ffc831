"""EnOS layer errors (enos-coap.md §9 CoAP codes, §10 EnOS JSON return codes).

Every failure of an EnOS exchange is an EnosError. A JSON reply whose `code` is not 200 raises
the subclass registered for that code, so `except EnosPayloadFormatError` catches EnOS 1220
and the message names both the code and its documented meaning. No secret ever goes into a
message.
"""

MEANINGS = {
    1008: "message too large, discarded",
    1009: "topic not supported or device not logged in",
    1200: "parse error (often: the device is not a gateway)",
    1204: "a value does not match the thing model",
    1206: "measurepoint post data format error",
    1207: "attribute update data format error",
    1208: "attribute query data format error",
    1209: "attribute delete data format error",
    1212: "no sub-device permission",
    1220: "payload format error (invalid JSON)",
    1251: "payload is empty",
    1255: "add topo failure",
    1256: "remove topo failure",
    1257: "device not found",
    1260: "method does not match the topic",
}


class EnosError(Exception):
    """Base of every EnOS-layer failure."""


class EnosConfigError(EnosError):
    """A key, secret or setting is missing or out of range; the message names it."""


class EnosAuthError(EnosError):
    """EnOS refused the device (4.01 after one re-authentication, or /auth refused)."""


class EnosCoapError(EnosError):
    """EnOS answered with a CoAP error code (§9); .coap_code holds it."""

    def __init__(self, coap_code, path, hint=""):
        self.coap_code = coap_code
        self.path = path
        msg = "EnOS answered %d.%02d to %s" % (coap_code >> 5, coap_code & 31, path)
        if hint:
            msg += ": " + hint
        super().__init__(msg)


class EnosProtocolError(EnosError):
    """The reply is not what EnOS documents (bad JSON, wrong id, wrong method, missing key)."""


class EnosReplyError(EnosError):
    """EnOS answered with a JSON `code` other than 200 (§10); .code holds it."""

    code = 0

    def __init__(self, code, path, message=""):
        self.code = code
        self.path = path
        text = "EnOS code %d (%s) for %s" % (code, MEANINGS.get(code, "undocumented code"), path)
        if message:
            text += ": " + message
        super().__init__(text)


_BY_CODE = {}


def _reply_class(name, *codes):
    """An EnosReplyError subclass raised for the given codes: they differ only in name."""
    cls = type(name, (EnosReplyError,), {})
    for code in codes:
        _BY_CODE[code] = cls
    return cls


# Codes as in MEANINGS; callers catch the precise class (`except EnosModelError`).
EnosTooLargeError = _reply_class("EnosTooLargeError", 1008)
EnosNoPermissionError = _reply_class("EnosNoPermissionError", 1009)
EnosParseError = _reply_class("EnosParseError", 1200)
EnosModelError = _reply_class("EnosModelError", 1204)
EnosFormatError = _reply_class("EnosFormatError", 1206, 1207, 1208, 1209)
EnosSubDeviceError = _reply_class("EnosSubDeviceError", 1212)
EnosPayloadFormatError = _reply_class("EnosPayloadFormatError", 1220)
EnosEmptyPayloadError = _reply_class("EnosEmptyPayloadError", 1251)
EnosDeviceNotFoundError = _reply_class("EnosDeviceNotFoundError", 1257)
EnosMethodMismatchError = _reply_class("EnosMethodMismatchError", 1260)


def reply_error(code, path, message=""):
    """The EnosReplyError subclass for an EnOS JSON `code`, ready to raise
    (an EnosProtocolError when the code is not an integer)."""
    if not isinstance(code, int) or isinstance(code, bool):
        return EnosProtocolError("the reply to %s has no integer code" % path)
    return _BY_CODE.get(code, EnosReplyError)(code, path, message)
