"""One SNTP exchange (RFC 4330, SNTPv4) over a datagram endpoint: the modem's UDP socket.

The request is 48 bytes: LI 0, VN 4, mode 3 (client), and a random transmit timestamp that
the server must echo as its originate timestamp (§5), so a stray or forged answer is not
taken. The answer is refused when it is shorter than 48 bytes, its mode is not 4 (server),
LI is 3 (server not synchronised), stratum is 0 (kiss-o'-death: §8, the code is in the
reference id) or above 15, or its transmit timestamp is 0.

Time from the answer (§5): with T1/T4 the local clock at send/receive and T2/T3 the server's
receive/transmit timestamps, the local clock is off by ((T2 - T1) + (T3 - T4)) / 2, and the
result can be wrong by at most half the round trip (T4 - T1) - (T3 - T2). NTP timestamps
count seconds since 1900 with 32 fraction bits; a seconds field with its top bit clear is
in era 1 (from 2036-02-07, §3).
"""
import struct

from micropython import const

from enosnb import rng

PORT = const(123)
_LEN = const(48)
_NTP_TO_UNIX_S = const(2208988800)


class SntpError(Exception):
    """The SNTP server did not answer, or its answer cannot be used; the message says why."""


def request(nonce):
    """The 48-byte client request carrying the 8-byte nonce as transmit timestamp."""
    return b"\x23" + bytes(39) + nonce


def ntp_ms(seconds, fraction):
    """Unix milliseconds of an NTP timestamp (era 0 before 2036, era 1 after)."""
    if not seconds & 0x80000000:
        seconds += 0x100000000
    return (seconds - _NTP_TO_UNIX_S) * 1000 + (fraction * 1000 >> 32)


def parse(data, nonce):
    """(T2 ms, T3 ms) of a server answer to the request with this nonce, None for an answer
    to another request (a late or forged one: ignore it); SntpError if it must not be used."""
    if data is None or len(data) < _LEN:
        raise SntpError("SNTP answer of %d bytes, not 48" % (0 if data is None else len(data)))
    first, stratum = data[0], data[1]
    if first & 7 != 4:
        raise SntpError("SNTP answer in mode %d, not 4 (server)" % (first & 7))
    if stratum == 0:
        raise SntpError("SNTP server sent kiss-o'-death %r: ask it less often or use another"
                        % bytes(data[12:16]))
    if first >> 6 == 3 or stratum > 15:
        raise SntpError("SNTP server is not synchronised (LI %d, stratum %d)"
                        % (first >> 6, stratum))
    if bytes(data[24:32]) != nonce:
        return None
    rs, rf, ts, tf = struct.unpack(">IIII", data[32:48])
    if not ts and not tf:
        raise SntpError("SNTP answer has no transmit timestamp")
    return ntp_ms(rs, rf), ntp_ms(ts, tf)


def exchange(endpoint, clock_ms, timeout_ms, tries=2):
    """One SNTP exchange: (true ms at the moment clock_ms() was last read, error bound ms).
    clock_ms is the local clock (the RTC) in ms. Answers to other requests are skipped;
    SntpError when no usable answer came within `tries` waits of timeout_ms."""
    for _ in range(tries):
        nonce = rng.urandom(8)
        t1 = clock_ms()
        try:
            endpoint.send(request(nonce))
        except OSError as e:
            raise SntpError("SNTP request not sent: %s" % e)
        while True:
            left = timeout_ms - (clock_ms() - t1)
            data = endpoint.recv(left) if left > 0 else None
            if data is None:
                break
            t4 = clock_ms()
            got = parse(data, nonce)
            if got is None:
                continue
            t2, t3 = got
            offset = ((t2 - t1) + (t3 - t4)) // 2
            delay = max(0, (t4 - t1) - (t3 - t2))
            return t4 + offset, delay // 2 + 1
    raise SntpError("no SNTP answer within %d ms (%d tries): is the server reachable from "
                    "the network (UDP %d)?" % (timeout_ms, tries, PORT))
