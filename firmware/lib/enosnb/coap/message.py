"""CoAP message codec: RFC 7252 §3 (message format), §3.1 (option encoding), §4.1 and
§4.2 (Empty messages, format errors), §5.4.1 (critical options).

Message holds the options as a list of (number, value bytes) in insertion order; encode()
writes them sorted by number with a stable insertion sort, because MicroPython's list.sort
is not stable and repeatable options (Uri-Path...) must keep their order. Both directions
make a single pass and allocate little: the device sends one report per wake-up on a small heap.
"""
from micropython import const

from enosnb.coap.errors import CoapError, CoapFormatError
from enosnb.coap.options import KNOWN, URI_PATH, uint_bytes

CON = const(0)
NON = const(1)
ACK = const(2)
RST = const(3)

TYPE_NAMES = ("CON", "NON", "ACK", "RST")

# set_path() keeps (path, its Uri-Path options) of the last path it split: a device sends to
# the same path report after report, and splitting and encoding it again allocated ~600 bytes
# each time. Messages may share these (number, bytes) tuples because neither can change.
_last_path = (None, ())

_PAYLOAD_MARKER = const(0xFF)
_MAX_OPTION_LEN = const(65804)  # 269 + 0xFFFF: the largest length the 14 form can express


class Message:
    """One CoAP message. mtype is CON/NON/ACK/RST, code the c.dd byte (codes.py), mid the
    16-bit message ID, token 0-8 bytes, payload bytes; options is a list of
    (number, value bytes) in insertion order (wire order after decode)."""

    __slots__ = ("mtype", "code", "mid", "token", "payload", "options")

    def __init__(self, mtype=CON, code=0, mid=0, token=b"", payload=b""):
        self.mtype = mtype
        self.code = code
        self.mid = mid
        self.token = token
        self.payload = payload
        self.options = []

    def add_option(self, number, value=b""):
        """Appends an option; value is bytes, str (UTF-8) or int (uint in the fewest bytes)."""
        t = type(value)
        if t is int:
            value = uint_bytes(value)
        elif t is str:
            value = value.encode()
        elif t is not bytes:
            value = bytes(value)
        self.options.append((number, value))

    def remove_option(self, number):
        self.options = [o for o in self.options if o[0] != number]

    def set_option(self, number, value=b""):
        """Replaces every occurrence of the option by one with this value."""
        self.remove_option(number)
        self.add_option(number, value)

    def option(self, number):
        for o in self.options:
            if o[0] == number:
                return o[1]
        return None

    def options_of(self, number):
        return [o[1] for o in self.options if o[0] == number]

    def uint_option(self, number):
        for o in self.options:
            if o[0] == number:
                return int.from_bytes(o[1], "big")
        return None

    def path(self):
        """Uri-Path options joined as "/a/b" ("/" when there are none); CoapFormatError
        when a segment is not UTF-8."""
        try:
            return "/" + "/".join([o[1].decode() for o in self.options if o[0] == URI_PATH])
        except UnicodeError:
            raise CoapFormatError("Uri-Path is not UTF-8 (RFC 7252 §3.2 string format)",
                                  self.mtype, self.mid)

    def set_path(self, path):
        """Replaces the Uri-Path options by the segments of "/a/b"."""
        global _last_path
        last = _last_path  # read once: another thread may replace it (CPython peers)
        if last[0] != path:
            segs = []
            p = path[1:] if path and path[0] == "/" else path
            if p:
                for seg in p.split("/"):
                    segs.append((URI_PATH, seg.encode()))
            last = _last_path = (path, segs)
        opts = [o for o in self.options if o[0] != URI_PATH]
        opts.extend(last[1])
        self.options = opts

    def encode(self):
        """The datagram as bytes; raises CoapError for a message that cannot be sent."""
        out = bytearray()
        self.encode_into(out)
        return bytes(out)

    def encode_into(self, out):
        """encode() written into the bytearray out, replacing its contents.

        For a sender that keeps one buffer: MicroPython keeps a bytearray's capacity when it
        is emptied, so encoding message after message into it allocates nothing.
        """
        token = self.token
        tkl = len(token)
        mtype = self.mtype
        code = self.code
        mid = self.mid
        if tkl > 8:
            raise CoapError("token of %d bytes; CoAP allows 0 to 8" % tkl)
        if mtype & ~3 or code & ~0xFF or mid & ~0xFFFF:
            raise CoapError("type %r, code %r or message ID %r out of range" % (mtype, code, mid))
        if code == 0 and (tkl or self.options or self.payload):
            raise CoapError("an Empty message (0.00) carries no token, options or payload")
        out[0:] = b""
        out.append(0x40 | (mtype << 4) | tkl)
        out.append(code)
        out.append(mid >> 8)
        out.append(mid & 0xFF)
        out += token
        if not _put_options(out, self.options):
            # Options out of order: start the options over from a stably sorted copy.
            out[4 + tkl:] = b""
            if not _put_options(out, _stable_sorted(self.options)):
                raise CoapError("negative option number; option numbers are 0..65535")
        payload = self.payload
        if payload:
            out.append(_PAYLOAD_MARKER)
            out += payload

    def __repr__(self):
        return "<Message %s %s mid=%d token=%s options=%r payload=%d bytes>" % (
            TYPE_NAMES[self.mtype & 3], _code_str(self.code), self.mid,
            _hex(self.token), self.options, len(self.payload))


def _code_str(code):
    return "%d.%02d" % (code >> 5, code & 0x1F)


def _hex(b):
    import binascii
    return binascii.hexlify(b).decode()


def _put_options(out, opts):
    """Appends the options to out (§3.1); returns False, leaving out partly written, as soon
    as one is out of order. A single pass with bytearray appends: measured both faster and
    no more allocating than sizing first and filling a preallocated buffer."""
    app = out.append
    last = 0
    for num, val in opts:
        n = len(val)
        d = num - last
        if d < 0:
            return False
        if num > 0xFFFF:
            raise CoapError("option number %d does not fit 16 bits" % num)
        last = num
        if d < 13 and n < 13:
            app((d << 4) | n)
            out += val
            continue
        if d < 13:
            h = d << 4
        elif d < 269:
            h = 0xD0
        else:
            h = 0xE0
        if n < 13:
            app(h | n)
        elif n < 269:
            app(h | 13)
        elif n <= _MAX_OPTION_LEN:
            app(h | 14)
        else:
            raise CoapError("option %d value of %d bytes is too long for CoAP" % (num, n))
        if d >= 269:
            app((d - 269) >> 8)
            app((d - 269) & 0xFF)
        elif d >= 13:
            app(d - 13)
        if n >= 269:
            app((n - 269) >> 8)
            app((n - 269) & 0xFF)
        elif n >= 13:
            app(n - 13)
        out += val
    return True


def _stable_sorted(opts):
    """Insertion sort by option number that keeps equal numbers in their original order."""
    out = list(opts)
    for i in range(1, len(out)):
        item = out[i]
        num = item[0]
        j = i - 1
        while j >= 0 and out[j][0] > num:
            out[j + 1] = out[j]
            j -= 1
        out[j + 1] = item
    return out


def _extended(data, pos, size, what, mtype, mid):
    """RFC 7252 §3.1: the option delta or length (`what`) that nibble 13 or 14 extends with the
    `size` (1 or 2) bytes at data[pos]. Returns the value alone, a small int, so that decoding
    allocates nothing for it on MicroPython."""
    if pos + size > len(data):
        raise CoapFormatError("option %s extension runs past the end" % what, mtype, mid)
    if size == 1:
        return data[pos] + 13
    return ((data[pos] << 8) | data[pos + 1]) + 269


def decode(data):
    """Parses one datagram (bytes, bytearray or memoryview) into a Message.

    Raises CoapFormatError naming the fault for anything RFC 7252 §3 calls a message format
    error; option values are not checked against their formats (§5.4.3 leaves that to the
    receiver of each option).
    """
    data = bytes(data)  # the same object when it is bytes already, also on MicroPython
    n = len(data)
    if n < 4:
        raise CoapFormatError("datagram of %d bytes is shorter than the 4-byte CoAP header" % n)
    b0 = data[0]
    mtype = (b0 >> 4) & 3
    mid = (data[2] << 8) | data[3]
    if b0 >> 6 != 1:
        raise CoapFormatError("CoAP version %d; only version 1 exists" % (b0 >> 6), mtype, mid)
    tkl = b0 & 0x0F
    if tkl > 8:
        raise CoapFormatError("token length %d is reserved (9-15)" % tkl, mtype, mid)
    pos = 4 + tkl
    if pos > n:
        raise CoapFormatError("token of %d bytes runs past the end of the datagram" % tkl,
                              mtype, mid)
    code = data[1]
    if code == 0 and n != 4:
        raise CoapFormatError("Empty message (0.00) carries a token, options or payload",
                              mtype, mid)
    msg = Message(mtype, code, mid, data[4:pos] if tkl else b"")
    opts = msg.options
    num = 0
    while pos < n:
        b = data[pos]
        pos += 1
        if b == _PAYLOAD_MARKER:
            if pos == n:
                raise CoapFormatError("payload marker with no payload", mtype, mid)
            msg.payload = data[pos:]
            break
        d = b >> 4
        ln = b & 0x0F
        if d >= 13:  # nibble 13: 1 extension byte, 14: 2 bytes
            if d == 15:
                raise CoapFormatError("option delta nibble 15 outside the payload marker",
                                      mtype, mid)
            size = d - 12
            d = _extended(data, pos, size, "delta", mtype, mid)
            pos += size
        if ln >= 13:
            if ln == 15:
                raise CoapFormatError("option length nibble 15 is reserved", mtype, mid)
            size = ln - 12
            ln = _extended(data, pos, size, "length", mtype, mid)
            pos += size
        num += d
        end = pos + ln
        if end > n:
            raise CoapFormatError("option %d value of %d bytes runs past the end" % (num, ln),
                                  mtype, mid)
        if num > 0xFFFF:
            raise CoapFormatError("option number %d does not fit 16 bits" % num, mtype, mid)
        opts.append((num, data[pos:end] if ln else b""))
        pos = end
    return msg


def unknown_critical(msg):
    """§5.4.1: critical (odd) option numbers this codec does not know, each once, in order.
    A request carrying one gets 4.02 Bad Option; a CON response carrying one is rejected."""
    out = []
    for o in msg.options:
        num = o[0]
        if num & 1 and num not in KNOWN and num not in out:
            out.append(num)
    return out
