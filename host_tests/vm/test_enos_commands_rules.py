"""Cloud commands (enos-coap.md §11) at their edges: what each handler's result becomes in the
reply, what is dropped and logged and why, the per-wake limit, and the dedupe memory kept
across deep sleep. Runs under pytest and on MicroPython."""
import json

from vmcheck import raises
from test_enos_client_logic import Resp

from enosnb.enos.commands import Commands
from enosnb.enos.errors import EnosError

T = "/topic/sys/p/d/thing/"
SET = T + "service/measurepoint/set"
GET = T + "service/measurepoint/get"
RAW = T + "model/down_raw"


class FakeClient:
    """Records the requests Commands makes; answers 2.04 unless given answers."""

    def __init__(self, answers=()):
        self.sent = []
        self.answers = list(answers)

    def request(self, method, path, payload=b"", cf=None):
        self.sent.append((method, path, payload, cf))
        return self.answers.pop(0) if self.answers else Resp(0x44)


def _cmd(topic, body):
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    return Resp(0x44, b"", {2100: topic.encode(), 2102: body})


def _run(cmds, *responses):
    client = FakeClient()
    for r in responses:
        cmds.drain(client, r)
    return client


def _replies(client):
    return [(path, json.loads(body)) for m, path, body, cf in client.sent]


def test_handler_results_become_code_and_data_of_the_reply():
    results = [None, 202, (201, {"v": 1}), {"x": 2}, True, (1, 2, 3)]
    cmds = Commands()
    cmds.on_set(lambda params: results.pop(0))
    client = _run(cmds, *[_cmd(SET, {"id": i, "params": {}}) for i in range(6)])
    assert [(r["code"], r["data"]) for p, r in _replies(client)] == [
        (200, {}), (202, {}), (201, {"v": 1}), (200, {"x": 2}), (200, True), (200, [1, 2, 3])]
    assert all(p == SET + "_reply" for p, r in _replies(client))


def test_get_and_service_handlers_get_their_params_and_the_service_id():
    seen = []
    cmds = Commands()
    cmds.on_get(lambda params: seen.append(("get", params)) or {"t": 1})
    cmds.on_service(lambda sid, params: seen.append((sid, params)) or (200, {"ok": 1}))
    client = _run(cmds, _cmd(GET, {"id": "g", "params": {"a": 1}}),
                  _cmd(T + "service/reboot", {"id": "s"}))
    assert seen == [("get", {"a": 1}), ("reboot", {})]
    assert _replies(client) == [(GET + "_reply", {"id": "g", "code": 200, "data": {"t": 1}}),
                                (T + "service/reboot_reply",
                                 {"id": "s", "code": 200, "data": {"ok": 1}})]


def test_a_command_without_a_handler_gets_404_and_a_failing_handler_500_with_its_error():
    notes = []
    cmds = Commands(log=notes.append)

    def broken(params):
        raise KeyError("x")
    cmds.on_service(lambda sid, params: 1 / 0)
    cmds.on_set(broken)
    client = _run(cmds, _cmd(GET, {"id": 1}), _cmd(SET, {"id": 2}), _cmd(T + "service/x", {"id": 3}))
    assert [r for p, r in _replies(client)] == [
        {"id": "1", "code": 404, "data": {}},
        {"id": "2", "code": 500, "data": {"error": "KeyError"}},
        {"id": "3", "code": 500, "data": {"error": "ZeroDivisionError"}}]
    assert notes == ["command handler failed: KeyError", "command handler failed: ZeroDivisionError"]
    assert cmds.executed == 3


def test_a_new_dispatcher_answers_every_json_command_with_404_and_has_nothing_queued():
    cmds = Commands()
    assert cmds.left_queued is False
    client = _run(cmds, _cmd(SET, {"id": 1}), _cmd(GET, {"id": 2}), _cmd(T + "service/x", {"id": 3}))
    assert [r["code"] for p, r in _replies(client)] == [404, 404, 404]
    assert cmds.left_queued is False


def test_raw_commands_reply_with_what_the_handler_returns_as_octets():
    outs = ["text", bytearray(b"\x01"), None]
    cmds = Commands()
    cmds.on_raw(lambda data: outs.pop(0))
    client = _run(cmds, _cmd(RAW, b"\x21a"), _cmd(RAW, b"\x21b"), _cmd(RAW, b"\x21c"))
    assert [(path, body, cf) for m, path, body, cf in client.sent] == [
        (RAW + "_reply", b"text", 42), (RAW + "_reply", b"\x01", 42)]
    assert [m for m, path, body, cf in client.sent] == [2, 2]


def test_a_raw_command_without_a_handler_or_with_a_failing_one_is_logged_and_not_answered():
    notes = []
    cmds = Commands(log=notes.append)
    client = _run(cmds, _cmd(RAW, b"\x01"))
    cmds.on_raw(lambda data: data.missing)
    client2 = _run(cmds, _cmd(RAW, b"\x02"))
    assert client.sent == client2.sent == []
    assert notes == ["no raw command handler; down_raw ignored",
                     "raw command handler failed: AttributeError"]


def test_commands_that_cannot_be_understood_are_dropped_logged_and_counted():
    notes = []
    cmds = Commands(log=notes.append)
    cmds.on_set(lambda p: None)
    bad_topic = Resp(0x44, b"", {2100: b"\xff\xfe", 2102: b"{}"})
    client = _run(cmds, _cmd(SET, b"{oops"), _cmd(SET, {"params": {}}), bad_topic, Resp(0x44),
                  None, _cmd(T + "nothing/here", {"id": 1}), _cmd(SET, b"[1]"))
    assert client.sent == [] and cmds.dropped == 5 and cmds.executed == 0
    assert notes == ["the command on /sys/p/d/thing/service/measurepoint/set is not valid JSON",
                     "command on /sys/p/d/thing/service/measurepoint/set has no id; ignored",
                     "option 2100 is not UTF-8 text; command ignored",
                     "ignored a command on unknown topic /sys/p/d/thing/nothing/here",
                     "the command on /sys/p/d/thing/service/measurepoint/set is not a JSON "
                     "object"]


def test_at_most_8_commands_run_per_wake_by_default_and_the_limit_is_logged():
    notes = []
    cmds = Commands(log=notes.append)
    cmds.on_set(lambda p: None)
    client = FakeClient([_cmd(SET, {"id": i + 1}) for i in range(10)])
    assert cmds.drain(client, _cmd(SET, {"id": 0})) == 8
    assert cmds.executed == 8 and cmds.left_queued
    assert notes == ["command limit 8 reached; the rest waits for the next wake"]
    assert cmds.drain(FakeClient(), Resp(0x44)) == 0 and not cmds.left_queued


def test_commands_announced_by_a_fetch_or_by_a_reply_answer_are_run_in_turn():
    bad_topic = Resp(0x45, b"", {2100: b"\xff"})
    for fetched in (Resp(0x45, json.dumps({"id": 1}).encode()), bad_topic):
        runs = []
        cmds = Commands()
        cmds.on_set(lambda p: runs.append("set"))
        cmds.on_get(lambda p: runs.append("get"))
        if fetched is bad_topic:
            fetched = Resp(0x45, json.dumps({"id": 1}).encode(), {2100: b"\xff"})
        client = FakeClient([fetched, _cmd(GET, {"id": 2})])
        cmds.drain(client, Resp(0x44, b"", {2100: SET.encode()}))   # no 2102: fetched with GET
        assert client.sent[0][:2] == (1, SET) and runs == ["set", "get"]
    runs = []
    cmds = Commands()
    cmds.on_set(lambda p: runs.append(p["n"]))
    client = FakeClient([Resp(0x45, json.dumps({"id": 1, "params": {"n": 1}}).encode(),
                              {2100: SET.encode(), 2102: json.dumps({"id": 2, "params": {"n": 2}})
                               .encode()})])
    cmds.drain(client, Resp(0x44, b"", {2100: SET.encode()}))
    assert runs == [1, 2]                                # the fetch answer announced the next


def test_a_command_that_cannot_be_fetched_is_logged_with_code_and_topic_and_counted():
    notes = []
    cmds = Commands(log=notes.append)
    client = FakeClient([Resp(0x84)])
    assert cmds.drain(client, Resp(0x44, b"", {2100: SET.encode()})) == 1
    assert cmds.failures == 1
    assert notes == ["fetching the command on %s: EnOS answered 4.04" % SET]


def test_a_refused_command_reply_is_logged_with_code_and_reply_topic_and_counted():
    notes = []
    cmds = Commands(log=notes.append)
    cmds.on_set(lambda p: None)
    client = FakeClient([Resp(0x83)])
    assert cmds.drain(client, _cmd(SET, {"id": 1})) == 1
    assert cmds.failures == 1
    assert notes == ["the command reply on %s_reply: EnOS answered 4.03" % SET]


def test_a_raw_command_is_known_again_by_the_hash_an_earlier_firmware_kept():
    import binascii
    import hashlib
    key = b"raw:" + binascii.hexlify(hashlib.sha256(b"\x21\x01").digest()[:8])
    cmds = Commands()
    cmds.on_raw(lambda d: 1 / 0)
    cmds.restore(b"\x01" + bytes((len(key),)) + key + b"\x00\x02ok")
    client = _run(cmds, _cmd(RAW, b"\x21\x01"))
    assert cmds.duplicates == 1 and client.sent[0][2] == b"ok"


def test_a_json_command_is_recognised_by_topic_and_id_and_a_raw_one_by_its_bytes():
    runs = []
    cmds = Commands()
    cmds.on_set(lambda p: runs.append("set"))
    cmds.on_get(lambda p: runs.append("get"))
    cmds.on_raw(lambda d: runs.append(d) or b"r")
    _run(cmds, _cmd(SET, {"id": 5}), _cmd(GET, {"id": 5}), _cmd(SET, {"id": "5"}),
         _cmd(RAW, b"\x01"), _cmd(RAW, b"\x01"), _cmd(RAW, b"\x02"))
    assert runs == ["set", "get", b"\x01", b"\x02"] and cmds.duplicates == 2


def test_the_last_16_commands_are_remembered_by_default_not_the_17th():
    runs = []
    cmds = Commands(max_per_wake=100)
    cmds.on_set(lambda p: runs.append(p["n"]))
    _run(cmds, *[_cmd(SET, {"id": i, "params": {"n": i}}) for i in range(17)])
    _run(cmds, _cmd(SET, {"id": 1, "params": {"n": 101}}), _cmd(SET, {"id": 0, "params": {"n": 100}}))
    assert runs == list(range(17)) + [100]


# ---- the dedupe memory across deep sleep ----------------------------------------------------------

def test_the_dedupe_memory_keeps_its_order_and_short_replies_across_deep_sleep():
    cmds = Commands(remember=3)
    cmds.on_set(lambda p: (200, {"pad": "x" * p.get("pad", 0)}))
    client = _run(cmds, *[_cmd(SET, {"id": i, "params": {"pad": 300 if i == 2 else 0}})
                          for i in range(4)])
    state = cmds.state()
    again = Commands(remember=3)
    again.on_set(lambda p: 1 / 0)
    again.restore(state)
    assert again.state() == state
    client2 = _run(again, _cmd(SET, {"id": 1}), _cmd(SET, {"id": 2}), _cmd(SET, {"id": 3}))
    assert again.duplicates == 3 and again.executed == 0
    assert [body for m, p, body, cf in client2.sent] == [client.sent[1][2], client.sent[3][2]]
    small = Commands(remember=2)
    small.restore(state)                               # keeps the newest two
    key = "json:/sys/p/d/thing/service/measurepoint/set:%d"
    assert [small._lookup((key % i).encode()) is not None for i in (1, 2, 3)] == [
        False, True, True]


def test_keys_up_to_255_bytes_and_replies_up_to_200_bytes_are_kept_across_deep_sleep():
    cmds = Commands()
    cmds.on_service(lambda sid, p: (200, {"r": "x" * (200 - 37)}))  # a 200-byte reply
    name = "s" * (255 - len("json:/sys/p/d/thing/service/:1"))
    topics = (T + "service/" + name, T + "service/" + name + "t")        # keys of 255, 256
    client = _run(cmds, _cmd(topics[0], {"id": 1}), _cmd(topics[1], {"id": 1}))
    assert len(client.sent[0][2]) == 200
    restored = Commands()
    restored.restore(cmds.state())
    keys = [("json:" + t[6:] + ":1").encode() for t in topics]
    assert [len(k) for k in keys] == [255, 256]
    assert restored._lookup(keys[0]) is not None and restored._lookup(keys[1]) is None
    assert restored._replies[restored._lookup(keys[0])] == client.sent[0][2]


def test_a_command_state_that_is_not_state_output_is_refused_with_what_to_do():
    assert str(raises(EnosError, Commands().restore, b"")) == \
        "command state is not from Commands.state(); discard it"
    assert str(raises(EnosError, Commands().restore, b"\x02")) == \
        "command state is not from Commands.state(); discard it"
    for bad in (b"\x01\x05ab", b"\x01\x02ab\x00", b"\x01\x02ab\x00\x05abc"):
        e = raises(EnosError, Commands().restore, bad)
        assert str(e) == "command state is truncated; discard it"
    c = Commands()
    c.restore(b"\x01\x02ab\x01\x02" + b"r" * 258 + b"\x01c\xff\xff")
    assert c._replies[0] == b"r" * 258 and c._seen[1] == b"c" and c._replies[1] is None
    c.restore(b"\x01\x02ab\x00\x00")
    # A reply longer than 200 bytes is not kept: the command is known, not answered again.
    assert c.state() == b"\x01\x02ab\xff\xff\x01c\xff\xff\x02ab\x00\x00"


class _LinkDown(Exception):
    """What a timed-out or broken link raises below the EnOS layer."""


class _DeadClient(FakeClient):
    """The link fails on every request after the first `ok` ones."""

    def __init__(self, ok=0, answers=()):
        FakeClient.__init__(self, answers)
        self.ok = ok

    def request(self, method, path, payload=b"", cf=None):
        if self.ok <= 0:
            self.sent.append((method, path, payload, cf))
            raise _LinkDown("no answer")
        self.ok -= 1
        return FakeClient.request(self, method, path, payload, cf)


def test_a_lost_link_stops_draining_and_every_failure_is_logged_word_for_word_and_counted():
    notes = []
    cmds = Commands(log=notes.append)
    announce = Resp(0x44, b"", {2100: SET.encode()})     # no 2102: fetched with an empty GET
    client = _DeadClient()
    assert cmds.drain(client, announce) == 1             # the wake goes on with what it did
    assert client.sent == [(1, SET, b"", None)]
    assert notes == ["fetching the command on %s failed (_LinkDown: no answer); "
                     "EnOS sends it again" % SET]
    cmds.on_set(lambda p: None)
    client = _DeadClient()
    assert cmds.drain(client, _cmd(SET, {"id": 7})) == 1
    assert cmds.failures == 2 and len(client.sent) == 1   # nothing more after the lost reply
    assert notes[-1] == "the command reply on %s_reply failed (_LinkDown: no answer); " \
                        "EnOS sends it again" % SET
    client = FakeClient([Resp(0x84), Resp(0x84)])
    cmds.drain(client, announce)
    cmds.drain(client, _cmd(SET, {"id": 8}))
    assert cmds.failures == 4


def test_commands_announced_after_a_refused_fetch_still_run():
    runs = []
    cmds = Commands()
    cmds.on_set(lambda p: runs.append(p["n"]))

    def body(n):
        return json.dumps({"id": n, "params": {"n": n}}).encode()
    client = FakeClient([
        Resp(0x45, body(1), {2100: SET.encode()}),       # command 1, announcing one more
        _cmd(SET, {"id": 3, "params": {"n": 3}}),        # its reply's answer carries command 3
        Resp(0x84),                                      # the announced one cannot be fetched
    ])
    assert cmds.drain(client, Resp(0x44, b"", {2100: SET.encode()})) == 3
    assert runs == [1, 3] and cmds.failures == 1
