"""A wake from deep sleep behind the carrier's NAT, against each variant of the local server.

After a sleep longer than the NAT's binding lifetime the device's datagrams come from a new
source port (tools/modem_emulator/nat.py). What the wake costs then depends on the server:

  cid      Connection ID (RFC 9146, tools/enos_server/cid_front.py): the saved session is
           used as is, the server finds it by its CID: the request and its response.
  resume   session resumption without a cookie (the local server's default, dtls.md §16):
           abbreviated handshake, the client's Finished and the request in one datagram.
  hvr      resumption, but the server asks for a cookie first (HelloVerifyRequest).
  full     no resumption: a full handshake with cookie, then the request.

The device side is the real firmware code on CPython (as tools/budget/wire.py): a cold
report with a full handshake offering CID, the session saved, then the wake on a new UDP
socket, as the app does it when it knows the NAT binding is gone (enosnb.nat).
"""
from enosnb.dtls.session import DtlsSession
from enosnb.enos import identity
from tools.budget.wire import LOOPBACK_TIMERS, POINTS, SECRET, TIME_MS, DK, PK, Device

VARIANTS = ("cid", "resume", "hvr", "full")


def _cid_session(ep, ident, psk, clock=None, timers=None):
    return DtlsSession(ep, ident, psk, timers=timers, cid=True)


class NatDevice(Device):
    def __init__(self, host, port):
        Device.__init__(self, host, port)
        self.transport._session_factory = _cid_session

    def wake_nat(self, kept, restore):
        """The wake on a new source port: restore (CID) or resume."""
        if not restore:
            w = self.wake(kept)
            w.name = "wake_nat"
            return w
        blob, coap_state, enos_state = kept
        w = self.scenario("wake_nat")
        ident = identity.psk_identity(PK, DK, identity.MODE_DEVICE, 3600)
        self.transport.close()
        self.transport._endpoint = self._endpoint()
        s = DtlsSession.restore(self.transport._endpoint, ident, identity.psk_key(SECRET), blob,
                                timers=LOOPBACK_TIMERS, cid=True)
        self.transport.session = s
        coap = self._client(s)
        coap.restore(coap_state)
        self.enos.restore(enos_state)
        self.reference_id()
        self.enos.attach(coap)
        self.enos.post_measurepoints(POINTS, TIME_MS)
        return w


def run(variant):
    """(Wire of the wake behind NAT, the session's CID or None) against a fresh server."""
    from tools.enos_server.server import EnosServer
    srv = EnosServer(port=0, dtls_port=0, log=None, dtls_variant=variant).start()
    try:
        dev = NatDevice(srv.host, srv.dtls_port)
        dev.cold()
        cid = dev.transport.session.cid
        kept = dev.sleep()
        w = dev.wake_nat(kept, restore=cid is not None)
        dev.close()
    finally:
        srv.stop()
    return w, cid
