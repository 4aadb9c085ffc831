"""The device-side EnOS client against the local EnOS server, in plain and DTLS mode.

Real stacks on both ends: the firmware's CoAP client and DTLS session on one side, aiocoap
and Mbed TLS on the other, over UDP on 127.0.0.1.
"""
import json

import pytest

from enosnb.coap import allcodes as codes
from enosnb.coap.client import Client, Timing
from enosnb.dtls import timers
from enosnb.enos import bodies, topics
from enosnb.enos.client import CF_JSON, EnosClient
from enosnb.enos.commands import Commands
from enosnb.enos.errors import EnosAuthError, EnosCoapError, EnosConfigError, EnosProtocolError
from enosnb.enos.replies import EnosEmptyPayloadError, EnosFormatError, EnosMethodMismatchError, \
    EnosPayloadFormatError
from enosnb.enos.transport import DtlsTransport, PlainTransport
from enosnb.udp import UdpEndpoint
from tools.enos_server import commands as server_cmds
from tools.enos_server.server import EnosServer

import enos_fixtures
from enos_fixtures import DK, PK, SECRET

server = enos_fixtures.server

DYN_DK = "demoDynamic01"
PRODUCT_SECRET = "DemoProductSecret0123456789abcd"
TIMING = Timing(ack_timeout_ms=1000, max_retransmit=2)


def _client_factory(ep):
    return Client(ep, timing=TIMING)


def make_transport(server, mode):
    if mode == "dtls":
        return DtlsTransport(lambda: UdpEndpoint("127.0.0.1", server.dtls_port),
                             _client_factory, timers=timers.LOOPBACK)
    return PlainTransport(lambda: UdpEndpoint("127.0.0.1", server.port), _client_factory)


def make_client(server, mode, commands=None, **cfg):
    config = {"productKey": PK, "deviceKey": DK, "deviceSecret": SECRET, "lifetime": 3600}
    config.update(cfg)
    return EnosClient(make_transport(server, mode), config, commands=commands)


@pytest.fixture(params=["plain", "dtls"])
def mode(request):
    return request.param


@pytest.fixture
def device(server, mode):
    c = make_client(server, mode)
    c.connect()
    try:
        yield c
    finally:
        c.close()


def points_named(server, name):
    return [json.loads(p["value"]) for p in server.db_view.points(DK, 1000) if p["name"] == name]


def test_authenticates_and_reports_a_measurepoint(server, device):
    reply = device.post_measurepoints({"temp_auth": 21.5}, 1764115200000)
    assert reply["code"] == 200
    assert points_named(server, "temp_auth")[-1] == 21.5


def test_server_sees_the_device_online_after_auth(server, device):
    device.post_measurepoints({"x": 1})
    row = [d for d in server.db_view.devices() if d["dk"] == DK][0]
    assert row["online"] and row["lifetime"] == 3600


def test_wrong_secret_is_refused(server, mode):
    c = make_client(server, mode, deviceSecret="NotTheSecret")
    with pytest.raises(EnosAuthError):
        c.connect()
    c.close()


def test_unknown_device_is_refused(server, mode):
    c = make_client(server, mode, deviceKey="noSuchDevice")
    with pytest.raises((EnosAuthError, EnosCoapError)) as e:
        c.connect()
    if mode == "plain":
        assert e.value.coap_code == codes.NOT_FOUND
    c.close()


def test_per_product_device_activates_persists_and_reports(server):
    saved = []
    c = EnosClient(make_transport(server, "dtls"),
                   {"productKey": PK, "deviceKey": DYN_DK, "productSecret": PRODUCT_SECRET,
                    "lifetime": 600}, on_secret=saved.append)
    c.connect()
    try:
        assert c.activated and len(saved) == 1 and saved[0]
        c.post_measurepoints({"dyn": 7})
        assert [p for p in server.db_view.points(DYN_DK) if p["name"] == "dyn"]
        # A reboot with the persisted secret goes straight to mode 2.
        c2 = EnosClient(make_transport(server, "dtls"),
                        {"productKey": PK, "deviceKey": DYN_DK, "deviceSecret": saved[0]})
        c2.connect()
        assert not c2.activated
        c2.post_measurepoints({"dyn": 8})
        c2.close()
    finally:
        c.close()


def test_per_product_activation_is_refused_in_plain_mode(server):
    c = EnosClient(make_transport(server, "plain"),
                   {"productKey": PK, "deviceKey": DYN_DK, "productSecret": PRODUCT_SECRET})
    with pytest.raises(EnosConfigError):
        c.connect()


def test_every_uplink_kind_enos_offers_over_coap_is_accepted(server, device):
    device.post_measurepoints({"p1": bodies.with_quality(4.5, 9)}, 600)
    device.post_event("Alarm", {"level": 3})
    device.update_attributes({"fw": "1.2.3", "model": "esp32"})
    assert device.query_attributes(["fw"]) == {"fw": "1.2.3"}
    device.delete_attributes(["model"])
    assert "model" not in device.query_attributes()
    assert device.up_raw(b"\x01\x02\x03") == b""
    assert points_named(server, "p1")[-1] == 4.5
    raw = [m for m in server.db_view.messages(DK) if m["topic"].endswith("up_raw")]
    assert bytes(raw[-1]["payload"]) == b"\x01\x02\x03"


def test_body_larger_than_a_block_goes_blockwise(server, device):
    big = {"big%03d" % i: i for i in range(120)}
    assert len(bodies.measurepoints("1", big)) > 1024
    device.post_measurepoints(big)
    assert device.last_result.round_trips > 1
    assert points_named(server, "big119")[-1] == 119


def test_unauthorized_reauthenticates_once_and_retries(server, device):
    server.call(setattr, server.site, "force_unauthorized", 1)
    reply = device.post_measurepoints({"after401": 1})
    assert reply["code"] == 200
    assert points_named(server, "after401")[-1] == 1


def test_second_unauthorized_is_an_auth_error(server, device):
    server.call(setattr, server.site, "force_unauthorized", 2)
    with pytest.raises(EnosAuthError):
        device.post_measurepoints({"never": 1})
    server.call(setattr, server.site, "force_unauthorized", 0)


def test_json_error_codes_are_raised_as_named_errors(server, device):
    path = topics.path(topics.sys_topic(PK, DK, topics.MEASUREPOINT_POST))
    with pytest.raises(EnosPayloadFormatError) as e:
        device.exchange(codes.POST, path, b"{not json", CF_JSON, "1")
    assert e.value.code == 1220
    with pytest.raises(EnosEmptyPayloadError):
        device.exchange(codes.POST, path, b"", CF_JSON, "1")
    with pytest.raises(EnosMethodMismatchError):
        device.exchange(codes.POST, path, bodies.request("5", "thing.event.x.post", "{}"),
                        CF_JSON, "5")
    with pytest.raises(EnosFormatError):
        device.exchange(codes.POST, path,
                        bodies.request("6", "thing.measurepoint.post", '{"measurepoints":[1]}'),
                        CF_JSON, "6")


def test_reply_with_another_id_is_a_protocol_error(server, device):
    path = topics.path(topics.sys_topic(PK, DK, topics.MEASUREPOINT_POST))
    body = bodies.measurepoints("41", {"x": 1})
    with pytest.raises(EnosProtocolError):
        device.exchange(codes.POST, path, body, CF_JSON, "42")


def test_message_ids_are_unique_and_continue_after_restore(server):
    c = make_client(server, "plain")
    ids = {c.next_id() for _ in range(100)}
    assert len(ids) == 100
    last = int(c.next_id())
    c2 = make_client(server, "plain")
    c2.restore(c.state())
    assert int(c2.next_id()) > last


def _command_device(server, mode, **kw):
    got = {"set": [], "service": [], "raw": []}
    cmds = Commands(**kw)
    cmds.on_set(lambda params: got["set"].append(params))
    cmds.on_get(lambda params: {n: 42 for n in params})
    cmds.on_service(lambda sid, params: (200, {"done": sid, "echo": params.get("arg")}))
    cmds.on_raw(lambda data: b"ack:" + data)
    c = make_client(server, mode, commands=cmds)
    c.connect()
    return c, cmds, got


def test_queued_commands_of_each_kind_are_executed_and_replied(server, mode):
    server.call(setattr, server.site, "force_unauthorized", 0)
    c, cmds, got = _command_device(server, mode)
    try:
        c.post_measurepoints({"warmup": 1})
        db = server.db_view
        ids = [server_cmds.enqueue_set(db, PK, DK, {"setpoint": 30.5}, "s-" + mode),
               server_cmds.enqueue_get(db, PK, DK, ["temp"], "g-" + mode),
               server_cmds.enqueue_service(db, PK, DK, "reboot", {"arg": 5}, "v-" + mode),
               server_cmds.enqueue_raw(db, PK, DK, b"\xaa" + mode.encode())]
        c.post_measurepoints({"trigger": 1})
        assert cmds.executed == 4
        assert got["set"] == [{"setpoint": 30.5}]
        rows = {r["id"]: r for r in db.commands(DK)}
        assert all(rows[i]["state"] == "replied" for i in ids)
        assert json.loads(rows[ids[0]]["reply"]) == {"id": "s-" + mode, "code": 200, "data": {}}
        assert json.loads(rows[ids[1]]["reply"])["data"] == {"temp": 42}
        assert json.loads(rows[ids[2]]["reply"]) == {"id": "v-" + mode, "code": 200,
                                                     "data": {"done": "reboot", "echo": 5}}
        assert bytes(rows[ids[3]]["reply"]) == b"ack:\xaa" + mode.encode()
    finally:
        c.close()


def test_repeated_command_is_not_executed_twice_but_replied_again(server, mode):
    c, cmds, got = _command_device(server, mode)
    try:
        db = server.db_view
        a = server_cmds.enqueue_set(db, PK, DK, {"sp": 1}, "dup-" + mode)
        b = server_cmds.enqueue_set(db, PK, DK, {"sp": 1}, "dup-" + mode)
        c.post_measurepoints({"trigger": 2})
        assert cmds.executed == 1 and cmds.duplicates == 1 and got["set"] == [{"sp": 1}]
        rows = {r["id"]: r for r in db.commands(DK)}
        assert rows[a]["state"] == "replied" and rows[b]["state"] == "replied"
    finally:
        c.close()


def test_command_drain_stops_at_the_per_wake_limit(server):
    c, cmds, got = _command_device(server, "plain", max_per_wake=3)
    try:
        db = server.db_view
        for i in range(5):
            server_cmds.enqueue_set(db, PK, DK, {"n": i}, "lim-%d" % i)
        c.post_measurepoints({"trigger": 3})
        assert cmds.executed == 3 and cmds.left_queued
        # The fourth came with the response that hit the limit: EnOS re-sends it later.
        server.call(setattr, server.site, "resend_s", 0)
        c.post_measurepoints({"trigger": 4})
        assert cmds.executed == 5 and not cmds.left_queued
        assert [p["n"] for p in got["set"]] == [0, 1, 2, 3, 4]
    finally:
        server.call(setattr, server.site, "resend_s", 30)
        c.close()


def test_dtls_auth_flag_also_sends_auth_inside_the_session(server):
    c = make_client(server, "dtls", dtlsAuth=True)
    c.connect()
    try:
        assert c.last_result.code == codes.CHANGED
        assert c.post_measurepoints({"q6": 1})["code"] == 200
    finally:
        c.close()


def test_psk_offset_switch_must_match_the_server(server):
    c = make_client(server, "dtls", pskOffset=9)
    with pytest.raises(EnosAuthError):
        c.connect()
    c.close()
    server.call(setattr, server.registry, "psk_offset", 9)
    try:
        c = make_client(server, "dtls", pskOffset=9)
        c.connect()
        assert c.post_measurepoints({"q5": 9})["code"] == 200
        c.close()
    finally:
        server.call(setattr, server.registry, "psk_offset", 8)


def test_transport_from_config_picks_mode_and_port(server):
    from enosnb.enos.transport import from_config
    made = []

    def endpoint_for(host, port):
        made.append(port)
        return UdpEndpoint(host, port)
    for cfg in ({"dtls": False, "port_plain": server.port}, {"port_dtls": server.dtls_port}):
        cfg["host"] = "127.0.0.1"
        t = from_config(cfg, endpoint_for, _client_factory, timers=timers.LOOPBACK)
        c = EnosClient(t, {"productKey": PK, "deviceKey": DK, "deviceSecret": SECRET})
        c.connect()
        assert c.post_measurepoints({"cfg": 1})["code"] == 200
        c.close()
    assert made == [server.port, server.dtls_port]
    with pytest.raises(EnosConfigError):
        from_config({}, endpoint_for, _client_factory)


def _wake_report(server, temp):
    """Report, 'sleep' (keep only the saved state), wake with a new client and report again."""
    c = make_client(server, "dtls")
    c.connect()
    c.post_measurepoints({"wake": temp})
    blob, ids = c.save_session(), c.state()
    c.close()
    woken = make_client(server, "dtls")
    woken.restore(ids)
    woken.resume_session(blob)
    reply = woken.post_measurepoints({"wake": temp + 1})
    session = woken.transport.session
    cost = (session.datagrams_sent, session.datagrams_received)
    woken.close()
    return reply, session, cost


def test_wake_from_sleep_resumes_the_dtls_session(server):
    before = server.front.resumptions
    reply, session, cost = _wake_report(server, 10)
    assert reply["code"] == 200 and session.resumed
    assert server.front.resumptions == before + 1
    assert points_named(server, "wake")[-2:] == [10, 11]


def test_wake_report_costs_two_round_trips_without_hello_verify(tmp_path):
    srv = EnosServer(db_path=str(tmp_path / "hv.sqlite"), port=0, dtls_port=0, log=None,
                     hello_verify=False).start()
    try:
        reply, session, cost = _wake_report(srv, 20)
        assert reply["code"] == 200 and session.resumed
        assert cost == (2, 2)
    finally:
        srv.stop()


def test_resume_without_saved_state_connects_afresh(server):
    c = make_client(server, "dtls")
    c.resume_session(None)
    assert c.post_measurepoints({"fresh": 1})["code"] == 200
    c.close()


def test_large_commands_arrive_blockwise_or_in_a_long_option(server, mode):
    c, cmds, got = _command_device(server, mode)
    try:
        data = bytes(range(256)) * 3
        row = server_cmds.enqueue_raw(server.db_view, PK, DK, data)
        c.post_measurepoints({"trigger": 5})
        reply = [r for r in server.db_view.commands(DK) if r["id"] == row][0]
        assert reply["state"] == "replied" and bytes(reply["reply"]) == b"ack:" + data
    finally:
        c.close()


def test_activated_secret_survives_a_server_restart(tmp_path):
    db_path = str(tmp_path / "act.sqlite")
    saved = []
    cfg = {"productKey": PK, "deviceKey": DYN_DK, "productSecret": PRODUCT_SECRET}
    srv = EnosServer(db_path=db_path, port=0, dtls_port=0, log=None).start()
    try:
        c = EnosClient(make_transport(srv, "dtls"), cfg, on_secret=saved.append)
        c.connect()
        c.close()
    finally:
        srv.stop()
    srv = EnosServer(db_path=db_path, port=0, dtls_port=0, log=None).start()
    try:
        c = EnosClient(make_transport(srv, "dtls"),
                       {"productKey": PK, "deviceKey": DYN_DK, "deviceSecret": saved[0]})
        c.connect()
        assert c.post_measurepoints({"after_restart": 1})["code"] == 200
        c.close()
    finally:
        srv.stop()


def _strict(tmp_path, log=None, **policy):
    from tools.enos_server.policy import Policy
    srv = EnosServer(db_path=str(tmp_path / "strict.sqlite"), port=0, dtls_port=0, log=log,
                     policy=Policy(**policy))
    srv.db_view = enos_fixtures.Db(srv.db_path)
    return srv


def test_the_server_refuses_batch_and_offline_topics_as_enos_documents_coap(tmp_path, mode):
    from enosnb.enos.errors import EnosReplyError
    with _strict(tmp_path) as srv:
        c = make_client(srv, mode)
        c.connect()
        for call in (lambda: c.post_measurepoints_batch([{"measurepoints": {"b": 1}}]),
                     lambda: c.resume_measurepoints([{"measurepoints": {"r": 1}}]),
                     lambda: c.resume_measurepoint({"r": 1}, 1000)):
            with pytest.raises(EnosCoapError) as e:
                call()
            assert e.value.coap_code == codes.NOT_FOUND
        c.post_measurepoints({"p": 1}, 2000)
        c.close()
    with _strict(tmp_path, resume="accept", unsupported="1260") as srv:
        c = make_client(srv, mode)
        c.connect()
        c.resume_measurepoint({"r": 2}, 3000)
        with pytest.raises(EnosReplyError) as e:
            c.resume_measurepoints([{"measurepoints": {"r": 3}}])
        assert e.value.code == 1260
        c.close()
        assert points_named(srv, "r") == [2]
    with _strict(tmp_path, lenient=True) as srv:
        c = make_client(srv, mode)
        c.connect()
        c.post_measurepoints_batch([{"measurepoints": {"b1": 1}, "time": 1000},
                                    {"measurepoints": {"b1": 2}, "time": 2000}])
        c.resume_measurepoints([{"measurepoints": {"r1": 3}, "time": 500}])
        c.resume_measurepoint({"r2": 4}, 600)
        c.close()
        assert points_named(srv, "b1") == [1, 2] and points_named(srv, "r2") == [4]


# aiocoap's own empty ACK for the "none" answer uses an API it has deprecated itself.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("variant,code", [("4.04", 0x84), ("4.05", 0x85), ("4.03", 0x83),
                                          ("1250", 1250), ("1260", 1260), ("1009", 1009),
                                          ("none", None)])
def test_every_unsupported_answer_enos_might_give_is_selectable(tmp_path, variant, code):
    from enosnb.coap.errors import CoapTimeout
    from enosnb.enos.errors import EnosReplyError
    quick = Timing(ack_timeout_ms=200, max_retransmit=1)
    with _strict(tmp_path, unsupported=variant) as srv:
        c = EnosClient(DtlsTransport(lambda: UdpEndpoint("127.0.0.1", srv.dtls_port),
                                     lambda ep: Client(ep, timing=quick), timers=timers.LOOPBACK),
                       {"productKey": PK, "deviceKey": DK, "deviceSecret": SECRET})
        c.connect()
        with pytest.raises((EnosCoapError, EnosReplyError, CoapTimeout)) as e:
            c.resume_measurepoint({"r": 1}, 1000)
        if code is None:
            assert isinstance(e.value, CoapTimeout)
        elif code > 255:
            assert e.value.code == code
        else:
            assert e.value.coap_code == code
        assert srv.policy.refused >= 1
        c.close()


def test_replies_without_id_and_1009_for_a_missing_login_are_handled_by_the_device(tmp_path):
    log = []
    with _strict(tmp_path, log=log.append, omit_id=True, login_1009=True) as srv:
        c = make_client(srv, "plain")
        c.connect()
        assert c.post_measurepoints({"noid": 1}, 1000) == {"code": 200, "data": {}}
        srv.site.bindings.clear()  # the server forgot the login (a NAT rebinding looks alike)
        c.post_measurepoints({"noid": 2}, 2000)
        c.close()
        assert points_named(srv, "noid") == [1, 2]
    assert sum(m.startswith("1009 ") for m in log) == 1
    assert sum(m.startswith("auth ") for m in log) == 2


def test_a_thing_model_refuses_points_and_attributes_it_does_not_define_with_1204(tmp_path):
    from enosnb.enos.replies import EnosModelError
    model = {"measurepoints": {"temperature": "float", "reading": "int"},
             "attributes": {"dead_letters": "int"}}
    with _strict(tmp_path, models={"%s/%s" % (PK, DK): model}) as srv:
        c = make_client(srv, "dtls")
        c.connect()
        c.post_measurepoints({"temperature": 21.5, "reading": 1}, 1000)
        for points in ({"humidity": 40}, {"reading": "one"}):
            with pytest.raises(EnosModelError):
                c.post_measurepoints(points, 2000)
        c.update_attributes({"dead_letters": 2})
        with pytest.raises(EnosModelError):
            c.update_attributes({"firmware": "1.0"})
        c.close()
