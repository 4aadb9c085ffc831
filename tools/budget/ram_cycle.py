"""One device cycle as top-level steps, for the RAM figures of `make budget` (tools/budget/ram.py
runs it with tools/budget/ram_vm.mjs). MicroPython WebAssembly VM only.

The steps are the app's own code (enosnb.app: build, State, Store, measure, finish; the
modem driver object; enosnb.cloud's EnOS client; enosnb.link's DTLS and CoAP clients;
enosnb.report's send_queue) with the radio replaced by a
datagram endpoint standing in for the modem socket. The VM can collect garbage only between
top-level calls, so the cycle is cut where the device waits for the network: one step per DTLS
flight and one per CoAP exchange (one per batch when draining the queue).

Roles (given by the runner's _host module):
  record   the .py tree and a peer in this VM: host_tests/vm/dtls_peer.py's MiniServer (cookie,
           session cache, CCM-8) with a CoAP responder giving the enos-coap.md §17 reference
           reply, or the CoAP responder alone for plain mode; in the `command` cycle that
           reply names a measurepoint.set command (option 2100, §11.4) whose 1 KB body the
           device fetches block-wise (Block2, RFC 7959 §2.4) before it posts the reply; the
           peer's datagrams go to the runner, which hands them to the other VMs;
  probe    the deployment mode's files, peer replayed; reports the modules the cycle imported;
  measure  the same, with an `imports` step first that imports every module the probe saw.
The random bytes come from the runner (one deterministic stream per cycle) so that the replayed
peer's answers fit. Nothing here imports the firmware before the first step: the runner takes
the heap baseline after loading this file.
"""
import gc
import sys

import _host

ROLE = _host.role
CYCLE = _host.cycle
ROOT = "/data/"
SECRETS = ROOT + "secrets.json"
BOARD = ROOT + "board.json"
POINT_REPLY = '{"id":"%s","code":200,"data":{}}'
PK, DK = "MuGsF6W4", "15bBZlRknc"  # tools/budget/ram.py SECRETS
COMMAND_TOPIC = "/sys/%s/%s/thing/service/measurepoint/set" % (PK, DK)
COMMAND_BYTES = 1024


def command_body():
    """A measurepoint.set command of exactly COMMAND_BYTES bytes of JSON."""
    head = '{"id":"7001","version":"1.0","method":"thing.service.measurepoint.set",' \
           '"params":{"setpoint":23.5,"label":"'
    tail = '"}}'
    return (head + "x" * (COMMAND_BYTES - len(head) - len(tail)) + tail).encode()


def _urandom(n):
    return bytes(_host.urandom(n))


def _hex(b):
    import binascii
    return binascii.hexlify(b).decode()


class Peer:
    """The far end in the record role: DTLS (MiniServer) or plain CoAP."""

    def __init__(self, dtls):
        from enosnb.enos import identity
        self.dtls = None
        self.upload = b""
        self.command = False  # armed after the cold cycle that prepares the wake
        if dtls:
            from dtls_peer import MiniServer
            secret = "ExampleDeviceSecret0123456789abc"
            self.dtls = MiniServer(identity.psk_key(secret, 8), cookie=True, echo=False)

    def coap(self, req_bytes):
        """2.04 with the reference reply to a JSON post (its "id"), empty to anything else;
        Block1 uploads (RFC 7959 §2.5) are collected first, each block acknowledged."""
        from enosnb.coap import allcodes as codes
        from enosnb.coap import options as opt
        from enosnb.coap.message import ACK, Message, decode
        import json
        req = decode(req_bytes)
        if req.code == codes.GET:
            return self.command_block(req)
        b1 = req.uint_option(opt.BLOCK1)
        payload = req.payload
        code = codes.CHANGED
        if b1 is not None:
            self.upload += payload
            payload = self.upload
            if opt.block_parse(b1)[1]:
                code = codes.CONTINUE
            else:
                self.upload = b""
        body = b""
        if code != codes.CONTINUE and payload[:1] == b"{":
            msg_id = json.loads(payload).get("id")
            if msg_id is not None:
                body = (POINT_REPLY % msg_id).encode()
        resp = Message(ACK, code, req.mid, req.token, body)
        if b1 is not None:
            resp.add_option(opt.BLOCK1, b1)
        if body and self.command:
            self.command = False
            resp.add_option(opt.ENOS_TOPIC, "/topic" + COMMAND_TOPIC)
        return resp.encode()

    def command_block(self, req):
        """The block of the command body the GET asks for (Block2, in the client's size)."""
        from enosnb.coap import allcodes as codes
        from enosnb.coap import options as opt
        from enosnb.coap.message import ACK, Message
        num, _, szx = opt.block_parse(req.uint_option(opt.BLOCK2) or 0)
        size = opt.szx_size(szx)
        body = command_body()
        part = body[num * size:(num + 1) * size]
        resp = Message(ACK, codes.CONTENT, req.mid, req.token, part)
        resp.add_option(opt.CONTENT_FORMAT, 50)
        resp.add_option(opt.BLOCK2, opt.block_value(num, (num + 1) * size < len(body), szx))
        return resp.encode()

    def handle(self, data):
        if self.dtls is None:
            return [self.coap(data)]
        out = self.dtls.handle(data)
        while self.dtls.app_in:
            out.append(self.dtls.app(self.coap(self.dtls.app_in.pop(0))))
        return out


class Endpoint:
    """Stands in for the modem's UDP socket (enosnb.modem.base socket contract)."""

    mtu = 1280

    def __init__(self):
        self.inbox = []
        self.closed = False
        self.id = 0
        self.last_exchange = False

    def send(self, data):
        if ROLE == "record":
            for d in S["peer"].handle(bytes(data)):
                _host.put(_hex(d))
                self.inbox.append(d)
            _host.end()
        else:
            from binascii import unhexlify
            for _ in range(_host.count()):
                self.inbox.append(unhexlify(_host.next()))

    def recv(self, timeout_ms):
        return self.inbox.pop(0) if self.inbox else None

    def close(self):
        self.closed = True


class NullUart:
    """The modem driver object is built, but this cycle does no AT dialogue (no bring-up)."""

    def any(self):
        return 0

    def read(self, n=-1):
        return None

    def write(self, data):
        return len(data)


class OneBatch:
    """The app's queue, giving send_queue one batch per step (the device waits for the
    network between batches, where the VM can collect)."""

    def __init__(self, store):
        self.store = store
        self.open = True

    def peek(self, n=1):
        if not self.open:
            return []
        self.open = False
        return self.store.peek(n)

    def __getattr__(self, name):
        return getattr(self.store, name)

    def __len__(self):
        return len(self.store)


S = {"peer": None, "dev": None, "ep": None, "current": None, "session": None}


# ---- the steps ------------------------------------------------------------------------------

def boot():
    from enosnb import app  # what firmware/main.py imports
    S["app"] = app


def build():
    from enosnb import rng  # the clients import it; its randomness comes from the runner
    rng.urandom = _urandom
    dev = S["app"].build(SECRETS, BOARD, ROOT)
    dev._rtc = None  # no RTC memory in the VM: state on flash only
    S["dev"] = dev


def _measure(woke):
    dev = S["dev"]
    dev.begin(None, woke)
    dev._consume_session()
    dev._open_time()
    dev.store = dev._open_queue()
    S["current"] = dev.measure()


def measure_cold():
    _measure(False)


def measure_woke():
    _measure(True)


def modem():
    from enosnb.modem import driver
    dev = S["dev"]
    b = dev.board
    dev.modem = driver(b.modem)(NullUart(), dev.clock, **b.modem_kwargs())
    ep = Endpoint()
    S["ep"] = ep
    dev.sock = ep


def enos():
    dev = S["dev"]
    from enosnb import cloud
    dev.enos = cloud.make_enos(dev)


def imports():
    for name in _host.modules().split(","):
        if name:
            __import__(name)


def _link():
    from enosnb import link
    return link


def _blob_key(ident, psk):
    return _link().blob_key(ident, psk)


def _keys():
    from enosnb.enos import identity as eid
    s = S["dev"].secrets
    ident = eid.psk_identity(s.product_key, s.device_key, eid.MODE_DEVICE, s.lifetime)
    return ident, eid.psk_key(s.device_secret, s.psk_slice[0])


def hello():
    from enosnb.dtls.session import DtlsSession
    dev = S["dev"]
    ident, psk = _keys()
    s = DtlsSession(dev.sock, ident, psk, clock=dev.clock, timers=dev.tune["dtls_timers"])
    dev._dtid = _blob_key(ident, psk)
    S["session"] = s
    s._begin(False)


def flight():
    """The server's next flight: the datagrams it sent in answer to the client's last one
    (what the client sends in reply is answered in the next step). Repeats until the
    handshake is done."""
    s = S["session"]
    for _ in range(len(s._ep.inbox)):
        s._on_datagram(s._ep.inbox.pop(0))
    return bool(s._ep.inbox) and not s.established


def restore_hello():
    from enosnb.dtls.session import DtlsSession
    dev = S["dev"]
    ident, psk = _keys()
    dev._dtid = _blob_key(ident, psk)
    s = DtlsSession.restore(dev.sock, ident, psk, dev.state.get("dtls"), clock=dev.clock,
                            timers=dev.tune["dtls_timers"])
    S["session"] = s
    s._begin(True)


def attach():
    dev = S["dev"]
    s = S["session"]
    dev.link.session, dev.link.how = s, ("resumed" if s.resumed else "full")
    dev.enos.attach(_link().coap_client(dev, s))
    dev.report["connect"] = dev.link.how


def restore():
    """The app's restore path (no handshake): the session saved before the deep sleep."""
    dev = S["dev"]
    ident, psk = _keys()
    s, how = _link().dtls_session(dev, dev.sock, ident, psk, restore=True)
    dev.link.session, dev.link.how = s, how
    dev.enos.attach(_link().coap_client(dev, s))
    dev.report["connect"] = how


def auth():
    """Plain mode: POST /auth over the socket (enos-coap.md §5.3)."""
    dev = S["dev"]
    dev.enos.connect()
    dev.report["connect"] = dev.link.how


def report():
    dev = S["dev"]
    dev.send_queue(S["current"])


def batch():
    dev = S["dev"]
    store = dev.store
    if not isinstance(store, OneBatch):
        store = dev.store = OneBatch(store)
    store.open = True
    before = len(store.store)
    dev.send_queue(S["current"])
    # Another turn while batches go out; a record the delivery holds back this cycle (its
    # time not final) stays queued, as on the device, and ends the drain.
    return 0 < len(store.store) < before


def finish():
    dev = S["dev"]
    if isinstance(dev.store, OneBatch):
        dev.store = dev.store.store
    dev.modem = None  # no AT release in the VM
    dev.report["pending"] = len(dev.store)
    dev.clock.wind_down()
    dev.finish(dev._sleep_ms(dev.secrets.report_interval_s * 1000))


HEAD_COLD = (boot, build, measure_cold, modem, enos)
HEAD_WOKE = (boot, build, measure_woke, modem, enos)
CYCLES = {
    "cold": HEAD_COLD + (hello, flight, attach, report, finish),
    "wake": HEAD_WOKE + (restore, report, finish),
    "wake_nat": HEAD_WOKE + (restore_hello, flight, attach, report, finish),
    "plain": HEAD_COLD + (auth, report, finish),
    "drain": HEAD_WOKE + (restore, batch, finish),
    # The command's GET blocks and reply ride in the report step (one step: an upper bound).
    "command": HEAD_WOKE + (restore, report, finish),
}
# Cycles that start from the state a cold cycle left (the record role runs that cold cycle
# first; the runner copies its flash files to the other VMs).
AFTER_COLD = ("wake", "wake_nat", "drain", "command")
DRAIN_QUEUED = 49  # records left from an outage; the cycle's own reading makes 50


def steps():
    """The step names of this cycle, in order (a repeated name repeats the step)."""
    out = [f.__name__ for f in CYCLES[CYCLE]]
    if ROLE == "measure":
        out.insert(out.index("enos") + 1, "imports")
    return out


def step_list():
    return ",".join(steps())


def run_js(name):
    """run() for the runner: bytes allocated * 2, plus 1 when the step wants another turn."""
    used, more = run(name)
    return used * 2 + (1 if more else 0)


def run(name):
    """Runs one step; returns the bytes allocated during it (no collection happens inside a
    top-level call) and whether a repeatable step wants another turn."""
    fn = globals()[name]
    before = gc.mem_alloc()
    more = fn()
    return gc.mem_alloc() - before, bool(more)


# ---- record role only -----------------------------------------------------------------------

def prepare():
    """Record role: the cold cycle that leaves state for the wake cycles, and the outage
    backlog for drain. Its datagrams are not kept."""
    S["peer"] = Peer(CYCLE != "plain")
    if CYCLE not in AFTER_COLD:
        return
    _host.mute(True)
    for fn in CYCLES["cold"]:
        while fn():
            pass
    _host.mute(False)
    S["peer"].command = CYCLE == "command"
    if CYCLE == "drain":
        dev = S["dev"]
        from enosnb.store import Store
        store = Store(dev._path("queue"), max_records=dev.secrets.queue_max_records)
        for i in range(DRAIN_QUEUED):
            # Records whose time is known (as a replayed dead letter's is): the VM has no
            # network time to date RTC stamps with.
            store.append(('{"p":{"temperature":%s},"t":%d}' % (
                repr(20.0 + i % 10), 1764115200000 + i * 600000)).encode())


def imported():
    """Firmware modules loaded now (probe role: what the cycle imported)."""
    return ",".join(sorted(k for k in sys.modules if k.startswith("enosnb") or k == "sensors"))


def run_all():
    """Record and probe roles: the whole cycle, no measurement."""
    for name in steps():
        while run(name)[1]:
            pass
    report = S["dev"].report
    if report["error"]:
        raise RuntimeError("cycle %s failed: %s" % (CYCLE, report["error"]))
    if CYCLE == "command" and S["dev"].commands.executed != 1:
        raise RuntimeError("cycle command: the command was not executed")
    return report["sent"]
