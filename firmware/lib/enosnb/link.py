"""The connect phase of a cycle: CoAP over the modem socket, inside DTLS unless secrets.json
says plain, and the NAT knowledge that decides whether a saved session is tried as is
(enos-coap.md §5.3, §5.4, §6.4; dtls.md §16; docs/power.md "NAT").

connect(app) takes, in order of cost: the DTLS connection saved before the deep sleep, as
is (0 round trips, no handshake code loaded: enosnb.dtls.connection); else its resumption
(abbreviated handshake); else a full handshake; in plain mode the /auth binding kept over
the sleep, else a new POST /auth. probe() gives a restored session one short try before it
falls back to a handshake. Link is the EnOS client's transport (enos/transport.py).
"""
import hashlib
import struct

from enosnb import cloud, nat, radio
from enosnb.app import _err, log
from enosnb.coap.errors import CoapError, CoapTimeout
from enosnb.dtls.errors import DtlsError
from enosnb.enos import identity as eid


class Link:
    """The EnOS client's transport (enos/transport.py contract): opens CoAP over the modem
    socket, inside a DTLS session when secrets.json says dtls (restore/resume/full)."""

    def __init__(self, app):
        self.app = app
        self.secure = app.secrets.dtls
        self.session = None
        self.how = None
        self.opens = 0

    def open(self, identity, psk):
        self.drop()
        self.opens += 1
        ep = radio.endpoint(self.app)
        if not self.secure:
            self.how = "plain"
            return coap_client(self.app, ep)
        self.session, self.how = dtls_session(self.app, ep, identity, psk)
        return coap_client(self.app, self.session)

    def drop(self):
        """Forget the session without close_notify; the socket stays open."""
        self.session = None

    def close(self):
        s, self.session = self.session, None
        if s is not None:
            try:
                s.close()
            except DtlsError:
                pass


def connect(app):
    app.enos = enos = cloud.make_enos(app)
    kept = app._restored_sock is not None
    how = None
    secret = app.secrets.device_secret
    if not secret:
        from enosnb import activation
        secret = activation.secret(app)
    dtls = app.secrets.dtls
    restore = kept and secret and dtls and app._restorable and app.state.get("dtls")
    plain = kept and not dtls and app.state.get("auth") == b"1"
    app._nat_ok = True
    if restore or plain:
        app._nat_ok, blob = nat.worth_restoring(app.state.get("nat"), app._slept_s,
                                                 app.tune["nat_reprobe"])
        app.state.set("nat", blob)
    if restore:
        s = app.secrets
        ident = eid.psk_identity(s.product_key, s.device_key, eid.MODE_DEVICE, s.lifetime)
        psk = eid.psk_key(secret, s.psk_slice[0])
        session, how = dtls_session(app, radio.endpoint(app), ident, psk, restore=True,
                                         nat_ok=app._nat_ok)
        app.link.session, app.link.how = session, how
        enos.attach(coap_client(app, session))
    elif plain and app._nat_ok:
        # Plain mode: EnOS binds the /auth to our address, which the kept socket keeps
        # while the carrier's NAT does; a 4.01 makes the EnOS client re-authenticate
        # once (§6.4), which learn_nat() notices.
        enos.attach(app.link.open(None, None))
        app.link.opens = 0
        how = "plain-kept"
    if how is None:
        enos.connect()
        how = app.link.how
    app.report["connect"] = how
    app._unproven = how == "restored"
    app._kept_how = how
    log("connected (%s)" % how)


def learn_nat(app, kept):
    """Whether the binding kept over the sleep worked: the NAT bounds (enosnb.nat)."""
    app.state.set("nat", nat.learn(app.state.get("nat"), app._slept_s, kept))


def blob_key(identity, psk):
    return hashlib.sha256(bytes(identity) + b"|" + bytes(psk)).digest()[:8]


def dtls_session(app, ep, identity, psk, restore=False, nat_ok=True):
    """(session, how): "restored" (no handshake), "resumed" or "full". A saved session
    is used as is only when restore is set and either it has a Connection ID or the
    NAT binding is likely alive (nat_ok); every handshake offers a Connection ID."""
    from enosnb.dtls.timers import NBIOT, Timers
    t = app.tune["dtls_timers"] or NBIOT
    timers = Timers(t.initial_ms, t.cap_ms, t.max_retransmit,
                    app.clock.clip(t.deadline_ms))
    app._dtid = blob_key(identity, psk)
    blob = app.state.get("dtls")
    if blob and app.state.get("dtid") != app._dtid:
        blob = None
    if blob and restore:
        from enosnb.dtls.connection import DtlsConnection
        try:
            # As is, the saved connection needs no handshake code (dtls/connection.py).
            c = DtlsConnection.restore(ep, identity, psk, blob, clock=app.clock,
                                       timers=timers, cid=True)
        except DtlsError as e:
            log("saved DTLS session unusable: %s" % _err(e))
            app.state.delete("dtls")
            blob = None
        else:
            if nat_ok or c.cid is not None:
                return c, "restored"
    c = None
    from enosnb.dtls.session import DtlsSession
    if blob:
        try:
            s = DtlsSession.restore(ep, identity, psk, blob, clock=app.clock, timers=timers,
                                    cid=True)
        except DtlsError as e:
            log("saved DTLS session unusable: %s" % _err(e))
            app.state.delete("dtls")
        else:
            s.resume()
            return s, "resumed" if s.resumed else "full"
    s = DtlsSession(ep, identity, psk, clock=app.clock, timers=timers, cid=True)
    s.handshake()
    return s, "full"


def coap_client(app, ep):
    from enosnb.coap.client import Client, Timing
    timing = app.tune["coap_timing"] or Timing(ack_timeout_ms=app.secrets.ack_timeout_ms,
                                                max_retransmit=app.secrets.max_retransmit)
    c = Client(ep, app.clock, timing)
    if app._rtt_at is not False:
        app._rtt_at = None
        c.trace = lambda direction, data: rtt_trace(app, direction, data)
    prev = app.coap.state() if app.coap is not None else app.state.get("coap")
    if prev:
        try:
            c.restore(prev)
        except CoapError:
            pass
    app.coap = c
    return c


def rtt_trace(app, direction, data):
    """CoAP client trace: the first request's round trip of the cycle, unless it was
    retransmitted (Karn), into the smoothed estimate the next probe uses."""
    if app._rtt_at is False:
        return
    now = app.base_clock.ticks_ms()
    if direction == "send":
        app._rtt_at = now if app._rtt_at is None else False
        return
    if app._rtt_at is None:
        return
    sample = app.base_clock.ticks_diff(now, app._rtt_at)
    app._rtt_at = False
    old = app.state.get("rtt")
    if old and len(old) == 2:
        sample = (3 * struct.unpack(">H", old)[0] + sample) // 4
    app.state.set("rtt", struct.pack(">H", min(max(sample, 1), 65535)))


def probe_timing(app, timing):
    """One transmission, answered within about two round trips of the last cycles."""
    from enosnb.coap.client import Timing
    rtt = app.state.get("rtt")
    wait = timing.ack_timeout_ms
    if rtt and len(rtt) == 2:
        wait = min(wait, max(app.tune["probe_min_ms"], 2 * struct.unpack(">H", rtt)[0]))
    return Timing(wait, 1, app.tune["probe_retransmit"])


def probe(app, fn):
    """Runs fn(); on a restored session whose server forgot it, reconnects and runs fn()
    again. The restored session gets one short try: silence means it is gone."""
    if not app._unproven:
        return fn()
    app._unproven = False
    timing = app.coap.timing
    app.coap.timing = probe_timing(app, timing)
    cid = app.link.session is not None and app.link.session.cid is not None
    try:
        out = fn()
        if not cid:
            learn_nat(app, True)
        return out
    except (CoapTimeout, DtlsError) as e:
        log("restored DTLS session not answered (%s); handshake again, resuming if the "
            "server still caches the session" % type(e).__name__)
        if not cid:
            learn_nat(app, False)  # a Connection ID survives NAT: the server forgot
        # The unanswered connection and its CoAP client go before the handshake allocates;
        # the message id counter carries over through the state.
        app.state.set("coap", app.coap.state())
        app.coap = None
        app.link.drop()
        app.enos.coap = None
        app.enos.connect()
        app.report["connect"] = "restore-failed/" + str(app.link.how)
        return fn()
    finally:
        if app.coap is not None:
            app.coap.timing = timing
