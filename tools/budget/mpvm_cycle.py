"""One report cycle of the real device stack against an in-memory peer; heap, allocation and
CPU in the MicroPython VM (node tools/mpvm/run.mjs --script THIS --steps), and the same
wire figures on CPython (tools/budget and host_tests/test_budget.py import it).

The peer is host_tests/vm/dtls_peer.py's MiniServer (cookie, 32-byte session id, EMS,
CCM-8) with a CoAP responder that answers the enos-coap.md §17 reference reply
({"id":..,"code":200,"data":{}}, piggybacked 2.04, no options) or, for up_raw, an empty 2.04.

Method. pass 1 runs the real cycle (EnosClient.connect over DtlsTransport, then the report)
against MiniServer and records its datagrams; pass 2 replays them to a fresh client made to
repeat pass 1 byte for byte (deterministic rng, the same ClientHello random), so no server code
runs in the measured calls. The VM collects garbage only between top-level calls; the runner
collects before each step, and a warm report's allocation is measured within one step.

The heap of the whole cycle, from an empty interpreter with the imports, per deployment mode,
is measured by tools/budget/ram.py (the ram.* figures), not here. The VM has no cryptolib, so AES here runs in pure Python (enosnb/dtls/aes_py.py) and the allocation
figures include it (report.warm.mpvm.alloc_bytes); ram.py runs a cryptolib stand-in instead.
"""
import gc
import hashlib
import json
import time

# CPython (host tests) has no gc.mem_alloc: the heap figures are VM-only.
_mem = getattr(gc, "mem_alloc", lambda: 0)

from enosnb import rng
from enosnb.coap import allcodes as codes
from enosnb.coap.client import Client, Timing
from enosnb.coap.message import ACK, Message, decode
from enosnb.dtls.session import DtlsSession
from enosnb.dtls.timers import LOOPBACK
from enosnb.dtls import record as rl
from enosnb.enos import identity, rawpoints
from enosnb.enos.client import EnosClient
from enosnb.enos.transport import DtlsTransport


PK = "MuGsF6W4"
DK = "15bBZlRknc"
SECRET = "ExampleDeviceSecret0123456789abc"
POINTS = {"temp": 21.5}
TIME_MS = 1764115200000
REF_MID = 0x1234
TIMING = Timing(ack_timeout_ms=2000, ack_random_factor=1.5, max_retransmit=1)
CONFIG = {"productKey": PK, "deviceKey": DK, "deviceSecret": SECRET, "lifetime": 3600}


class DetRng:
    """Deterministic stand-in for rng.urandom, so that pass 2 repeats pass 1 exactly.

    The bytes come from a pool filled by reset() (a SHA-256 chain), so urandom(n) allocates
    only its n-byte result, as os.urandom does on the device: the warm figure must count the
    firmware's allocations, not hash objects of this stand-in.
    """

    _POOL = 256

    def __init__(self):
        self.reset(b"budget")

    def reset(self, seed):
        self.state = hashlib.sha256(seed).digest()
        self.pool = b""
        self.pos = 0
        self._refill(self._POOL)

    def _refill(self, n):
        out = self.pool[self.pos:]
        while len(out) < n:
            self.state = hashlib.sha256(self.state).digest()
            out += self.state
        self.pool = out
        self.pos = 0

    def urandom(self, n):
        if self.pos + n > len(self.pool):
            self._refill(max(n, self._POOL))
        out = self.pool[self.pos:self.pos + n]
        self.pos += n
        return out


DET = DetRng()


def coap_reply(req_bytes):
    """The §17 reference reply to a measurement-point post, an empty 2.04 to anything else."""
    req = decode(req_bytes)
    body = b""
    if req.payload[:1] == b"{":
        msg_id = json.loads(req.payload)["id"]
        body = ('{"id":"%s","code":200,"data":{}}' % msg_id).encode()
    return Message(ACK, codes.CHANGED, req.mid, req.token, body).encode()


class Peer:
    """MiniServer + CoAP responder behind an in-memory datagram endpoint; logs the wire."""

    def __init__(self, psk):
        from dtls_peer import MiniServer
        self.dtls = MiniServer(psk, cookie=True, echo=False)
        self.wire = []

    def handle(self, data):
        self.wire.append(("up", len(data)))
        out = self.dtls.handle(data)
        while self.dtls.app_in:
            out.append(self.dtls.app(coap_reply(self.dtls.app_in.pop(0))))
        for d in out:
            self.wire.append(("down", len(d)))
        return out


class MemEndpoint:
    """Datagram endpoint: send() hands the datagram to `answer` (a peer, or a replay list)."""

    mtu = 1280

    def __init__(self, answer):
        self.answer = answer
        self.inbox = []
        self.sent = []

    def send(self, data):
        self.sent.append(bytes(data))
        got = self.answer(bytes(data))
        if got:
            self.inbox.extend(got)

    def recv(self, timeout_ms):
        return self.inbox.pop(0) if self.inbox else None

    def close(self):
        pass


def _client(session):
    c = Client(session, timing=TIMING)
    c.restore(bytes((1, ((REF_MID - 512) >> 8) & 0xFF, (REF_MID - 512) & 0xFF)))
    return c


def new_enos(transport):
    e = EnosClient(transport, CONFIG)
    # JSON id "1" as in the reference report: restore() skips 1000 ids.
    e.restore(b"\x01" + ((1 - 1000) % 1000000000).to_bytes(4, "big"))
    return e


def wire_figures(wire):
    rts, waiting = 0, False
    for k, _ in wire:
        if k == "up":
            waiting = True
        elif waiting:
            rts += 1
            waiting = False
    up = [n for k, n in wire if k == "up"]
    down = [n for k, n in wire if k == "down"]
    return {"datagrams_up": len(up), "datagrams_down": len(down), "bytes_up": sum(up),
            "bytes_down": sum(down), "bytes": sum(up) + sum(down), "round_trips": rts,
            "ip_bytes": sum(up) + sum(down) + 28 * (len(up) + len(down))}


def record_pass():
    """Pass 1: the real cycle against the peer. Returns (figures by scenario, replay data)."""
    psk = identity.psk_key(SECRET)
    peer = Peer(psk)
    answers = []

    def answer(d):
        out = peer.handle(d)
        answers.append(out)
        return out

    rng.urandom = DET.urandom
    DET.reset(b"handshake")
    transport = DtlsTransport(lambda: MemEndpoint(answer), _client, timers=LOOPBACK)
    enos = new_enos(transport)
    enos.connect()
    hello_random = transport.session._random
    DET.reset(b"report")
    enos.post_measurepoints(POINTS, TIME_MS)
    figures = {"cold": wire_figures(peer.wire)}
    peer.wire = []
    DET.reset(b"warm")
    enos.post_measurepoints(POINTS, TIME_MS)
    figures["warm"] = wire_figures(peer.wire)
    peer.wire = []
    enos.up_raw(rawpoints.encode_post(int(enos.next_id()), POINTS, TIME_MS, rawpoints.DEMO_TABLE))
    figures["raw_warm"] = wire_figures(peer.wire)
    return figures, hello_random, answers


# ---- pass 2, in steps (VM only) ---------------------------------------------------------

_S = {"n": 0}


def _replay(d):
    return _S["answers"].pop(0)


def _handshake_steps():
    s = _S["session"]
    return (lambda: s._begin(False),
            lambda: s._on_datagram(s._ep.inbox.pop(0)),
            lambda: s._on_datagram(s._ep.inbox.pop(0)),
            lambda: s._on_datagram(s._ep.inbox.pop(0)))


def _report():
    DET.reset(b"report")
    _S["enos"].post_measurepoints(POINTS, TIME_MS)


def _warm():
    DET.reset(b"warm")
    before = _mem()
    _S["enos"].post_measurepoints(POINTS, TIME_MS)
    _S["warm_alloc"] = _mem() - before


def _setup():
    figures, hello_random, answers = record_pass()
    _S["figures"] = figures
    _S["answers"] = answers
    _S["hello_random"] = hello_random


def _objects():
    DET.reset(b"handshake")
    ep = MemEndpoint(_replay)
    ident = identity.psk_identity(PK, DK, identity.MODE_DEVICE, 3600)
    s = DtlsSession(ep, ident, identity.psk_key(SECRET), timers=LOOPBACK)
    s.hello_random = _S["hello_random"]
    _S["session"] = s
    transport = DtlsTransport(lambda: ep, _client, timers=LOOPBACK)
    _S["enos"] = new_enos(transport)


def _attach():
    s = _S["session"]
    assert s.established
    _S["enos"].transport.session = s
    _S["enos"].attach(_client(s))


def _cpu():
    """µs per operation, best of 5 runs of `rounds`."""
    from enosnb.coap import options
    body = (b'{"id":"1","version":"1.0","method":"thing.measurepoint.post",'
            b'"params":{"measurepoints":{"temp":21.5},"time":1764115200000}}')
    m = Message(0, codes.POST, REF_MID, b"\xa1\xb2\xc3\xd4", body)
    m.set_path("/topic/sys/%s/%s/thing/measurepoint/post" % (PK, DK))
    m.add_option(options.CONTENT_FORMAT, 50)
    req = m.encode()
    resp = Message(ACK, codes.CHANGED, REF_MID, b"\xa1\xb2\xc3\xd4",
                   b'{"id":"1","code":200,"data":{}}').encode()
    c = rl.RecordCipher(rl.TLS_PSK_WITH_AES_128_CCM_8, bytes(16), bytes(4))
    sealed = c.seal(rl.CT_APPLICATION_DATA, rl.DTLS12, 1, 5, req)

    def best(fn, rounds):
        # The VM's clock ticks in whole milliseconds: run enough rounds for >= 100 ms.
        b = None
        for _ in range(3):
            t0 = time.ticks_ms()
            for _ in range(rounds):
                fn()
            dt = time.ticks_diff(time.ticks_ms(), t0)
            b = dt if b is None or dt < b else b
        return b * 1000 / rounds

    out = {
        "codec.encode_request": best(m.encode, 2000),
        "codec.decode_response": best(lambda: decode(resp), 4000),
        "record.seal_188": best(lambda: c.seal(rl.CT_APPLICATION_DATA, rl.DTLS12, 1, 5, req), 40),
        "record.open_188": best(lambda: c.open(rl.CT_APPLICATION_DATA, rl.DTLS12, 1, 5, sealed), 40),
    }
    return out


def _alloc_parts():
    """Bytes each part of a warm report allocates (second call, so caches are warm)."""
    from enosnb.coap import options
    from enosnb.enos import bodies
    req_holder = []

    def build_encode():
        m = Message(0, codes.POST, REF_MID, b"\xa1\xb2\xc3\xd4", body)
        m.set_path("/topic/sys/%s/%s/thing/measurepoint/post" % (PK, DK))
        m.add_option(options.CONTENT_FORMAT, 50)
        req_holder.append(m.encode())

    body = bodies.measurepoints("1", POINTS, TIME_MS)
    build_encode()
    req = req_holder[0]
    resp = Message(ACK, codes.CHANGED, REF_MID, b"\xa1\xb2\xc3\xd4",
                   b'{"id":"1","code":200,"data":{}}').encode()
    c = rl.RecordCipher(rl.TLS_PSK_WITH_AES_128_CCM_8, bytes(16), bytes(4))
    sealed = c.seal(rl.CT_APPLICATION_DATA, rl.DTLS12, 1, 6, resp)
    parts = (
        ("json_body", lambda: bodies.measurepoints("1", POINTS, TIME_MS)),
        ("coap_build_encode", build_encode),
        ("ccm_seal_request", lambda: c.seal(rl.CT_APPLICATION_DATA, rl.DTLS12, 1, 5, req)),
        ("ccm_open_response", lambda: c.open(rl.CT_APPLICATION_DATA, rl.DTLS12, 1, 6, sealed)),
        ("coap_decode_response", lambda: decode(resp)),
        ("json_reply", lambda: json.loads(b'{"id":"1","code":200,"data":{}}')),
    )
    out = {}
    for name, fn in parts:
        fn()
        before = _mem()
        fn()
        out[name] = _mem() - before
    return out


def _handshake_us():
    """A full handshake (4 flights, cookie) of the client against recorded flights."""
    best = None
    for _ in range(5):
        figures, hello_random, answers = record_pass()
        ep = MemEndpoint(lambda d: answers.pop(0))
        DET.reset(b"handshake")
        ident = identity.psk_identity(PK, DK, identity.MODE_DEVICE, 3600)
        s = DtlsSession(ep, ident, identity.psk_key(SECRET), timers=LOOPBACK)
        s.hello_random = hello_random
        t0 = time.ticks_ms()
        s.handshake()
        dt = time.ticks_diff(time.ticks_ms(), t0) * 1000
        best = dt if best is None or dt < best else best
    return best


def step():
    n = _S["n"]
    _S["n"] = n + 1
    if n == 0:
        _setup()
        return True
    if n == 1:
        from enosnb.dtls import aes
        _S["aes_backend"] = aes.BACKEND
        _objects()
        return True
    steps = _handshake_steps() + (_attach, _report)
    k = n - 2
    if k < len(steps):
        steps[k]()
        return True
    if k == len(steps):
        _warm()
        return True
    sent = _S["session"]._ep.sent
    f = _S["figures"]
    for name in ("cold", "warm", "raw_warm"):
        for key, v in sorted(f[name].items()):
            print("mpvm_peer.%s.%s: %d%s" % (name, key, v, " B" if "bytes" in key else ""))
    print("report.warm.mpvm.alloc_bytes: %d B" % _S["warm_alloc"])
    print("mpvm.aes_backend: %s" % _S["aes_backend"])
    print("mpvm.replay_datagrams_sent: %d" % len(sent))
    for k2, v in _alloc_parts().items():
        print("report.warm.mpvm.alloc.%s_bytes: %d B" % (k2, v))
    for k2, v in sorted(_cpu().items()):
        print("cpu.mpvm.%s_us: %d us" % (k2, v))
    print("cpu.mpvm.handshake_full_us: %d us" % _handshake_us())
    return False
