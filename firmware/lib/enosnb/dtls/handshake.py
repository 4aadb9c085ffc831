"""DTLS 1.2 PSK handshake messages (RFC 6347 §4.2, RFC 5246 §7.4, RFC 4279 §2, RFC 7627,
RFC 5746, RFC 9146 §3; dtls.md §4-§7).

Builders return whole messages with a single-fragment 12-byte header (the form that goes into
the transcript); parsers take a message body and raise DtlsDecodeError on malformed input.
Reassembler collects fragments of the peer's messages by message_seq.
"""
from micropython import const

from enosnb.dtls.errors import DtlsError

HELLO_REQUEST = const(0)
CLIENT_HELLO = const(1)
SERVER_HELLO = const(2)
HELLO_VERIFY_REQUEST = const(3)
NEW_SESSION_TICKET = const(4)
SERVER_KEY_EXCHANGE = const(12)
SERVER_HELLO_DONE = const(14)
CLIENT_KEY_EXCHANGE = const(16)
FINISHED = const(20)

EXT_EXTENDED_MASTER_SECRET = const(23)
EXT_CONNECTION_ID = const(54)
EXT_RENEGOTIATION_INFO = const(0xFF01)

HS_HEADER_LEN = const(12)
MAX_MESSAGE_LEN = const(1024)


class DtlsDecodeError(DtlsError):
    """A handshake message that cannot be parsed (answered with a decode_error alert)."""


def u16(n):
    return bytes((n >> 8, n & 0xFF))


def u24(n):
    return bytes((n >> 16, (n >> 8) & 0xFF, n & 0xFF))


def message(msg_type, msg_seq, body):
    """A whole message with a single-fragment header (fragment_offset 0, fragment_length n)."""
    n = len(body)
    m = bytearray(HS_HEADER_LEN + n)
    m[0] = msg_type
    m[1] = m[9] = n >> 16
    m[2] = m[10] = (n >> 8) & 0xFF
    m[3] = m[11] = n & 0xFF
    m[4] = msg_seq >> 8
    m[5] = msg_seq & 0xFF
    m[12:] = body
    return bytes(m)


def parse_fragments(data):
    """[(msg_type, length, message_seq, offset, fragment)] of a handshake record, or None.

    None means the record is malformed (lengths inconsistent) and is dropped whole.
    """
    out = []
    pos = 0
    end = len(data)
    while pos < end:
        if end - pos < HS_HEADER_LEN:
            return None
        t = data[pos]
        length = (data[pos + 1] << 16) | (data[pos + 2] << 8) | data[pos + 3]
        seq = (data[pos + 4] << 8) | data[pos + 5]
        off = (data[pos + 6] << 16) | (data[pos + 7] << 8) | data[pos + 8]
        flen = (data[pos + 9] << 16) | (data[pos + 10] << 8) | data[pos + 11]
        pos += HS_HEADER_LEN
        if flen > end - pos or off + flen > length:
            return None
        out.append((t, length, seq, off, bytes(data[pos:pos + flen])))
        pos += flen
    return out


class Reassembler:
    """Buffers fragments of the peer's messages by message_seq (RFC 6347 §4.2.3).

    Accepts message_seq in [base, base + window); bounds every message to MAX_MESSAGE_LEN.
    """

    def __init__(self, window=6):
        self._window = window
        self._msgs = {}

    def clear(self):
        self._msgs = {}

    def add(self, msg_type, length, seq, off, frag, base):
        if seq < base or seq >= base + self._window or length > MAX_MESSAGE_LEN:
            return
        m = self._msgs.get(seq)
        if m is None or m[0] != msg_type or m[1] != length:
            # A different type or length for a buffered seq: the newer one wins.
            m = [msg_type, length, bytearray(length), bytearray((length + 7) // 8), 0]
            self._msgs[seq] = m
        buf, have = m[2], m[3]
        buf[off:off + len(frag)] = frag
        for i in range(off, off + len(frag)):
            bit = 1 << (i & 7)
            if not have[i >> 3] & bit:
                have[i >> 3] |= bit
                m[4] += 1

    def take(self, seq):
        """(msg_type, body) of the complete message seq, removing it; else None."""
        m = self._msgs.get(seq)
        if m is None or m[4] != m[1]:
            return None
        del self._msgs[seq]
        return m[0], bytes(m[2])

    def take_any(self, types):
        """(seq, msg_type, body) of the lowest complete message of one of types, for a flight
        whose first message_seq is not known yet; other messages stay buffered."""
        best = None
        for seq in self._msgs:
            m = self._msgs[seq]
            if m[4] == m[1] and m[0] in types and (best is None or seq < best):
                best = seq
        if best is None:
            return None
        t, body = self.take(best)
        return best, t, body


def client_hello_body(random, session_id, cookie, suites, extensions):
    """ClientHello body (RFC 6347 §4.2.1): FE FD | random | sid | cookie | suites | null | ext."""
    s = bytearray()
    for su in suites:
        s += u16(su)
    return (b"\xfe\xfd" + random + bytes((len(session_id),)) + session_id
            + bytes((len(cookie),)) + cookie + u16(len(s)) + s + b"\x01\x00"
            + u16(len(extensions)) + extensions)


def extension(ext_type, data):
    return u16(ext_type) + u16(len(data)) + data


def parse_hello_verify_request(body):
    """The cookie; either server_version (FE FF or FE FD) is accepted (dtls.md §6)."""
    if len(body) < 3 or body[0] != 0xFE or 2 + 1 + body[2] != len(body):
        raise DtlsDecodeError("malformed HelloVerifyRequest")
    return bytes(body[3:])


class ServerHello:
    """Parsed ServerHello: version, random, session_id, suite, compression, extensions."""

    def __init__(self, body):
        n = len(body)
        if n < 38:
            raise DtlsDecodeError("ServerHello too short")
        self.version = bytes(body[0:2])
        self.random = bytes(body[2:34])
        sl = body[34]
        if sl > 32 or 35 + sl + 3 > n:
            raise DtlsDecodeError("malformed ServerHello session_id")
        self.session_id = bytes(body[35:35 + sl])
        p = 35 + sl
        self.suite = (body[p] << 8) | body[p + 1]
        self.compression = body[p + 2]
        p += 3
        self.extensions = []
        if p == n:
            return
        if n - p < 2:
            raise DtlsDecodeError("malformed ServerHello extensions")
        elen = (body[p] << 8) | body[p + 1]
        p += 2
        if elen != n - p:
            raise DtlsDecodeError("ServerHello extension length mismatch")
        while p < n:
            if n - p < 4:
                raise DtlsDecodeError("malformed ServerHello extension")
            et = (body[p] << 8) | body[p + 1]
            el = (body[p + 2] << 8) | body[p + 3]
            p += 4
            if el > n - p:
                raise DtlsDecodeError("ServerHello extension overruns the message")
            self.extensions.append((et, bytes(body[p:p + el])))
            p += el

    def extension(self, ext_type):
        for et, data in self.extensions:
            if et == ext_type:
                return data
        return None


def parse_server_key_exchange(body):
    """The PSK identity hint (RFC 4279 §2)."""
    if len(body) < 2 or 2 + ((body[0] << 8) | body[1]) != len(body):
        raise DtlsDecodeError("malformed ServerKeyExchange")
    return bytes(body[2:])


def psk_premaster(psk):
    """uint16(N) | N zeros | uint16(N) | psk (RFC 4279 §2)."""
    n = len(psk)
    return u16(n) + bytes(n) + u16(n) + psk
