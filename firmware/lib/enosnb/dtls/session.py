"""DtlsSession: a DTLS 1.2 PSK client that makes its own connection (dtls.md §1-§17).

Full handshake with cookie (RFC 6347 §4.2.1), PSK (RFC 4279), extended master secret
(RFC 7627), renegotiation SCSV (RFC 5746), session resumption (RFC 5246 §7.3), Connection ID
(RFC 9146), flight retransmission (RFC 6347 §4.2.4), alerts (RFC 5246 §7.2). Once the
handshake is done the session is a DtlsConnection (connection.py: records, application data,
save/restore); this module adds only what a handshake needs, so a device that restores its
saved connection never loads it. Time comes only from the injected clock; randomness only
from enosnb.rng.
"""
from micropython import const

from enosnb import rng
from enosnb.dtls import handshake as hs
from enosnb.dtls import record as rl
from enosnb.dtls.connection import (DtlsConnection, P_DONE, P_FAILED, P_FINISHED, P_HELLO,
                                    P_SERVER_FLIGHT, WARNING, A_NO_RENEGOTIATION, ciphers,
                                    key_len)
from enosnb.dtls.ct import ct_equal
from enosnb.dtls.errors import DtlsTimeout
from enosnb.dtls.hmac_prf import prf, sha256_of

A_UNEXPECTED_MESSAGE = const(10)
A_HANDSHAKE_FAILURE = const(40)
A_ILLEGAL_PARAMETER = const(47)
A_DECODE_ERROR = const(50)
A_DECRYPT_ERROR = const(51)
A_PROTOCOL_VERSION = const(70)
A_UNSUPPORTED_EXTENSION = const(110)

_EARLY_MAX = const(4)
_FLIGHT_STARTS = (hs.HELLO_VERIFY_REQUEST, hs.SERVER_HELLO)


class DtlsSession(DtlsConnection):
    """DTLS 1.2 PSK client over a datagram endpoint; after handshake() it is one itself.

    send(data) / recv(timeout_ms) / close() / mtu, plus handshake(), resume(), flush(),
    save() and DtlsSession.restore(). Only DtlsError subclasses escape.
    """

    def __init__(self, endpoint, identity, psk, *args, **kw):
        DtlsConnection.__init__(self, endpoint, identity, psk, *args, **kw)
        # Test hooks (docs/vectors.md, step 8): fixed ClientHello random and extension block.
        self.hello_random = None
        self.hello_extensions = None

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
        while self._phase != P_DONE:
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
        self._phase = P_HELLO
        self._deadline = self.clock.ticks_add(self.clock.ticks_ms(), self.timers.deadline_ms)
        self._new_flight([(rl.CT_HANDSHAKE, 0, self._client_hello())])

    def _flight_no(self):
        return 5 if self._phase == P_FINISHED and not self._abbreviated else (
            3 if self._ch_seq else 1)

    def _give_up(self, why):
        phase = self._phase
        self._phase = P_FAILED
        # An answer came (a HelloVerifyRequest moves _ch_seq on) but the handshake did not
        # finish: what a wrong PSK or identity looks like.
        if phase == P_FINISHED or (phase == P_HELLO and self._ch_seq):
            e = DtlsTimeout("DTLS handshake failed: no valid answer from the server (%s); "
                            "check the PSK and identity: a wrong key looks like packet loss" % why)
            # Silence after the server's whole flight and our Finished: how EnOS and most
            # servers answer a wrong key.
            e.refused = phase == P_FINISHED
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

    # ---- receive path (handshake) ---------------------------------------------------------

    def _other_epoch(self, ctype, version, epoch, seq, frag):
        if (epoch == 1 and self._r_epoch == 0 and P_HELLO <= self._phase <= P_FINISHED
                and len(self._early) < _EARLY_MAX):
            self._early.append((ctype, version, epoch, seq, bytes(frag)))
        elif epoch == 0 and self._r_epoch == 1 and ctype == rl.CT_HANDSHAKE:
            self._check_duplicate(frag)

    def _check_duplicate(self, frag):
        frags = hs.parse_fragments(frag)
        if frags and self._rx_next is not None:
            for f in frags:
                if f[2] < self._rx_next:
                    self._dup = True

    def _on_peer_repeat(self):
        """The server repeated a flight we answered: it lost our last one (dtls.md §8)."""
        if self._phase == P_DONE:
            if self._final is not None:
                self.flush()
            elif self._last_flight is not None:
                self.retransmissions += 1
                self._send_records(self._last_flight)
        elif self._phase != P_HELLO and not self._dup_resent:
            self._dup_resent = True
            self._resend()

    def _on_handshake_record(self, frag):
        frags = hs.parse_fragments(frag)
        if frags is not None:
            self._on_handshake(frags)

    def _on_ccs(self):
        # Only the first CCS of a handshake gets here (epoch 0 while the read epoch is 0);
        # one out of order is dropped and the retransmission recovers (dtls.md §12).
        if self._phase != P_FINISHED:
            return
        self._r_cipher = self._pending_read
        self._r_epoch = 1
        self._replay = rl.ReplayWindow()
        self._reasm.clear()
        early, self._early = self._early, []
        for r in early:
            if self._phase in (P_FINISHED, P_DONE):
                self._on_record(*r)

    def _on_handshake(self, frags):
        for t, length, seq, off, frag in frags:
            if t == hs.HELLO_REQUEST:
                if self._phase == P_DONE:
                    self._send_alert(WARNING, A_NO_RENEGOTIATION)
                continue
            if self._rx_next is not None and seq < self._rx_next:
                self._dup = True
                continue
            if self._phase == P_DONE:
                continue
            self._reasm.add(t, length, seq, off, frag, self._rx_next or 0)
        while self._phase in (P_HELLO, P_SERVER_FLIGHT, P_FINISHED):
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
        if phase == P_HELLO:
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
        elif phase == P_SERVER_FLIGHT:
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
        elif phase == P_FINISHED and t == hs.FINISHED and self._r_epoch == 1:
            if not ct_equal(body, self._expect_server_vd):
                self._fatal(A_DECRYPT_ERROR, "the server Finished does not verify")
            if self._abbreviated:
                self._transcript += hs.message(t, seq, body)
                vd = prf(self._ms, b"client finished", sha256_of(self._transcript), 12)
                fin = hs.message(hs.FINISHED, self._ch_seq + 1, vd)
                self._final = [(rl.CT_CHANGE_CIPHER_SPEC, 0, b"\x01"), (rl.CT_HANDSHAKE, 1, fin)]
                self.resumed = True
            self._transcript = None
            self._phase = P_DONE
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
            self._phase = P_FINISHED
            return
        if not ems and self.require_ems:
            self._fatal(A_HANDSHAKE_FAILURE, "the server does not support extended_master_secret")
        self._ems = ems
        self._ms = None
        self._session_id = sh.session_id
        self._phase = P_SERVER_FLIGHT

    def _derive_keys(self):
        kb = prf(self._ms, b"key expansion", self._server_random + self._random,
                 key_len(self.suite))
        self._key_block = kb
        self._w_cipher, self._pending_read = ciphers(self.suite, kb)

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
        self._phase = P_FINISHED
        self._new_flight([(rl.CT_HANDSHAKE, 0, cke), (rl.CT_CHANGE_CIPHER_SPEC, 0, b"\x01"),
                          (rl.CT_HANDSHAKE, 1, fin)])
