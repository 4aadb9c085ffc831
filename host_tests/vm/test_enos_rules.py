"""The EnOS layer's rules at their edges: what each error says, the keys identity refuses and
names, the topics split_sys accepts, JSON written for EnOS, the raw passthrough form's limits,
and the transports that open CoAP over UDP or DTLS. Runs under pytest and on MicroPython."""
from vmcheck import VirtualClock, raises, unhex
from dtls_fakes import FakeEndpoint
from dtls_peer import MiniServer, serve

from enosnb.dtls.errors import DtlsTimeout
from enosnb.dtls.session import DtlsSession
from enosnb.dtls.timers import LOOPBACK
from enosnb.enos import bodies, identity, rawpoints, topics
from enosnb.enos import errors as er
from enosnb.enos import replies as rp
from enosnb.enos.errors import EnosAuthError, EnosConfigError, EnosError, EnosProtocolError
from enosnb.enos.transport import DtlsTransport, PlainTransport

PK, DK, SECRET = "MuGsF6W4", "15bBZlRknc", "ExampleDeviceSecret0123456789abc"
TABLE = rawpoints.DEMO_TABLE


# ---- errors (enos-coap.md §9, §10) ----------------------------------------------------------

def test_each_documented_enos_code_raises_its_own_class_with_its_meaning():
    classes = ((1008, rp.EnosTooLargeError), (1009, rp.EnosNoPermissionError),
               (1200, rp.EnosParseError), (1204, rp.EnosModelError), (1206, rp.EnosFormatError),
               (1207, rp.EnosFormatError), (1208, rp.EnosFormatError), (1209, rp.EnosFormatError),
               (1212, rp.EnosSubDeviceError), (1220, rp.EnosPayloadFormatError),
               (1251, rp.EnosEmptyPayloadError), (1257, rp.EnosDeviceNotFoundError),
               (1260, rp.EnosMethodMismatchError))
    for code, cls in classes:
        e = er.reply_error(code, "/topic/x", "bad")
        assert type(e) is cls and isinstance(e, er.EnosReplyError), code
        assert (e.code, e.path) == (code, "/topic/x")
        assert str(e) == "EnOS code %d (%s) for /topic/x: bad" % (code, rp.MEANINGS[code])
    assert rp.EnosModelError.__name__ == "EnosModelError"
    e = er.reply_error(4242, "/p")
    assert type(e) is er.EnosReplyError and str(e) == "EnOS code 4242 (undocumented code) for /p"


def test_a_new_reply_class_is_an_enos_reply_error_raised_for_its_codes():
    cls = rp._reply_class("EnosTestError", 4901, 4902)
    assert cls.__name__ == "EnosTestError" and issubclass(cls, er.EnosReplyError)
    for code in (4901, 4902):
        e = er.reply_error(code, "/p")
        assert type(e) is cls and str(e) == "EnOS code %d (undocumented code) for /p" % code
    assert str(er.EnosReplyError(1, "/q")) == "EnOS code 1 (undocumented code) for /q"


def test_a_reply_without_an_integer_code_is_a_protocol_error():
    for code in (None, "200", True, 200.0):
        e = er.reply_error(code, "/topic/x")
        assert type(e) is EnosProtocolError
        assert str(e) == "the reply to /topic/x has no integer code"


def test_a_coap_error_names_the_code_the_path_and_the_hint():
    e = er.EnosCoapError(0x84, "/topic/y")
    assert (e.coap_code, e.path, str(e)) == (0x84, "/topic/y", "EnOS answered 4.04 to /topic/y")
    e = er.EnosCoapError(0xA3, "/auth", "retry later")
    assert str(e) == "EnOS answered 5.03 to /auth: retry later"


# ---- identity (enos-coap.md §4-§6) ------------------------------------------------------------

def test_each_missing_or_malformed_key_is_named_wherever_it_is_used():
    uses = (lambda pk, dk: identity.psk_identity(pk, dk, 2, 3600),
            lambda pk, dk: identity.sign(pk, dk, 3600, SECRET),
            lambda pk, dk: identity.auth_path(pk, dk))
    for use in uses:
        for pk, dk, name in ((None, DK, "productKey"), (PK, b"", "deviceKey")):
            e = raises(EnosConfigError, use, pk, dk)
            assert str(e) == "%s is missing: set it in secrets.json" % name
        for pk, dk, name in (("a b", DK, "productKey"), (PK, "c,d", "deviceKey")):
            e = raises(EnosConfigError, use, pk, dk)
            assert str(e) == "%s must not contain commas or spaces" % name
    assert identity.auth_path(PK.encode(), DK.encode()) == "/auth/MuGsF6W4/15bBZlRknc"


def test_secret_lifetime_mode_and_offset_errors_say_what_is_allowed():
    assert str(raises(EnosConfigError, identity.psk_key, b"")) == \
        "the device or product secret is missing: set it in secrets.json"
    assert str(raises(EnosConfigError, identity.psk_key, SECRET, 10)) == \
        "pskOffset must be 8 (default) or 9 (diagnostic)"
    assert str(raises(EnosConfigError, identity.check_lifetime, True)) == \
        "lifetime must be a whole number of seconds (30..86400)"
    assert str(raises(EnosConfigError, identity.check_lifetime, 86401)) == \
        "lifetime 86401 s is outside EnOS's range 30..86400 s"
    assert str(raises(EnosConfigError, identity.check_mode, 4)) == \
        "secureMode must be 2 (per device) or 3 (per product)"
    assert len(identity.psk_key(SECRET.encode())) == 16


def test_a_lowercase_sign_reaches_the_auth_body_when_asked():
    body = identity.auth_body(PK, DK, 3600, SECRET, upper=False)
    assert b'"sign":"d67fa0998b09acd5' in body


# ---- topics ---------------------------------------------------------------------------------------

def test_only_sys_topics_with_both_keys_split_into_keys_and_suffix():
    assert topics.split_sys("/sys/p/d/thing/service/x") == ("p", "d", "thing/service/x")
    for t in ("/sys/p/d", "sys/p/d/x/y", "/sy/p/d/x", "/sys//d/x", "/sys/p//x", "x/sys/p/d/e"):
        assert topics.split_sys(t) is None, t


# ---- JSON for EnOS -------------------------------------------------------------------------------

def test_values_json_cannot_carry_are_refused_with_what_to_send():
    for bad in (float("nan"), float("inf"), float("-inf")):
        e = raises(EnosError, bodies.dumps, {"t": bad})
        assert str(e) == "JSON has no NaN or infinity: send a number or leave the point out"
    e = raises(EnosError, bodies.dumps, {"t": b"raw"})
    assert str(e) == "cannot send a bytes in JSON: use numbers, strings, lists or dicts"
    assert str(raises(EnosError, bodies.dumps, {1: 2})) == "JSON object keys must be strings"
    e = raises(EnosError, bodies.measurepoints, "1", [1])
    assert str(e) == "measurepoints must be a dict of name -> value"
    assert str(raises(EnosError, bodies.event, "1", "E", 5)) == \
        "events must be a dict of name -> value"


def test_booleans_null_and_nested_values_are_written_compactly():
    assert bodies.dumps({"a": [True, False, None], "b": {"c": (1, 2.5)}, "d": bodies.Obj()}) == \
        '{"a":[true,false,null],"b":{"c":[1,2.5]},"d":{}}'
    assert bodies.dumps(bodies.Obj(("z", 1), ("y", [3, 4]))) == '{"z":1,"y":[3,4]}'


def test_batches_need_elements_and_each_element_its_points():
    assert str(raises(EnosError, bodies.measurepoints_batch, "1", [])) == \
        "a batch needs at least one element"
    e = raises(EnosError, bodies.measurepoints_batch, "1", [{"time": 1}])
    assert str(e) == "every batch element needs measurepoints"


def test_request_bodies_carry_their_id():
    for body in (bodies.event(7, "E", {"v": 1}), bodies.attribute_update(7, {"a": 1})):
        assert body.startswith(b'{"id":"7","version":"1.0"')


def test_a_command_reply_is_code_200_with_empty_data_unless_told():
    assert bodies.reply(3) == b'{"id":"3","code":200,"data":{}}'
    assert bodies.reply(3, 500, {"e": 1}) == b'{"id":"3","code":500,"data":{"e":1}}'


def test_payloads_that_are_not_a_json_object_name_what_they_were():
    assert str(raises(EnosProtocolError, bodies.loads, b"{", "the reply to /x")) == \
        "the reply to /x is not valid JSON"
    assert str(raises(EnosProtocolError, bodies.loads, b"[1]", "option 2102")) == \
        "option 2102 is not a JSON object"
    assert bodies.loads(bytearray(b'{"a":1}'), "x") == {"a": 1}


# ---- raw passthrough (enos-coap.md §8.3) -----------------------------------------------------------

def test_raw_reports_name_the_point_and_the_rule_they_break():
    e = raises(EnosError, rawpoints.encode_post, 1, {"nope": 1.0}, None, TABLE)
    assert str(e) == "point 'nope' is not in the point table: add it to the device table and " \
                     "to POINTS in the parsing script, at the same position"
    assert str(raises(EnosError, rawpoints.encode_post, 1, {"temp": True}, None, TABLE)) == \
        "point temp: the raw form carries numbers only"
    assert str(raises(EnosError, rawpoints.encode_post, 1, {}, None, TABLE)) == \
        "a raw report needs at least one point"
    for q in (-1, 10):
        e = raises(EnosError, rawpoints.encode_post, 1, {"temp": (1.0, q)}, None, TABLE)
        assert str(e) == "point temp: quality must be 0..9"
    for t in (-1, -1000, 1 << 48):
        e = raises(EnosError, rawpoints.encode_post, 1, {"temp": 1.0}, t, TABLE)
        assert str(e) == "time must be epoch milliseconds below 2**48"


def test_a_point_table_holds_127_names():
    big = tuple("p%d" % i for i in range(130))
    assert rawpoints.encode_post(1, {"p126": 1.0}, None, big)[5] == 126
    e = raises(EnosError, rawpoints.encode_post, 1, {"p127": 1.0}, None, big)
    assert str(e) == "the point table holds at most 127 names"


def test_raw_fields_use_their_whole_unsigned_width():
    data = rawpoints.encode_post(0xFFFFFFFF, {"temp": (1.0, 0), "humidity": (2.0, 9)}, None, TABLE)
    assert data == unhex("10 ffffffff 80 3f800000 00 81 40000000 09")
    data = rawpoints.encode_post(0x80000000, {"rssi": 1.0}, 4294967295000, TABLE)
    assert data == unhex("11 80000000 ffffffff 04 3f800000")
    data = rawpoints.encode_post(1, {"rssi": 1.0}, 4294967296000, TABLE)
    assert data[0] == rawpoints.POST_MS and data[5:11] == unhex("03e800000000")
    assert rawpoints.encode_post(1, {"rssi": 1.0}, 0, TABLE)[:9] == unhex("11 00000001 00000000")
    assert rawpoints.encode_post(1, {"rssi": 1.0}, (1 << 48) - 1, TABLE)[5:11] == b"\xff" * 6
    assert rawpoints.encode_reply(0xFFFFFFFF) == unhex("22 ffffffff 00c8")
    assert rawpoints.encode_reply(1, 0xFFFF) == unhex("22 00000001 ffff")


def test_raw_set_commands_are_read_point_by_point_and_checked_to_the_end():
    msg_id, pts = rawpoints.decode_set(unhex("21 ffffffff 80 3f800000 05 04 40000000"), TABLE)
    assert (msg_id, pts) == (0xFFFFFFFF, {"temp": 1.0, "rssi": 2.0})
    assert rawpoints.decode_set(unhex("21 00000007"), TABLE) == (7, {})
    cases = [("21 000000", "down_raw command is not a raw measurepoint set (type 0x21)"),
             ("22 00000007", "down_raw command is not a raw measurepoint set (type 0x21)"),
             ("21 00000007 01 4000", "down_raw command ends inside a point"),
             ("21 00000007 81 40000000", "down_raw command ends inside a point"),
             ("21 00000007 05 40000000", "down_raw command names point 5, beyond the table")]
    for data, words in cases:
        assert str(raises(EnosProtocolError, rawpoints.decode_set, unhex(data), TABLE)) == words


# ---- transports -----------------------------------------------------------------------------------

class _Endpoints:
    """Makes FakeEndpoints answered by srv; remembers them."""

    def __init__(self, srv=None):
        self.clock = VirtualClock()
        self.srv = srv
        self.made = []

    def __call__(self):
        ep = FakeEndpoint(self.clock, serve(self.srv) if self.srv else None)
        self.made.append(ep)
        return ep


def test_a_plain_transport_opens_one_endpoint_at_a_time():
    eps = _Endpoints()
    t = PlainTransport(eps, lambda ep: ("client", ep))
    assert not t.secure
    first = t.open(b"ignored", b"ignored")
    assert first == ("client", eps.made[0])
    t.open(b"x", b"y")
    assert eps.made[0].closed and not eps.made[1].closed
    t.close()
    t.close()
    assert eps.made[1].closed


def test_a_dtls_transport_hands_out_a_client_over_the_handshaken_session():
    srv = MiniServer(b"k" * 16)
    eps = _Endpoints(srv)
    t = DtlsTransport(eps, lambda s: ("client", s), clock=eps.clock, timers=LOOPBACK)
    assert t.secure and t.save() is None
    kind, s = t.open(b"Client_identity", b"k" * 16)
    assert kind == "client" and s is t.session and s.established
    assert s.clock is eps.clock and s.timers is LOOPBACK and s._ep is eps.made[0]
    blob = t.save()
    assert blob == s.save() and srv.identities == [b"Client_identity"]
    kind, s2 = t.resume(b"Client_identity", b"k" * 16, blob)
    assert eps.made[0].closed and s2 is t.session and s2.resumed and s2.timers is LOOPBACK
    assert s2._ep is eps.made[1] and s2.clock is eps.clock
    t.close()
    assert eps.made[1].closed and t.session is None and srv.alerts_in[-1] == (1, 0)


def test_a_dtls_transport_uses_the_session_factory_it_was_given():
    made = []

    def factory(ep, identity, psk, clock=None, timers=None):
        made.append((identity, psk, clock, timers))
        return DtlsSession(ep, identity, psk, clock=clock, timers=timers)
    eps = _Endpoints(MiniServer(b"k" * 16))
    t = DtlsTransport(eps, lambda s: s, session_factory=factory, clock=eps.clock, timers=LOOPBACK)
    t.open(b"Client_identity", b"k" * 16)
    assert made == [(b"Client_identity", b"k" * 16, eps.clock, LOOPBACK)]


def test_a_refused_dtls_handshake_is_an_auth_error_naming_the_identity_and_the_keys():
    def refuse(data, ep):
        ep.push(b"\x15\xfe\xfd" + bytes(8) + b"\x00\x02\x02\x28")
    clock = VirtualClock()
    made = []

    def endpoint():
        made.append(FakeEndpoint(clock, refuse))
        return made[-1]
    t = DtlsTransport(endpoint, lambda s: s, clock=clock, timers=LOOPBACK)
    e = raises(EnosAuthError, t.open, b"pk,dk,2,3600", b"k" * 16)
    assert str(e) == "DTLS handshake as pk,dk,2,3600 refused (fatal alert handshake_failure " \
                     "(40) received from the peer (no shared cipher suite? the server must " \
                     "allow PSK-AES128-CCM8 or PSK-AES128-CBC-SHA256)): check productKey, " \
                     "deviceKey, the secret and pskOffset"
    assert made[0].closed and t.session is None


def test_a_refused_resumption_is_an_auth_error_naming_the_identity():
    srv = MiniServer(b"k" * 16)
    eps = _Endpoints(srv)
    t = DtlsTransport(eps, lambda s: s, clock=eps.clock, timers=LOOPBACK)
    blob = t.open(b"Client_identity", b"k" * 16).save()

    srv.handle = lambda data: [b"\x15\xfe\xfd" + bytes(8) + b"\x00\x02\x02\x28"]
    e = raises(EnosAuthError, t.resume, b"Client_identity", b"k" * 16, blob)
    assert str(e).startswith("DTLS handshake as Client_identity refused (fatal alert ")
    assert t.session is None and eps.made[1].closed


def test_a_dtls_handshake_that_times_out_passes_its_error_on_and_closes_the_endpoint():
    eps = _Endpoints()
    t = DtlsTransport(eps, lambda s: s, clock=eps.clock, timers=LOOPBACK)
    raises(DtlsTimeout, t.open, b"id", b"k")
    assert eps.made[0].closed and t.session is None


def test_from_config_picks_dtls_on_5684_by_default_and_plain_on_5683_when_asked():
    from enosnb.enos.transport import from_config
    made = []
    endpoint_for = lambda host, port: made.append((host, port)) or ("ep", host, port)
    client_factory = lambda ep: ("client", ep)
    clock = VirtualClock()
    t = from_config({"host": "h"}, endpoint_for, client_factory, "factory", clock, LOOPBACK)
    assert type(t) is DtlsTransport and t._endpoint_factory() == ("ep", "h", 5684)
    assert (t._client_factory, t._session_factory, t._clock, t._timers) == (
        client_factory, "factory", clock, LOOPBACK)
    t = from_config({"host": "h", "dtls": True, "port_dtls": 1}, endpoint_for, client_factory)
    assert t._endpoint_factory() == ("ep", "h", 1)
    t = from_config({"host": "h", "dtls": False}, endpoint_for, client_factory)
    assert type(t) is PlainTransport and t.open(None, None) == ("client", ("ep", "h", 5683))
    t = from_config({"host": "h", "dtls": False, "port_plain": 2}, endpoint_for, client_factory)
    assert t.open(None, None) == ("client", ("ep", "h", 2))
    for cfg in ({}, {"host": ""}):
        e = raises(EnosConfigError, from_config, cfg, endpoint_for, client_factory)
        assert str(e) == "host is missing: set it to coap-<your EnOS host name>"
