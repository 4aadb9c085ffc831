"""What the device has learnt of the carrier's NAT: how long an idle UDP binding lives.

Carrier NATs drop a UDP binding after 20 s to a few minutes without traffic (RFC 4787
REQ-5 asks for at least 2 minutes; cellular carriers often keep less). After that the next
datagram leaves from a new public port: a DTLS server without Connection ID (RFC 9146) no
longer finds the session, and a plain-mode /auth binding no longer matches (docs/power.md).

The device knows how long it slept before each wake and whether the first exchange on the
kept session was answered. It keeps two bounds (state key "nat", 9 bytes):
    alive_s  the longest sleep after which the binding still worked
    dead_s   the shortest sleep after which it did not (0: never seen)
    skipped  wakes since the last try that skipped the restore
A wake restores the session (0 handshake round trips) only when the sleep was shorter than
dead_s; otherwise it resumes or handshakes at once instead of paying a probe. Every
`reprobe` skipped wakes one restore is tried again, so a move to a network with a longer
NAT lifetime (or none: a private APN with public addresses) is noticed.
"""
import struct

_FMT = ">IIB"


def load(blob):
    """(alive_s, dead_s, skipped) from the state value (zeros when absent or bad)."""
    if blob and len(blob) == 9:
        return struct.unpack(_FMT, blob)
    return (0, 0, 0)


def dump(alive_s, dead_s, skipped):
    return struct.pack(_FMT, alive_s, dead_s, min(skipped, 255))


def worth_restoring(blob, slept_s, reprobe):
    """(restore?, new blob): whether a session kept over a sleep of slept_s is worth a try."""
    alive, dead, skipped = load(blob)
    if not dead or slept_s < dead:
        return True, dump(alive, dead, 0)
    skipped += 1
    if skipped >= reprobe:
        return True, dump(alive, dead, 0)
    return False, dump(alive, dead, skipped)


def learn(blob, slept_s, kept):
    """The bounds after a wake whose kept binding (kept=True) worked or not after slept_s."""
    alive, dead, skipped = load(blob)
    if kept:
        alive = max(alive, slept_s)
        if dead and dead <= slept_s:
            dead = 0  # lived longer than we thought: the old bound is stale
    else:
        dead = slept_s if not dead else min(dead, slept_s)
        if alive >= dead:
            alive = 0
    return dump(alive, dead, skipped)
