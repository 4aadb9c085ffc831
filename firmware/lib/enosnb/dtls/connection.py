"""DtlsConnection: an established DTLS 1.2 connection over a datagram endpoint: record
protection (RFC 6347 §4.1, RFC 9146 §4-§5), replay window (§4.1.2.6), application data,
alerts (RFC 5246 §7.2) and the compact state kept across deep sleep (dtls.md §16).

A device that restores its saved session and is answered needs nothing else: this module and
the record layer it uses are all that load then. The handshake that makes or resumes a
session is enosnb.dtls.session.DtlsSession, a subclass, loaded only when a handshake
happens. Time comes only from the injected clock.
"""
from micropython import const

from enosnb.clock import SYSTEM
from enosnb.dtls import record as rl
from enosnb.dtls import timers as _timers
from enosnb.dtls.errors import DtlsError, DtlsAlert, DtlsClosed

# Phases of the session; the handshake's own are between IDLE and DONE (session.py).
P_IDLE = const(0)
P_HELLO = const(1)        # ClientHello sent: waiting for HelloVerifyRequest or ServerHello
P_SERVER_FLIGHT = const(2)  # ServerHello seen: waiting for ServerKeyExchange/ServerHelloDone
P_FINISHED = const(3)     # keys ready: waiting for the server's ChangeCipherSpec + Finished
P_DONE = const(4)
P_CLOSED = const(5)
P_FAILED = const(6)

WARNING = const(1)
FATAL = const(2)
A_CLOSE_NOTIFY = const(0)
A_NO_RENEGOTIATION = const(100)

_CLIENT_HELLO = const(1)
_APP_QUEUE_MAX = const(8)
_BLOB_VERSION = const(1)


class DtlsTransportError(DtlsError):
    """The wrapped endpoint failed with something other than OSError; .cause holds it."""

    def __init__(self, cause):
        self.cause = cause
        super().__init__("datagram transport failed: %s: %s" % (type(cause).__name__, cause))


def key_len(suite):
    return 40 if suite == rl.TLS_PSK_WITH_AES_128_CCM_8 else 96


def ciphers(suite, kb):
    """(client write, server read) RecordCiphers from the key block (dtls.md §9.4)."""
    if suite == rl.TLS_PSK_WITH_AES_128_CCM_8:
        return (rl.RecordCipher(suite, kb[0:16], kb[32:36]),
                rl.RecordCipher(suite, kb[16:32], kb[36:40]))
    return (rl.RecordCipher(suite, kb[64:80], kb[0:32]),
            rl.RecordCipher(suite, kb[80:96], kb[32:64]))


class DtlsConnection:
    """An established connection, itself a datagram endpoint: send(data) / recv(timeout_ms) /
    close() / mtu, flush(), save() and DtlsConnection.restore(). Only DtlsError subclasses
    escape."""

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
        self._session_id = b""
        self._ms = None
        self._ems = False
        self._phase = P_IDLE
        self._dgram = b""
        self._reset_records()

    def __repr__(self):
        return "<%s suite=%s phase=%d>" % (
            type(self).__name__, "%04X" % self.suite if self.suite else "-", self._phase)

    # ---- record state -------------------------------------------------------------------

    def _reset_records(self):
        self.suite = 0
        # One statement: the previous session's keys and flights are let go before the next
        # handshake allocates its own. The replay window is made new with the read epoch
        # (session.py _on_ccs, restore()).
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
        return self._phase == P_DONE

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
            version = rl.DTLS10 if ctype == rl.CT_HANDSHAKE and payload[0] == _CLIENT_HELLO \
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
        except MemoryError:
            raise  # not the link: the app logs it as memory
        except Exception as e:
            raise DtlsTransportError(e)

    def _rx(self, timeout_ms):
        try:
            data = self._ep.recv(timeout_ms)
        except OSError:
            # ECONNREFUSED and the like: nothing arrived; wait as if the flight was lost.
            self.clock.sleep_ms(timeout_ms)
            return None
        except MemoryError:
            raise  # not the link: the app logs it as memory
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
        self._send_alert(FATAL, description)
        self._phase = P_FAILED
        raise DtlsAlert(FATAL, description, True, detail)

    def _on_alert(self, data):
        if len(data) != 2:
            return
        level, desc = data[0], data[1]
        # In the handshake, an alert or close_notify from the server refuses our keys (most
        # often): .refused tells the app to say so (docs/diagnostics.md).
        refused = P_HELLO <= self._phase < P_DONE
        if desc == A_CLOSE_NOTIFY:
            self._phase = P_CLOSED
            e = DtlsClosed(False)
        elif level == FATAL:
            self._phase = P_FAILED
            e = DtlsAlert(level, desc)
        else:
            return  # warning alerts (no_renegotiation, user_canceled...) are noted and ignored
        e.refused = refused
        raise e

    # ---- receive path ---------------------------------------------------------------------

    def _on_datagram(self, data):
        self._dup = False
        # An alert that ends the session raises: the rest of the datagram is not looked at.
        for ctype, version, epoch, seq, cid, frag in rl.split_records(data):
            if epoch == self._r_epoch:
                self._on_record(ctype, version, epoch, seq, frag)
            else:
                self._other_epoch(ctype, version, epoch, seq, frag)
        if self._dup:
            self._on_peer_repeat()

    def _other_epoch(self, ctype, version, epoch, seq, frag):
        """A record of an epoch other than the current read epoch: only a handshake has a
        use for one (session.py); an established connection drops it."""

    def _on_peer_repeat(self):
        """The server repeated a flight this side answered (session.py)."""

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
            self._on_handshake_record(frag)
        elif ctype == rl.CT_CHANGE_CIPHER_SPEC:
            if len(frag) == 1 and frag[0] == 1 and epoch == 0:
                self._on_ccs()
        elif ctype == rl.CT_ALERT:
            self._on_alert(frag)
        elif ctype == rl.CT_APPLICATION_DATA and epoch:
            if len(self._app) < _APP_QUEUE_MAX:
                self._app.append(bytes(frag))

    def _on_handshake_record(self, frag):
        """Established: a HelloRequest asks for renegotiation, which this client refuses
        (RFC 5746 is signalled, renegotiation is not offered); any other handshake message
        after the handshake is dropped."""
        # Records are only read while established (recv); a HelloRequest is type 0 with
        # a zero length, fragment offset and fragment length, any message_seq (bytes 4-5).
        if len(frag) == 12 and not any(frag[0:4]) and not any(frag[6:]):
            self._send_alert(WARNING, A_NO_RENEGOTIATION)

    def _on_ccs(self):
        """A ChangeCipherSpec outside a handshake: dropped (dtls.md §12)."""

    # ---- datagram endpoint ----------------------------------------------------------------

    def _check_open(self):
        if self._phase == P_DONE:
            return
        if self._phase == P_CLOSED:
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
        if self._phase == P_DONE:
            self.flush()
            self._send_alert(WARNING, A_CLOSE_NOTIFY)
        if self._phase not in (P_FAILED,):
            self._phase = P_CLOSED
        try:
            self._ep.close()
        except Exception:
            pass

    # ---- deep sleep -----------------------------------------------------------------------

    def save(self):
        """Compact session state for deep sleep: call it after the last send().

        Holds keys and the master secret: store it like the PSK itself.
        """
        if self._phase != P_DONE:
            raise DtlsError("only an established session can be saved")
        self.flush()
        cid = self._cid_out
        top = self._replay.top + 1
        out = bytearray((_BLOB_VERSION, (1 if self._ems else 0) | (2 if cid is not None else 0)))
        out += bytes((self.suite >> 8, self.suite & 0xFF))
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
        """A session from save()'s blob, usable at once for send/recv; on a DtlsSession also
        for resume()."""
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
            kl = key_len(suite)
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
        s._w_cipher, s._r_cipher = ciphers(suite, kb)
        s._w_seq[1] = w_seq
        s._r_epoch = 1
        s._replay = rl.ReplayWindow(top, bits)
        s._ms = ms
        s._ems = bool(flags & 1)
        s._session_id = sid
        s._cid_out = cid
        s._phase = P_DONE
        s._rx_next = None
        return s
