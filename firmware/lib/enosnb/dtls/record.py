"""DTLS 1.2 record layer (RFC 6347 §4.1, RFC 9146 §4-§5, dtls.md §3, §10-§12).

split_records parses every record of a datagram; RecordCipher protects and opens one record
for either suite, with or without a connection ID; ReplayWindow is the 64-record sliding
window of RFC 6347 §4.1.2.6. Records that fail any check come back as None: the session drops
them silently, as RFC 6347 §4.1.2.7 asks.
"""
from micropython import const

from enosnb import rng
from enosnb.dtls import ccm

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
    h = bytearray(13 + (len(cid) if cid is not None else 0))
    header_into(h, 0, ctype, version, epoch, seq, length, cid)
    return h


def header_into(out, pos, ctype, version, epoch, seq, length, cid=None):
    """header() written at out[pos:]; returns the position after it."""
    n = len(cid) if cid is not None else 0
    out[pos] = ctype
    out[pos + 1] = version[0]
    out[pos + 2] = version[1]
    out[pos + 3] = epoch >> 8
    out[pos + 4] = epoch & 0xFF
    for i in range(6):
        out[pos + 10 - i] = (seq >> (8 * i)) & 0xFF
    if n:
        out[pos + 11:pos + 11 + n] = cid
    out[pos + 11 + n] = length >> 8
    out[pos + 12 + n] = length & 0xFF
    return pos + 13 + n


def split_records(data, cid_len=0):
    """[(type, version, epoch, seq, cid, fragment)] of a datagram; fragments are memoryviews.

    Parsing stops at a malformed header or a length beyond the datagram (dtls.md §12 step 1);
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
        # The shared constants and shifts: slicing and int.from_bytes would allocate.
        version = DTLS12 if data[pos + 2] == 0xFD else DTLS10
        epoch = (data[pos + 3] << 8) | data[pos + 4]
        seq = 0
        for i in range(pos + 5, pos + 11):
            seq = (seq << 8) | data[i]
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
    """One direction's record protection for a negotiated suite (dtls.md §10 and §11).

    seal() returns the protected fragment, open() the (type, content) inside it or None.
    """

    def __init__(self, suite, key, iv_or_mac_key):
        self.suite = suite
        self._key = key
        if suite == TLS_PSK_WITH_AES_128_CCM_8:
            self._ccm = ccm.Ccm8(key)
            self._mac = None
            # Reused by every record (a warm report must not allocate): the nonce is
            # salt | explicit part, the AAD epoch | seq | type | version | length. Both are
            # rewritten at the start of each seal/open and read only inside it.
            self._nonce = bytearray(12)
            self._nonce[0:4] = iv_or_mac_key
            self._aad = bytearray(13)
        else:
            # The CBC suite (RFC 5487) loads only when a server chooses it.
            from enosnb.dtls import cbc
            from enosnb.dtls.hmac_prf import HmacSha256
            self._cbc = cbc
            self._mac = HmacSha256(iv_or_mac_key)

    def __repr__(self):
        return "<RecordCipher %04X>" % self.suite

    @staticmethod
    def _prefix(ctype, version, epoch, seq):
        """The MAC input before the length: epoch | seq | type | version."""
        p = seq8(epoch, seq)
        p.append(ctype)
        p.extend(version)
        return p

    @staticmethod
    def _cid_prefix(version, epoch, seq, cid):
        """RFC 9146 §5: seq_num_placeholder | tls12_cid | cid_length | tls12_cid | version |
        epoch | seq | cid; the length follows."""
        return (_SEQ_PLACEHOLDER + bytes((CT_TLS12_CID, len(cid), CT_TLS12_CID)) + version
                + seq8(epoch, seq) + cid)

    def _ccm_aad(self, ctype, version, epoch, seq, n):
        """The CCM AAD of a record without CID in the reused _aad buffer."""
        a = self._aad
        a[0] = epoch >> 8
        a[1] = epoch & 0xFF
        for i in range(6):
            a[7 - i] = (seq >> (8 * i)) & 0xFF
        a[8] = ctype
        a[9] = version[0]
        a[10] = version[1]
        a[11] = n >> 8
        a[12] = n & 0xFF
        return a

    def seal(self, ctype, version, epoch, seq, content, cid=None):
        if self._mac is None:
            extra = 1 if cid is not None else 0
            out = bytearray(len(content) + extra + 16)
            self.seal_into(out, 0, ctype, version, epoch, seq, content, cid)
            return out
        if cid is not None:
            content = bytes(content) + bytes((ctype,))
            prefix = self._cid_prefix(version, epoch, seq, cid)
        else:
            prefix = self._prefix(ctype, version, epoch, seq)
        return self._cbc.seal(self._mac, self._key, rng.urandom(16), prefix, content)

    def seal_into(self, out, pos, ctype, version, epoch, seq, content, cid=None):
        """seal() written at out[pos:] (which must have room); returns the end position."""
        if self._mac is not None:
            frag = self.seal(ctype, version, epoch, seq, content, cid)
            end = pos + len(frag)
            out[pos:end] = frag
            return end
        if cid is not None:
            content = bytes(content) + bytes((ctype,))
            n = len(content)
            aad = self._cid_prefix(version, epoch, seq, cid)
            aad.append(n >> 8)
            aad.append(n & 0xFF)
        else:
            aad = self._ccm_aad(ctype, version, epoch, seq, len(content))
        nonce = self._nonce
        # The explicit nonce is epoch | seq, the first 8 bytes of the AAD form (dtls.md §10).
        out[pos] = nonce[4] = epoch >> 8
        out[pos + 1] = nonce[5] = epoch & 0xFF
        for i in range(6):
            out[pos + 7 - i] = nonce[11 - i] = (seq >> (8 * i)) & 0xFF
        return self._ccm.seal_into(nonce, aad, content, out, pos + 8)

    def open(self, ctype, version, epoch, seq, fragment, cid=None):
        if self._mac is None:
            n = len(fragment) - 16
            if n < 0:
                return None
            nonce = self._nonce
            for i in range(8):
                nonce[4 + i] = fragment[i]
            if cid is None:
                aad = self._ccm_aad(ctype, version, epoch, seq, n)
            else:
                aad = self._cid_prefix(version, epoch, seq, cid)
                aad.append(n >> 8)
                aad.append(n & 0xFF)
            content = self._ccm.open(nonce, aad, memoryview(fragment)[8:])
        else:
            prefix = (self._prefix(ctype, version, epoch, seq) if cid is None
                      else self._cid_prefix(version, epoch, seq, cid))
            content = self._cbc.open(self._mac, self._key, prefix, fragment)
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
