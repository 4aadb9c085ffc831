"""The parsers `make fuzz` drives, on MicroPython and CPython alike.

Each target is (corpus dir, firmware files it measures, the errors its layer may raise, seeds,
dictionary tokens, largest input, run(data, i)). An exception outside the allowed errors is an
escape: a crash the device's loop would see. Seeds come from host_tests/corpus/<dir> plus
valid messages built here, so mutations start from inputs that reach deep states.
"""
import json
import os

from vmcheck import VirtualClock

from enosnb.coap import allcodes as codes
from enosnb.coap import message as cm
from enosnb.coap.client import Client, Timing
from enosnb.coap.errors import CoapError
from enosnb.dtls.errors import DtlsError
from enosnb.dtls.session import DtlsSession
from enosnb.dtls.timers import Timers
from enosnb.dtls import handshake as hs
from enosnb.dtls import record as rl
from enosnb.enos.client import EnosClient
from enosnb.enos.commands import Commands
from enosnb.enos.errors import EnosError
from enosnb.modem.at import AtEngine
from enosnb.modem.errors import ModemError
from enosnb import config, state
from enosnb.store import Store, StoreError

ROOT = None  # set by step.py: the repository root
PSK = bytes(range(1, 17))
IDENT = b"Client_identity"


def corpus_files(name):
    d = ROOT + "/host_tests/corpus/" + name
    out = []
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return out
    for n in names:
        if n.startswith("README"):
            continue
        with open(d + "/" + n, "rb") as f:
            out.append((n, f.read()))
    return out


# ---- CoAP ---------------------------------------------------------------------------------

def _coap_seeds():
    m = cm.Message(cm.CON, codes.POST, 0x1234, b"\x01\x02\x03\x04", b'{"x":1}')
    m.set_path("/topic/sys/pk/dk/thing/measurepoint/post")
    m.add_option(12, b"\x32")
    m.add_option(2100, b"/topic/sys/pk/dk/thing/service/measurepoint/set")
    m.add_option(2102, b'{"id":"1","params":{}}')
    ack = cm.Message(cm.ACK, codes.CONTENT, 0x1234, b"\x01\x02\x03\x04", b"hello")
    ack.add_option(23, b"\x0e")
    return [m.encode(), ack.encode(), b"\x60\x00\x12\x34", b"\x70\x00\x12\x34"]


def run_coap_codec(data, i):
    m = cm.decode(data)
    again = cm.decode(m.encode())
    if again.options != m.options or bytes(again.payload) != bytes(m.payload):
        raise AssertionError("decode(encode(m)) differs from m")


def run_coap_client(data, i):
    """A GET whose answer is the fuzz bytes, with the request's MID and token put in for
    one input in two so that the answer matches and reaches the response handling."""
    clock = VirtualClock()
    patch = i & 1

    def handler(req, ep):
        if not 0 < req.code < 32:
            return  # the client's RST or empty ACK for what it refused: nothing answers it
        d = bytearray(data)
        if patch and len(d) >= 4:
            d[2] = req.mid >> 8
            d[3] = req.mid & 0xFF
            tkl = d[0] & 0x0F
            if tkl == len(req.token) and len(d) >= 4 + tkl:
                d[4:4 + tkl] = req.token
        ep.deliver(bytes(d), 1)
    from coap_fake import FakeEndpoint
    ep = FakeEndpoint(clock, handler)
    c = Client(ep, clock=clock, timing=Timing(100, 1.0, 1), max_body=4096)
    c.get("/x")


# ---- DTLS ---------------------------------------------------------------------------------

_KB = bytes(range(96))
_CIPHERS = (rl.RecordCipher(rl.TLS_PSK_WITH_AES_128_CCM_8, _KB[0:16], _KB[32:36]),
            rl.RecordCipher(rl.TLS_PSK_WITH_AES_128_CBC_SHA256, _KB[64:80], _KB[0:32]))


def _record_seeds():
    out = []
    for c in _CIPHERS:
        for ctype, payload in ((23, b"application data"), (21, b"\x01\x00"), (22, b"\x14" * 16)):
            frag = c.seal(ctype, rl.DTLS12, 1, 5, payload)
            out.append(rl.header(ctype, rl.DTLS12, 1, 5, len(frag)) + frag)
    return out


def run_dtls_record(data, i):
    cipher = _CIPHERS[i & 1]
    window = rl.ReplayWindow()
    for ctype, version, epoch, seq, cid, frag in rl.split_records(data, 4 if i & 2 else 0):
        if window.seen(seq):
            continue
        if cipher.open(ctype, version, epoch, seq, frag) is not None:
            window.accept(seq)


def _hs_seeds():
    sh = (b"\xfe\xfd" + bytes(32) + b"\x20" + bytes(32) + b"\xc0\xa8\x00" + b"\x00\x0a"
          + hs.extension(23, b"") + hs.extension(0xFF01, b"\x00"))
    return [hs.message(hs.SERVER_HELLO, 1, sh),
            hs.message(hs.HELLO_VERIFY_REQUEST, 0, b"\xfe\xff\x10" + bytes(16)),
            hs.message(hs.SERVER_KEY_EXCHANGE, 2, b"\x00\x04CoAP"),
            hs.message(hs.SERVER_HELLO_DONE, 3, b"")]


def run_dtls_handshake(data, i):
    frags = hs.parse_fragments(data)
    if not frags:
        return
    reasm = hs.Reassembler()
    for t, length, seq, off, frag in frags:
        reasm.add(t, length, seq, off, frag, 0)
        if t == hs.SERVER_HELLO:
            hs.ServerHello(frag)
        elif t == hs.HELLO_VERIFY_REQUEST:
            hs.parse_hello_verify_request(frag)
        elif t == hs.SERVER_KEY_EXCHANGE:
            hs.parse_server_key_exchange(frag)
    for seq in range(6):
        reasm.take(seq)


_SAVED = []


def _established_blob():
    if not _SAVED:
        from dtls_fakes import FakeEndpoint
        from dtls_peer import MiniServer, serve
        clock = VirtualClock()
        srv = MiniServer(PSK, hint=b"CoAP")
        s = DtlsSession(FakeEndpoint(clock, serve(srv)), IDENT, PSK, clock=clock,
                        timers=Timers(100, 1000, 3, 5000))
        s.handshake()
        s.send(b"x")
        _SAVED.append(s.save())
        _SAVED.append(srv)
    return _SAVED[0]


def _session_seeds():
    _established_blob()
    srv = _SAVED[1]
    return [srv.app(b"hello after the handshake"), srv.alert(1, 0), srv.alert(2, 20),
            srv.alert(1, 100)] + [s for _, s in corpus_files("dtls_record")]


def run_dtls_session(data, i):
    """Odd inputs answer the first ClientHello; even ones reach an established session."""
    from dtls_fakes import FakeEndpoint
    clock = VirtualClock()
    if i & 1:
        def responder(sent, ep):
            if len(ep.sent) == 1:
                ep.push(data)
        s = DtlsSession(FakeEndpoint(clock, responder), IDENT, PSK, clock=clock,
                        timers=Timers(10, 10, 0, 30))
        s.handshake()
        return
    ep = FakeEndpoint(clock)
    s = DtlsSession.restore(ep, IDENT, PSK, _established_blob(), clock=clock)
    ep.push(data)
    s.recv(0)


# ---- AT lines -----------------------------------------------------------------------------

class _Uart:
    """Answers each command with the next third of the fuzz bytes, in small reads."""

    def __init__(self, data):
        self.data = data
        self.rx = bytearray()

    def write(self, b):
        if b.endswith(b"\r"):
            n = (len(self.data) + 2) // 3
            self.rx.extend(self.data[:n])
            self.data = self.data[n:]
        return len(b)

    def any(self):
        return len(self.rx)

    def read(self, n=-1):
        n = min(len(self.rx), 64 if n is None or n < 0 else n)
        out = bytes(self.rx[:n])
        self.rx[:n] = b""
        return out or None

    def readinto(self, buf):
        out = self.read(len(buf))
        if not out:
            return None
        buf[:len(out)] = out
        return len(out)


def run_at(data, i):
    e = AtEngine(_Uart(data), clock=VirtualClock())
    e.urc("+CSONMI", lambda line: None)
    e.urc("+NSONMI", lambda line: None)
    for cmd in ("AT+CEREG?", "AT+CSQ", "AT+NSORF=0,512"):
        try:
            e.command(cmd, timeout_ms=50)
        except ModemError:
            pass
    e.poll(10)


# ---- EnOS responses and commands ----------------------------------------------------------

class _Resp:
    def __init__(self, code, payload, opts):
        self.code, self.payload, self._opts = code, payload, opts

    def option(self, n):
        return self._opts.get(n)


def _frame(code, payload, topic=None, cmd=None):
    """One EnOS answer as fuzz bytes: code, flags, then payload NUL topic NUL 2102-payload."""
    flags = (1 if topic is not None else 0) | (2 if cmd is not None else 0)
    return bytes((code, flags)) + payload + b"\x00" + (topic or b"") + b"\x00" + (cmd or b"")


def _unframe(data):
    if len(data) < 2:
        return _Resp(data[0] if data else 0, b"", {})
    parts = data[2:].split(b"\x00", 2)
    while len(parts) < 3:
        parts.append(b"")
    opts = {}
    if data[1] & 1:
        opts[2100] = parts[1]
    if data[1] & 2:
        opts[2102] = parts[2]
    return _Resp(data[0], parts[0], opts)


def _enos_seeds():
    out = [_frame(0x44, b'{"id":"1","code":200,"data":{}}'),
           _frame(0x45, b'{"id":"2","code":200,"data":{"temp":{"value":1}}}'),
           _frame(0x44, b'{"id":"1","code":1220,"msg":"bad"}'),
           _frame(0x44, b"", b"/topic/sys/MuGsF6W4/15bBZlRknc/thing/service/measurepoint/set",
                  b'{"id":"9","method":"thing.service.measurepoint.set","params":{"t":1}}'),
           _frame(0x44, b"", b"/topic/sys/MuGsF6W4/15bBZlRknc/thing/model/down_raw", b"\x01\x02"),
           _frame(0x44, b"", b"/topic/sys/MuGsF6W4/15bBZlRknc/thing/service/reboot",
                  b'{"id":"3","method":"thing.service.reboot","params":{}}')]
    for name, doc in corpus_files("enos_response"):
        if name.endswith(".json"):
            d = json.loads(doc)
            out.append(_frame(d.get("code", 0x44) & 0xFF, (d.get("payload") or "").encode(),
                              d["2100"].encode() if d.get("2100") else None,
                              d["2102"].encode() if d.get("2102") else None))
    return out


class _Coap:
    def __init__(self, answers):
        self.answers = answers

    def request(self, method, path, payload=b"", content_format=None, options=(), accept=None):
        return self.answers.pop(0) if self.answers else _Resp(0x44, b"", {})

    def post(self, path, payload=b"", **kw):
        return self.request(2, path, payload)

    get = post


class _Transport:
    secure = True

    def __init__(self, answers):
        self.coap = _Coap(answers)

    def open(self, identity, psk):
        return self.coap

    def close(self):
        pass


_ENOS_CFG = {"productKey": "MuGsF6W4", "deviceKey": "15bBZlRknc",
             "deviceSecret": "ExampleDeviceSecret0123456789abc"}


def _enos_client(answers):
    cmds = Commands(max_per_wake=4)
    cmds.on_set(lambda p: None)
    cmds.on_get(lambda p: {"x": 1})
    cmds.on_service(lambda sid, p: {})
    cmds.on_raw(lambda b: b"ok")
    return EnosClient(_Transport(answers), _ENOS_CFG, commands=cmds, on_secret=lambda s: None), cmds


def run_enos_json(data, i):
    c, _ = _enos_client([_unframe(data)])
    c.connect()
    if i & 1:
        c.post_measurepoints({"t": 1})
    else:
        c.query_attributes()


def run_enos_commands(data, i):
    c, cmds = _enos_client([])
    c.connect()
    cmds.drain(c, _unframe(data))


# ---- state, store, config -----------------------------------------------------------------

def run_state(data, i):
    got = state.decode(data)
    if got is not None:
        gen, entries = got
        if state.decode(state.encode(entries, gen)) is None:
            raise AssertionError("a decoded state does not survive encode/decode")


class _MemFile:
    def __init__(self, fs, path, mode):
        self.fs, self.path, self.mode, self.pos = fs, path, mode, 0
        if mode == "wb":
            fs.files[path] = bytearray()
        elif path not in fs.files:
            if mode == "rb":
                raise OSError(2, "ENOENT")
            fs.files[path] = bytearray()
        if mode == "ab":
            self.pos = len(fs.files[path])

    def read(self, n=-1):
        d = self.fs.files[self.path]
        end = len(d) if n is None or n < 0 else self.pos + n
        out = bytes(d[self.pos:end])
        self.pos += len(out)
        return out

    def readinto(self, buf):
        out = self.read(len(buf))
        buf[:len(out)] = out
        return len(out)

    def write(self, b):
        d = self.fs.files[self.path]
        d[self.pos:self.pos + len(b)] = b
        self.pos += len(b)
        return len(b)

    def seek(self, pos, whence=0):
        self.pos = pos if whence == 0 else (self.pos + pos if whence == 1 else
                                            len(self.fs.files[self.path]) + pos)
        return self.pos

    def flush(self):
        pass

    def close(self):
        pass


class MemFs:
    """The store's file-system interface in memory (open/remove/listdir/mkdir/size/sync)."""

    def __init__(self, files):
        self.files = files

    def open(self, path, mode):
        return _MemFile(self, path, mode)

    def remove(self, path):
        if path not in self.files:
            raise OSError(2, "ENOENT")  # as os.remove on the device
        del self.files[path]

    def listdir(self, path):
        return [p[len(path) + 1:] for p in self.files if p.startswith(path + "/")]

    def mkdir(self, path):
        pass

    def size(self, path):
        if path == "/q":
            return 0
        return len(self.files[path]) if path in self.files else -1

    def sync(self):
        pass


def _store_seeds():
    fs = MemFs({})
    s = Store("/q", max_record_bytes=256, seg_bytes=128, fs=fs)
    for n in range(6):
        s.append(b"record %d" % n)
    s.ack(2)
    head = bytes(fs.files.get("/q/h0") or fs.files.get("/q/h1") or b"")
    segs = [bytes(v) for k, v in sorted(fs.files.items()) if "/s" in k]
    out = [head + b"\x00HEAD\x00" + seg for seg in segs]
    return out + [seg for _, seg in corpus_files("store")]


def run_store(data, i):
    """data = head file, b"\\0HEAD\\0", segment file (or a segment alone)."""
    head, sep, seg = data.partition(b"\x00HEAD\x00")
    files = {"/q/s%d" % (1 + (i & 1)): bytearray(seg if sep else head)}
    if sep:
        files["/q/h%d" % (i >> 1 & 1)] = bytearray(head)
    fs = MemFs(files)
    s = Store("/q", max_record_bytes=256, seg_bytes=128, fs=fs)
    got = s.peek(1000)
    seqs = [q for q, _ in got]
    if seqs != sorted(seqs) or len(set(seqs)) != len(seqs):
        raise AssertionError("records out of order: %r" % seqs)
    top = s.append(b"after")
    if got:
        s.ack(seqs[0])
    again = Store("/q", max_record_bytes=256, seg_bytes=128, fs=fs)
    if [q for q, _ in again.peek(1000)][-1:] != [top]:
        raise AssertionError("the record appended after a corrupt one is lost")


_CONFIG_TEXT = {}


def _fake_open(path, mode="r"):
    import io
    text = _CONFIG_TEXT["text"]
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeError:
            return _BadText()
    return io.StringIO(text)


class _BadText:
    def read(self):
        raise ValueError("not UTF-8")

    def close(self):
        pass


def _config_seeds():
    sec = {"productKey": "MuGsF6W4", "deviceKey": "15bBZlRknc",
           "deviceSecret": "ExampleDeviceSecret0123456789abc", "host": "127.0.0.1",
           "port": 5684, "secureMode": "dtls", "lifetime": 3600}
    out = [json.dumps(sec).encode()]
    for n in sorted(os.listdir(ROOT + "/boards")):
        try:
            with open(ROOT + "/boards/" + n + "/board.json", "rb") as f:
                out.append(f.read())
        except OSError:
            pass
    return out


def run_config(data, i):
    _CONFIG_TEXT["text"] = data
    config.open = _fake_open
    if i & 1:
        config.load_board("board.json")
    else:
        config.load_secrets("secrets.json")


_JSON_TOKENS = [b'"', b"{", b"}", b"[", b"]", b":", b",", b"null", b"true", b"1e999", b"-1",
                b"0", b'""', b"\\u0000", b"1.5", b"99999999999999999999"]

# name: (corpus dir, measured files, allowed errors, seeds(), tokens, max length, run)
TARGETS = {
    "coap_codec": ("coap", ("coap/message.py", "coap/options.py"), (CoapError,), _coap_seeds,
                   [b"\xff", b"\xd0", b"\xe0", b"\x0d", b"\x0e"], 1400, run_coap_codec),
    "coap_client": ("coap_client", ("coap/client.py",), (CoapError,), _coap_seeds,
                    [b"\xff", b"\xd1\x0a", b"\x61\x0e", b"\xb1\x0e"], 1400, run_coap_client),
    "dtls_record": ("dtls_record", ("dtls/record.py", "dtls/ccm.py", "dtls/cbc.py"),
                    (DtlsError,), _record_seeds, [b"\x17\xfe\xfd", b"\x19\xfe\xfd"], 1500,
                    run_dtls_record),
    "dtls_handshake": ("dtls_handshake", ("dtls/handshake.py",), (DtlsError,), _hs_seeds,
                       [b"\x00\x17\x00\x00", b"\xff\x01\x00\x01\x00", b"\x00\x36"], 1500,
                       run_dtls_handshake),
    "dtls_session": ("dtls_session", ("dtls/session.py",), (DtlsError,), _session_seeds,
                     [b"\x16\xfe\xfd", b"\x17\xfe\xfd\x00\x01", b"\x15\xfe\xfd"], 1500,
                     run_dtls_session),
    "at": ("at", ("modem/at.py",), (ModemError,), lambda: [], [b"\r\n", b"OK", b"ERROR",
           b"+CME ERROR: ", b"+CEREG: ", b"+CSONMI: ", b"+NSONMI:", b",", b"\xff"], 1400,
           run_at),
    "enos_json": ("enos_json", ("enos/client.py", "enos/errors.py"), (EnosError,), _enos_seeds,
                  _JSON_TOKENS, 800, run_enos_json),
    "enos_commands": ("enos_commands", ("enos/commands.py", "enos/topics.py"), (EnosError,),
                      _enos_seeds, _JSON_TOKENS + [b"/topic/sys/", b"/thing/service/"], 800,
                      run_enos_commands),
    "state": ("state", ("state.py",), (), lambda: [], [b"\x00\x00", b"\xff\xff"], 600,
              run_state),
    "store": ("store", ("store.py", "storefix.py"), (StoreError,), _store_seeds,
              [b"\xa7", b"\x00HEAD\x00"], 1200, run_store),
    "config": ("config", ("config.py",), (config.ConfigError,), _config_seeds, _JSON_TOKENS,
               1200, run_config),
}


def seeds_of(name):
    corpus, _files, _allowed, seeds, _tokens, _max, _run = TARGETS[name]
    out = list(seeds()) + [d for _, d in corpus_files(corpus)]
    return out or [b""]
