"""EnosClient and Commands against a scripted CoAP client (runs in pytest and the MicroPython VM).

The scripted client answers each request from a list of canned responses and records what
was sent, so session handling (4.01 once, then retry), the JSON checks and the command loop
are checked on MicroPython without a network.
"""
import json

from vmcheck import raises, VirtualClock
from enosnb.enos.client import EnosClient
from enosnb.enos.commands import Commands
from enosnb.enos.errors import EnosAuthError, EnosCoapError, EnosProtocolError, EnosConfigError
from enosnb.enos.replies import EnosMethodMismatchError

PK = "MuGsF6W4"
DK = "15bBZlRknc"
CFG = {"productKey": PK, "deviceKey": DK, "deviceSecret": "ExampleDeviceSecret0123456789abc",
       "lifetime": 3600}


class Resp:
    def __init__(self, code, payload=b"", opts=None):
        self.code = code
        self.payload = payload
        self._opts = opts or {}

    def option(self, n):
        return self._opts.get(n)


class ScriptedCoap:
    def __init__(self, script):
        self.script = script
        self.sent = []

    def request(self, method, path, payload=b"", content_format=None, options=(), accept=None):
        self.sent.append((method, path, payload, content_format))
        r = self.script.pop(0)
        return r(payload) if callable(r) else r

    def post(self, path, payload=b"", **kw):
        return self.request(2, path, payload, **kw)

    def get(self, path, payload=b"", **kw):
        return self.request(1, path, payload, **kw)


class Transport:
    def __init__(self, secure, script):
        self.secure = secure
        self.coap = ScriptedCoap(script)
        self.opened = []

    def open(self, identity, psk):
        self.opened.append((identity, psk))
        return self.coap

    def close(self):
        pass


def ok_reply(payload):
    return Resp(0x44, b'{"id":"%s","code":200,"data":{}}' % json.loads(payload)["id"].encode())


def test_plain_connect_sends_auth_then_reports():
    t = Transport(False, [Resp(0x44), ok_reply])
    c = EnosClient(t, CFG)
    c.connect()
    c.post_measurepoints({"temp": 21.5}, 1764115200000)
    assert t.coap.sent[0][1] == "/auth/MuGsF6W4/15bBZlRknc"
    assert t.coap.sent[0][3] == 50
    assert t.coap.sent[1][1] == "/topic/sys/MuGsF6W4/15bBZlRknc/thing/measurepoint/post"


def test_reference_body_with_id_one():
    t = Transport(True, [ok_reply])
    c = EnosClient(t, CFG)
    c.connect()
    # restore() skips 1000 ids, so this saved state makes the next id "1".
    c.restore(b"\x01" + (10 ** 9 - 999).to_bytes(4, "big"))
    c.post_measurepoints({"temp": 21.5}, 1764115200000)
    assert t.coap.sent[0][2] == b'{"id":"1","version":"1.0","method":"thing.measurepoint.post",' \
        b'"params":{"measurepoints":{"temp":21.5},"time":1764115200000}}'


def test_dtls_connect_uses_identity_and_psk_without_auth_request():
    t = Transport(True, [ok_reply])
    c = EnosClient(t, CFG)
    c.connect()
    assert t.opened[0][0] == b"MuGsF6W4,15bBZlRknc,2,3600"
    assert len(t.opened[0][1]) == 16
    c.post_measurepoints({"a": 1})
    assert len(t.coap.sent) == 1


def test_unauthorized_triggers_one_reauth_and_one_retry():
    t = Transport(False, [Resp(0x44), Resp(0x81), Resp(0x44), ok_reply])
    c = EnosClient(t, CFG)
    c.connect()
    c.post_measurepoints({"a": 1})
    paths = [s[1] for s in t.coap.sent]
    assert paths[0] == paths[2] == "/auth/MuGsF6W4/15bBZlRknc"
    assert paths[1] == paths[3]


def test_unauthorized_twice_is_an_auth_error():
    t = Transport(False, [Resp(0x44), Resp(0x81), Resp(0x44), Resp(0x81)])
    c = EnosClient(t, CFG)
    c.connect()
    raises(EnosAuthError, c.post_measurepoints, {"a": 1})


def test_reauth_when_lifetime_is_nearly_over():
    clock = VirtualClock()
    t = Transport(False, [Resp(0x44), ok_reply, Resp(0x44), ok_reply])
    c = EnosClient(t, dict(CFG, lifetime=60), clock=clock)
    c.connect()
    c.post_measurepoints({"a": 1})
    clock.advance(59000)
    c.post_measurepoints({"a": 2})
    assert [s[1] for s in t.coap.sent].count("/auth/MuGsF6W4/15bBZlRknc") == 2


def test_coap_error_code_names_the_path():
    t = Transport(True, [Resp(0x84)])
    c = EnosClient(t, CFG)
    c.connect()
    e = raises(EnosCoapError, c.post_event, "Alarm", {"x": 1})
    assert e.coap_code == 0x84 and "4.04" in str(e) and "event/Alarm" in str(e)


def test_json_code_raises_the_named_error():
    t = Transport(True, [Resp(0x44, b'{"id":"1","code":1260,"data":{}}')])
    c = EnosClient(t, CFG)
    c.connect()
    e = raises(EnosMethodMismatchError, c.post_measurepoints, {"x": 1})
    assert e.code == 1260


def test_reply_for_another_id_is_refused():
    t = Transport(True, [Resp(0x44, b'{"id":"nope","code":200,"data":{}}')])
    c = EnosClient(t, CFG)
    c.connect()
    raises(EnosProtocolError, c.post_measurepoints, {"x": 1})


def test_activation_persists_secret_and_reconnects_in_mode_2():
    info = b'{"id":"1","version":"1.0","method":"thing.activate.info","params":' \
        b'{"assetId":"a","productKey":"MuGsF6W4","deviceKey":"15bBZlRknc","deviceSecret":"S3cr3t"}}'
    t = Transport(True, [Resp(0x45, info), ok_reply])
    saved = []
    c = EnosClient(t, {"productKey": PK, "deviceKey": DK, "productSecret": "P"},
                   on_secret=saved.append)
    c.connect()
    assert saved == ["S3cr3t"]
    assert t.opened[0][0].endswith(b",3,3600") and t.opened[1][0].endswith(b",2,3600")
    assert t.coap.sent[0][1] == "/topic/ext/session/MuGsF6W4/15bBZlRknc/thing/activate/info"
    c.post_measurepoints({"a": 1})


def test_activation_for_another_device_is_refused():
    info = b'{"method":"thing.activate.info","params":{"productKey":"MuGsF6W4",' \
        b'"deviceKey":"other","deviceSecret":"S"}}'
    t = Transport(True, [Resp(0x45, info)])
    saved = []
    c = EnosClient(t, {"productKey": PK, "deviceKey": DK, "productSecret": "P"},
                   on_secret=saved.append)
    raises(EnosProtocolError, c.connect)
    assert saved == []


def test_config_without_any_secret_is_refused():
    raises(EnosConfigError, EnosClient, Transport(True, []), {"productKey": PK, "deviceKey": DK})


def _cmd_client(script, **kw):
    cmds = Commands(**kw)
    seen = []
    cmds.on_set(lambda p: seen.append(p))
    cmds.on_raw(lambda data: b"ok")
    t = Transport(True, script)
    c = EnosClient(t, CFG, commands=cmds)
    c.connect()
    return c, cmds, seen, t


SET_TOPIC = b"/topic/sys/MuGsF6W4/15bBZlRknc/thing/service/measurepoint/set"
SET_CMD = b'{"id":"77","version":"1.0","method":"thing.service.measurepoint.set","params":{"sp":3}}'


def test_command_in_2102_is_executed_and_replied_with_its_id():
    c, cmds, seen, t = _cmd_client([
        lambda p: Resp(0x44, ok_reply(p).payload, {2100: SET_TOPIC, 2102: SET_CMD}),
        Resp(0x44)])
    c.post_measurepoints({"a": 1})
    assert seen == [{"sp": 3}]
    method, path, body, cf = t.coap.sent[1]
    assert path == "/topic/sys/MuGsF6W4/15bBZlRknc/thing/service/measurepoint/set_reply"
    assert body == b'{"id":"77","code":200,"data":{}}' and cf == 50


def test_command_without_2102_is_fetched_with_get():
    raw_topic = b"/topic/sys/MuGsF6W4/15bBZlRknc/thing/model/down_raw"
    c, cmds, seen, t = _cmd_client([
        lambda p: Resp(0x44, ok_reply(p).payload, {2100: raw_topic}),
        Resp(0x45, b"\x01\x02"), Resp(0x44)])
    c.post_measurepoints({"a": 1})
    assert t.coap.sent[1][0] == 1 and t.coap.sent[1][1] == raw_topic.decode()
    assert t.coap.sent[2][1].endswith("/thing/model/down_raw_reply")
    assert t.coap.sent[2][2] == b"ok" and t.coap.sent[2][3] == 42


def test_command_loop_is_bounded_per_wake():
    again = Resp(0x44, b"", {2100: SET_TOPIC, 2102: SET_CMD.replace(b'"77"', b'"78"')})
    script = [lambda p: Resp(0x44, ok_reply(p).payload, {2100: SET_TOPIC, 2102: SET_CMD})]
    script += [again] * 5
    c, cmds, seen, t = _cmd_client(script, max_per_wake=3)
    c.post_measurepoints({"a": 1})
    assert cmds.left_queued and len(t.coap.sent) == 4
    assert cmds.executed == 2 and cmds.duplicates == 1


def test_command_dedupe_memory_survives_deep_sleep():
    c, cmds, seen, t = _cmd_client([
        lambda p: Resp(0x44, ok_reply(p).payload, {2100: SET_TOPIC, 2102: SET_CMD}),
        Resp(0x44)])
    c.post_measurepoints({"a": 1})
    saved = cmds.state()
    c2, cmds2, seen2, t2 = _cmd_client([
        lambda p: Resp(0x44, ok_reply(p).payload, {2100: SET_TOPIC, 2102: SET_CMD}),
        Resp(0x44)])
    cmds2.restore(saved)
    c2.post_measurepoints({"a": 2})
    assert seen2 == [] and cmds2.duplicates == 1
    assert t2.coap.sent[1][2] == b'{"id":"77","code":200,"data":{}}'


def test_corrupt_command_state_is_refused():
    from enosnb.enos.errors import EnosError
    cmds = Commands()
    raises(EnosError, cmds.restore, b"\x01\x05ab")
    raises(EnosError, cmds.restore, b"\x09")


def _not_logged_in(payload):
    return Resp(0x44, b'{"id":"%s","code":1009,"data":{}}' % json.loads(payload)["id"].encode())


def test_plain_mode_logs_in_once_more_on_1009_and_then_takes_it_as_a_refused_topic():
    from enosnb.enos.replies import EnosNoPermissionError
    t = Transport(False, [Resp(0x44), _not_logged_in, Resp(0x44), ok_reply])
    c = EnosClient(t, CFG)
    c.connect()
    c.post_measurepoints({"a": 1})
    paths = [s[1] for s in t.coap.sent]
    assert paths.count("/auth/MuGsF6W4/15bBZlRknc") == 2 and paths[1] == paths[3]
    t = Transport(False, [Resp(0x44), _not_logged_in, Resp(0x44), _not_logged_in])
    c = EnosClient(t, CFG)
    c.connect()
    raises(EnosNoPermissionError, c.post_measurepoints, {"a": 1})
    # After a 4.01 and its new login, a 1009 does not log in a third time.
    t = Transport(False, [Resp(0x44), Resp(0x81), Resp(0x44), _not_logged_in])
    c = EnosClient(t, CFG)
    c.connect()
    raises(EnosNoPermissionError, c.post_measurepoints, {"a": 1})
    assert [s[1] for s in t.coap.sent].count("/auth/MuGsF6W4/15bBZlRknc") == 2


def test_dtls_mode_takes_1009_as_a_refused_topic_without_a_new_handshake():
    from enosnb.enos.replies import EnosNoPermissionError
    t = Transport(True, [_not_logged_in])
    c = EnosClient(t, CFG)
    c.connect()
    raises(EnosNoPermissionError, c.resume_measurepoint, {"a": 1}, 1764115200000)
    assert len(t.opened) == 1


def test_a_reply_without_id_is_accepted():
    t = Transport(True, [Resp(0x44, b'{"code":200,"data":{}}')])
    c = EnosClient(t, CFG)
    c.connect()
    assert c.post_measurepoints({"a": 1}) == {"code": 200, "data": {}}


def test_a_failed_command_fetch_or_refused_reply_never_fails_the_uplink_it_rode_on():
    from enosnb.coap.errors import CoapTimeout
    notes = []
    raw_topic = b"/topic/sys/MuGsF6W4/15bBZlRknc/thing/model/down_raw"

    def timeout(payload):
        raise CoapTimeout("GET (MID 7): no response within the 93000 ms exchange timeout")
    for script in ([lambda p: Resp(0x44, ok_reply(p).payload, {2100: raw_topic}),
                    Resp(0x84)],
                   [lambda p: Resp(0x44, ok_reply(p).payload, {2100: raw_topic}), timeout],
                   [lambda p: Resp(0x44, ok_reply(p).payload, {2100: SET_TOPIC, 2102: SET_CMD}),
                    Resp(0x80)],
                   [lambda p: Resp(0x44, ok_reply(p).payload, {2100: SET_TOPIC, 2102: SET_CMD}),
                    timeout]):
        c, cmds, seen, t = _cmd_client(script)
        cmds.log = notes.append
        assert c.post_measurepoints({"a": 1})["code"] == 200
        assert cmds.failures == 1
    assert "EnOS answered 4.04" in notes[0] and "CoapTimeout" in notes[1]
    assert "4.00" in notes[2] and "the command reply" in notes[3]


def test_a_memory_error_in_a_command_handler_passes_through_as_itself():
    c, cmds, seen, t = _cmd_client([
        lambda p: Resp(0x44, ok_reply(p).payload, {2100: SET_TOPIC, 2102: SET_CMD})])

    def starved(params):
        raise MemoryError("memory allocation failed")
    cmds.on_set(starved)
    raises(MemoryError, c.post_measurepoints, {"a": 1})
