"""A small scripted DTLS 1.2 PSK *server* for client tests (runs under pytest and in the VM).

Not a product: it exists so that handshake tests, the VM heap bench and the CID/resumption
tests have an in-process peer. It reuses the client's record and handshake codecs, so it is
checked independently by the OpenSSL interop tests and the captured vector.
MiniServer.handle(datagram) returns the datagrams the server answers with.
"""
from enosnb.dtls import handshake as hs
from enosnb.dtls import record as rl
from enosnb.dtls.hmac_prf import prf, sha256_of

CCM8 = 0xC0A8
CBC = 0x00AE


class MiniServer:
    def __init__(self, psk, identity=b"Client_identity", cookie=True, hint=None, suites=(CCM8, CBC),
                 ems=True, cid=None, session_ids=True, fragment=0, fin_before_ccs=False,
                 split_flight=False, echo=True, hvrs=1):
        self.psk = psk
        self.identity = identity
        self.cookie = cookie
        self.hint = hint
        self.suites = suites
        self.ems = ems
        self.cid = cid
        self.session_ids = session_ids
        self.fragment = fragment
        self.fin_before_ccs = fin_before_ccs
        self.split_flight = split_flight
        self.echo = echo
        # HelloVerifyRequests per handshake: all but the last carry a cookie the server no longer
        # accepts, as when it rotates its cookie secret between two ClientHellos.
        self.hvrs = hvrs
        self.cache = {}
        self.app_in = []
        self.alerts_in = []
        self.handshakes = 0
        self.resumptions = 0
        self.hvr_sent = 0
        self.hello_seqs = []
        self.identities = []
        self._new_connection()

    def _new_connection(self):
        self.w_seq = [0, 0]
        self.r_epoch = 0
        self.read = None
        self.write = None
        self.pending_read = None
        self.done = False
        self.abbreviated = False
        self.use_cid = None
        self.transcript = b""
        self.out_seq = 0
        self.last_flight = None
        self.seen = set()

    # ---- output ---------------------------------------------------------------------------

    def _rec(self, ctype, epoch, payload):
        seq = self.w_seq[epoch]
        self.w_seq[epoch] += 1
        if epoch == 0:
            return rl.header(ctype, rl.DTLS12, 0, seq, len(payload)) + payload
        frag = self.write.seal(ctype, rl.DTLS12, epoch, seq, payload)
        return rl.header(ctype, rl.DTLS12, epoch, seq, len(frag)) + frag

    def _hs_records(self, epoch, t, body):
        """One message as records; split into fragments of self.fragment bytes if set."""
        seq = self.out_seq
        self.out_seq += 1
        msg = hs.message(t, seq, body)
        self.transcript += msg
        n = len(body)
        step = self.fragment or n or 1
        out = []
        off = 0
        while True:
            part = body[off:off + step]
            head = bytes((t,)) + hs.u24(n) + hs.u16(seq) + hs.u24(off) + hs.u24(len(part))
            out.append(self._rec(22, epoch, head + part))
            off += step
            if off >= n:
                break
        return out

    def _pack(self, records):
        if self.split_flight:
            return list(records)
        return [b"".join(records)]

    def app(self, data):
        """A datagram with one application record from the server."""
        return self._rec(23, 1, data)

    def alert(self, level, desc, epoch=1):
        return self._rec(21, epoch, bytes((level, desc)))

    # ---- input ----------------------------------------------------------------------------

    def handle(self, data):
        out = []
        cid_len = len(self.use_cid) if self.use_cid else 0
        for ctype, version, epoch, seq, cid, frag in rl.split_records(data, cid_len):
            if epoch == 1:
                if self.read is None:
                    continue
                opened = self.read.open(ctype, version, epoch, seq, frag, cid)
                if opened is None:
                    continue
                ctype, frag = opened
            elif epoch != 0:
                continue
            frag = bytes(frag)
            if ctype == 20 and self.pending_read is not None:
                self.read = self.pending_read
                self.pending_read = None
            elif ctype == 21:
                self.alerts_in.append((frag[0], frag[1]))
            elif ctype == 23 and epoch == 1:
                self.app_in.append(frag)
                if self.echo:
                    out.append(self.app(frag))
            elif ctype == 22:
                for t, length, mseq, off, body in hs.parse_fragments(frag) or ():
                    out += self._on_message(t, mseq, body)
        return out

    def _on_message(self, t, mseq, body):
        if t == hs.CLIENT_HELLO:
            return self._on_client_hello(mseq, body)
        if (t, mseq) in self.seen:
            # The client repeated its flight: it lost ours (RFC 6347 §4.2.4).
            if t == hs.FINISHED and self.done and not self.abbreviated:
                return self.last_flight
            return []
        self.seen.add((t, mseq))
        if t == hs.CLIENT_KEY_EXCHANGE:
            self.transcript += hs.message(t, mseq, body)
            ident = body[2:]
            self.identities.append(ident)
            n = len(self.psk)
            pms = hs.u16(n) + bytes(n) + hs.u16(n) + self.psk
            if self.ems_on:
                self.ms = prf(pms, b"extended master secret", sha256_of(self.transcript), 48)
            else:
                self.ms = prf(pms, b"master secret", self.crandom + self.srandom, 48)
            self._keys()
            return []
        if t == hs.FINISHED and self.read is not None:
            label = b"client finished"
            vd = prf(self.ms, label, sha256_of(self.transcript), 12)
            if body != vd:
                return []
            self.transcript += hs.message(t, mseq, body)
            if self.abbreviated:
                self.done = True
                self.resumptions += 1
                return []
            fin = prf(self.ms, b"server finished", sha256_of(self.transcript), 12)
            ccs = self._rec(20, 0, b"\x01")
            self.handshakes += 1
            fins = self._hs_records(1, hs.FINISHED, fin)
            recs = fins + [ccs] if self.fin_before_ccs else [ccs] + fins
            self.done = True
            if self.session_ids:
                self.cache[self.sid] = (self.ms, self.ems_on)
            self.last_flight = self._pack(recs)
            return self.last_flight
        return []

    def _keys(self):
        kl = 40 if self.suite == CCM8 else 96
        kb = prf(self.ms, b"key expansion", self.srandom + self.crandom, kl)
        if self.suite == CCM8:
            self.pending_read = rl.RecordCipher(CCM8, kb[0:16], kb[32:36])
            self.write = rl.RecordCipher(CCM8, kb[16:32], kb[36:40])
        else:
            self.pending_read = rl.RecordCipher(CBC, kb[64:80], kb[0:32])
            self.write = rl.RecordCipher(CBC, kb[80:96], kb[32:64])

    def _on_client_hello(self, mseq, body):
        p = 2
        crandom = body[p:p + 32]
        p += 32
        sid = body[p + 1:p + 1 + body[p]]
        p += 1 + body[p]
        cookie = body[p + 1:p + 1 + body[p]]
        p += 1 + body[p]
        sl = (body[p] << 8) | body[p + 1]
        offered = [(body[i] << 8) | body[i + 1] for i in range(p + 2, p + 2 + sl, 2)]
        p += 2 + sl
        p += 1 + body[p]
        exts = {}
        if p < len(body):
            p += 2
            while p + 4 <= len(body):
                et = (body[p] << 8) | body[p + 1]
                el = (body[p + 2] << 8) | body[p + 3]
                exts[et] = body[p + 4:p + 4 + el]
                p += 4 + el
        self.hello_seqs.append(mseq)
        want = sha256_of(crandom)[:16]
        if self.cookie and cookie != want:
            stale = self.hvr_sent % self.hvrs < self.hvrs - 1
            self.hvr_sent += 1
            give = sha256_of(crandom + b"stale")[:16] if stale else want
            hvr = hs.message(hs.HELLO_VERIFY_REQUEST, 0, b"\xfe\xff" + bytes((16,)) + give)
            return [rl.header(22, rl.DTLS10, 0, self.w_seq[0], len(hvr)) + hvr]
        self._new_connection()
        self.out_seq = mseq
        self.w_seq[0] = 1 if self.cookie else 0
        self.transcript = hs.message(hs.CLIENT_HELLO, mseq, body)
        self.crandom = crandom
        self.srandom = sha256_of(crandom + b"server")
        suite = None
        for s in offered:
            if s in self.suites:
                suite = s
                break
        if suite is None:
            return [rl.header(21, rl.DTLS12, 0, 0, 2) + b"\x02\x28"]
        self.suite = suite
        self.ems_on = self.ems and 23 in exts
        ext = b""
        if 0x00FF in offered:
            ext += hs.extension(0xFF01, b"\x00")
        if self.ems_on:
            ext += hs.extension(23, b"")
        if self.cid is not None and 54 in exts:
            ext += hs.extension(54, bytes((len(self.cid),)) + self.cid)
            self.use_cid = self.cid
        resumed = sid and sid in self.cache
        if resumed:
            self.sid = sid
            self.ms, self.ems_on = self.cache[sid]
        else:
            self.sid = sha256_of(crandom + b"sid") if self.session_ids else b""
        shb = (b"\xfe\xfd" + self.srandom + bytes((len(self.sid),)) + self.sid + hs.u16(suite)
               + b"\x00" + hs.u16(len(ext)) + ext)
        recs = self._hs_records(0, hs.SERVER_HELLO, shb)
        if resumed:
            self.abbreviated = True
            self._keys()
            fin = prf(self.ms, b"server finished", sha256_of(self.transcript), 12)
            ccs = self._rec(20, 0, b"\x01")
            self.write_ready = True
            fins = self._hs_records(1, hs.FINISHED, fin)
            recs += fins + [ccs] if self.fin_before_ccs else [ccs] + fins
        else:
            if self.hint is not None:
                recs += self._hs_records(0, hs.SERVER_KEY_EXCHANGE, hs.u16(len(self.hint)) + self.hint)
            recs += self._hs_records(0, hs.SERVER_HELLO_DONE, b"")
        self.last_flight = self._pack(recs)
        return self.last_flight


def serve(server, drop=()):
    """A FakeEndpoint responder feeding the client's datagrams to server; the answers to
    the client datagrams numbered in drop (1-based) are lost."""
    count = [0]

    def responder(data, ep):
        count[0] += 1
        answers = server.handle(data)
        if count[0] in drop:
            return
        for a in answers:
            ep.push(a)
    return responder
