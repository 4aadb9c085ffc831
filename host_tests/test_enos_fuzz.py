"""Whatever a server answers, the EnOS client raises only EnosError (or the CoAP layer's
errors) and the command loop never crashes: Hypothesis-generated responses, plus the seed
corpus in host_tests/corpus/enos_response/ (JSON: code, payload, 2100, 2102)."""
import json
import os

from hypothesis import given, settings, strategies as st

from enosnb.enos.client import EnosClient
from enosnb.enos.commands import Commands
from enosnb.enos.errors import EnosError

CORPUS = os.path.join(os.path.dirname(__file__), "corpus", "enos_response")
CFG = {"productKey": "MuGsF6W4", "deviceKey": "15bBZlRknc",
       "deviceSecret": "ExampleDeviceSecret0123456789abc"}


class Resp:
    def __init__(self, code, payload, opts):
        self.code, self.payload, self._opts = code, payload, opts

    def option(self, n):
        return self._opts.get(n)


class Coap:
    """Answers every request with the next generated response, then with plain 2.04."""

    def __init__(self, responses):
        self.responses = list(responses)

    def request(self, method, path, payload=b"", content_format=None, options=(), accept=None):
        return self.responses.pop(0) if self.responses else Resp(0x44, b"", {})

    def post(self, path, payload=b"", **kw):
        return self.request(2, path, payload)

    get = post


class Transport:
    secure = True

    def __init__(self, responses):
        self.coap = Coap(responses)

    def open(self, identity, psk):
        return self.coap

    def close(self):
        pass


def _run(responses, activate=False):
    cmds = Commands(max_per_wake=4)
    cmds.on_set(lambda p: None)
    cmds.on_get(lambda p: {"x": 1})
    cmds.on_service(lambda sid, p: {})
    cmds.on_raw(lambda b: b"ok")
    cfg = dict(CFG)
    if activate:
        cfg = {"productKey": CFG["productKey"], "deviceKey": CFG["deviceKey"], "productSecret": "p"}
    c = EnosClient(Transport(responses), cfg, commands=cmds, on_secret=lambda s: None)
    try:
        c.connect()
        c.post_measurepoints({"t": 1})
        c.query_attributes()
    except EnosError:
        pass


options = st.fixed_dictionaries({}, optional={
    2100: st.one_of(st.binary(max_size=80), st.sampled_from([
        b"/topic/sys/MuGsF6W4/15bBZlRknc/thing/model/down_raw",
        b"/topic/sys/MuGsF6W4/15bBZlRknc/thing/service/measurepoint/set",
        b"sys/MuGsF6W4/15bBZlRknc/thing/service/measurepoint/get",
        b"/topic/sys/MuGsF6W4/15bBZlRknc/thing/service/x"])),
    2102: st.binary(max_size=200)})
payloads = st.one_of(st.binary(max_size=200), st.sampled_from([
    b'{"id":"1","code":200,"data":{}}', b'{"code":"200"}', b"[1,2]", b'{"id":{},"code":1260}',
    b'{"id":"1","version":"1.0","method":"thing.service.measurepoint.set","params":[]}',
    b"[" * 5000]))
responses = st.lists(st.builds(Resp, st.sampled_from([0x41, 0x44, 0x45, 0x80, 0x81, 0x84, 0xA0]),
                               payloads, options), max_size=10)


@settings(max_examples=300, deadline=None)
@given(responses, st.booleans())
def test_any_server_answer_gives_only_enos_errors(rs, activate):
    _run(rs, activate)


def test_seed_corpus_gives_only_enos_errors():
    for name in sorted(os.listdir(CORPUS)):
        with open(os.path.join(CORPUS, name)) as f:
            seed = json.load(f)
        opts = {}
        for n in (2100, 2102):
            if seed.get(str(n)) is not None:
                opts[n] = seed[str(n)].encode("latin-1")
        _run([Resp(seed["code"], seed["payload"].encode("latin-1"), opts)] * 3)
