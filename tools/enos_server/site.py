"""The EnOS CoAP resources: /auth and /topic/... (enos-coap.md §6, §7, §8, §9, §10, §11).

One root resource takes every request. Authorisation is per peer address: a successful
POST /auth/{pk}/{dk} binds the sender's address to the device for `lifetime` seconds, each
request refreshes it (§6.4); the DTLS front end binds its relay address to the identity the
handshake proved (§5.3). A request from an unbound address gets 4.01.

JSON topics are checked the way EnOS documents: empty body 1251, not JSON 1220, method not
matching the topic 1260, wrong measurepoint shape 1206, attribute shapes 1207-1209; the
answer is 2.04 with {"id":..,"code":..,"data":..} (§8.1). A single datagram whose payload
exceeds 1 KB gets 4.13 with Size1 1024 so the client goes block-wise (§2, §12); aiocoap
assembles Block1 uploads, and message-ID deduplication is aiocoap's (§3.2).

Queued commands ride on responses: option 2100 names the topic and, in plain mode, 2102
carries the payload (§11.2); in DTLS mode only 2100, and the device GETs the topic (§11.3).
A command delivered but not replied to within resend_s is delivered again (§11.1).
"""
import json
import time

import aiocoap
from aiocoap import interfaces, optiontypes
from aiocoap.numbers.codes import Code

MAX_DATAGRAM_PAYLOAD = 1024
MAX_BODY = 16 * 1024
OPT_TOPIC = 2100
OPT_PAYLOAD = 2102
CF_JSON = 50

UPLINKS = {
    "thing/measurepoint/post": "points",
    "thing/measurepoint/post/batch": "points_batch",
    "thing/measurepoint/resume": "points",
    "thing/measurepoint/resume/batch": "points_batch",
    "thing/attribute/update": "attr_update",
    "thing/attribute/query": "attr_query",
    "thing/attribute/delete": "attr_delete",
}


def peer_key(remote):
    """'host:port' of a request's sender, IPv4-mapped addresses unmapped."""
    sa = getattr(remote, "sockaddr", None)
    if sa is None:
        return str(remote.hostinfo)
    host = sa[0]
    if host.startswith("::ffff:"):
        host = host[7:]
    return "%s:%d" % (host, sa[1])


class Binding:
    def __init__(self, pk, dk, mode, lifetime, dtls):
        self.pk, self.dk, self.mode, self.lifetime, self.dtls = pk, dk, mode, lifetime, dtls
        self.expires = time.monotonic() + lifetime


class EnosSite(interfaces.Resource):
    def __init__(self, registry, db, log=print, dtls_commands="get", plain_commands="option"):
        super().__init__()
        self.registry = registry
        self.db = db
        self.log = log or (lambda *a: None)
        self.bindings = {}
        self.dtls_commands = dtls_commands
        self.plain_commands = plain_commands
        # EnOS re-sends a command that got no reply (enos-coap.md §11.1); None: never.
        self.resend_s = 30
        # Test hook: answer the next n requests from an authorised peer with 4.01.
        self.force_unauthorized = 0

    async def needs_blockwise_assembly(self, request):
        return True

    async def render_to_pipe(self, pipe):
        await self._render_to_pipe(pipe)

    def bind_dtls(self, key, pk, dk, mode, lifetime):
        self.bindings[key] = Binding(pk, dk, mode, lifetime, True)
        self.db.seen(pk, dk, "dtls-%d" % mode, lifetime)

    def unbind(self, key):
        self.bindings.pop(key, None)

    async def render(self, request):
        try:
            return self._render(request)
        except Exception as e:
            self.log("internal error: %r" % (e,))
            return aiocoap.Message(code=Code.INTERNAL_SERVER_ERROR)

    def _render(self, request):
        path = list(request.opt.uri_path)
        payload = request.payload
        if request.opt.block1 is None and len(payload) > MAX_DATAGRAM_PAYLOAD or \
                len(payload) > MAX_BODY:
            m = aiocoap.Message(code=Code.REQUEST_ENTITY_TOO_LARGE)
            m.opt.size1 = MAX_DATAGRAM_PAYLOAD
            return m
        key = peer_key(request.remote)
        if path[:1] == ["auth"]:
            return self._auth(request, key, path)
        if path[:1] != ["topic"]:
            return aiocoap.Message(code=Code.NOT_FOUND)
        b = self.bindings.get(key)
        if b is None or (not b.dtls and b.expires < time.monotonic()):
            self.bindings.pop(key, None)
            self.log("4.01 %s %s: not authenticated" % (key, "/" + "/".join(path)))
            return aiocoap.Message(code=Code.UNAUTHORIZED)
        if self.force_unauthorized > 0:
            self.force_unauthorized -= 1
            self.bindings.pop(key, None)
            return aiocoap.Message(code=Code.UNAUTHORIZED)
        b.expires = time.monotonic() + b.lifetime
        self.db.touch(b.pk, b.dk)
        topic = "/" + "/".join(path[1:])
        if path[1:2] == ["ext"]:
            return self._activate(request, b, path, topic)
        if b.mode != 2:
            return aiocoap.Message(code=Code.FORBIDDEN)
        if len(path) < 5 or path[1] != "sys":
            return aiocoap.Message(code=Code.NOT_FOUND)
        if (path[2], path[3]) != (b.pk, b.dk):
            self.log("4.03 %s: %s/%s may not use %s" % (key, b.pk, b.dk, topic))
            return aiocoap.Message(code=Code.FORBIDDEN)
        suffix = "/".join(path[4:])
        if request.code == Code.GET:
            resp = self._fetch_command(b, topic)
        elif request.code != Code.POST:
            return aiocoap.Message(code=Code.METHOD_NOT_ALLOWED)
        else:
            resp = self._uplink(b, topic, suffix, payload)
        if resp.code.is_successful():
            self._attach_command(b, resp)
        return resp

    # --- authentication (§6) ---

    def _auth(self, request, key, path):
        if request.code != Code.POST:
            return aiocoap.Message(code=Code.METHOD_NOT_ALLOWED)
        if len(path) != 3:
            return aiocoap.Message(code=Code.NOT_FOUND)
        pk, dk = path[1], path[2]
        if self.registry.device(pk, dk) is None:
            self.log("auth %s/%s: unknown device" % (pk, dk))
            return aiocoap.Message(code=Code.NOT_FOUND)
        try:
            body = json.loads(request.payload)
            mode, lifetime, sign = body["secureMode"], body["lifetime"], body["sign"]
        except (ValueError, KeyError, TypeError):
            return aiocoap.Message(code=Code.BAD_REQUEST)
        if mode != 2 or not isinstance(lifetime, int) or isinstance(lifetime, bool) or \
                not 30 <= lifetime <= 86400:
            return aiocoap.Message(code=Code.BAD_REQUEST)
        if not self.registry.check_sign(pk, dk, lifetime, sign):
            self.log("auth %s/%s from %s: wrong sign" % (pk, dk, key))
            return aiocoap.Message(code=Code.UNAUTHORIZED)
        # /auth inside a DTLS session (Q6 fallback) keeps the session's command style.
        old = self.bindings.get(key)
        dtls = old is not None and old.dtls
        self.bindings[key] = Binding(pk, dk, 2, lifetime, dtls)
        self.db.seen(pk, dk, "dtls-2" if dtls else "plain", lifetime)
        self.log("auth %s/%s from %s: ok, lifetime %d s" % (pk, dk, key, lifetime))
        return aiocoap.Message(code=Code.CHANGED)

    # --- per-product activation (§7) ---

    def _activate(self, request, b, path, topic):
        if request.code != Code.GET:
            return aiocoap.Message(code=Code.METHOD_NOT_ALLOWED)
        want = "/ext/session/%s/%s/thing/activate/info" % (b.pk, b.dk)
        if topic != want:
            return aiocoap.Message(code=Code.NOT_FOUND if len(path) != 7 else Code.FORBIDDEN)
        if b.mode != 3:
            return aiocoap.Message(code=Code.FORBIDDEN)
        secret = self.registry.activate(b.pk, b.dk)
        self.db.mark_activated(b.pk, b.dk, secret)
        dev = self.registry.device(b.pk, b.dk)
        body = {"id": str(int(time.time() * 1000) % 1000000000), "version": "1.0",
                "method": "thing.activate.info",
                "params": {"assetId": dev.get("assetId", "asset-" + b.dk), "productKey": b.pk,
                           "deviceKey": b.dk, "deviceSecret": secret}}
        self.log("activate %s/%s: deviceSecret handed out" % (b.pk, b.dk))
        return self._json(Code.CONTENT, body)

    # --- uplinks (§8) ---

    @staticmethod
    def _json(code, obj, content_format=True):
        m = aiocoap.Message(code=code, payload=json.dumps(obj, separators=(",", ":")).encode())
        if content_format:
            m.opt.content_format = CF_JSON
        return m

    def _reply(self, b, topic, method, payload, msg_id, code, data=None):
        self.db.log(b.pk, b.dk, topic, method, payload, code)
        if code != 200:
            self.log("%s/%s %s: EnOS code %d" % (b.pk, b.dk, topic, code))
        # EnOS answers uplinks with a bare 2.04 and its JSON body (enos-coap.md §9, §17): no
        # Content-Format, which keeps the reference exchange at its minimal 286 bytes.
        return self._json(Code.CHANGED, {"id": msg_id, "code": code,
                                         "data": {} if data is None else data},
                          content_format=False)

    def _uplink(self, b, topic, suffix, payload):
        if suffix == "thing/model/up_raw":
            self.db.log(b.pk, b.dk, topic, None, payload, 200)
            self.log("%s/%s up_raw %d bytes: %s" % (b.pk, b.dk, len(payload), payload.hex()))
            return aiocoap.Message(code=Code.CHANGED)
        if suffix.endswith("_reply"):
            return self._command_reply(b, topic, payload)
        kind = UPLINKS.get(suffix)
        is_event = suffix.startswith("thing/event/") and suffix.endswith("/post") and \
            suffix.count("/") == 3
        if kind is None and not is_event:
            return aiocoap.Message(code=Code.NOT_FOUND)
        if not payload:
            return self._reply(b, topic, None, payload, "", 1251)
        try:
            req = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return self._reply(b, topic, None, payload, "", 1220)
        if not isinstance(req, dict):
            return self._reply(b, topic, None, payload, "", 1220)
        msg_id = req.get("id", "")
        method = req.get("method")
        if method != suffix.replace("/", "."):
            return self._reply(b, topic, method, payload, msg_id, 1260)
        params = req.get("params")
        if is_event:
            ok = isinstance(params, dict) and isinstance(params.get("events"), dict) and \
                _time_ok(params)
            if not ok:
                return self._reply(b, topic, method, payload, msg_id, 1206)
            self.log("%s/%s event %s: %s" % (b.pk, b.dk, suffix.split("/")[2],
                                             json.dumps(params["events"])))
            return self._reply(b, topic, method, payload, msg_id, 200)
        if kind == "points":
            if not _points_ok(params):
                return self._reply(b, topic, method, payload, msg_id, 1206)
            self.db.add_points(b.pk, b.dk, topic, params["measurepoints"], params.get("time"))
            self.log("%s/%s %s: %s" % (b.pk, b.dk, method, json.dumps(params["measurepoints"])))
            return self._reply(b, topic, method, payload, msg_id, 200)
        if kind == "points_batch":
            if not isinstance(params, list) or not params or not all(_points_ok(p) for p in params):
                return self._reply(b, topic, method, payload, msg_id, 1206)
            for p in params:
                if p.get("productKey", b.pk) != b.pk or p.get("deviceKey", b.dk) != b.dk:
                    return self._reply(b, topic, method, payload, msg_id, 1212)
            for p in params:
                self.db.add_points(b.pk, b.dk, topic, p["measurepoints"], p.get("time"))
            self.log("%s/%s %s: %d records" % (b.pk, b.dk, method, len(params)))
            return self._reply(b, topic, method, payload, msg_id, 200)
        attrs = params.get("attributes") if isinstance(params, dict) else None
        stored = self.db.attributes(b.pk, b.dk)
        if kind == "attr_update":
            if not isinstance(attrs, dict) or len(attrs) > 200:
                return self._reply(b, topic, method, payload, msg_id, 1207)
            stored.update(attrs)
            self.db.set_attributes(b.pk, b.dk, stored)
            return self._reply(b, topic, method, payload, msg_id, 200)
        if kind == "attr_query":
            if not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs):
                return self._reply(b, topic, method, payload, msg_id, 1208)
            data = {k: v for k, v in stored.items() if not attrs or k in attrs}
            return self._reply(b, topic, method, payload, msg_id, 200, data)
        if not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs):
            return self._reply(b, topic, method, payload, msg_id, 1209)
        for a in attrs:
            stored.pop(a, None)
        self.db.set_attributes(b.pk, b.dk, stored)
        return self._reply(b, topic, method, payload, msg_id, 200)

    # --- commands (§11) ---

    def _command_reply(self, b, topic, payload):
        cmd_topic = topic[:-len("_reply")]
        cmd_id = None
        if not cmd_topic.endswith("/thing/model/down_raw"):
            try:
                obj = json.loads(payload)
                cmd_id = str(obj["id"])
                int(obj["code"])
            except (ValueError, KeyError, TypeError):
                return self._reply(b, topic, None, payload, "", 1220)
        found = self.db.record_reply(b.pk, b.dk, cmd_topic, cmd_id, payload)
        self.db.log(b.pk, b.dk, topic, None, payload, 200 if found else 0)
        self.log("%s/%s reply on %s%s: %r" % (b.pk, b.dk, topic,
                                              "" if found else " (no matching command)", payload))
        return aiocoap.Message(code=Code.CHANGED)

    def _attach_command(self, b, resp):
        cmd = self.db.next_queued(b.pk, b.dk, self.resend_s)
        if cmd is None:
            return
        style = self.dtls_commands if b.dtls else self.plain_commands
        resp.opt.add_option(optiontypes.StringOption(OPT_TOPIC, "/topic" + cmd["topic"]))
        if style == "option":
            resp.opt.add_option(optiontypes.OpaqueOption(OPT_PAYLOAD, bytes(cmd["payload"])))
            self.db.mark(cmd["id"], "delivered")
        else:
            self.db.mark(cmd["id"], "announced")
        self.log("%s/%s command #%d on %s %s" % (b.pk, b.dk, cmd["id"], cmd["topic"],
                                                 "sent in 2102" if style == "option" else "announced"))

    def _fetch_command(self, b, topic):
        cmd = self.db.announced(b.pk, b.dk, topic)
        if cmd is None:
            return aiocoap.Message(code=Code.METHOD_NOT_ALLOWED)
        self.db.mark(cmd["id"], "delivered")
        return aiocoap.Message(code=Code.CONTENT, payload=bytes(cmd["payload"]))


def _time_ok(params):
    t = params.get("time")
    return t is None or (isinstance(t, int) and not isinstance(t, bool))


def _points_ok(params):
    return isinstance(params, dict) and isinstance(params.get("measurepoints"), dict) and \
        _time_ok(params)
