"""EnOS device client over CoAP (enos-coap.md §5-§11).

connect() authenticates: in DTLS mode the handshake with the PSK identity is the
authentication (§5.3); in plain mode it sends POST /auth/{pk}/{dk} with the sign (§6.1).
A per-product device (productSecret, no deviceSecret) is activated first over DTLS (§7):
mode-3 handshake, GET .../thing/activate/info, the deviceSecret handed to `on_secret` to
persist, then a mode-2 handshake.

Every uplink checks the CoAP code (§9), then the JSON `code`, and the `id` when the reply
carries one (EnOS documents it as optional, §8.1, §10, §18). A 4.01 triggers one
re-authentication (new handshake or new /auth) and one retry (§5.3, §6.4); in plain mode a
JSON 1009 does too, since it also means "not logged in" (§18), once per request whichever
came first. Every response is looked at for cloud commands (options 2100/2102, §11), which
the Commands dispatcher executes and replies to; a failed fetch or reply is its business
(logged and counted there), never the uplink's.

Configuration is the EnOS part of secrets.json (docs/device-config.md): productKey, deviceKey,
deviceSecret and/or productSecret, lifetime, and the diagnostic switches pskOffset (8|9, Q5),
signUppercase (Q11), dtlsAuth (Q6), contentFormat (Q8).
"""
import struct

from micropython import const

from enosnb import rng
from enosnb.clock import SYSTEM
from enosnb.coap import codes
from enosnb.enos import bodies, identity, topics
from enosnb.enos.errors import EnosAuthError, EnosCoapError, EnosConfigError, \
    EnosError, EnosProtocolError, EnosReplyError, reply_error

CF_JSON = const(50)
CF_OCTETS = const(42)
# Message ids stay below 10**9 so they remain short decimal strings.
_ID_SPAN = const(1000000000)
# restore() skips this many ids: requests sent after the last save must not be reused.
_ID_JUMP = const(1000)
_STATE_VERSION = const(1)
_NOT_LOGGED_IN = const(1009)

_HINTS = {
    codes.BAD_REQUEST: "illegal payload; dropped, do not retry",
    codes.UNAUTHORIZED: "unauthorised even after re-authentication: check keys and secret",
    codes.FORBIDDEN: "forbidden request; do not retry",
    codes.NOT_FOUND: "no such topic: check productKey, deviceKey and the topic",
    codes.METHOD_NOT_ALLOWED: "wrong CoAP method for this topic",
    codes.INTERNAL_SERVER_ERROR: "EnOS internal error; retry later with back-off",
}


def _cfg(config, key, default=None):
    """config[key], or default when it is missing or null."""
    v = config.get(key)
    return default if v is None else v


class EnosClient:
    """One device's EnOS session.

    transport: open(identity, psk) -> CoAP client, close(), .secure (see transport.py).
    config: dict with the EnOS keys of secrets.json.
    on_secret: callable(device_secret) that persists an activated deviceSecret (§7 step 5);
        it must raise if the write failed.
    commands: a Commands dispatcher (commands.py) or None to leave commands queued.
    clock: for the lifetime-based re-authentication.
    """

    def __init__(self, transport, config, on_secret=None, commands=None, clock=SYSTEM):
        self.transport = transport
        self.pk = config.get("productKey")
        self.dk = config.get("deviceKey")
        self.lifetime = identity.check_lifetime(_cfg(config, "lifetime", 3600))
        # Bad keys fail here, at boot, not at the first report.
        identity.psk_identity(self.pk, self.dk, identity.MODE_DEVICE, self.lifetime)
        self._device_secret = config.get("deviceSecret") or None
        self._product_secret = config.get("productSecret") or None
        if not self._device_secret and not self._product_secret:
            raise EnosConfigError("secrets.json needs deviceSecret (per device) or "
                                  "productSecret (per product, DTLS only)")
        self.psk_offset = _cfg(config, "pskOffset", identity.PSK_OFFSET_DEFAULT)
        if self.psk_offset not in (identity.PSK_OFFSET_DEFAULT, identity.PSK_OFFSET_ALT):
            raise EnosConfigError("pskOffset must be 8 (default) or 9 (diagnostic, Q5)")
        self.sign_upper = bool(_cfg(config, "signUppercase", True))
        self.dtls_auth = bool(_cfg(config, "dtlsAuth", False))
        self.content_format = bool(_cfg(config, "contentFormat", True))
        # Re-authenticate before EnOS would mark the device offline (§4, §6.4).
        margin = _cfg(config, "reauthMarginS", max(5, self.lifetime // 10))
        self._reauth_after_ms = max(0, self.lifetime - margin) * 1000
        self.on_secret = on_secret
        self.commands = commands
        self.clock = clock
        self.coap = None
        self.auth_payload = None
        self.activated = False
        self.last_result = None
        self.relogged = False
        self._last_ok = None
        self._path_key = None
        self._path = None
        r = rng.urandom(4)
        self._next_id = ((r[0] << 24) | (r[1] << 16) | (r[2] << 8) | r[3]) % _ID_SPAN

    # --- state across deep sleep --------------------------------------------------------

    def state(self):
        """5 bytes to keep across deep sleep: the next JSON message id."""
        return struct.pack(">BI", _STATE_VERSION, self._next_id)

    def restore(self, state):
        """Continue ids after a reboot; skips _ID_JUMP ids so none is reused."""
        if state is None or len(state) != 5 or state[0] != _STATE_VERSION:
            raise EnosProtocolError("EnOS client state must be the 5 bytes state() returned; "
                                    "discard it and keep the random start")
        self._next_id = (struct.unpack(">BI", state)[1] + _ID_JUMP) % _ID_SPAN

    def next_id(self):
        """A fresh JSON message id (decimal string)."""
        i = self._next_id
        self._next_id = (i + 1) % _ID_SPAN
        return str(i)

    # --- connection ---------------------------------------------------------------------

    def connect(self):
        """Authenticate (activating a per-product device first if needed)."""
        if self.transport.secure and not self._device_secret:
            self.activate()
        self._open()

    def save_session(self):
        """DTLS session state for deep sleep (None in plain mode); see resume_session()."""
        save = getattr(self.transport, "save", None)
        return save() if save is not None and self.coap is not None else None

    def resume_session(self, blob):
        """After a wake from deep sleep: resume the saved DTLS session (abbreviated handshake,
        no PSK exchange), or connect() afresh when there is nothing to resume."""
        if not blob or not self.transport.secure or not self._device_secret:
            self.connect()
            return
        psk = identity.psk_key(self._device_secret, self.psk_offset)
        self.attach(self.transport.resume(self._identity(identity.MODE_DEVICE), psk, blob))

    def attach(self, coap):
        """Use an already-authenticated CoAP client (e.g. a restored DTLS session)."""
        self.coap = coap
        self._last_ok = self.clock.ticks_ms()

    def close(self):
        self.coap = None
        self.transport.close()

    def _identity(self, mode):
        return identity.psk_identity(self.pk, self.dk, mode, self.lifetime)

    def _open(self):
        self.coap = None
        if self.transport.secure:
            psk = identity.psk_key(self._device_secret, self.psk_offset)
            coap = self.transport.open(self._identity(identity.MODE_DEVICE), psk)
            if self.dtls_auth:
                self._auth(coap)
        else:
            if not self._device_secret:
                raise EnosConfigError("plain (non-DTLS) mode needs deviceSecret: per-product "
                                      "activation works over DTLS only (Q13)")
            coap = self.transport.open(None, None)
            self._auth(coap)
        self.coap = coap
        self._last_ok = self.clock.ticks_ms()

    def _auth(self, coap):
        path = identity.auth_path(self.pk, self.dk)
        body = identity.auth_body(self.pk, self.dk, self.lifetime, self._device_secret,
                                  self.sign_upper)
        res = coap.post(path, body, content_format=self._cf(CF_JSON))
        self.last_result = res
        self.auth_payload = res.payload or None
        if res.code in (codes.UNAUTHORIZED, codes.FORBIDDEN):
            raise EnosAuthError("EnOS refused /auth with %s: check productKey, deviceKey, "
                                "deviceSecret" % codes.code_str(res.code))
        if not codes.is_success(res.code):
            raise EnosCoapError(res.code, path, "authentication failed; back off and retry")

    def activate(self):
        """Per-product activation over DTLS (§7): fetch, persist and adopt the deviceSecret."""
        if not self.transport.secure:
            raise EnosConfigError("per-product activation needs DTLS mode (Q13)")
        if not self._product_secret:
            raise EnosConfigError("activation needs productSecret in secrets.json")
        psk = identity.psk_key(self._product_secret, self.psk_offset)
        coap = self.transport.open(self._identity(identity.MODE_PRODUCT), psk)
        try:
            path = topics.path(topics.activate_topic(self.pk, self.dk))
            res = coap.get(path)
            self.last_result = res
            if res.code == codes.UNAUTHORIZED:
                raise EnosAuthError("EnOS refused activation (4.01): is Dynamic Activation on "
                                    "for the product and the productSecret right?")
            if not codes.is_success(res.code):
                raise EnosCoapError(res.code, path, "activation failed")
            secret = self._activation_secret(res.payload, path)
            if self.on_secret is not None:
                self.on_secret(secret)
        finally:
            self.coap = None
            self.transport.close()
        self._device_secret = secret
        self.activated = True

    def _activation_secret(self, payload, path):
        obj = bodies.loads(payload, "the activate/info response")
        if "code" in obj and obj.get("code") != 200:
            raise reply_error(obj.get("code"), path, str(obj.get("message", "")))
        if obj.get("method") != "thing.activate.info":
            raise EnosProtocolError("activate/info answered method %r, not thing.activate.info"
                                    % obj.get("method"))
        params = obj.get("params")
        if not isinstance(params, dict):
            raise EnosProtocolError("activate/info response has no params object")
        if params.get("productKey") != self.pk or params.get("deviceKey") != self.dk:
            raise EnosProtocolError("activate/info answered for another device; secret ignored")
        secret = params.get("deviceSecret")
        if not isinstance(secret, str) or not secret:
            raise EnosProtocolError("activate/info response has no deviceSecret")
        return secret

    def _cf(self, cf):
        return cf if self.content_format else None

    # --- requests -----------------------------------------------------------------------

    def keepalive_due(self):
        """True when the device must talk to EnOS soon to stay online (lifetime, §4)."""
        return self._stale()

    def _stale(self):
        if self._last_ok is None:
            return True
        return self.clock.ticks_diff(self.clock.ticks_ms(), self._last_ok) > self._reauth_after_ms

    def request(self, method, path, payload=b"", cf=None):
        """One CoAP request with session handling: connect or re-authenticate when needed,
        re-authenticate once and retry once on 4.01. Returns the CoAP Result (any code but
        4.01); CoapError from the layer below passes through unchanged."""
        self.relogged = False
        if self.coap is None or self._stale():
            self._open()
        res = self.coap.request(method, path, payload, content_format=self._cf(cf))
        if res.code == codes.UNAUTHORIZED:
            self.relogged = True
            self._open()
            res = self.coap.request(method, path, payload, content_format=self._cf(cf))
            if res.code == codes.UNAUTHORIZED:
                self.last_result = res
                raise EnosAuthError("EnOS answered 4.01 to %s again after re-authentication: "
                                    "check the keys and secret" % path)
        self.last_result = res
        self._last_ok = self.clock.ticks_ms()
        return res

    def exchange(self, method, path, payload=b"", cf=None, msg_id=None):
        """request(), then the CoAP code check and (for msg_id) the JSON code and id checks,
        then any cloud commands the response carried. Returns the parsed JSON reply or None."""
        relogin = not self.transport.secure
        while True:
            res = self.request(method, path, payload, cf)
            relogin = relogin and not self.relogged
            reply = None
            error = None
            try:
                if not codes.is_success(res.code):
                    raise EnosCoapError(res.code, path, _HINTS.get(res.code, ""))
                if msg_id is not None and res.payload:
                    reply = self._check_reply(res.payload, path, msg_id)
            except EnosError as e:
                error = e
            # Commands ride on any response (§11.4 step 1), also on one that reports an error.
            if self.commands is not None:
                self.commands.drain(self, res)
            self.last_result = res
            if relogin and isinstance(error, EnosReplyError) and error.code == _NOT_LOGGED_IN:
                relogin = False
                self._open()  # plain mode: 1009 may mean the /auth binding is gone (§18)
                continue
            if error is not None:
                raise error
            return reply

    @staticmethod
    def _check_reply(payload, path, msg_id):
        reply = bodies.loads(payload, "the reply to " + path)
        code = reply.get("code")
        if code != 200:
            raise reply_error(code, path, str(reply.get("message", "")))
        if "id" in reply and str(reply.get("id")) != msg_id:
            raise EnosProtocolError("the reply to %s carries id %r, not %s"
                                    % (path, reply.get("id"), msg_id))
        return reply

    def _sys_path(self, suffix):
        # The last path is kept: a device posts to the same topic report after report, and
        # formatting it again allocated ~150 bytes each time (no collection runs mid-report).
        key = self._path_key
        if key is None or key[0] != suffix or key[1] is not self.pk or key[2] is not self.dk:
            self._path = topics.path(topics.sys_topic(self.pk, self.dk, suffix))
            self._path_key = (suffix, self.pk, self.dk)
        return self._path

    def _post_json(self, suffix, build):
        msg_id = self.next_id()
        return self.exchange(codes.POST, self._sys_path(suffix), build(msg_id), CF_JSON, msg_id)

    # --- uplinks (§8.3, §8.4) -----------------------------------------------------------

    def post_measurepoints(self, points, time_ms=None):
        """thing.measurepoint.post: points is {name: value or with_quality(v, q)}."""
        return self._post_json(topics.MEASUREPOINT_POST,
                               lambda i: bodies.measurepoints(i, points, time_ms))

    def post_measurepoints_batch(self, items):
        """thing.measurepoint.post.batch: items are {"measurepoints":.., "time":..} dicts."""
        return self._post_json(topics.MEASUREPOINT_POST_BATCH,
                               lambda i: bodies.measurepoints_batch(i, items))

    def resume_measurepoints(self, items):
        """Offline / historic points (thing.measurepoint.resume.batch), oldest first."""
        return self._post_json(topics.MEASUREPOINT_RESUME_BATCH, lambda i: bodies.measurepoints_batch(
            i, items, topics.method_of(topics.MEASUREPOINT_RESUME_BATCH)))

    def resume_measurepoint(self, points, time_ms):
        """One offline / historic record (thing.measurepoint.resume)."""
        return self._post_json(topics.MEASUREPOINT_RESUME, lambda i: bodies.measurepoints(
            i, points, time_ms, topics.method_of(topics.MEASUREPOINT_RESUME)))

    def post_event(self, event_id, values, time_ms=None):
        """thing.event.{eventId}.post."""
        return self._post_json(topics.event_suffix(event_id),
                               lambda i: bodies.event(i, event_id, values, time_ms))

    def update_attributes(self, attributes):
        """thing.attribute.update (at most 200 attributes)."""
        if len(attributes) > 200:
            raise EnosConfigError("EnOS takes at most 200 attributes per update")
        return self._post_json(topics.ATTRIBUTE_UPDATE,
                               lambda i: bodies.attribute_update(i, attributes))

    def query_attributes(self, names=()):
        """thing.attribute.query; returns the reply's data (all attributes for no names)."""
        reply = self._post_json(topics.ATTRIBUTE_QUERY, lambda i: bodies.attribute_names(
            i, names, topics.method_of(topics.ATTRIBUTE_QUERY)))
        return reply.get("data") if reply else None

    def delete_attributes(self, names):
        return self._post_json(topics.ATTRIBUTE_DELETE, lambda i: bodies.attribute_names(
            i, names, topics.method_of(topics.ATTRIBUTE_DELETE)))

    def up_raw(self, data):
        """Passthrough upload (application/octet-stream); returns the raw response body."""
        self.exchange(codes.POST, self._sys_path(topics.UP_RAW), data, CF_OCTETS)
        return self.last_result.payload
