"""DTLS 1.2 PSK termination in front of the CoAP site, with Mbed TLS (python-mbedtls).

One UDP socket takes every peer. Each peer gets an Mbed TLS server context driven through
memory buffers (cookie exchange with HelloVerifyRequest, RFC 6347 §4.2.1), and, once the
handshake is over, its own relay socket on 127.0.0.1 to the plain CoAP port. The site sees
the relay's address; the front end binds that address to the PSK identity the peer proved,
so authorisation needs no CoAP request (enos-coap.md §5.3).

The PSK store is a mapping queried by identity during the handshake: it parses
`{pk},{dk},{mode},{lifetime}`, looks the secret up in the registry and derives the key
(§5.2). An unknown identity fails the handshake; a wrong secret fails the Finished check.
Suites: TLS_PSK_WITH_AES_128_CCM_8 and TLS_PSK_WITH_AES_128_CBC_SHA256 (§5.1).

Session resumption (RFC 5246 §7.3 abbreviated handshake, by session id): python-mbedtls
does not expose Mbed TLS's session cache, so enable_session_cache() installs
mbedtls_ssl_cache_get/set into the context's mbedtls_ssl_config through ctypes. A resumed
handshake carries no PSK identity, so the front end remembers which identity each session
id (read from its own ServerHello) belongs to. The cookie exchange (HelloVerifyRequest)
is on by default and can be switched off the same way (hello_verify=False), to measure
what a server without it costs.
"""
import asyncio
import ctypes
import glob
import os
from collections.abc import Mapping

import mbedtls

from mbedtls import tls
from mbedtls._tls import HelloVerifyRequest
from mbedtls.exceptions import TLSError

CIPHERS = ("TLS-PSK-WITH-AES-128-CCM-8", "TLS-PSK-WITH-AES-128-CBC-SHA256")
MAX_PEERS = 256
MAX_SESSIONS = 1024
_HS_SERVER_HELLO = 2


def server_hello_session_id(datagram):
    """The session id of a plaintext ServerHello in an outgoing flight, or None."""
    p = 0
    while p + 13 <= len(datagram):
        ctype, epoch, length = datagram[p], datagram[p + 3:p + 5], \
            int.from_bytes(datagram[p + 11:p + 13], "big")
        body = datagram[p + 13:p + 13 + length]
        p += 13 + length
        # Handshake header 12 bytes, then version 2, random 32, session id length 1.
        if ctype == 22 and epoch == b"\x00\x00" and len(body) >= 47 and \
                body[0] == _HS_SERVER_HELLO:
            n = body[46]
            return bytes(body[47:47 + n]) if n else None
    return None


def _mbedtls_config(context):
    """(lib, words, i): the ssl config of a python-mbedtls ServerContext seen as 64-bit words,
    ciphersuite_list[4] starting at words[i]; None if the layout is not Mbed TLS 2.28's.

    _BaseContext holds a pointer to the object that embeds mbedtls_ssl_config, whose first
    members are (ssl.h, 2.28): ciphersuite_list[4] (four equal pointers), f_dbg, p_dbg,
    f_rng, p_rng, f_get_cache, f_set_cache, p_cache, f_sni, p_sni, f_vrfy, p_vrfy, f_psk,
    p_psk, f_cookie_write, f_cookie_check, p_cookie. The cookie callbacks are recognised by
    their addresses, which anchors the guess.
    """
    libs = glob.glob(os.path.join(os.path.dirname(os.path.dirname(mbedtls.__file__)),
                                  "python_mbedtls.libs", "libmbedtls-*.so*"))
    if not libs:
        return None
    lib = ctypes.CDLL(libs[0])
    holder = ctypes.c_uint64.from_address(id(context) + 16).value
    if not holder:
        return None
    words = (ctypes.c_uint64 * 64).from_address(holder)
    cookie_write = ctypes.cast(lib.mbedtls_ssl_cookie_write, ctypes.c_void_p).value
    for i in range(0, 40):
        if words[i] and words[i] == words[i + 1] == words[i + 2] == words[i + 3] and \
                words[i + 17] == cookie_write:
            return lib, words, i
    return None


def enable_session_cache(context):
    """Install Mbed TLS's session cache (mbedtls_ssl_conf_session_cache); False if unknown layout."""
    found = _mbedtls_config(context)
    if found is None:
        return False
    lib, words, i = found
    cache = ctypes.create_string_buffer(1024)
    lib.mbedtls_ssl_cache_init(cache)
    words[i + 8] = ctypes.cast(lib.mbedtls_ssl_cache_get, ctypes.c_void_p).value
    words[i + 9] = ctypes.cast(lib.mbedtls_ssl_cache_set, ctypes.c_void_p).value
    words[i + 10] = ctypes.addressof(cache)
    context._enos_cache = cache
    return True


def disable_hello_verify(context):
    """No HelloVerifyRequest round trip (mbedtls_ssl_conf_dtls_cookies(conf, NULL, NULL, NULL))."""
    found = _mbedtls_config(context)
    if found is None:
        return False
    _, words, i = found
    words[i + 17] = 0
    words[i + 18] = 0
    return True


class _PskStore(Mapping):
    """Identity -> PSK, looked up lazily; remembers which identity the current peer used."""

    def __init__(self, registry):
        self.registry = registry
        self.current = None

    def __getitem__(self, identity):
        found = self.registry.psk_for(identity)
        if found is None:
            raise KeyError(identity)
        if self.current is not None:
            self.current.identity = found[1]
        return found[0]

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0


class _Relay(asyncio.DatagramProtocol):
    def __init__(self, peer):
        self.peer = peer

    def datagram_received(self, data, addr):
        self.peer.to_device(data)


class _Peer:
    def __init__(self, front, addr):
        self.front = front
        self.addr = addr
        self.buf = front.context.wrap_buffers()
        self.buf.setcookieparam(repr(addr).encode())
        self.identity = None
        self.established = False
        self.relay = None
        self.relay_key = None
        self.closed = False
        self.session_id = None
        self.resumed = False

    def flush(self):
        while True:
            out = self.buf.peek_outgoing(16384)
            if not out:
                return
            self.buf.consume_outgoing(len(out))
            if not self.established:
                sid = server_hello_session_id(out)
                if sid is not None:
                    self.session_id = sid
            self.front.transport.sendto(out, self.addr)

    def to_device(self, data):
        if self.closed:
            return
        self.buf.write(data)
        self.flush()

    async def from_device(self, data):
        # One record at a time, so that each read returns one record's plaintext: one
        # CoAP message (a datagram may carry CCS + Finished + application data).
        p = 0
        while p < len(data) and not self.closed:
            n = 13 + int.from_bytes(data[p + 11:p + 13], "big") if p + 13 <= len(data) else 0
            if n == 0 or p + n > len(data):
                return
            await self._record(data[p:p + n])
            p += n

    async def _record(self, data):
        self.buf.receive_from_network(data)
        if not self.established:
            self.front.store.current = self
            try:
                while self.buf._handshake_state != tls.HandshakeStep.HANDSHAKE_OVER:
                    try:
                        self.buf.do_handshake()
                    except tls.WantWriteError:
                        continue
                    except tls.WantReadError:
                        break
                    except HelloVerifyRequest:
                        self.flush()
                        self.buf.setcookieparam(repr(self.addr).encode())
                        return
            finally:
                self.front.store.current = None
            self.flush()
            if self.buf._handshake_state != tls.HandshakeStep.HANDSHAKE_OVER:
                return
            if self.identity is None:
                # No PSK lookup happened: an abbreviated handshake of a cached session.
                self.identity = self.front.sessions.get(self.session_id)
                self.resumed = True
                if self.identity is None:
                    self.front.drop(self.addr)
                    return
            elif self.session_id is not None:
                self.front.remember(self.session_id, self.identity)
            self.established = True
            await self._open_relay()
        while True:
            try:
                plain = self.buf.read(16384)
            except tls.WantReadError:
                break
            except tls.RaggedEOF:
                self.front.drop(self.addr)
                return
            if not plain:
                break
            self.relay.sendto(plain)
        self.flush()

    async def _open_relay(self):
        loop = asyncio.get_running_loop()
        self.relay, _ = await loop.create_datagram_endpoint(
            lambda: _Relay(self), local_addr=("127.0.0.1", 0),
            remote_addr=("127.0.0.1", self.front.coap_port))
        host, port = self.relay.get_extra_info("sockname")[:2]
        self.relay_key = "%s:%d" % (host, port)
        pk, dk, mode, lifetime = self.identity
        self.front.site.bind_dtls(self.relay_key, pk, dk, mode, lifetime)
        suite = self.buf.cipher()
        if isinstance(suite, tuple):
            suite = suite[0]
        self.front.log("dtls %s: %s as %s,%s,%d,%d (%s)" % (
            "%s:%d" % self.addr[:2], "session resumed" if self.resumed else "handshake ok",
            pk, dk, mode, lifetime, suite))
        if self.resumed:
            self.front.resumptions += 1

    def close(self):
        self.closed = True
        if self.relay is not None:
            self.relay.close()
        if self.relay_key is not None:
            self.front.site.unbind(self.relay_key)


class DtlsFront(asyncio.DatagramProtocol):
    def __init__(self, registry, site, coap_port, log=print, hello_verify=True):
        self.store = _PskStore(registry)
        conf = tls.DTLSConfiguration(pre_shared_key_store=self.store,
                                     validate_certificates=False, ciphers=CIPHERS,
                                     handshake_timeout_min=1.0, handshake_timeout_max=8.0)
        self.context = tls.ServerContext(conf)
        self.resumption = enable_session_cache(self.context)
        if not hello_verify and not disable_hello_verify(self.context):
            raise RuntimeError("cannot switch HelloVerifyRequest off with this Mbed TLS build")
        self.sessions = {}
        self.resumptions = 0
        self.site = site
        self.coap_port = coap_port
        self.log = log or (lambda *a: None)
        self.peers = {}
        self.transport = None
        # One datagram at a time: a handshake may await its relay socket.
        self._lock = asyncio.Lock()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        asyncio.ensure_future(self._handle(data, addr))

    async def _handle(self, data, addr):
        async with self._lock:
            await self._handle_locked(data, addr)

    async def _handle_locked(self, data, addr):
        peer = self.peers.get(addr)
        # A ClientHello (content type 22, epoch 0) from an established peer starts over.
        if peer is not None and peer.established and len(data) > 13 and data[0] == 22 and \
                data[3:5] == b"\x00\x00":
            self.drop(addr)
            peer = None
        if peer is None:
            if len(data) < 13 or data[0] != 22:
                return
            if len(self.peers) >= MAX_PEERS:
                oldest = next(iter(self.peers))
                self.drop(oldest)
            peer = self.peers[addr] = _Peer(self, addr)
        try:
            await peer.from_device(data)
        except (TLSError, ValueError) as e:
            self.log("dtls %s:%d: %s" % (addr[0], addr[1], e))
            peer.flush()
            self.drop(addr)

    def remember(self, session_id, identity):
        if len(self.sessions) >= MAX_SESSIONS:
            self.sessions.pop(next(iter(self.sessions)))
        self.sessions[session_id] = identity

    def drop(self, addr):
        peer = self.peers.pop(addr, None)
        if peer is not None:
            peer.close()

    def close(self):
        for addr in list(self.peers):
            self.drop(addr)
