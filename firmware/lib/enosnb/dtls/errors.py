"""Errors of the DTLS layer (RFC 6347, RFC 5246 §7.2 alert codes).

Only these escape a DtlsSession. Messages say what went wrong and what to check; they never
contain key material.
"""

# "|" + code + ":" + name for each alert this client sends or expects: one string, where a
# dict would be built in RAM at import only to name an alert in a message.
_ALERT_NAMES = ("|0:close_notify|10:unexpected_message|20:bad_record_mac|22:record_overflow"
                "|40:handshake_failure|47:illegal_parameter|50:decode_error|51:decrypt_error"
                "|70:protocol_version|80:internal_error|100:no_renegotiation"
                "|110:unsupported_extension|115:unknown_psk_identity|")


def alert_name(description):
    i = _ALERT_NAMES.find("|%d:" % description)
    if i < 0:
        return "alert %d" % description
    i = _ALERT_NAMES.index(":", i) + 1
    return _ALERT_NAMES[i:_ALERT_NAMES.index("|", i)]


class DtlsError(Exception):
    """Any failure of the DTLS session."""


class DtlsTimeout(DtlsError):
    """The handshake gave up: no valid answer within the retry limit or the deadline."""


class DtlsAlert(DtlsError):
    """A fatal alert was received from the peer or sent to it; the session is over.

    .level is 1 (warning) or 2 (fatal), .description the RFC 5246 alert code, .sent tells
    whether this side sent it (True) or the peer did (False).
    """

    def __init__(self, level, description, sent=False, detail=""):
        self.level = level
        self.description = description
        self.sent = sent
        who = "sent to" if sent else "received from"
        msg = "%s alert %s (%d) %s the peer" % (
            "fatal" if level == 2 else "warning", alert_name(description), description, who)
        if detail:
            msg += ": " + detail
        if description == 40 and not sent:
            msg += " (no shared cipher suite? the server must allow PSK-AES128-CCM8 or PSK-AES128-CBC-SHA256)"
        elif description in (115, 51) and not sent:
            msg += " (check the PSK identity and key)"
        super().__init__(msg)


class DtlsClosed(DtlsAlert):
    """The peer closed the session with close_notify, or close() was called."""

    def __init__(self, sent=False):
        DtlsAlert.__init__(self, 1, 0, sent, "the session is closed; start a new handshake")
