"""DTLS 1.2 PSK termination in front of the CoAP site, with Mbed TLS (python-mbedtls).

One UDP socket takes every peer. The front end answers ClientHellos itself, statelessly
(RFC 6347 §4.2.1): a ClientHello without a valid cookie gets a HelloVerifyRequest carrying
a 16-byte cookie, HMAC-SHA256(server secret, client address and port, the ClientHello's
parameters) truncated, and leaves no state behind. Only a ClientHello with a valid cookie,
or one that resumes a session this server issued (dtls.md §16: the server may skip the
cookie on resumption, so a wake from deep sleep costs 2 round trips), gets an Mbed TLS
server context, driven through memory buffers, and, once the handshake is over, its own
relay socket on 127.0.0.1 to the plain CoAP port. The site sees the relay's address; the
front end binds that address to the PSK identity the peer proved, so authorisation needs
no CoAP request (enos-coap.md §5.3).

Amplification: a HelloVerifyRequest (44 bytes) is smaller than the ClientHello it answers.
A resumption is answered without a cookie only for a session id in the cache; its flight
(ServerHello, ChangeCipherSpec, Finished) is under twice the ClientHello, and only a
holder of a session id can trigger it.

The PSK store is a mapping queried by identity during the handshake: it parses
`{pk},{dk},{mode},{lifetime}`, looks the secret up in the registry and derives the key
(§5.2). An unknown identity fails the handshake; a wrong secret fails the Finished check.
Suites: TLS_PSK_WITH_AES_128_CCM_8 and TLS_PSK_WITH_AES_128_CBC_SHA256 (§5.1).

Mbed TLS internals reached through ctypes (python-mbedtls exposes neither):
- its session cache (mbedtls_ssl_cache_get/set, RFC 5246 §7.3 abbreviated handshake by
  session id). A resumed handshake carries no PSK identity, so the front end remembers
  which identity each session id (read from its own ServerHello) belongs to;
- its cookie check, replaced by one that accepts every cookie, since the front end has
  checked it already. mbedtls_ssl_conf_dtls_cookies(conf, NULL, NULL, NULL) cannot be used:
  Mbed TLS 2.28's ssl_parse_client_hello then rejects any ClientHello with a non-empty cookie
  ("bad client hello message", no alert), and stripping the cookie before handing the
  ClientHello over would change the handshake transcript (it hashes the message as
  received), so the Finished messages would not verify. With the cookie accepted, Mbed TLS
  copies the ClientHello's message_seq (1 after a HelloVerifyRequest, 0 on resumption) into
  its own and its record sequence number into the ServerHello's, as RFC 6347 §4.2.1 and
  §4.2.2 want, so no rewriting is needed.
If the memory layout is not Mbed TLS 2.28's, the front end falls back to Mbed TLS's own
cookie exchange (32-byte cookies, also on resumption) and says so in the log.
hello_verify=False switches the cookie exchange off altogether, to measure what a server
without it costs; resume_cookie=True asks for a cookie on resumption too (a wake then costs
3 round trips), resumption=False keeps no sessions (every wake is a full handshake). These
are the server variants `make budget` compares (report.wake_nat.*); a front end with
Connection ID (RFC 9146) is tools/enos_server/cid_front.py.
"""
import asyncio
import ctypes
import glob
import hashlib
import hmac
import os
import time
from collections.abc import Mapping

import mbedtls

from mbedtls import tls
from mbedtls._tls import HelloVerifyRequest
from mbedtls.exceptions import TLSError

CIPHERS = ("TLS-PSK-WITH-AES-128-CCM-8", "TLS-PSK-WITH-AES-128-CBC-SHA256")
MAX_PEERS = 256
MAX_SESSIONS = 1024
# Mbed TLS's default cache timeout (MBEDTLS_SSL_CACHE_DEFAULT_TIMEOUT), set explicitly so
# that the front end's own session table and the cache expire together.
SESSION_LIFETIME_S = 86400
COOKIE_LEN = 16
# The cookie secret changes this often; cookies made with the previous one still verify,
# so a cookie lives at least this long (plenty for an NB-IoT round trip).
COOKIE_SECRET_LIFETIME_S = 300
_CT_HANDSHAKE = 22
_HS_CLIENT_HELLO = 1
_HS_SERVER_HELLO = 2
_HS_HELLO_VERIFY_REQUEST = 3
_DTLS_1_0 = b"\xfe\xff"


def server_hello_session_id(datagram):
    """The session id of a plaintext ServerHello in an outgoing flight, or None."""
    p = 0
    while p + 13 <= len(datagram):
        ctype, epoch, length = datagram[p], datagram[p + 3:p + 5], \
            int.from_bytes(datagram[p + 11:p + 13], "big")
        body = datagram[p + 13:p + 13 + length]
        p += 13 + length
        # Handshake header 12 bytes, then version 2, random 32, session id length 1.
        if ctype == _CT_HANDSHAKE and epoch == b"\x00\x00" and len(body) >= 47 and \
                body[0] == _HS_SERVER_HELLO:
            n = body[46]
            return bytes(body[47:47 + n]) if n else None
    return None


def is_client_hello(datagram):
    """Whether the datagram starts with a plaintext (epoch 0) ClientHello record."""
    return len(datagram) >= 25 and datagram[0] == _CT_HANDSHAKE and \
        datagram[3:5] == b"\x00\x00" and datagram[13] == _HS_CLIENT_HELLO


class ClientHello:
    """The fields of a ClientHello the cookie exchange needs (RFC 6347 §4.2.1, §4.3.2).

    params is the body without the cookie field: version, random, session id, suites,
    compression and extensions, which the second ClientHello repeats unchanged.
    """
    __slots__ = ("record_seq", "message_seq", "random", "session_id", "cookie", "params")

    def __init__(self, record_seq, message_seq, random, session_id, cookie, params):
        self.record_seq = record_seq
        self.message_seq = message_seq
        self.random = random
        self.session_id = session_id
        self.cookie = cookie
        self.params = params


def parse_client_hello(datagram):
    """The ClientHello in the datagram's first record, or None unless it is one whole,
    unfragmented message (Mbed TLS does not reassemble ClientHellos either)."""
    if not is_client_hello(datagram):
        return None
    length = int.from_bytes(datagram[11:13], "big")
    if 13 + length > len(datagram) or length < 12:
        return None
    hs = datagram[13:13 + length]
    body_len = int.from_bytes(hs[1:4], "big")
    if hs[6:9] != b"\x00\x00\x00" or hs[9:12] != hs[1:4] or 12 + body_len != length:
        return None
    body = hs[12:]
    # version 2, random 32, session id <0..32>, cookie <0..255>, then at least the
    # suites length (2) and the compression length (1).
    if len(body) < 35 or body[34] > 32:
        return None
    c = 35 + body[34]
    if c >= len(body) or c + 1 + body[c] + 3 > len(body):
        return None
    end = c + 1 + body[c]
    return ClientHello(bytes(datagram[5:11]), int.from_bytes(hs[4:6], "big"),
                       bytes(body[2:34]), bytes(body[35:c]), bytes(body[c + 1:end]),
                       bytes(body[:c]) + bytes(body[end:]))


def hello_verify_request(record_seq, cookie):
    """A HelloVerifyRequest datagram as OpenSSL sends it (dtls.md §6, RFC 6347 §4.2.1):
    record and server_version FE FF, message_seq 0, the ClientHello's record sequence."""
    body = _DTLS_1_0 + bytes((len(cookie),)) + cookie
    n = len(body).to_bytes(3, "big")
    msg = bytes((_HS_HELLO_VERIFY_REQUEST,)) + n + b"\x00\x00" + b"\x00\x00\x00" + n + body
    return bytes((_CT_HANDSHAKE,)) + _DTLS_1_0 + b"\x00\x00" + record_seq + \
        len(msg).to_bytes(2, "big") + msg


class CookieJar:
    """Stateless cookies: HMAC-SHA256(secret, address | port | ClientHello parameters),
    truncated to COOKIE_LEN bytes. The secret is replaced every lifetime_s seconds; the
    previous one is still accepted, older cookies are not."""

    def __init__(self, lifetime_s=COOKIE_SECRET_LIFETIME_S, clock=time.monotonic):
        self.lifetime_s = lifetime_s
        self.clock = clock
        self._secrets = (os.urandom(32), os.urandom(32))
        self._since = clock()

    def rotate(self):
        self._secrets = (os.urandom(32), self._secrets[0])
        self._since = self.clock()

    def _current(self):
        if self.clock() - self._since >= self.lifetime_s:
            self.rotate()
        return self._secrets

    @staticmethod
    def _mac(secret, hello, addr):
        client = ("%s|%d|" % (addr[0], addr[1])).encode()
        return hmac.new(secret, client + hello.params, hashlib.sha256).digest()[:COOKIE_LEN]

    def make(self, hello, addr):
        return self._mac(self._current()[0], hello, addr)

    def valid(self, hello, addr):
        if len(hello.cookie) != COOKIE_LEN:
            return False
        ok = False
        for secret in self._current():
            ok |= hmac.compare_digest(self._mac(secret, hello, addr), hello.cookie)
        return ok


def _probe(setter, nargs):
    """Word offsets at which a mbedtls_ssl_conf_* setter stores its arguments, found by
    calling it on a scratch buffer with the values 1..nargs."""
    scratch = (ctypes.c_uint64 * 128)()
    setter(ctypes.c_void_p(ctypes.addressof(scratch)),
           *[ctypes.c_void_p(v) for v in range(1, nargs + 1)])
    where = {scratch[k]: k for k in range(128) if scratch[k]}
    return [where.get(v) for v in range(1, nargs + 1)]


def _mbedtls_config(context):
    """(lib, address of the mbedtls_ssl_config) of a python-mbedtls ServerContext, or None
    if it cannot be found. Found once per context, before anything in it is changed.

    _BaseContext holds a pointer to the object that embeds mbedtls_ssl_config. Where
    mbedtls_ssl_conf_dtls_cookies stores f_cookie_write and f_cookie_check is learnt by
    calling it on a scratch buffer; python-mbedtls installs mbedtls_ssl_cookie_write/check,
    whose addresses, next to each other, locate the config. All changes then go through
    Mbed TLS's own setters.
    """
    found = getattr(context, "_enos_config", None)
    if found is not None:
        return found
    libs = glob.glob(os.path.join(os.path.dirname(os.path.dirname(mbedtls.__file__)),
                                  "python_mbedtls.libs", "libmbedtls-*.so*"))
    if not libs:
        return None
    lib = ctypes.CDLL(libs[0])
    at_write, at_check, _ = _probe(lib.mbedtls_ssl_conf_dtls_cookies, 3)
    if at_write is None or at_check != at_write + 1:
        return None
    holder = ctypes.c_uint64.from_address(id(context) + 16).value
    if not holder:
        return None
    words = (ctypes.c_uint64 * 96).from_address(holder)
    cookie_write = ctypes.cast(lib.mbedtls_ssl_cookie_write, ctypes.c_void_p).value
    cookie_check = ctypes.cast(lib.mbedtls_ssl_cookie_check, ctypes.c_void_p).value
    for j in range(at_write, 95):
        if words[j] == cookie_write and words[j + 1] == cookie_check:
            context._enos_config = (lib, holder + 8 * (j - at_write))
            return context._enos_config
    return None


def enable_session_cache(context):
    """Install Mbed TLS's session cache (mbedtls_ssl_conf_session_cache), MAX_SESSIONS
    entries for SESSION_LIFETIME_S; False if the config cannot be found."""
    found = _mbedtls_config(context)
    if found is None:
        return False
    lib, conf = found
    cache = ctypes.create_string_buffer(1024)
    lib.mbedtls_ssl_cache_init(cache)
    lib.mbedtls_ssl_cache_set_max_entries(cache, ctypes.c_int(MAX_SESSIONS))
    lib.mbedtls_ssl_cache_set_timeout(cache, ctypes.c_int(SESSION_LIFETIME_S))
    lib.mbedtls_ssl_conf_session_cache(
        ctypes.c_void_p(conf), cache, ctypes.cast(lib.mbedtls_ssl_cache_get, ctypes.c_void_p),
        ctypes.cast(lib.mbedtls_ssl_cache_set, ctypes.c_void_p))
    context._enos_cache = cache
    context._enos_lib = lib
    return True


def flush_session_cache(context):
    """Forgets every session Mbed TLS cached (a device deleted in the console must not resume)."""
    cache = getattr(context, "_enos_cache", None)
    if cache is None:
        return
    lib = context._enos_lib
    lib.mbedtls_ssl_cache_free(cache)
    lib.mbedtls_ssl_cache_init(cache)
    lib.mbedtls_ssl_cache_set_max_entries(cache, ctypes.c_int(MAX_SESSIONS))
    lib.mbedtls_ssl_cache_set_timeout(cache, ctypes.c_int(SESSION_LIFETIME_S))


_COOKIE_CHECK_T = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                   ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t)


@_COOKIE_CHECK_T
def _cookie_checked_by_front(ctx, cookie, cookie_len, client_id, client_id_len):
    return 0


def accept_front_cookies(context):
    """mbedtls_ssl_conf_dtls_cookies(conf, NULL, accept-all, NULL): Mbed TLS sends no
    HelloVerifyRequest of its own and takes the ClientHello the front end has checked, cookie
    and all. False (nothing changed) if the config cannot be found."""
    found = _mbedtls_config(context)
    if found is None:
        return False
    lib, conf = found
    lib.mbedtls_ssl_conf_dtls_cookies(ctypes.c_void_p(conf), None, _cookie_checked_by_front,
                                      None)
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
    def __init__(self, front, addr, random):
        self.front = front
        self.addr = addr
        self.random = random
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
                        # Only when Mbed TLS does the cookie exchange itself (the fallback).
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
                self.identity = self.front.session_identity(self.session_id)
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
        suite = self.suite_name()
        self.front.log("dtls %s: %s as %s,%s,%d,%d (%s)" % (
            "%s:%d" % self.addr[:2], "session resumed" if self.resumed else "handshake ok",
            pk, dk, mode, lifetime, suite))
        if self.resumed:
            self.front.resumptions += 1

    def suite_name(self):
        suite = self.buf.cipher()
        return suite[0] if isinstance(suite, tuple) else suite

    def close(self):
        self.closed = True
        if self.relay is not None:
            self.relay.close()
        if self.relay_key is not None:
            self.front.site.unbind(self.relay_key)


class DtlsFront(asyncio.DatagramProtocol):
    """The DTLS server on one UDP socket. Counters: hello_verifies (HelloVerifyRequests the
    front end sent), resumptions (abbreviated handshakes completed)."""

    peer_class = None  # _Peer (Mbed TLS); CidFront has its own

    def __init__(self, registry, site, coap_port, log=print, hello_verify=True,
                 clock=time.monotonic, resume_cookie=False, resumption=True):
        self.store = _PskStore(registry)
        conf = tls.DTLSConfiguration(pre_shared_key_store=self.store,
                                     validate_certificates=False, ciphers=CIPHERS,
                                     handshake_timeout_min=1.0, handshake_timeout_max=8.0)
        self.context = tls.ServerContext(conf)
        self.log = log or (lambda *a: None)
        self.resumption = resumption and enable_session_cache(self.context)
        self.resume_cookie = resume_cookie
        # With Mbed TLS's check replaced, the front end's own cookie exchange is the only one.
        self.stateless_cookies = accept_front_cookies(self.context)
        if not self.stateless_cookies:
            if not hello_verify:
                raise RuntimeError("cannot switch HelloVerifyRequest off with this Mbed TLS "
                                   "build (unknown mbedtls_ssl_config layout)")
            self.log("dtls: unknown Mbed TLS layout, Mbed TLS does the cookie exchange "
                     "(32-byte cookies, also on resumption)")
        self.hello_verify = hello_verify
        self.clock = clock
        self.cookies = CookieJar(clock=clock)
        self.hello_verifies = 0
        self.sessions = {}
        self.resumptions = 0
        self.site = site
        self.coap_port = coap_port
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
        if is_client_hello(data):
            hello = parse_client_hello(data)
            if hello is None or not self._admit(hello, addr):
                return
            # An admitted ClientHello that is not a retransmission of the current one starts
            # over (RFC 6347 §4.2.8: the client lost its state, e.g. after deep sleep).
            if peer is not None and (peer.established or peer.random != hello.random):
                self.drop(addr)
                peer = None
            if peer is None:
                if len(self.peers) >= MAX_PEERS:
                    self.drop(next(iter(self.peers)))
                peer = self.peers[addr] = (self.peer_class or _Peer)(self, addr, hello.random)
        elif peer is None:
            return
        try:
            await peer.from_device(data)
        except (TLSError, ValueError) as e:
            self.log("dtls %s:%d: %s" % (addr[0], addr[1], e))
            peer.flush()
            self.drop(addr)

    def _admit(self, hello, addr):
        """Whether the ClientHello may reach Mbed TLS; if not, answer with a
        HelloVerifyRequest (a fresh cookie) and keep nothing."""
        if not self.hello_verify or not self.stateless_cookies:
            return True
        if hello.cookie:
            if self.cookies.valid(hello, addr):
                return True
        elif not self.resume_cookie and self.session_identity(hello.session_id) is not None:
            return True
        self.hello_verifies += 1
        self.transport.sendto(hello_verify_request(hello.record_seq,
                                                   self.cookies.make(hello, addr)), addr)
        return False

    def remember(self, session_id, identity):
        if not self.resumption:
            return
        if len(self.sessions) >= MAX_SESSIONS:
            self.sessions.pop(next(iter(self.sessions)))
        self.sessions[session_id] = (identity, self.clock())

    def session_identity(self, session_id):
        """The PSK identity of a session this server issued and still caches, or None."""
        found = self.sessions.get(session_id) if session_id else None
        if found is None:
            return None
        if self.clock() - found[1] >= SESSION_LIFETIME_S:
            del self.sessions[session_id]
            return None
        return found[0]

    def drop(self, addr):
        peer = self.peers.pop(addr, None)
        if peer is not None:
            peer.close()

    def close(self):
        for addr in list(self.peers):
            self.drop(addr)
