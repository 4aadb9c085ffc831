"""Errors of the modem layer (modems.md §1, §2.4, §3.5).

ModemError derives from OSError so that a modem socket honours the datagram endpoint contract
("send raises OSError on failure") while callers that know the modem can catch the precise
subclass. Messages name what failed and what to do; they never carry payload data.
"""


class ModemError(OSError):
    """Anything the modem layer could not do."""


class AtTimeout(ModemError):
    """No final result for a command within its timeout."""

    def __init__(self, command, timeout_ms):
        super().__init__("no final result to %s within %d ms; the modem may be busy, asleep "
                         "or rebooting: re-sync with AT and re-initialise"
                         % (command, timeout_ms))
        self.command = command
        self.timeout_ms = timeout_ms


class AtCommandError(ModemError):
    """The modem answered ERROR or +CME ERROR; .code is the number (None for plain ERROR)."""

    def __init__(self, command, code=None, text=None):
        if code is not None:
            what = "+CME ERROR: %d" % code
        elif text:
            what = "+CME ERROR: %s" % text
        else:
            what = "ERROR"
        super().__init__("%s answered %s; check the command is supported by this firmware "
                         "(AT+CGMR) and the module state (SIM, radio, registration)"
                         % (command, what))
        self.command = command
        self.code = code
        self.text = text


class ModemRebooted(ModemError):
    """The modem rebooted (boot banner or an unexpected +CPIN: READY) while in use."""

    def __init__(self, marker, command=None):
        msg = "modem rebooted (%r)" % (marker,)
        if command:
            msg += " while waiting for %s" % command
        super().__init__(msg + "; re-initialise it")
        self.marker = marker
        self.command = command


class RegistrationError(ModemError):
    """The modem is not registered on the network and did not register in time."""

    def __init__(self, stat, timeout_ms):
        super().__init__("not registered on the network after %d ms (last +CEREG stat %s); "
                         "check the antenna, the SIM, the APN and the band (AT+CBAND / "
                         "AT+NBAND)" % (timeout_ms, stat))
        self.stat = stat
        self.timeout_ms = timeout_ms


class SimError(ModemError):
    """The SIM is missing, locked or unreadable."""


class SocketError(ModemError):
    """A modem socket could not be created, was closed, or a datagram could not be sent."""
