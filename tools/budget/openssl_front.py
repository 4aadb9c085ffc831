"""A DTLS 1.2 PSK front end with session resumption (OpenSSL), in front of the local EnOS site.

The local EnOS server terminates DTLS with Mbed TLS (tools/enos_server/dtls_front.py), which
resumes sessions but always asks for a cookie first, costing one more round trip. To measure
the wake-from-deep-sleep report as a server that skips the cookie for a session it issued
sees it (spec/dtls.md §16 allows that), this front end runs
OpenSSL's DTLS server (pyOpenSSL memory BIOs, the PSK callback through its cffi binding) with
a server-side session cache, and relays the decrypted CoAP to the site's plain port exactly
as the Mbed TLS front end does (the relay address is bound to the identity the handshake
proved, enos-coap.md §5.3).

Cookie policy (RFC 6347 §4.2.1): a ClientHello with an empty or unknown session id gets a
HelloVerifyRequest; one that resumes a session this server issued skips it (spec/dtls.md §16:
"the server may skip the cookie exchange on resumption"). The abbreviated flight it then
sends is under twice the ClientHello, a small amplification only for holders of a session id.

A measurement peer for loopback, not a product: no retransmission timers, one thread.
"""
import hashlib
import hmac
import os
import select
import socket
import threading

from OpenSSL import SSL
from OpenSSL._util import ffi, lib

CIPHERS = b"PSK-AES128-CCM8:PSK-AES128-CBC-SHA256:@SECLEVEL=0"


def _client_hello_sid(data):
    """The session id of a ClientHello datagram (epoch 0), or None when it is not one."""
    if len(data) < 13 + 12 + 35 or data[0] != 22 or data[3:5] != b"\x00\x00" or data[13] != 1:
        return None
    p = 13 + 12 + 2 + 32
    n = data[p]
    return bytes(data[p + 1:p + 1 + n])


def _server_hello_sid(data):
    """The session id in a ServerHello the server sends (first record, epoch 0)."""
    if len(data) < 13 + 12 + 35 or data[0] != 22 or data[13] != 2:
        return None
    p = 13 + 12 + 2 + 32
    return bytes(data[p + 1:p + 1 + data[p]])


class _Peer:
    def __init__(self, front, addr, cookie):
        self.front = front
        self.addr = addr
        self.conn = SSL.Connection(front.ctx, None)
        self.conn.set_accept_state()
        ssl = self.conn._ssl
        opts = lib.SSL_OP_NO_QUERY_MTU
        if cookie:
            opts |= lib.SSL_OP_COOKIE_EXCHANGE
        lib.SSL_set_options(ssl, opts)
        lib.SSL_set_mtu(ssl, 1280)
        self.ident = None
        self.sid = None
        self.established = False
        self.relay = None

    def flush(self):
        while True:
            try:
                out = self.conn.bio_read(65536)
            except SSL.WantReadError:
                return
            if not out:
                return
            sid = _server_hello_sid(out)
            if sid:
                self.sid = sid
            self.front.sock.sendto(out, self.addr)


class OpensslFront:
    """start() binds 127.0.0.1:<free port> (.port) and relays to coap_port; stop() ends it.

    registry: tools.enos_server.registry.Registry (identity -> PSK);
    bind(relay_key, pk, dk, mode, lifetime): tells the site which device a relay speaks for.
    """

    def __init__(self, registry, coap_port, bind, host="127.0.0.1"):
        self.registry = registry
        self.coap_port = coap_port
        self.bind = bind
        self.host = host
        self.sessions = {}
        self.resumptions = 0
        self.full_handshakes = 0
        self.peers = {}
        self._current = None
        self._secret = os.urandom(16)
        ctx = SSL.Context(SSL.DTLS_SERVER_METHOD)
        ctx.set_cipher_list(CIPHERS)
        ctx.set_session_id(b"enosnb-budget")
        ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
        ctx.set_options(SSL.OP_NO_TICKET)
        ctx.set_cookie_generate_callback(self._cookie)
        ctx.set_cookie_verify_callback(lambda conn, c: hmac.compare_digest(c, self._cookie(conn)))
        self._psk_cb = ffi.callback("unsigned int(SSL *, const char *, unsigned char *, unsigned int)",
                                    self._psk)
        lib.SSL_CTX_set_psk_server_callback(ctx._context, self._psk_cb)
        self.ctx = ctx
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = None

    def _cookie(self, conn):
        addr = self._current.addr if self._current is not None else ("", 0)
        return hmac.new(self._secret, repr(addr).encode(), hashlib.sha256).digest()[:16]

    def _psk(self, ssl, identity, psk_out, max_len):
        ident = ffi.string(identity) if identity != ffi.NULL else b""
        found = self.registry.psk_for(ident)
        if found is None or len(found[0]) > max_len or self._current is None:
            return 0
        key, self._current.ident = found
        ffi.memmove(psk_out, key, len(key))
        return len(key)

    def start(self):
        self._thread = threading.Thread(target=self._loop, name="openssl-front", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for p in self.peers.values():
            if p.relay is not None:
                p.relay.close()
        self.sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _loop(self):
        while not self._stop.is_set():
            relays = {p.relay: p for p in self.peers.values() if p.relay is not None}
            ready, _, _ = select.select([self.sock] + list(relays), [], [], 0.05)
            for s in ready:
                if s is self.sock:
                    data, addr = self.sock.recvfrom(65536)
                    self._from_device(data, addr)
                else:
                    p = relays[s]
                    p.conn.send(s.recv(65536))
                    p.flush()

    def _from_device(self, data, addr):
        sid = _client_hello_sid(data)
        peer = self.peers.get(addr)
        if sid is not None and (peer is None or peer.established):
            known = self.sessions.get(sid) if sid else None
            if peer is not None and peer.relay is not None:
                peer.relay.close()
            peer = self.peers[addr] = _Peer(self, addr, cookie=known is None)
            peer.ident = known
        if peer is None:
            return
        self._current = peer
        try:
            peer.conn.bio_write(data)
            if not peer.established:
                try:
                    peer.conn.do_handshake()
                except SSL.WantReadError:
                    peer.flush()
                    return
                except SSL.Error:
                    peer.flush()
                    self.peers.pop(addr, None)
                    return
                peer.flush()
                peer.established = True
                if peer.sid and peer.ident is not None:
                    self.sessions[peer.sid] = peer.ident
                if lib.SSL_session_reused(peer.conn._ssl):
                    self.resumptions += 1
                else:
                    self.full_handshakes += 1
                self._open_relay(peer)
            while True:
                try:
                    plain = peer.conn.recv(65536)
                except (SSL.WantReadError, SSL.ZeroReturnError):
                    break
                except SSL.Error:
                    self.peers.pop(addr, None)
                    return
                if not plain:
                    break
                peer.relay.send(plain)
            peer.flush()
        finally:
            self._current = None

    def _open_relay(self, peer):
        r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r.bind((self.host, 0))
        r.connect((self.host, self.coap_port))
        peer.relay = r
        host, port = r.getsockname()[:2]
        pk, dk, mode, lifetime = peer.ident
        self.bind("%s:%d" % (host, port), pk, dk, mode, lifetime)
