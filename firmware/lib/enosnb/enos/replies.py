"""EnOS JSON return codes (enos-coap.md §10): what each documented code means, and the
EnosReplyError subclass enosnb.enos.errors.reply_error raises for it. Imported when a reply
carries a code other than 200, so a cycle that goes well builds none of these classes.
"""
from enosnb.enos.errors import EnosReplyError

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


BY_CODE = {}


def _reply_class(name, *codes):
    """An EnosReplyError subclass raised for the given codes: they differ only in name."""
    cls = type(name, (EnosReplyError,), {})
    for code in codes:
        BY_CODE[code] = cls
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
