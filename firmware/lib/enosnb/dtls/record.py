"""DTLS 1.2 record layer (RFC 6347 §4.1, RFC 9146 §4-§5, spec/dtls.md §3, §10-§12).

split_records parses every record of a datagram; RecordCipher protects and opens one record
for either suite, with or without a connection ID; ReplayWindow is the 64-record sliding
window of RFC 6347 §4.1.2.6. Records that fail any check come back as None: the session drops
them silently, as RFC 6347 §4.1.2.7 asks.
"""
from micropython import const

from enosnb.dtls import ccm, cbc
from enosnb.dtls.hmac_prf import HmacSha256
from enosnb import rng

CT_CHANGE_CIPHER_SPEC = const(20)
CT_ALERT = const(21)
CT_HANDSHAKE = const(22)
CT_APPLICATION_DATA = const(23)
CT_TLS12_CID = const(25)

HEADER_LEN = const(13)
DTLS12 = b"\xfe\xfd"
DTLS10 = b"\xfe\xff"

TLS_PSK_WITH_AES_128_CCM_8 = const(0xC0A8)
TLS_PSK_WITH_AES_128_CBC_SHA256 = const(0x00AE)
TLS_EMPTY_RENEGOTIATION_INFO_SCSV = const(0x00FF)
SUITES = (TLS_PSK_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_CBC_SHA256)

_SEQ_PLACEHOLDER = bytearray(b"\xff" * 8)


def seq8(epoch, seq):
    """The 64-bit epoch | sequence_number of the header, nonce and MAC (RFC 6347 §4.1.2.1)."""
    b = bytearray(8)
    b[0] = epoch >> 8
    b[1] = epoch & 0xFF
    for i in range(6):
        b[7 - i] = (seq >> (8 * i)) & 0xFF
    return b


def header(ctype, version, epoch, seq, length, cid=None):
    """The 13-byte record header (RFC 6347 §4.1), with the CID before the length (RFC 9146)."""
    n = len(cid) if cid is not None else 0
    h = bytearray(13 + n)
    h[0] = ctype
    h[1] = version[0]
    h[2] = version[1]
    h[3] = epoch >> 8
    h[4] = epoch & 0xFF
    for i in range(6):
        h[10 - i] = (seq >> (8 * i)) & 0xFF
    if n:
        h[11:11 + n] = cid
    h[11 + n] = length >> 8
    h[12 + n] = length & 0xFF
    return h


def split_records(data, cid_len=0):
    """[(type, version, epoch, seq, cid, fragment)] of a datagram; fragments are memoryviews.

    Parsing stops at a malformed header or a length beyond the datagram (spec §12 step 1);
    records before it are kept. tls12_cid records carry cid_len bytes of CID.
    """
    out = []
    mv = memoryview(data)
    pos = 0
    end = len(data)
    while end - pos >= HEADER_LEN:
        ctype = data[pos]
        if data[pos + 1] != 0xFE or data[pos + 2] not in (0xFD, 0xFF):
            break
        version = bytes(mv[pos + 1:pos + 3])
        epoch = (data[pos + 3] << 8) | data[pos + 4]
        seq = int.from_bytes(bytes(mv[pos + 5:pos + 11]), "big")
        p = pos + 11
        cid = None
        if ctype == CT_TLS12_CID:
            if end - p < cid_len + 2:
                break
            cid = bytes(mv[p:p + cid_len])
            p += cid_len
        length = (data[p] << 8) | data[p + 1]
        p += 2
        if length > end - p:
            break
        out.append((ctype, version, epoch, seq, cid, mv[p:p + length]))
        pos = p + length
    return out


class RecordCipher:
    """One direction's record protection for a negotiated suite (spec §10 and §11).

    seal() returns the protected fragment, open() the (type, content) inside it or None.
    """

    def __init__(self, suite, key, iv_or_mac_key):
        self.suite = suite
        self._key = key
        if suite == TLS_PSK_WITH_AES_128_CCM_8:
            self._salt = iv_or_mac_key
            self._mac = None
        else:
            self._salt = None
            self._mac = HmacSha256(iv_or_mac_key)

    def __repr__(self):
        return "<RecordCipher %04X>" % self.suite

    def overhead(self, n):
        """Fragment bytes added to n bytes of content (CID inner type byte excluded)."""
        if self._mac is None:
            return 16
        return 16 + 16 * ((n + 33 + 15) // 16) - n

    def _prefix(self, ctype, version, epoch, seq, cid):
        if cid is None:
            p = seq8(epoch, seq)
            p.append(ctype)
            p.extend(version)
            return p
        # RFC 9146 §5: seq_num_placeholder | tls12_cid | cid_length | tls12_cid | version | ...
        return (_SEQ_PLACEHOLDER + bytes((CT_TLS12_CID, len(cid), CT_TLS12_CID)) + version
                + seq8(epoch, seq) + cid)

    def seal(self, ctype, version, epoch, seq, content, cid=None):
        if cid is not None:
            content = bytes(content) + bytes((ctype,))
            ctype = CT_TLS12_CID
        prefix = self._prefix(ctype, version, epoch, seq, cid)
        if self._mac is None:
            n = len(content)
            explicit = seq8(epoch, seq)
            prefix.append(n >> 8)
            prefix.append(n & 0xFF)
            return explicit + ccm.seal(self._key, self._salt + explicit, prefix, content)
        return cbc.seal(self._mac, self._key, rng.urandom(16), prefix, content)

    def open(self, ctype, version, epoch, seq, fragment, cid=None):
        prefix = self._prefix(ctype, version, epoch, seq, cid)
        if self._mac is None:
            n = len(fragment) - 16
            if n < 0:
                return None
            nonce = self._salt + bytes(fragment[0:8])
            prefix.append(n >> 8)
            prefix.append(n & 0xFF)
            content = ccm.open(self._key, nonce, prefix, bytes(fragment[8:]))
        else:
            content = cbc.open(self._mac, self._key, prefix, fragment)
        if content is None:
            return None
        if cid is None:
            return ctype, content
        # DTLSInnerPlaintext: content | real_type | zeros (RFC 9146 §4).
        i = len(content) - 1
        while i >= 0 and content[i] == 0:
            i -= 1
        if i < 0:
            return None
        return content[i], content[:i]


class ReplayWindow:
    """Sliding window over 48-bit sequence numbers (RFC 6347 §4.1.2.6), 64 records wide."""

    SIZE = 64

    def __init__(self, top=-1, bits=0):
        self.top = top
        self.bits = bits

    def seen(self, seq):
        """True when seq is a replay or too old; check before decrypting."""
        if seq > self.top:
            return False
        d = self.top - seq
        if d >= self.SIZE:
            return True
        return bool((self.bits >> d) & 1)

    def accept(self, seq):
        """Mark seq as received; call only after the record authenticated."""
        if seq > self.top:
            shift = seq - self.top
            self.bits = ((self.bits << shift) | 1) & 0xFFFFFFFFFFFFFFFF if shift < 64 else 1
            self.top = seq
        else:
            self.bits |= 1 << (self.top - seq)
