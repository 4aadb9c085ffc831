"""EnOS layer errors (enos-coap.md §9 CoAP codes, §10 EnOS JSON return codes).

Every failure of an EnOS exchange is an EnosError. A JSON reply whose `code` is not 200 raises
the subclass registered for that code (enosnb.enos.replies, loaded only when a reply carries
such a code: a cycle that goes well builds none of those classes), so `except
EnosPayloadFormatError` catches EnOS 1220 and the message names both the code and its
documented meaning. No secret ever goes into a message.
"""

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
        from enosnb.enos.replies import MEANINGS
        self.code = code
        self.path = path
        text = "EnOS code %d (%s) for %s" % (code, MEANINGS.get(code, "undocumented code"), path)
        if message:
            text += ": " + message
        super().__init__(text)


def reply_error(code, path, message=""):
    """The EnosReplyError subclass for an EnOS JSON `code`, ready to raise
    (an EnosProtocolError when the code is not an integer)."""
    if not isinstance(code, int) or isinstance(code, bool):
        return EnosProtocolError("the reply to %s has no integer code" % path)
    from enosnb.enos.replies import BY_CODE
    return BY_CODE.get(code, EnosReplyError)(code, path, message)
