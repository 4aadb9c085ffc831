"""The local server's DTLS front end in Connection ID mode (RFC 9146), `--dtls-variant cid`.

With a Connection ID a DTLS session no longer belongs to the client's address: every record
the client sends carries the CID the server chose (outer content type tls12_cid, 25), so
after the carrier's NAT gave the device a new source port the server still finds the
session, and a wake from deep sleep is one round trip (the request and its response).
RFC 9146 §6: the server moves the session to the new address only for a record that
authenticates and is newer than every record received before, so a replayed or forged
datagram cannot redirect the device's traffic.

Why not Mbed TLS: python-mbedtls 2.10.1 (Mbed TLS 2.28) has no Connection ID setting, and
2.28's own CID is a pre-RFC draft (extension 254, another record MAC); OpenSSL, GnuTLS,
libcoap 4.3.1 and tinydtls in DTLSSocket have none. So this mode runs the project's scripted
DTLS 1.2 PSK server (host_tests/vm/dtls_peer.py: MiniServer, built on the device's own record
and handshake codecs) per peer, with the front end's stateless cookies (dtls_front.CookieJar),
PSKs from the registry, session resumption, and the same relay to the CoAP site. It checks
the device's CID logic end to end, not its bytes against an independent implementation:
that check remains to be made against Mbed TLS 3.x built with MBEDTLS_SSL_DTLS_CONNECTION_ID
(or EnOS itself, whose CID support is unknown; docs/power.md).
"""
import os
import sys

from tools.enos_server.dtls_front import DtlsFront, _Peer

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(_ROOT, "firmware", "lib"), os.path.join(_ROOT, "host_tests", "vm")):
    if _p not in sys.path:
        sys.path.append(_p)

from dtls_peer import MiniServer  # noqa: E402
from enosnb.dtls import handshake as hs  # noqa: E402

CID_LEN = 4
_CT_TLS12_CID = 25


class _Engine(MiniServer):
    """MiniServer whose PSK comes from the registry by the identity the client sends."""

    def __init__(self, peer, cid):
        MiniServer.__init__(self, b"\x00", cookie=False, cid=cid, echo=False)
        self.peer = peer
        self.cache = peer.front.cid_cache

    def _on_message(self, t, mseq, body):
        if t == hs.CLIENT_KEY_EXCHANGE and (t, mseq) not in self.seen:
            found = self.peer.front.store.registry.psk_for(bytes(body[2:]))
            if found is None:
                return []  # an unknown identity: no keys, the handshake times out
            self.psk, self.peer.identity = found
        return MiniServer._on_message(self, t, mseq, body)


class _CidPeer(_Peer):
    """One client's session, reachable by its CID whatever address the client has now
    (the relay to the CoAP site is _Peer's)."""

    def __init__(self, front, addr, random):
        self.front = front
        self.addr = addr
        self.random = random
        self.cid = os.urandom(CID_LEN)
        self.engine = _Engine(self, self.cid)
        self.identity = None
        self.established = False
        self.resumed = False
        self.relay = None
        self.relay_key = None
        self.closed = False
        self.top_seq = -1

    def send(self, datagrams):
        for d in datagrams:
            self.front.transport.sendto(d, self.addr)

    def to_device(self, data):
        if not self.closed and self.established:
            self.front.transport.sendto(self.engine.app(data), self.addr)

    async def from_device(self, data, seq=None):
        """Handles one datagram; True when it held application data that authenticated."""
        e = self.engine
        self.send(e.handle(data))
        if not self.established and e.done:
            if e.abbreviated:
                self.identity = self.front.session_identity(e.sid)
                self.resumed = True
            elif e.sid:
                self.front.cid_cache[e.sid] = (e.ms, e.ems_on)
                self.front.remember(e.sid, self.identity)
            if self.identity is None:
                self.front.drop(self.addr)
                return False
            self.established = True
            if e.use_cid:
                self.front.by_cid[e.use_cid] = self
            await self._open_relay()
        got = bool(e.app_in)
        for plain in e.app_in:
            self.relay.sendto(plain)
        del e.app_in[:]
        return got

    def suite_name(self):
        e = self.engine
        return "%s, cid %s" % ("CCM_8" if e.suite == 0xC0A8 else "CBC",
                               e.use_cid.hex() if e.use_cid else "not negotiated")

    def close(self):
        if self.engine.use_cid:
            self.front.by_cid.pop(self.engine.use_cid, None)
        _Peer.close(self)


class CidFront(DtlsFront):
    """DtlsFront with Connection IDs: records of type tls12_cid are routed by their CID.
    Counters as DtlsFront's, plus moves (sessions that followed their client to a new
    address)."""

    peer_class = _CidPeer

    def __init__(self, registry, site, coap_port, log=print, hello_verify=True, **kw):
        DtlsFront.__init__(self, registry, site, coap_port, log, hello_verify, **kw)
        self.cid_cache = {}
        self.by_cid = {}
        self.moves = 0

    async def _handle_locked(self, data, addr):
        if len(data) >= 13 + CID_LEN + 2 and data[0] == _CT_TLS12_CID:
            peer = self.by_cid.get(bytes(data[11:11 + CID_LEN]))
            if peer is None:
                return
            seq = int.from_bytes(data[5:11], "big")
            fresh = await peer.from_device(data)
            if fresh and seq > peer.top_seq:
                peer.top_seq = seq
                if peer.addr != addr:
                    self._move(peer, addr)
            return
        await DtlsFront._handle_locked(self, data, addr)

    def _move(self, peer, addr):
        old = peer.addr
        if self.peers.get(old) is peer:
            del self.peers[old]
        other = self.peers.get(addr)
        if other is not None and other is not peer:
            self.drop(addr)
        peer.addr = addr
        self.peers[addr] = peer
        self.moves += 1
        self.log("dtls cid %s: session moved from %s:%d to %s:%d" % (
            peer.engine.use_cid.hex(), old[0], old[1], addr[0], addr[1]))
