"""CoAP client: confirmable requests over any datagram endpoint.

RFC 7252 §4.2 (retransmission of CON with exponential back-off), §4.4 (message IDs),
§4.5 (duplicate detection), §4.8 (transmission parameters), §5.2 (piggybacked and separate
responses), §5.3 (tokens and matching), §5.4.1 (unrecognised critical options); RFC 7959 §2
(Block1 uploads and Block2 downloads, early negotiation, Size1/Size2, 2.31, 4.08, 4.13).

One exchange at a time (NSTART = 1): request() returns only when the exchange is over.
Every request message, including each block of a block-wise transfer, gets a fresh message
ID and a fresh random token; EnOS caches responses by (MID, token), so a pair is never reused
(enos-coap.md §3.2, §3.3). Fresh tokens per block are allowed by RFC 7959 §2.3 and
RFC 9175 §3; servers match the blocks of one transfer by endpoint and options.

Matching (§5.3.2): an ACK or RST must carry the request's MID, a response the request's token.
The endpoint only delivers datagrams from the peer (a connected socket, a DTLS session, the
modem socket), which is the "expected peer" check. Anything else, malformed, late or a
duplicate, is dropped without disturbing the exchange; a duplicate CON response is ACKed
again, any other CON is answered with RST (§4.2, §4.3).
"""
from micropython import const

from enosnb import rng
from enosnb.clock import SYSTEM
from enosnb.coap import codes
from enosnb.coap import options as opt
from enosnb.coap.errors import CoapError, CoapFormatError, CoapReset, CoapTimeout
from enosnb.coap.message import ACK, CON, RST, Message, decode, unknown_critical

# RFC 7252 §4.8.2: MAX_LATENCY, and PROCESSING_DELAY taken as ACK_TIMEOUT.
MAX_LATENCY_MS = const(100000)
# restore() skips this many message IDs: enough for the requests a device may have sent
# after its last state() (a crash before saving), small enough that many reboots inside one
# EXCHANGE_LIFETIME do not wrap the 16-bit space.
MID_JUMP = const(512)
_STATE_VERSION = const(1)
_RECENT = const(8)
_MAX_RESTARTS = const(2)
# What _accept returns for an empty ACK (§5.2.2): a separate response follows.
_EMPTY_ACK = object()


class Timing:
    """RFC 7252 §4.8 transmission parameters, in milliseconds.

    exchange_timeout_ms bounds a whole exchange from its first transmission, including the
    wait for a separate response after an empty ACK; by default MAX_TRANSMIT_WAIT (§4.8.2).
    """

    def __init__(self, ack_timeout_ms=2000, ack_random_factor=1.5, max_retransmit=4,
                 exchange_timeout_ms=None):
        if ack_timeout_ms <= 0 or ack_random_factor < 1 or max_retransmit < 0:
            raise CoapError("timing needs ACK_TIMEOUT > 0, ACK_RANDOM_FACTOR >= 1 and "
                            "MAX_RETRANSMIT >= 0")
        self.ack_timeout_ms = ack_timeout_ms
        self.ack_random_factor = ack_random_factor
        self.max_retransmit = max_retransmit
        if exchange_timeout_ms is None:
            exchange_timeout_ms = self.max_transmit_wait_ms()
        self.exchange_timeout_ms = exchange_timeout_ms

    def max_transmit_span_ms(self):
        return int(self.ack_timeout_ms * ((1 << self.max_retransmit) - 1) * self.ack_random_factor)

    def max_transmit_wait_ms(self):
        return int(self.ack_timeout_ms * ((2 << self.max_retransmit) - 1) * self.ack_random_factor)

    def exchange_lifetime_ms(self):
        return self.max_transmit_span_ms() + 2 * MAX_LATENCY_MS + self.ack_timeout_ms

    def initial_timeout_ms(self):
        """§4.2: a random duration between ACK_TIMEOUT and ACK_TIMEOUT * ACK_RANDOM_FACTOR."""
        span = int(self.ack_timeout_ms * (self.ack_random_factor - 1))
        r = rng.urandom(2)
        return self.ack_timeout_ms + span * ((r[0] << 8) | r[1]) // 0xFFFF

    def __repr__(self):
        return "Timing(ack_timeout_ms=%d, ack_random_factor=%s, max_retransmit=%d, " \
               "exchange_timeout_ms=%d)" % (self.ack_timeout_ms, self.ack_random_factor,
                                            self.max_retransmit, self.exchange_timeout_ms)


# RFC 7252 defaults: loopback, LAN, Wi-Fi.
RFC_TIMING = Timing()
# NB-IoT: round trips of 1-10 s, more in coverage class 2 (enos-coap.md §3.2, Q12).
NBIOT_TIMING = Timing(ack_timeout_ms=15000)


class Result:
    """The outcome of one request: the last response, the assembled body and its cost.

    round_trips counts request messages answered (one per block); retransmissions counts
    repeated transmissions; the datagram and byte counters include ACKs and RSTs the client
    sent and every datagram it received, stray ones too.
    """

    def __init__(self):
        self.response = None
        self.code = 0
        self.payload = b""
        self.datagrams_sent = 0
        self.datagrams_received = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.retransmissions = 0
        self.round_trips = 0

    def option(self, number):
        return self.response.option(number) if self.response is not None else None

    def options(self, number):
        return self.response.options_of(number) if self.response is not None else []

    def uint_option(self, number):
        return self.response.uint_option(number) if self.response is not None else None

    def ok(self):
        return codes.is_success(self.code)

    def __repr__(self):
        return "<Result %s, %d bytes; sent %d datagrams/%d bytes, received %d/%d, " \
               "%d retransmissions, %d round trips>" % (
                   codes.code_name(self.code), len(self.payload), self.datagrams_sent,
                   self.bytes_sent, self.datagrams_received, self.bytes_received,
                   self.retransmissions, self.round_trips)


def _what(msg):
    """'POST /a/b' for error messages ('0.08 /a/b' for a method without a name)."""
    name = codes.code_name(msg.code)
    return "%s %s" % (name[5:] or name, msg.path())


def _split_uri(path):
    q = path.find("?")
    if q < 0:
        return path, ()
    return path[:q], [s for s in path[q + 1:].split("&") if s]


class Client:
    """CoAP client over a datagram endpoint (send, recv(timeout_ms), mtu).

    block_szx: block size exponent (16 << szx bytes) for Block1 uploads and Block2 early
    negotiation; 4 (256 bytes) keeps CoAP + DTLS inside a 512-byte modem datagram.
    max_body: largest response body a Block2 download assembles.
    trace: optional callable(direction, datagram) with direction "send" or "recv"
    (the command-line client prints every datagram with it).
    """

    def __init__(self, endpoint, clock=SYSTEM, timing=RFC_TIMING, block_szx=4, token_len=4,
                 max_body=16384, trace=None):
        if not 0 <= block_szx <= 6:
            raise CoapError("block SZX %d is out of range; use 0..6 (16..1024-byte blocks)"
                            % block_szx)
        if not 4 <= token_len <= 8:
            raise CoapError("token length %d: use 4..8 random bytes" % token_len)
        self.endpoint = endpoint
        self.timing = timing
        self.block_szx = block_szx
        self.max_body = max_body
        self.trace = trace
        self._clock = clock
        self._token_len = token_len
        r = rng.urandom(2)
        self._mid = (r[0] << 8) | r[1]
        # Peer MIDs of CON responses already ACKed (§4.5): a duplicate is ACKed again.
        self._recent = [None] * _RECENT
        # Requests are encoded here (one exchange at a time): the buffer keeps its capacity,
        # so a request allocates only the bytes copy that is sent and retransmitted.
        self._encode_buf = bytearray()

    # --- message-ID state across deep sleep (§4.4, enos-coap.md §3.3) ---

    def state(self):
        """3 bytes to keep across deep sleep: the next message ID."""
        return bytes((_STATE_VERSION, self._mid >> 8, self._mid & 0xFF))

    def restore(self, state):
        """Continue after a reboot from state(); skips MID_JUMP IDs so that a (MID, token)
        pair is never reused within EXCHANGE_LIFETIME, even if requests followed the save."""
        if state is None or len(state) != 3 or state[0] != _STATE_VERSION:
            raise CoapError("CoAP client state must be the 3 bytes Client.state() returned; "
                            "discard it and keep the random start")
        self._mid = (((state[1] << 8) | state[2]) + MID_JUMP) & 0xFFFF

    # --- requests ---

    def get(self, path, **kw):
        return self.request(codes.GET, path, **kw)

    def post(self, path, payload=b"", **kw):
        return self.request(codes.POST, path, payload, **kw)

    def put(self, path, payload=b"", **kw):
        return self.request(codes.PUT, path, payload, **kw)

    def delete(self, path, **kw):
        return self.request(codes.DELETE, path, **kw)

    def request(self, method, path, payload=b"", content_format=None, options=(), accept=None):
        """Send one request (block-wise when needed) and return its Result.

        Any response code is a Result; the client raises CoapTimeout (no answer), CoapReset
        (the server sent RST) and CoapError (anything else) only. The exception carries the
        cost so far as .result.
        """
        res = Result()
        if isinstance(payload, str):
            payload = payload.encode()
        path, query = _split_uri(path)
        extra = list(options)
        if content_format is not None:
            extra.append((opt.CONTENT_FORMAT, content_format))
        if accept is not None:
            extra.append((opt.ACCEPT, accept))
        req = (method, path, query, extra)
        try:
            if len(payload) > opt.szx_size(self.block_szx):
                resp = self._upload(res, req, payload, self.block_szx)
            else:
                m = self._message(req, payload)
                if method == codes.GET:
                    # Early negotiation (RFC 7959 §2.4): block 0, no M, our SZX: the uint SZX.
                    m.add_option(opt.BLOCK2, self.block_szx)
                resp = self._exchange(m, res)
                if resp.code == codes.REQUEST_ENTITY_TOO_LARGE and payload:
                    szx = self._smaller_block1(resp, len(payload))
                    if szx is not None:
                        resp = self._upload(res, req, payload, szx)
            self._download(res, req, resp)
        except CoapError as e:
            e.result = res
            raise
        return res

    def _message(self, req, payload=b""):
        m = Message(CON, req[0], payload=payload)  # _exchange sets MID and token
        m.set_path(req[1])
        for q in req[2]:
            m.add_option(opt.URI_QUERY, q)
        for number, value in req[3]:
            m.add_option(number, value)
        return m

    @staticmethod
    def _smaller_block1(resp, size):
        """RFC 7959 §2.9.3: a 4.13 with Block1 names the block size the server accepts; its
        SZX when those blocks are smaller than size bytes, else None."""
        b1 = resp.uint_option(opt.BLOCK1)
        if b1 is None:
            return None
        rszx = opt.block_parse(b1)[2]
        return rszx if opt.szx_size(rszx) < size else None

    def _upload(self, res, req, payload, szx):
        """RFC 7959 §2.5: Block1 upload; returns the final response."""
        total = len(payload)
        offset = 0
        restarts = 0
        while True:
            size = opt.szx_size(szx)
            num = offset // size
            end = min(offset + size, total)
            more = end < total
            m = self._message(req, bytes(payload[offset:end]))
            m.add_option(opt.BLOCK1, opt.block_value(num, more, szx))
            if num == 0:
                m.add_option(opt.SIZE1, total)
            resp = self._exchange(m, res)
            code = resp.code
            if code == codes.REQUEST_ENTITY_INCOMPLETE and restarts < _MAX_RESTARTS:
                # §2.9.2: the server lost the earlier blocks; start over.
                restarts += 1
                offset = 0
                continue
            if code == codes.REQUEST_ENTITY_TOO_LARGE and restarts < _MAX_RESTARTS:
                smaller = self._smaller_block1(resp, size)
                if smaller is not None:
                    restarts += 1
                    szx = smaller
                    offset = 0
                    continue
            if not codes.is_success(code):
                return resp
            b1 = resp.uint_option(opt.BLOCK1)
            if b1 is None:
                if more:
                    raise CoapError("server answered block %d of the %d-byte upload to %s with "
                                    "%s but without Block1: it does not support block-wise "
                                    "uploads; send at most %d bytes"
                                    % (num, total, req[1], codes.code_name(code), size))
                return resp
            rnum, _, rszx = opt.block_parse(b1)
            if rnum != num:
                raise CoapError("server acknowledged upload block %d but block %d was sent"
                                % (rnum, num))
            if not more:
                return resp
            offset = end
            # §2.5: continue at the same offset in the server's smaller blocks.
            szx = min(szx, rszx)

    def _download(self, res, req, resp):
        """RFC 7959 §2.4: fetches the remaining Block2 blocks and sets res.payload."""
        b2 = resp.uint_option(opt.BLOCK2)
        if b2 is None or not codes.is_success(resp.code):
            self._finish(res, resp, resp.payload)
            return
        num, more, szx = opt.block_parse(b2)
        if num != 0:
            raise CoapError("server sent Block2 block %d for a request of block 0" % num)
        size2 = resp.uint_option(opt.SIZE2)
        if size2 is not None and size2 > self.max_body:
            raise CoapError("response body is %d bytes (Size2), more than max_body %d"
                            % (size2, self.max_body))
        if not more:
            self._finish(res, resp, resp.payload)
            return
        body = bytearray(resp.payload)
        etag = resp.option(opt.ETAG)
        while more:
            # RFC 7959 §2.2: a block with M set carries exactly the block size; checking the
            # block itself (not the sum) also stops a server repeating an empty block forever.
            size = opt.szx_size(szx)
            if len(resp.payload) != size:
                raise CoapError("server sent a %d-byte Block2 block of size %d before the "
                                "last block" % (len(resp.payload), size))
            m = self._message(req)
            m.add_option(opt.BLOCK2, opt.block_value(len(body) // size, False, szx))
            resp = self._exchange(m, res)
            if not codes.is_success(resp.code):
                self._finish(res, resp, resp.payload)
                return
            b2 = resp.uint_option(opt.BLOCK2)
            if b2 is None:
                raise CoapError("server stopped the block-wise download at byte %d without "
                                "Block2" % len(body))
            num, more, rszx = opt.block_parse(b2)
            if num * opt.szx_size(rszx) != len(body):
                raise CoapError("server sent Block2 block %d/%d bytes, expected byte offset %d"
                                % (num, opt.szx_size(rszx), len(body)))
            if resp.option(opt.ETAG) != etag:
                raise CoapError("resource changed during the block-wise download (ETag "
                                "differs); repeat the request")
            if len(body) + len(resp.payload) > self.max_body:
                raise CoapError("response body exceeds max_body %d bytes" % self.max_body)
            body.extend(resp.payload)
            szx = rszx
        self._finish(res, resp, body)

    @staticmethod
    def _finish(res, resp, payload):
        res.response = resp
        res.code = resp.code
        res.payload = payload

    # --- one confirmable message exchange (§4.2, §5.2) ---

    def _next_mid(self):
        mid = self._mid
        self._mid = (mid + 1) & 0xFFFF
        return mid

    def _exchange(self, msg, res):
        msg.mid = self._next_mid()
        msg.token = rng.urandom(self._token_len)
        msg.encode_into(self._encode_buf)
        data = bytes(self._encode_buf)
        mtu = self.endpoint.mtu
        if len(data) > mtu:
            raise CoapError("request is %d bytes, more than the link's %d-byte MTU; use a "
                            "smaller block size" % (len(data), mtu))
        clock = self._clock
        timing = self.timing
        timeout = timing.initial_timeout_ms()
        start = clock.ticks_ms()
        deadline = clock.ticks_add(start, timing.exchange_timeout_ms)
        next_tx = clock.ticks_add(start, timeout)
        tries = 0
        acked = False
        self._send(data, res)
        while True:
            now = clock.ticks_ms()
            if not acked and clock.ticks_diff(next_tx, now) <= 0:
                if tries >= timing.max_retransmit:
                    raise CoapTimeout("no answer to %s (MID %d) after %d transmissions in "
                                      "%d ms; check the server address and the link"
                                      % (_what(msg), msg.mid,
                                         tries + 1, clock.ticks_diff(now, start)))
                tries += 1
                res.retransmissions += 1
                timeout *= 2
                next_tx = clock.ticks_add(now, timeout)
                self._send(data, res)
                continue
            wait = clock.ticks_diff(deadline, now)
            if wait <= 0:
                raise CoapTimeout("%s (MID %d): no response within the %d ms exchange "
                                  "timeout%s" % (_what(msg), msg.mid,
                                                 timing.exchange_timeout_ms,
                                                 " after the server's empty ACK" if acked
                                                 else ""))
            if not acked:
                wait = min(wait, clock.ticks_diff(next_tx, now))
            try:
                got = self.endpoint.recv(wait)
            except CoapError:
                raise
            except MemoryError:
                raise  # not the link: the app logs it as memory
            except Exception as e:
                raise self._transport_error("receive", e)
            if got is None:
                continue
            resp = self._accept(got, msg, res)
            if resp is None:
                continue
            if resp is _EMPTY_ACK:
                acked = True  # §5.2.2: separate response follows; stop retransmitting
                continue
            res.round_trips += 1
            return resp

    def _accept(self, data, req, res):
        """Classifies one received datagram: the response, _EMPTY_ACK, or None (dropped)."""
        res.datagrams_received += 1
        res.bytes_received += len(data)
        if self.trace is not None:
            self.trace("recv", data)
        try:
            m = decode(data)
        except CoapFormatError as e:
            if e.mtype == CON and e.mid is not None and data[0] >> 6 == 1:
                # §4.2: reject a malformed CON; §3: ignore other versions silently.
                self._send_empty(RST, e.mid, res)
            return None
        except (ValueError, IndexError, TypeError, KeyError):
            return None
        mtype = m.mtype
        if mtype == ACK or mtype == RST:
            if m.mid != req.mid:
                return None  # late ACK of an earlier exchange, or a stray one
            if mtype == RST:
                raise CoapReset("server reset %s (RST for MID %d): it rejected the "
                                "request, e.g. an option it does not support or a context "
                                "it lost; check the path and options" % (_what(req), req.mid))
            if m.code == codes.EMPTY:
                return _EMPTY_ACK
            if m.token != req.token or not codes.is_response(m.code):
                return None
            self._check_critical(m)
            return m
        if mtype == CON and self._seen(m.mid):
            self._send_empty(ACK, m.mid, res)  # §4.5: duplicate CON response, ACK again
            return None
        if m.code != codes.EMPTY and codes.is_response(m.code) and m.token == req.token:
            if mtype == CON:
                if unknown_critical(m):
                    self._send_empty(RST, m.mid, res)
                    self._check_critical(m)
                self._send_empty(ACK, m.mid, res)
                self._remember(m.mid)
            else:
                self._check_critical(m)
            return m
        if mtype == CON:
            # A ping, a request to us, or a response to nothing open (enos-coap.md §3.2).
            self._send_empty(RST, m.mid, res)
        return None

    @staticmethod
    def _check_critical(m):
        bad = unknown_critical(m)
        if bad:
            raise CoapError("response %s carries critical option(s) %s this client does not "
                            "understand (RFC 7252 §5.4.1); it was rejected"
                            % (codes.code_name(m.code), bad))

    def _seen(self, mid):
        return mid in self._recent

    def _remember(self, mid):
        # The oldest out, the newest in: a list of fixed length, so nothing is allocated.
        self._recent.pop(0)
        self._recent.append(mid)

    def _send_empty(self, mtype, mid, res):
        # Version 1, the type, token length 0, code 0.00, MID (§3).
        self._send(bytes((0x40 | (mtype << 4), 0, mid >> 8, mid & 0xFF)), res)

    def _send(self, data, res):
        if self.trace is not None:
            self.trace("send", data)
        try:
            self.endpoint.send(data)
        except CoapError:
            raise
        except MemoryError:
            raise  # not the link: the app logs it as memory
        except Exception as e:
            raise self._transport_error("send", e)
        res.datagrams_sent += 1
        res.bytes_sent += len(data)

    @staticmethod
    def _transport_error(what, e):
        err = CoapError("cannot %s a datagram: %s: %s; check the link (modem attached, "
                        "socket open, DTLS session up)" % (what, type(e).__name__, e))
        err.cause = e
        return err
