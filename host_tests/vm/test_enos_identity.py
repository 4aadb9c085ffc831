"""EnOS identity, sign, topics and JSON bodies (enos-coap.md §5.2, §6.2, §8.3, §8.4, §16, §17).

Runs under pytest and in the MicroPython VM.
"""
import json

from vmcheck import raises, unhex
from enosnb.enos import identity, topics, bodies
from enosnb.enos.errors import EnosConfigError, EnosError, reply_error, EnosReplyError
from enosnb.enos.replies import EnosPayloadFormatError, EnosMethodMismatchError

PK = "MuGsF6W4"
DK = "15bBZlRknc"
SECRET = "ExampleDeviceSecret0123456789abc"


def test_sign_matches_the_documented_vector():
    assert identity.sign(PK, DK, 3600, SECRET) == \
        "D67FA0998B09ACD507369F68D3E68EA88B93D9716ADC89B8B833A1F2DCA55EDF"


def test_lowercase_sign_only_when_asked():
    assert identity.sign(PK, DK, 3600, SECRET, upper=False) == \
        "d67fa0998b09acd507369f68d3e68ea88b93d9716adc89b8b833a1f2dca55edf"


def test_psk_is_digest_bytes_8_to_24_by_default():
    assert identity.psk_key(SECRET) == unhex("61eac41c4ca1ee3d6d09e262804b12c9")


def test_psk_switch_selects_bytes_9_to_25():
    assert identity.psk_key(SECRET, identity.PSK_OFFSET_ALT) == \
        unhex("eac41c4ca1ee3d6d09e262804b12c9ba")


def test_psk_offset_other_than_8_or_9_is_refused():
    raises(EnosConfigError, identity.psk_key, SECRET, 7)


def test_identity_is_comma_separated_ascii():
    assert identity.psk_identity(PK, DK, 2, 3600) == b"MuGsF6W4,15bBZlRknc,2,3600"
    assert identity.psk_identity(PK, DK, 3, 30) == b"MuGsF6W4,15bBZlRknc,3,30"


def test_lifetime_outside_30_to_86400_is_refused():
    raises(EnosConfigError, identity.check_lifetime, 29)
    raises(EnosConfigError, identity.check_lifetime, 86401)
    raises(EnosConfigError, identity.check_lifetime, "3600")
    assert identity.check_lifetime(30) == 30 and identity.check_lifetime(86400) == 86400


def test_unknown_secure_mode_is_refused():
    raises(EnosConfigError, identity.psk_identity, PK, DK, 1, 3600)


def test_keys_with_commas_are_refused():
    raises(EnosConfigError, identity.psk_identity, "a,b", DK, 2, 3600)
    raises(EnosConfigError, identity.psk_identity, "", DK, 2, 3600)


def test_missing_secret_is_reported_without_a_value():
    e = raises(EnosConfigError, identity.psk_key, "")
    assert "secret" in str(e)


def test_auth_body_is_the_documented_body():
    body = identity.auth_body(PK, DK, 3600, SECRET)
    assert body == b'{"secureMode":2,"lifetime":3600,"sign":' \
        b'"D67FA0998B09ACD507369F68D3E68EA88B93D9716ADC89B8B833A1F2DCA55EDF"}'
    assert len(body) == 106
    assert identity.auth_path(PK, DK) == "/auth/MuGsF6W4/15bBZlRknc"


def test_reference_report_body_is_byte_identical():
    body = bodies.measurepoints("1", {"temp": 21.5}, 1764115200000)
    assert body == b'{"id":"1","version":"1.0","method":"thing.measurepoint.post",' \
        b'"params":{"measurepoints":{"temp":21.5},"time":1764115200000}}'


def test_point_with_quality_keeps_value_then_quality():
    body = bodies.measurepoints("7", {"Power": bodies.with_quality(1.0, 9), "a": [1, 2]})
    assert body == b'{"id":"7","version":"1.0","method":"thing.measurepoint.post",' \
        b'"params":{"measurepoints":{"Power":{"value":1.0,"quality":9},"a":[1,2]}}}'


def test_batch_body_orders_element_keys_like_the_docs():
    body = bodies.measurepoints_batch("5", [
        {"time": 2, "measurepoints": {"t": 1}, "deviceKey": "d1", "productKey": "p1"},
        {"measurepoints": {"t": 2}, "time": 3}])
    assert body == b'{"id":"5","version":"1.0","method":"thing.measurepoint.post.batch",' \
        b'"params":[{"productKey":"p1","deviceKey":"d1","measurepoints":{"t":1},"time":2},' \
        b'{"measurepoints":{"t":2},"time":3}]}'


def test_event_attribute_and_reply_bodies_parse_as_documented():
    ev = json.loads(bodies.event("2", "Alarm", {"level": 3}, 10))
    assert ev["method"] == "thing.event.Alarm.post" and ev["params"] == {"events": {"level": 3}, "time": 10}
    up = json.loads(bodies.attribute_update("3", {"fw": "1.2"}))
    assert up["method"] == "thing.attribute.update" and up["params"] == {"attributes": {"fw": "1.2"}}
    q = bodies.attribute_names("4", [], "thing.attribute.query")
    assert q == b'{"id":"4","version":"1.0","method":"thing.attribute.query","params":{"attributes":[]}}'
    assert bodies.reply("9", 200, {}) == b'{"id":"9","code":200,"data":{}}'


def test_strings_are_escaped_in_json():
    body = bodies.attribute_update("1", {"name": 'say "hi"\n'})
    assert json.loads(body)["params"]["attributes"]["name"] == 'say "hi"\n'


def test_nan_and_unknown_types_are_refused():
    raises(EnosError, bodies.measurepoints, "1", {"t": float("nan")})
    raises(EnosError, bodies.measurepoints, "1", {"t": object()})


def test_topic_paths_for_every_uplink_row():
    t = lambda s: topics.path(topics.sys_topic(PK, DK, s))
    base = "/topic/sys/MuGsF6W4/15bBZlRknc/"
    assert t(topics.MEASUREPOINT_POST) == base + "thing/measurepoint/post"
    assert t(topics.MEASUREPOINT_POST_BATCH) == base + "thing/measurepoint/post/batch"
    assert t(topics.MEASUREPOINT_RESUME) == base + "thing/measurepoint/resume"
    assert t(topics.MEASUREPOINT_RESUME_BATCH) == base + "thing/measurepoint/resume/batch"
    assert t(topics.event_suffix("Alarm")) == base + "thing/event/Alarm/post"
    assert t(topics.ATTRIBUTE_UPDATE) == base + "thing/attribute/update"
    assert t(topics.ATTRIBUTE_QUERY) == base + "thing/attribute/query"
    assert t(topics.ATTRIBUTE_DELETE) == base + "thing/attribute/delete"
    assert t(topics.UP_RAW) == base + "thing/model/up_raw"
    assert topics.path(topics.activate_topic(PK, DK)) == \
        "/topic/ext/session/MuGsF6W4/15bBZlRknc/thing/activate/info"


def test_methods_follow_the_topic():
    assert topics.method_of(topics.MEASUREPOINT_POST_BATCH) == "thing.measurepoint.post.batch"
    assert topics.method_of(topics.event_suffix("x")) == "thing.event.x.post"
    assert topics.method_of(topics.service_suffix("reboot")) == "thing.service.reboot"


def test_reply_topics_append_reply():
    base = "/sys/p/d/thing/"
    assert topics.reply_topic(base + "model/down_raw") == base + "model/down_raw_reply"
    assert topics.reply_topic(base + "service/measurepoint/set") == base + "service/measurepoint/set_reply"
    assert topics.reply_topic(base + "service/reboot") == base + "service/reboot_reply"


def test_command_topics_are_classified_with_or_without_prefix():
    c = lambda v: topics.classify_command(topics.topic_of_option(v))
    assert c(b"/topic/sys/p/d/thing/model/down_raw") == (topics.CMD_RAW, None)
    assert c("/sys/p/d/thing/service/measurepoint/set") == (topics.CMD_SET, None)
    assert c("sys/p/d/thing/service/measurepoint/get") == (topics.CMD_GET, None)
    assert c("/topic/sys/p/d/thing/service/reboot") == (topics.CMD_SERVICE, "reboot")
    assert c("/topic/sys/p/d/thing/service/reboot_reply") == (None, None)
    assert c("/topic/ext/session/p/d/thing/activate/info") == (None, None)
    assert c("/topic/sys/p/d/thing/service/a/b") == (None, None)


def test_enos_codes_map_to_named_errors():
    e = reply_error(1220, "/topic/x")
    assert isinstance(e, EnosPayloadFormatError) and e.code == 1220 and "1220" in str(e)
    assert isinstance(reply_error(1260, "/p"), EnosMethodMismatchError)
    e = reply_error(4242, "/p")
    assert type(e) is EnosReplyError and "undocumented" in str(e)


def test_auth_request_datagram_matches_the_documented_vector():
    from enosnb.coap.message import Message, CON
    m = Message(CON, 2, 0x1234, unhex("a1b2c3d4"), identity.auth_body(PK, DK, 3600, SECRET))
    m.set_path(identity.auth_path(PK, DK))
    m.add_option(12, 50)
    assert m.encode() == unhex(
        "44021234a1b2c3d4b461757468084d754773463657340a313562425a6c526b6e631132ff7b227365637572654d6f6465"
        "223a322c226c69666574696d65223a333630302c227369676e223a2244363746413039393842303941434435303733"
        "363946363844334536384541383842393344393731364144433839423842383333413146324443413535454446227d")


def test_reference_report_datagram_is_188_bytes_as_documented():
    from enosnb.coap.message import Message, CON
    m = Message(CON, 2, 0x1234, unhex("a1b2c3d4"), bodies.measurepoints("1", {"temp": 21.5}, 1764115200000))
    m.set_path(topics.path(topics.sys_topic(PK, DK, topics.MEASUREPOINT_POST)))
    m.add_option(12, 50)
    assert m.encode() == unhex(
        "44021234a1b2c3d4b5746f70696303737973084d754773463657340a313562425a6c526b6e63057468696e670c6d65"
        "6173757265706f696e7404706f73741132ff7b226964223a2231222c2276657273696f6e223a22312e30222c226d65"
        "74686f64223a227468696e672e6d656173757265706f696e742e706f7374222c22706172616d73223a7b226d656173"
        "757265706f696e7473223a7b2274656d70223a32312e357d2c2274696d65223a313736343131353230303030307d7d")
