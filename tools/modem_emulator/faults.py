"""Fault rules for the modem emulator (docs/modems.md §10.1 "Fault injection").

A rule matches AT commands by prefix and says what goes wrong with the response: an error
instead of the real answer, a delay, a reboot in the middle, garbage bytes or a URC inside
the response. Rules are consumed: each match uses one of its `times` (None = forever), and
`skip` lets the first N matching commands through untouched.
"""


def command_pattern(pattern):
    """Normalise a command pattern: "+CSOSEND", "AT+CSOSEND=0" and "csosend" all work."""
    if pattern is None:
        return None
    p = pattern.upper()
    if p.startswith("AT"):
        return p
    if p[:1] in "+*^$&":
        return "AT" + p
    return "AT+" + p


class CommandRule:
    """One scripted fault on a command. `kind` is error, delay, reboot, garbage or urc."""

    def __init__(self, kind, command=None, times=1, skip=0, **params):
        self.kind = kind
        self.pattern = command_pattern(command)
        self.times = times
        self.skip = skip
        self.params = params
        self.hits = 0

    def matches(self, text):
        if self.times is not None and self.times <= 0:
            return False
        return self.pattern is None or text.upper().startswith(self.pattern)

    def consume(self):
        """Counts one matching command; True when the fault applies to this one."""
        if self.skip > 0:
            self.skip -= 1
            return False
        if self.times is not None:
            self.times -= 1
        self.hits += 1
        return True

    @property
    def spent(self):
        return self.times is not None and self.times <= 0

    def __repr__(self):
        return "CommandRule(%s, %r, times=%r, %r)" % (self.kind, self.pattern, self.times, self.params)


class FaultSet:
    """The active command rules of one emulator, in the order they were added."""

    def __init__(self):
        self.rules = []

    def add(self, rule):
        self.rules.append(rule)
        return rule

    def take(self, text):
        """Rules that apply to this command (consumed), first match of each kind only."""
        hit = []
        kinds = set()
        for rule in self.rules:
            if rule.kind in kinds or not rule.matches(text):
                continue
            if rule.consume():
                hit.append(rule)
                kinds.add(rule.kind)
        self.rules = [r for r in self.rules if not r.spent]
        return hit

    def clear(self):
        self.rules = []


class DatagramFaults:
    """Uplink/downlink faults: counts of datagrams to drop, delay or reorder."""

    def __init__(self):
        self.drop_up = 0
        self.drop_down = 0
        self.delay_down = []      # list of [seconds, remaining count]
        self.reorder_down = 0     # hold this many downlinks back and release them reversed
        self.held = []

    def clear(self):
        self.__init__()
