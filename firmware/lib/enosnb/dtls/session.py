"""DtlsSession: a DTLS 1.2 PSK client that is itself a datagram endpoint (dtls.md §1-§17).

Full handshake with cookie (RFC 6347 §4.2.1), PSK (RFC 4279), extended master secret
(RFC 7627), renegotiation SCSV (RFC 5746), session resumption (RFC 5246 §7.3), Connection ID
(RFC 9146), flight retransmission (RFC 6347 §4.2.4), alerts (RFC 5246 §7.2). Time comes only
from the injected clock; randomness only from enosnb.rng.
"""
from micropython import const

from enosnb import rng
from enosnb.clock import SYSTEM
from enosnb.dtls import handshake as hs
from enosnb.dtls import record as rl
from enosnb.dtls import timers as _timers
from enosnb.dtls.ct import ct_equal
from enosnb.dtls.errors import DtlsError, DtlsAlert, DtlsTimeout, DtlsClosed
from enosnb.dtls.hmac_prf import prf, sha256_of

_P_IDLE = const(0)
_P_HELLO = const(1)        # ClientHello sent: waiting for HelloVerifyRequest or ServerHello
_P_SERVER_FLIGHT = const(2)  # ServerHello seen: waiting for ServerKeyExchange/ServerHelloDone
_P_FINISHED = const(3)     # keys ready: waiting for the server's ChangeCipherSpec + Finished
_P_DONE = const(4)
_P_CLOSED = const(5)
_P_FAILED = const(6)

_WARNING = const(1)
_FATAL = const(2)
A_CLOSE_NOTIFY = const(0)
A_UNEXPECTED_MESSAGE = const(10)
A_HANDSHAKE_FAILURE = const(40)
A_ILLEGAL_PARAMETER = const(47)
A_DECODE_ERROR = const(50)
A_DECRYPT_ERROR = const(51)
A_PROTOCOL_VERSION = const(70)
A_NO_RENEGOTIATION = const(100)
A_UNSUPPORTED_EXTENSION = const(110)

_EARLY_MAX = const(4)
_FLIGHT_STARTS = (hs.HELLO_VERIFY_REQUEST, hs.SERVER_HELLO)
_APP_QUEUE_MAX = const(8)
_BLOB_VERSION = const(1)


class DtlsTransportError(DtlsError):
    """The wrapped endpoint failed with something other than OSError; .cause holds it."""

    def __init__(self, cause):
        self.cause = cause
        super().__init__("datagram transport failed: %s: %s" % (type(cause).__name__, cause))


def _key_len(suite):
    return 40 if suite == rl.TLS_PSK_WITH_AES_128_CCM_8 else 96


def _ciphers(suite, kb):
    """(client write, server read) RecordCiphers from the key block (dtls.md §9.4)."""
    if suite == rl.TLS_PSK_WITH_AES_128_CCM_8:
        return (rl.RecordCipher(suite, kb[0:16], kb[32:36]),
                rl.RecordCipher(suite, kb[16:32], kb[36:40]))
    return (rl.RecordCipher(suite, kb[64:80], kb[0:32]),
            rl.RecordCipher(suite, kb[80:96], kb[32:64]))


class DtlsSession:
    """DTLS 1.2 PSK client over a datagram endpoint; after handshake() it is one itself.

    send(data) / recv(timeout_ms) / close() / mtu, plus handshake(), resume(), flush(),
    save() and DtlsSession.restore(). Only DtlsError subclasses escape.
    """

    def __init__(self, endpoint, identity, psk, clock=SYSTEM, timers=None,
                 suites=(rl.TLS_PSK_WITH_AES_128_CCM_8, rl.TLS_PSK_WITH_AES_128_CBC_SHA256),
                 cid=False, require_ems=False):
        if isinstance(identity, str):
            identity = identity.encode()
        if not identity or len(identity) > 128:
            raise DtlsError("PSK identity must be 1..128 bytes")
        if not psk or len(psk) > 64:
            raise DtlsError("PSK must be 1..64 bytes")
        for s in suites:
            if s not in rl.SUITES:
                raise DtlsError("unsupported cipher suite 0x%04X (use 0xC0A8 or 0x00AE)" % s)
        self._ep = endpoint
        self._identity = bytes(identity)
        self._psk = bytes(psk)
        self.clock = clock
        self.timers = timers or _timers.NBIOT
        self.suites = tuple(suites)
        self.want_cid = cid
        self.require_ems = require_ems
        self.datagrams_sent = 0
        self.datagrams_received = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.retransmissions = 0
        self.psk_identity_hint = None
        self.resumed = False
        # Test hooks (docs/vectors.md, step 8): fixed ClientHello random and extension block.
        self.hello_random = None
        self.hello_extensions = None
        self._session_id = b""
        self._ms = None
        self._ems = False
        self._phase = _P_IDLE
        self._dgram = b""
        self._reset_records()

    def __repr__(self):
        return "<DtlsSession suite=%s phase=%d>" % (
            "%04X" % self.suite if self.suite else "-", self._phase)

    # ---- record state -------------------------------------------------------------------

    def _reset_records(self):
        self.suite = 0
        # One statement: the previous session's keys and flights are let go before the next
        # handshake allocates its own.
        self._key_block = self._w_cipher = self._r_cipher = self._pending_read = \
            self._cid_out = self._final = self._last_flight = self._flight = None
        self._w_seq = [0, 0]
        self._r_epoch = 0
        self._early = []
        self._app = []

    @property
    def mtu(self):
        m = self._ep.mtu - rl.HEADER_LEN
        if self._cid_out is not None:
            m -= len(self._cid_out) + 1
        if self.suite == rl.TLS_PSK_WITH_AES_128_CCM_8 or (
                not self.suite and rl.TLS_PSK_WITH_AES_128_CBC_SHA256 not in self.suites):
            return m - 16
        return (m - 16) // 16 * 16 - 33

    @property
    def established(self):
        return self._phase == _P_DONE

    @property
    def session_id(self):
        return self._session_id

    @property
    def extended_master_secret(self):
        """True when the session uses the RFC 7627 master secret (every tested peer does)."""
        return self._ems

    @property
    def cid(self):
        """The server's connection ID this client writes into its records, or None."""
        return self._cid_out

    def _record(self, ctype, epoch, payload):
        seq = self._w_seq[epoch]
        self._w_seq[epoch] = seq + 1
        if epoch == 0:
            version = rl.DTLS10 if ctype == rl.CT_HANDSHAKE and payload[0] == hs.CLIENT_HELLO \
                else rl.DTLS12
            r = rl.header(ctype, version, 0, seq, len(payload))
            r.extend(payload)
            return r
        frag = self._w_cipher.seal(ctype, rl.DTLS12, epoch, seq, payload, self._cid_out)
        if self._cid_out is not None:
            r = rl.header(rl.CT_TLS12_CID, rl.DTLS12, epoch, seq, len(frag), self._cid_out)
        else:
            r = rl.header(ctype, rl.DTLS12, epoch, seq, len(frag))
        r.extend(frag)
        return r

    def _app_datagram(self, data):
        """One application-data record built in the reused datagram buffer; a view of it.

        Why reused: a warm report sends one record, and a fresh header, fragment and datagram
        for it would be three allocations of its size. The view lives only until _tx has
        copied it, so the buffer is free again when send() returns.
        """
        cid = self._cid_out
        hlen = rl.HEADER_LEN + (len(cid) if cid is not None else 0)
        # Room for header, CID inner type and the largest overhead (CBC: IV, MAC, padding),
        # rounded up so that slightly longer reports do not each need a new buffer; sized
        # to what is sent rather than to the MTU, since it stays allocated.
        size = (hlen + 1 + len(data) + 64 + 63) & ~63
        out = self._dgram
        if len(out) < size:
            out = self._dgram = bytearray(size)
        seq = self._w_seq[1]
        self._w_seq[1] = seq + 1
        end = self._w_cipher.seal_into(out, hlen, rl.CT_APPLICATION_DATA, rl.DTLS12, 1, seq,
                                       data, cid)
        ctype = rl.CT_APPLICATION_DATA if cid is None else rl.CT_TLS12_CID
        rl.header_into(out, 0, ctype, rl.DTLS12, 1, seq, end - hlen, cid)
        return memoryview(out)[0:end]

    def _tx(self, data):
        self.datagrams_sent += 1
        self.bytes_sent += len(data)
        try:
            # A copy: the endpoint may keep the datagram (a queue, a log) after send returns.
            self._ep.send(bytes(data))
        except OSError:
            pass  # a lost datagram: the retransmission timer covers it (dtls.md §8)
        except Exception as e:
            raise DtlsTransportError(e)

    def _rx(self, timeout_ms):
        try:
            data = self._ep.recv(timeout_ms)
        except OSError:
            # ECONNREFUSED and the like: nothing arrived; wait as if the flight was lost.
            self.clock.sleep_ms(timeout_ms)
            return None
        except Exception as e:
            raise DtlsTransportError(e)
        if data is not None:
            self.datagrams_received += 1
            self.bytes_received += len(data)
        return data

    def _send_records(self, records):
        """Packs (type, epoch, payload) records into as few datagrams as the MTU allows."""
        buf = None
        for ctype, epoch, payload in records:
            r = self._record(ctype, epoch, payload)
            if buf is None:
                buf = r
            elif len(buf) + len(r) > self._ep.mtu:
                self._tx(buf)
                buf = r
            else:
                buf.extend(r)
        if buf is not None:
            self._tx(buf)

    # ---- alerts ---------------------------------------------------------------------------

    def _send_alert(self, level, description):
        epoch = 1 if self._w_cipher is not None and self._w_seq[1] > 0 else 0
        try:
            self._send_records(((rl.CT_ALERT, epoch, bytes((level, description))),))
        except DtlsError:
            pass

    def _fatal(self, description, detail):
        self._send_alert(_FATAL, description)
        self._phase = _P_FAILED
        raise DtlsAlert(_FATAL, description, True, detail)

    def _on_alert(self, data):
        if len(data) != 2:
            return
        level, desc = data[0], data[1]
        # In the handshake, an alert or close_notify from the server refuses our keys (most
        # often): .refused tells the app to say so (docs/diagnostics.md).
        refused = _P_HELLO <= self._phase < _P_DONE
        if desc == A_CLOSE_NOTIFY:
            self._phase = _P_CLOSED
            e = DtlsClosed(False)
        elif level == _FATAL:
            self._phase = _P_FAILED
            e = DtlsAlert(level, desc)
        else:
            return  # warning alerts (no_renegotiation, user_canceled...) are noted and ignored
        e.refused = refused
        raise e

    # ---- handshake ------------------------------------------------------------------------

    def _extensions(self):
        if self.hello_extensions is not None:
            return self.hello_extensions
        ext = hs.extension(hs.EXT_EXTENDED_MASTER_SECRET, b"")
        if self.want_cid:
            # A zero-length CID: the server need not put one in its records (RFC 9146 §3).
            ext += hs.extension(hs.EXT_CONNECTION_ID, b"\x00")
        return ext

    def _client_hello(self):
        body = hs.client_hello_body(self._random, self._offer_sid, self._cookie,
                                    self.suites + (rl.TLS_EMPTY_RENEGOTIATION_INFO_SCSV,),
                                    self._extensions())
        return hs.message(hs.CLIENT_HELLO, self._ch_seq, body)

    def _new_flight(self, records):
        self._flight = records
        self._retx = 0
        self._timeout = self.timers.initial_ms
        self._timer_at = self.clock.ticks_add(self.clock.ticks_ms(), self._timeout)
        self._dup_resent = False
        self._send_records(records)

    def _resend(self):
        self.retransmissions += 1
        self._send_records(self._flight)

    def handshake(self):
        """Runs a handshake; abbreviated when a master secret is cached (after a full handshake
        or restore()) and the server resumes it, else full. Raises DtlsError subclasses only."""
        self.resume()

    def resume(self, piggyback=True):
        """Abbreviated handshake from the cached session, falling back to a full one when
        the server does not resume. The client's CCS + Finished go out with the next send()
        (or flush()/recv()); piggyback=False sends them at once instead, for servers that
        mishandle data in the datagram that completes their handshake (libcoap 4.3.1 with
        OpenSSL holds back its response until the CoAP exchange times out)."""
        # Without a session id the offer is empty and the server runs a full handshake.
        self._run(self._ms is not None)
        if not piggyback:
            self.flush()

    def _run(self, resume):
        self._begin(resume)
        clock = self.clock
        while self._phase != _P_DONE:
            now = clock.ticks_ms()
            if clock.ticks_diff(now, self._deadline) >= 0:
                self._give_up("the %d ms handshake deadline passed" % self.timers.deadline_ms)
            if clock.ticks_diff(now, self._timer_at) >= 0:
                if self._retx >= self.timers.max_retransmit:
                    self._give_up("%d retransmissions of flight %d went unanswered" % (
                        self._retx, self._flight_no()))
                self._retx += 1
                self._timeout = min(self._timeout * 2, self.timers.cap_ms)
                self._timer_at = clock.ticks_add(now, self._timeout)
                self._dup_resent = False
                self._resend()
                continue
            wait = min(clock.ticks_diff(self._timer_at, now), clock.ticks_diff(self._deadline, now))
            data = self._rx(wait)
            if data is not None:
                self._on_datagram(data)

    def _begin(self, resume):
        """Resets the handshake state and sends the first ClientHello (flight 1)."""
        self._reset_records()
        self.resumed = False
        self.psk_identity_hint = None
        self._random = self.hello_random or rng.urandom(32)
        if not resume:
            self._session_id = b""  # of a handshake that never finished: not offered again
        self._offer_sid = self._session_id
        self._cookie = b""
        self._ch_seq = 0
        self._rx_next = None
        self._reasm = hs.Reassembler()
        self._offered = self._offered_extensions()
        self._phase = _P_HELLO
        self._deadline = self.clock.ticks_add(self.clock.ticks_ms(), self.timers.deadline_ms)
        self._new_flight([(rl.CT_HANDSHAKE, 0, self._client_hello())])

    def _flight_no(self):
        return 5 if self._phase == _P_FINISHED and not self._abbreviated else (
            3 if self._ch_seq else 1)

    def _give_up(self, why):
        phase = self._phase
        self._phase = _P_FAILED
        # An answer came (a HelloVerifyRequest moves _ch_seq on) but the handshake did not
        # finish: what a wrong PSK or identity looks like.
        if phase == _P_FINISHED or (phase == _P_HELLO and self._ch_seq):
            e = DtlsTimeout("DTLS handshake failed: no valid answer from the server (%s); "
                            "check the PSK and identity: a wrong key looks like packet loss" % why)
            # Silence after the server's whole flight and our Finished: how EnOS and most
            # servers answer a wrong key.
            e.refused = phase == _P_FINISHED
            raise e
        raise DtlsTimeout("DTLS handshake failed: no valid answer from the server (%s); check that "
                          "the server is reachable and speaks DTLS 1.2 with PSK, and the PSK and "
                          "identity" % why)

    def _offered_extensions(self):
        ext = self._extensions()
        types = []
        p = 0
        while p + 4 <= len(ext):
            types.append((ext[p] << 8) | ext[p + 1])
            p += 4 + ((ext[p + 2] << 8) | ext[p + 3])
        types.append(hs.EXT_RENEGOTIATION_INFO)
        return types

    # ---- receive path ---------------------------------------------------------------------

    def _on_datagram(self, data):
        self._dup = False
        for ctype, version, epoch, seq, cid, frag in rl.split_records(data):
            if epoch == self._r_epoch:
                self._on_record(ctype, version, epoch, seq, frag)
            elif (epoch == 1 and self._r_epoch == 0 and _P_HELLO <= self._phase <= _P_FINISHED
                  and len(self._early) < _EARLY_MAX):
                self._early.append((ctype, version, epoch, seq, bytes(frag)))
            elif epoch == 0 and self._r_epoch == 1 and ctype == rl.CT_HANDSHAKE:
                self._check_duplicate(frag)
        if self._dup:
            self._on_peer_repeat()

    def _check_duplicate(self, frag):
        frags = hs.parse_fragments(frag)
        if frags and self._rx_next is not None:
            for f in frags:
                if f[2] < self._rx_next:
                    self._dup = True

    def _on_peer_repeat(self):
        """The server repeated a flight we answered: it lost our last one (dtls.md §8)."""
        if self._phase == _P_DONE:
            if self._final is not None:
                self.flush()
            elif self._last_flight is not None:
                self.retransmissions += 1
                self._send_records(self._last_flight)
        elif self._phase != _P_HELLO and not self._dup_resent:
            self._dup_resent = True
            self._resend()

    def _on_record(self, ctype, version, epoch, seq, frag):
        if epoch:
            if ctype == rl.CT_TLS12_CID or self._replay.seen(seq):
                return
            opened = self._r_cipher.open(ctype, version, epoch, seq, frag)
            if opened is None:
                return
            self._replay.accept(seq)
            ctype, frag = opened
        if ctype == rl.CT_HANDSHAKE:
            frags = hs.parse_fragments(frag)
            if frags is not None:
                self._on_handshake(frags)
        elif ctype == rl.CT_CHANGE_CIPHER_SPEC:
            if len(frag) == 1 and frag[0] == 1 and epoch == 0:
                self._on_ccs()
        elif ctype == rl.CT_ALERT:
            self._on_alert(frag)
        elif ctype == rl.CT_APPLICATION_DATA and epoch:
            if len(self._app) < _APP_QUEUE_MAX:
                self._app.append(bytes(frag))

    def _on_ccs(self):
        # Only the first CCS of a handshake gets here (epoch 0 while the read epoch is 0);
        # one out of order is dropped and the retransmission recovers (dtls.md §12).
        if self._phase != _P_FINISHED:
            return
        self._r_cipher = self._pending_read
        self._r_epoch = 1
        self._replay = rl.ReplayWindow()
        self._reasm.clear()
        early, self._early = self._early, []
        for r in early:
            if self._phase in (_P_FINISHED, _P_DONE):
                self._on_record(*r)

    def _on_handshake(self, frags):
        for t, length, seq, off, frag in frags:
            if t == hs.HELLO_REQUEST:
                if self._phase == _P_DONE:
                    self._send_alert(_WARNING, A_NO_RENEGOTIATION)
                continue
            if self._rx_next is not None and seq < self._rx_next:
                self._dup = True
                continue
            if self._phase == _P_DONE:
                continue
            self._reasm.add(t, length, seq, off, frag, self._rx_next or 0)
        while self._phase in (_P_HELLO, _P_SERVER_FLIGHT, _P_FINISHED):
            if self._rx_next is None:
                # The server's flight starts at a message_seq we learn from its first message;
                # later ones (ServerKeyExchange...) wait in the buffer for a lost ServerHello.
                m = self._reasm.take_any(_FLIGHT_STARTS)
                if m is None:
                    break
                seq, t, body = m
            else:
                m = self._reasm.take(self._rx_next)
                if m is None:
                    break
                t, body = m
                seq = self._rx_next
                self._rx_next += 1
            try:
                self._on_message(t, seq, body)
            except hs.DtlsDecodeError as e:
                self._fatal(A_DECODE_ERROR, str(e))

    def _on_message(self, t, seq, body):
        phase = self._phase
        if phase == _P_HELLO:
            if t == hs.HELLO_VERIFY_REQUEST:
                self._cookie = hs.parse_hello_verify_request(body)
                self._reasm.clear()
                # Each ClientHello after a HelloVerifyRequest takes the next message_seq, also
                # when a server sends a second one (RFC 6347 §4.2.2).
                self._ch_seq += 1
                self._new_flight([(rl.CT_HANDSHAKE, 0, self._client_hello())])
                return
            if t == hs.SERVER_HELLO:
                self._rx_next = seq + 1
                self._on_server_hello(hs.message(t, seq, body), body)
                return
        elif phase == _P_SERVER_FLIGHT:
            msg = hs.message(t, seq, body)
            if t == hs.SERVER_KEY_EXCHANGE and self.psk_identity_hint is None:
                self.psk_identity_hint = hs.parse_server_key_exchange(body)
                self._transcript += msg
                return
            if t == hs.SERVER_HELLO_DONE:
                if body:
                    raise hs.DtlsDecodeError("ServerHelloDone with a body")
                self._transcript += msg
                self._send_client_flight()
                return
        elif phase == _P_FINISHED and t == hs.FINISHED and self._r_epoch == 1:
            if not ct_equal(body, self._expect_server_vd):
                self._fatal(A_DECRYPT_ERROR, "the server Finished does not verify")
            if self._abbreviated:
                self._transcript += hs.message(t, seq, body)
                vd = prf(self._ms, b"client finished", sha256_of(self._transcript), 12)
                fin = hs.message(hs.FINISHED, self._ch_seq + 1, vd)
                self._final = [(rl.CT_CHANGE_CIPHER_SPEC, 0, b"\x01"), (rl.CT_HANDSHAKE, 1, fin)]
                self.resumed = True
            self._transcript = None
            self._phase = _P_DONE
            return
        self._fatal(A_UNEXPECTED_MESSAGE, "handshake message type %d not expected now" % t)

    def _on_server_hello(self, msg, body):
        sh = hs.ServerHello(body)
        if sh.version != rl.DTLS12:
            self._fatal(A_PROTOCOL_VERSION, "the server does not speak DTLS 1.2")
        if sh.suite not in self.suites or sh.compression != 0:
            self._fatal(A_ILLEGAL_PARAMETER, "the server chose a suite or compression not offered")
        ems = False
        self._cid_out = None
        for et, data in sh.extensions:
            if et not in self._offered:
                self._fatal(A_UNSUPPORTED_EXTENSION, "ServerHello has extension %d not offered" % et)
            if et == hs.EXT_EXTENDED_MASTER_SECRET:
                if data:
                    raise hs.DtlsDecodeError("extended_master_secret with a body")
                ems = True
            elif et == hs.EXT_RENEGOTIATION_INFO:
                if data != b"\x00":
                    self._fatal(A_HANDSHAKE_FAILURE, "renegotiation_info is not empty")
            elif et == hs.EXT_CONNECTION_ID:
                if len(data) < 1 or data[0] != len(data) - 1:
                    raise hs.DtlsDecodeError("malformed connection_id")
                # A zero-length CID: the server wants none in the client's records.
                self._cid_out = bytes(data[1:]) or None
        self.suite = sh.suite
        self._server_random = sh.random
        self._transcript = bytearray(self._flight[0][2])
        self._transcript += msg
        self._abbreviated = bool(self._offer_sid) and sh.session_id == self._offer_sid
        if self._abbreviated:
            if ems != self._ems:
                self._fatal(A_HANDSHAKE_FAILURE, "resumed session changes extended_master_secret")
            self._derive_keys()
            self._expect_server_vd = prf(self._ms, b"server finished",
                                         sha256_of(self._transcript), 12)
            self._phase = _P_FINISHED
            return
        if not ems and self.require_ems:
            self._fatal(A_HANDSHAKE_FAILURE, "the server does not support extended_master_secret")
        self._ems = ems
        self._ms = None
        self._session_id = sh.session_id
        self._phase = _P_SERVER_FLIGHT

    def _derive_keys(self):
        kb = prf(self._ms, b"key expansion", self._server_random + self._random,
                 _key_len(self.suite))
        self._key_block = kb
        self._w_cipher, self._pending_read = _ciphers(self.suite, kb)

    def _send_client_flight(self):
        ident = self._identity
        # The client's flight continues the message_seq of its last ClientHello.
        cke = hs.message(hs.CLIENT_KEY_EXCHANGE, self._ch_seq + 1, hs.u16(len(ident)) + ident)
        self._transcript += cke
        pms = hs.psk_premaster(self._psk)
        # One hash serves both: session_hash (RFC 7627) and the client Finished cover the same
        # messages, CH(2) ... ClientKeyExchange.
        digest = sha256_of(self._transcript)
        if self._ems:
            self._ms = prf(pms, b"extended master secret", digest, 48)
        else:
            self._ms = prf(pms, b"master secret", self._random + self._server_random, 48)
        self._derive_keys()
        vd = prf(self._ms, b"client finished", digest, 12)
        fin = hs.message(hs.FINISHED, self._ch_seq + 2, vd)
        self._transcript += fin
        self._expect_server_vd = prf(self._ms, b"server finished", sha256_of(self._transcript), 12)
        self._phase = _P_FINISHED
        self._new_flight([(rl.CT_HANDSHAKE, 0, cke), (rl.CT_CHANGE_CIPHER_SPEC, 0, b"\x01"),
                          (rl.CT_HANDSHAKE, 1, fin)])

    # ---- datagram endpoint ----------------------------------------------------------------

    def _check_open(self):
        if self._phase == _P_DONE:
            return
        if self._phase == _P_CLOSED:
            raise DtlsClosed(False)
        raise DtlsError("the DTLS session is not established: call handshake() first")

    def flush(self):
        """Sends the held-back CCS + Finished of a resumed handshake on its own."""
        if self._final is not None:
            self._last_flight = self._final
            self._final = None
            self._send_records(self._last_flight)

    def send(self, data):
        """One application-data record in one datagram (with a held-back final flight)."""
        self._check_open()
        if len(data) > self.mtu:
            raise DtlsError("datagram of %d bytes exceeds the DTLS payload limit of %d"
                            % (len(data), self.mtu))
        if self._final is None:
            self._tx(self._app_datagram(data))
            return
        # The held-back final flight rides in front; _send_records splits if it must.
        records = self._final + [(rl.CT_APPLICATION_DATA, 1, bytes(data))]
        self._last_flight = self._final
        self._final = None
        self._send_records(records)

    def recv(self, timeout_ms):
        """The next application datagram, or None when timeout_ms passes without one."""
        self._check_open()
        self.flush()
        clock = self.clock
        end = clock.ticks_add(clock.ticks_ms(), timeout_ms)
        while True:
            if self._app:
                return self._app.pop(0)
            left = clock.ticks_diff(end, clock.ticks_ms())
            if left <= 0:
                return None
            data = self._rx(left)
            if data is not None:
                self._on_datagram(data)

    def close(self):
        """Sends close_notify (when established) and closes the wrapped endpoint."""
        if self._phase == _P_DONE:
            self.flush()
            self._send_alert(_WARNING, A_CLOSE_NOTIFY)
        if self._phase not in (_P_FAILED,):
            self._phase = _P_CLOSED
        try:
            self._ep.close()
        except Exception:
            pass

    # ---- deep sleep -----------------------------------------------------------------------

    def save(self):
        """Compact session state for deep sleep: call it after the last send().

        Holds keys and the master secret: store it like the PSK itself.
        """
        if self._phase != _P_DONE:
            raise DtlsError("only an established session can be saved")
        self.flush()
        cid = self._cid_out
        top = self._replay.top + 1
        out = bytearray((_BLOB_VERSION, (1 if self._ems else 0) | (2 if cid is not None else 0)))
        out += hs.u16(self.suite)
        out += self._w_seq[1].to_bytes(6, "big")
        out += top.to_bytes(6, "big")
        out += self._replay.bits.to_bytes(8, "big")
        out += self._key_block
        out += self._ms
        out += bytes((len(self._session_id),)) + self._session_id
        if cid is not None:
            out += bytes((len(cid),)) + cid
        return bytes(out)

    @classmethod
    def restore(cls, endpoint, identity, psk, blob, clock=SYSTEM, timers=None, **kw):
        """A session from save()'s blob, usable at once for send/recv (or resume())."""
        s = cls(endpoint, identity, psk, clock, timers, **kw)
        try:
            if blob[0] != _BLOB_VERSION:
                raise ValueError
            flags = blob[1]
            suite = (blob[2] << 8) | blob[3]
            if suite not in rl.SUITES:
                raise ValueError
            w_seq = int.from_bytes(blob[4:10], "big")
            top = int.from_bytes(blob[10:16], "big") - 1
            bits = int.from_bytes(blob[16:24], "big")
            p = 24
            kl = _key_len(suite)
            kb = bytes(blob[p:p + kl])
            ms = bytes(blob[p + kl:p + kl + 48])
            p += kl + 48
            sl = blob[p]
            sid = bytes(blob[p + 1:p + 1 + sl])
            p += 1 + sl
            cid = None
            if flags & 2:
                cid = bytes(blob[p + 1:p + 1 + blob[p]])
                p += 1 + blob[p]
            if p != len(blob):  # every field was read by its stated length: none is cut short
                raise ValueError
        except (ValueError, IndexError, TypeError):
            raise DtlsError("saved DTLS state is corrupt or from another version: "
                            "do a new handshake")
        s.suite = suite
        s._key_block = kb
        s._w_cipher, s._r_cipher = _ciphers(suite, kb)
        s._w_seq[1] = w_seq
        s._r_epoch = 1
        s._replay = rl.ReplayWindow(top, bits)
        s._ms = ms
        s._ems = bool(flags & 1)
        s._session_id = sid
        s._cid_out = cid
        s._phase = _P_DONE
        s._rx_next = None
        return s
