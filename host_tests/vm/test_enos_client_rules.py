"""EnosClient at its edges, against a scripted CoAP client: the settings secrets.json gives it,
JSON message ids across reboots, every uplink's topic and method, authentication and
activation answers, DTLS session resumption, and the words of every error it raises.
Runs under pytest and on MicroPython."""
import json

from vmcheck import VirtualClock, raises
from test_enos_client_logic import CFG, DK, PK, Resp, Transport, ok_reply

from enosnb import rng
from enosnb.enos import identity
from enosnb.enos.client import EnosClient
from enosnb.enos.errors import EnosAuthError, EnosCoapError, EnosConfigError, \
    EnosProtocolError, EnosReplyError
from enosnb.enos.replies import EnosDeviceNotFoundError, EnosModelError

BASE = "/topic/sys/MuGsF6W4/15bBZlRknc/"
INFO = {"method": "thing.activate.info",
        "params": {"productKey": PK, "deviceKey": DK, "deviceSecret": "S3cr3t"}}


def _client(secure=True, script=(), cfg=None, **kw):
    t = Transport(secure, list(script))
    return EnosClient(t, CFG if cfg is None else cfg, **kw), t


def _reply(data=None, code=200, with_id=True):
    def answer(payload):
        body = {"code": code, "data": {} if data is None else data}
        if with_id:
            body["id"] = json.loads(payload)["id"]
        return Resp(0x44, json.dumps(body).encode())
    return answer


# ---- settings -----------------------------------------------------------------------------------

def test_secrets_without_a_secret_or_with_an_odd_psk_offset_are_refused_with_what_to_set():
    e = raises(EnosConfigError, EnosClient, Transport(True, []), {"productKey": PK, "deviceKey": DK})
    assert str(e) == "secrets.json needs deviceSecret (per device) or productSecret (per " \
                     "product, DTLS only)"
    e = raises(EnosConfigError, EnosClient, Transport(True, []), dict(CFG, pskOffset=7))
    assert str(e) == "pskOffset must be 8 (default) or 9 (diagnostic, Q5)"
    raises(EnosConfigError, EnosClient, Transport(True, []), dict(CFG, deviceKey="a,b"))


def test_the_psk_follows_the_offset_and_the_lifetime_defaults_to_an_hour():
    for offset in (None, 8, 9):
        c, t = _client(cfg=dict(CFG, pskOffset=offset, lifetime=None))
        c.connect()
        want = identity.psk_key(CFG["deviceSecret"], offset or 8)
        assert t.opened == [(b"MuGsF6W4,15bBZlRknc,2,3600", want)]


def test_plain_mode_signs_in_uppercase_with_content_format_json_unless_told():
    for cfg, upper, cf in (({}, True, 50), ({"signUppercase": False, "contentFormat": False},
                                            False, None)):
        c, t = _client(False, [Resp(0x44), _reply()], dict(CFG, **cfg))
        c.connect()
        c.post_measurepoints({"a": 1})
        sign = json.loads(t.coap.sent[0][2])["sign"]
        assert (sign == sign.upper()) is upper and t.coap.sent[0][3] == t.coap.sent[1][3] == cf


def test_dtls_mode_logs_in_with_auth_only_when_dtls_auth_is_set():
    c, t = _client(True, [Resp(0x44, b"token"), _reply()], dict(CFG, dtlsAuth=True))
    c.connect()
    c.post_measurepoints({"a": 1})
    assert t.coap.sent[0][1] == "/auth/MuGsF6W4/15bBZlRknc" and c.auth_payload == b"token"


def test_the_session_is_renewed_a_tenth_of_the_lifetime_before_it_ends_at_least_5_s():
    for lifetime, margin_ms in ((3600, 360000), (30, 5000)):
        clock = VirtualClock()
        c, t = _client(False, [Resp(0x44), _reply(), Resp(0x44), _reply()],
                       dict(CFG, lifetime=lifetime), clock=clock)
        c.connect()
        c.post_measurepoints({"a": 1})
        clock.advance(lifetime * 1000 - margin_ms)
        assert not c.keepalive_due()
        clock.advance(1)
        assert c.keepalive_due()
        c.post_measurepoints({"a": 3})
        assert [s[1] for s in t.coap.sent].count("/auth/MuGsF6W4/15bBZlRknc") == 2
    clock = VirtualClock()
    c, t = _client(False, [Resp(0x44), _reply()], dict(CFG, lifetime=61), clock=clock)
    c.connect()
    clock.advance(55000)                                 # the margin is 6 s, whole seconds
    assert not c.keepalive_due()
    for margin in (3600, 9999):                          # a margin as long as the lifetime
        clock = VirtualClock()
        c, t = _client(False, [Resp(0x44)], dict(CFG, reauthMarginS=margin), clock=clock)
        c.connect()
        clock.advance(1)
        assert c.keepalive_due()


def test_a_new_client_has_not_talked_to_enos_yet():
    c, t = _client()
    assert c.keepalive_due() and c.activated is False
    assert c.auth_payload is None and c.last_result is None and c.coap is None


# ---- JSON message ids (enos-coap.md §8.1) ---------------------------------------------------------

def test_the_first_message_id_is_random_below_a_billion():
    saved = rng.urandom
    rng.urandom = lambda n: b"\x12\x34\x56\x78"[:n]
    try:
        c, t = _client()
    finally:
        rng.urandom = saved
    assert c.next_id() == str(0x12345678 % 1000000000)
    assert c.state() == b"\x01" + (0x12345678 % 1000000000 + 1).to_bytes(4, "big")


def test_message_ids_wrap_below_a_billion_and_skip_1000_after_a_restore():
    c, t = _client()
    c.restore(b"\x01" + (10 ** 9 - 1000).to_bytes(4, "big"))
    assert [c.next_id(), c.next_id()] == ["0", "1"]
    c.restore(b"\x01\x00\x00\x00\x05")
    assert c.next_id() == "1005" and c.state() == b"\x01\x00\x00\x03\xee"


def test_restore_refuses_anything_but_five_bytes_of_version_1():
    c, t = _client()
    for bad in (None, b"\x01\x00\x00\x00", b"\x01" + bytes(5), b"\x02" + bytes(4)):
        e = raises(EnosProtocolError, c.restore, bad)
        assert str(e) == "EnOS client state must be the 5 bytes state() returned; discard " \
                         "it and keep the random start"


# ---- uplinks --------------------------------------------------------------------------------------

def _sent_json(t, i=-1):
    method, path, body, cf = t.coap.sent[i]
    return path, json.loads(body), cf


def test_every_uplink_goes_to_its_topic_with_its_method():
    c, t = _client(True, [_reply()] * 8)
    c.connect()
    items = [{"measurepoints": {"a": 1}, "time": 5}]
    calls = ((lambda: c.post_measurepoints_batch(items), "thing/measurepoint/post/batch", items),
             (lambda: c.resume_measurepoints(items), "thing/measurepoint/resume/batch", items),
             (lambda: c.resume_measurepoint({"a": 1}, 7), "thing/measurepoint/resume",
              {"measurepoints": {"a": 1}, "time": 7}),
             (lambda: c.post_event("Alarm", {"x": 1}, 9), "thing/event/Alarm/post",
              {"events": {"x": 1}, "time": 9}),
             (lambda: c.update_attributes({"fw": "1"}), "thing/attribute/update",
              {"attributes": {"fw": "1"}}),
             (lambda: c.delete_attributes(["fw"]), "thing/attribute/delete",
              {"attributes": ["fw"]}))
    for call, suffix, params in calls:
        call()
        path, body, cf = _sent_json(t)
        assert path == BASE + suffix and cf == 50 and t.coap.sent[-1][0] == 2
        assert body["method"] == suffix.replace("/", ".") and body["params"] == params


def test_an_attribute_query_returns_the_data_of_the_reply():
    c, t = _client(True, [_reply({"fw": "1.2"}), Resp(0x44)])
    c.connect()
    assert c.query_attributes(["fw"]) == {"fw": "1.2"}
    path, body, cf = _sent_json(t)
    assert path == BASE + "thing/attribute/query" and body["params"] == {"attributes": ["fw"]}
    assert body["method"] == "thing.attribute.query"
    assert c.query_attributes() is None                   # an empty answer


def test_at_most_200_attributes_go_in_one_update():
    c, t = _client(True, [_reply()])
    c.connect()
    c.update_attributes(dict(("a%d" % i, i) for i in range(200)))
    e = raises(EnosConfigError, c.update_attributes, dict(("a%d" % i, i) for i in range(201)))
    assert str(e) == "EnOS takes at most 200 attributes per update" and len(t.coap.sent) == 1


def test_a_raw_upload_goes_as_octets_and_returns_the_raw_answer():
    c, t = _client(True, [Resp(0x44, b"\x22\x00")])
    c.connect()
    assert c.up_raw(b"\x11\x01") == b"\x22\x00"
    assert t.coap.sent[0] == (2, BASE + "thing/model/up_raw", b"\x11\x01", 42)


def test_the_topic_path_is_kept_between_reports_and_made_anew_for_another_topic_or_key():
    c, t = _client(True, [_reply()] * 4)
    c.connect()
    c.post_measurepoints({"a": 1})
    c.post_measurepoints({"a": 2})
    assert t.coap.sent[0][1] is t.coap.sent[1][1]
    c.post_event("E", {"x": 1})
    assert t.coap.sent[2][1] == BASE + "thing/event/E/post"
    c.dk = "other"
    c.post_event("E", {"x": 1})
    assert t.coap.sent[3][1] == "/topic/sys/MuGsF6W4/other/thing/event/E/post"


def test_reply_errors_name_the_path_the_code_and_enos_message():
    c, t = _client(True, [lambda p: Resp(0x44, b'{"id":"%s","code":1204,"message":"bad temp"}'
                                         % json.loads(p)["id"].encode())])
    c.connect()
    e = raises(EnosModelError, c.post_measurepoints, {"temp": 1})
    assert str(e) == "EnOS code 1204 (a value does not match the thing model) for " + BASE + \
        "thing/measurepoint/post: bad temp"
    c, t = _client(True, [lambda p: Resp(0x44, b'{"id":"%s","code":1220}'
                                         % json.loads(p)["id"].encode())])
    c.connect()
    e = raises(EnosReplyError, c.post_measurepoints, {"temp": 1})
    assert str(e) == "EnOS code 1220 (payload format error (invalid JSON)) for " + BASE + \
        "thing/measurepoint/post"                         # no message, nothing appended
    c, t = _client(True, [Resp(0x44, b'{"id":"nope","code":200}')])
    c.connect()
    e = raises(EnosProtocolError, c.post_measurepoints, {"a": 1})
    assert str(e) == "the reply to %sthing/measurepoint/post carries id 'nope', not %s" % (
        BASE, json.loads(t.coap.sent[0][2])["id"])
    c, t = _client(True, [Resp(0x44, b"oops")])
    c.connect()
    e = raises(EnosProtocolError, c.post_measurepoints, {"a": 1})
    assert str(e) == "the reply to %sthing/measurepoint/post is not valid JSON" % BASE


def test_coap_errors_carry_the_hint_for_their_code():
    c, t = _client(True, [Resp(0xA0), Resp(0x86)])
    c.connect()
    e = raises(EnosCoapError, c.post_measurepoints, {"a": 1})
    assert str(e) == "EnOS answered 5.00 to %sthing/measurepoint/post: EnOS internal error; " \
                     "retry later with back-off" % BASE
    e = raises(EnosCoapError, c.post_measurepoints, {"a": 1})
    assert str(e) == "EnOS answered 4.06 to %sthing/measurepoint/post" % BASE


def test_a_request_is_sent_with_its_method_payload_and_content_format():
    c, t = _client(True, [Resp(0x45, b"x"), Resp(0x44), Resp(0x44)])
    res = c.request(1, "/p")
    assert t.coap.sent == [(1, "/p", b"", None)] and res.payload == b"x"
    assert c.last_result is res
    assert c.exchange(3, "/q", cf=50) is None
    assert t.coap.sent[1] == (3, "/q", b"", 50)
    c.content_format = False
    c.request(2, "/r", b"b", 50)
    assert t.coap.sent[2] == (2, "/r", b"b", None)


def test_a_request_refused_with_unauthorized_is_sent_again_unchanged_after_a_new_session():
    c, t = _client(True, [Resp(0x81), Resp(0x44)])
    c.request(3, "/q", b"p", 50)
    assert t.coap.sent == [(3, "/q", b"p", 50)] * 2 and len(t.opened) == 2


def test_a_second_unauthorized_after_logging_in_again_says_to_check_the_keys():
    c, t = _client(False, [Resp(0x44), Resp(0x81), Resp(0x44), Resp(0x81)])
    c.connect()
    e = raises(EnosAuthError, c.post_measurepoints, {"a": 1})
    assert str(e) == "EnOS answered 4.01 to %sthing/measurepoint/post again after " \
                     "re-authentication: check the keys and secret" % BASE
    assert c.last_result.code == 0x81


# ---- plain-mode login (enos-coap.md §6) ----------------------------------------------------------

def test_a_refused_login_names_the_keys_to_check_and_other_failures_say_to_back_off():
    for code, words in ((0x81, "4.01"), (0x83, "4.03")):
        c, t = _client(False, [Resp(code)])
        e = raises(EnosAuthError, c.connect)
        assert str(e) == "EnOS refused /auth with %s: check productKey, deviceKey, " \
                         "deviceSecret" % words
    c, t = _client(False, [Resp(0xA3)])
    e = raises(EnosCoapError, c.connect)
    assert str(e) == "EnOS answered 5.03 to /auth/MuGsF6W4/15bBZlRknc: authentication " \
                     "failed; back off and retry"
    assert c.last_result.code == 0xA3 and c.auth_payload is None and c.coap is None


def test_plain_mode_without_a_device_secret_says_activation_needs_dtls():
    c, t = _client(False, cfg={"productKey": PK, "deviceKey": DK, "productSecret": "P"})
    e = raises(EnosConfigError, c.connect)
    assert str(e) == "plain (non-DTLS) mode needs deviceSecret: per-product activation works " \
                     "over DTLS only (Q13)"
    e = raises(EnosConfigError, c.activate)
    assert str(e) == "per-product activation needs DTLS mode (Q13)"


# ---- per-product activation (enos-coap.md §7) ------------------------------------------------------

PER_PRODUCT = {"productKey": PK, "deviceKey": DK, "productSecret": "P"}


def _activate(info, code=0x45):
    c, t = _client(True, [Resp(code, json.dumps(info).encode())], PER_PRODUCT)
    return c, t, raises(Exception, c.activate)


def test_activation_uses_the_product_secret_and_adopts_the_device_secret():
    saved = []
    c, t = _client(True, [Resp(0x45, json.dumps(INFO).encode()), _reply()], PER_PRODUCT,
                   on_secret=saved.append)
    c.connect()
    assert c.activated and saved == ["S3cr3t"]
    assert t.opened[0] == (b"MuGsF6W4,15bBZlRknc,3,3600", identity.psk_key("P"))
    assert t.opened[1] == (b"MuGsF6W4,15bBZlRknc,2,3600", identity.psk_key("S3cr3t"))
    assert c.last_result.code == 0x45
    c, t = _client(True, [Resp(0x45, json.dumps(INFO).encode())], dict(PER_PRODUCT, pskOffset=9))
    c.activate()                                         # no on_secret: kept in memory only
    assert t.opened[0][1] == identity.psk_key("P", 9)
    assert c.activated and c.coap is None


def test_activation_answers_that_are_not_a_secret_for_this_device_are_refused_by_name():
    cases = [
        (dict(INFO, code=1257, message="gone"), EnosDeviceNotFoundError,
         "EnOS code 1257 (device not found) for /topic/ext/session/MuGsF6W4/15bBZlRknc/thing/"
         "activate/info: gone"),
        (dict(INFO, code=1257), EnosDeviceNotFoundError,
         "EnOS code 1257 (device not found) for /topic/ext/session/MuGsF6W4/15bBZlRknc/thing/"
         "activate/info"),
        (dict(INFO, method="thing.other"), EnosProtocolError,
         "activate/info answered method 'thing.other', not thing.activate.info"),
        (dict(INFO, params=[1]), EnosProtocolError, "activate/info response has no params object"),
        (dict(INFO, params={"productKey": "x", "deviceKey": DK, "deviceSecret": "S"}),
         EnosProtocolError, "activate/info answered for another device; secret ignored"),
        (dict(INFO, params={"productKey": PK, "deviceKey": DK, "deviceSecret": ""}),
         EnosProtocolError, "activate/info response has no deviceSecret"),
        (dict(INFO, params={"productKey": PK, "deviceKey": DK, "deviceSecret": 5}),
         EnosProtocolError, "activate/info response has no deviceSecret"),
    ]
    for info, cls, words in cases:
        c, t, e = _activate(info)
        assert type(e) is cls and str(e) == words, words
        assert not c.activated
    c, t = _client(True, [Resp(0x45, json.dumps(dict(INFO, code=200)).encode())], PER_PRODUCT)
    c.activate()
    assert c.activated
    c, t = _client(True, [Resp(0x45, b"[]")], PER_PRODUCT)
    assert str(raises(EnosProtocolError, c.activate)) == \
        "the activate/info response is not a JSON object"


def test_activation_refusals_say_what_to_check():
    c, t, e = _activate(INFO, code=0x81)
    assert type(e) is EnosAuthError and str(e) == "EnOS refused activation (4.01): is Dynamic " \
        "Activation on for the product and the productSecret right?"
    c, t, e = _activate(INFO, code=0x84)
    assert type(e) is EnosCoapError and str(e) == "EnOS answered 4.04 to /topic/ext/session/" \
        "MuGsF6W4/15bBZlRknc/thing/activate/info: activation failed"
    c, t = _client(True, cfg=dict(CFG))
    assert str(raises(EnosConfigError, c.activate)) == \
        "activation needs productSecret in secrets.json"


# ---- DTLS session across deep sleep ------------------------------------------------------------------

class ResumingTransport(Transport):
    def __init__(self, script):
        Transport.__init__(self, True, script)
        self.resumed = []

    def resume(self, identity_, psk, blob):
        self.resumed.append((identity_, psk, blob))
        return self.coap

    def save(self):
        return b"blob"


def test_a_saved_dtls_session_is_resumed_with_the_device_identity_and_key():
    t = ResumingTransport([_reply()])
    c = EnosClient(t, dict(CFG, pskOffset=9))
    assert c.save_session() is None                       # nothing open yet
    c.resume_session(b"blob")
    assert t.resumed == [(b"MuGsF6W4,15bBZlRknc,2,3600",
                          identity.psk_key(CFG["deviceSecret"], 9), b"blob")]
    assert t.opened == [] and c.coap is t.coap and not c.keepalive_due()
    assert c.save_session() == b"blob"
    c.post_measurepoints({"a": 1})
    c.close()
    assert c.coap is None


def test_without_a_blob_a_secret_or_dtls_a_wake_connects_afresh():
    for secure, blob, cfg in ((True, b"", CFG), (False, b"blob", CFG), (True, b"blob", None)):
        t = ResumingTransport([Resp(0x45, json.dumps(INFO).encode())])
        t.secure = secure
        script = [Resp(0x44)] if not secure else []
        t.coap.script = script + t.coap.script
        c = EnosClient(t, cfg or PER_PRODUCT)
        c.resume_session(blob)
        assert t.resumed == [] and t.opened
    t = Transport(False, [Resp(0x44)])
    c = EnosClient(t, CFG)
    c.connect()
    assert c.save_session() is None                       # plain transport: no session
