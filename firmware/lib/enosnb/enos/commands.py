"""Cloud commands carried by EnOS responses (enos-coap.md §11).

After every response: option 2100 names the command topic; option 2102, when present, is
the command payload, otherwise the device GETs the topic and the GET response body is the
command (§11.4 steps 1-3). The topic decides the kind (step 4): down_raw is opaque bytes;
measurepoint set/get and service invocations are JSON with an `id`. The handler the
application registered runs, and its result goes to the matching _reply topic (§11.6).
The loop continues while responses carry 2100, at most max_per_wake commands (step 7), and
a command seen before (same JSON id, or same raw payload hash) is not executed again: its
stored reply is sent again instead, since EnOS re-sends when a reply was lost (step 8).

Handlers:
    on_set(fn):      fn(params) -> None | code | (code, data)    thing.service.measurepoint.set
    on_get(fn):      fn(params) -> data dict                     thing.service.measurepoint.get
    on_service(fn):  fn(service_id, params) -> data | (code, data)  thing.service.{id}
    on_raw(fn):      fn(payload_bytes) -> reply bytes or None     thing/model/down_raw
A handler that raises is answered with code 500 and the exception's class name; a command
with no handler with code 404 (device-defined codes, §8.4).

A command that cannot be fetched, or whose reply EnOS refuses or does not answer, is logged
and counted (.failures) and never fails the uplink it rode on: EnOS re-sends commands that
got no reply (§11.1). After a failure that is not an answer (the link), draining stops.
A MemoryError passes through as itself.
"""
import binascii
import hashlib

from micropython import const

from enosnb.coap import codes
from enosnb.coap import options as opt
from enosnb.enos import bodies, topics
from enosnb.enos.errors import EnosError

_STATE_VERSION = const(1)
# Replies longer than this are not kept across deep sleep: a repeat of such a command after
# a wake is recognised (not executed again) but not answered again.
_KEEP_REPLY_MAX = const(200)
_NO_REPLY = const(0xFFFF)
CODE_OK = const(200)
CODE_NO_HANDLER = const(404)
CODE_HANDLER_FAILED = const(500)
_CF_JSON = const(50)
_CF_OCTETS = const(42)


class _LinkGone(Exception):
    """A command reply could not be sent: stop draining."""


def _code_data(result):
    """(code, data) of what a handler returned; data None is sent as {}."""
    if isinstance(result, tuple) and len(result) == 2:
        return result[0], result[1]
    if isinstance(result, int) and not isinstance(result, bool):
        return result, None
    return CODE_OK, result


class Commands:
    """Dispatcher for cloud commands; give it to EnosClient(commands=...)."""

    def __init__(self, max_per_wake=8, remember=16, log=None):
        self.max_per_wake = max_per_wake
        self.log = log
        self._set = None
        self._get = None
        self._service = None
        self._raw = None
        self._seen = [None] * remember
        self._replies = [None] * remember
        self._pos = 0
        self.executed = 0
        self.duplicates = 0
        self.dropped = 0
        self.failures = 0
        self.left_queued = False

    def on_set(self, fn):
        self._set = fn
        return fn

    def on_get(self, fn):
        self._get = fn
        return fn

    def on_service(self, fn):
        self._service = fn
        return fn

    def on_raw(self, fn):
        self._raw = fn
        return fn

    def _note(self, text):
        if self.log is not None:
            self.log(text)

    # --- the drain loop -----------------------------------------------------------------

    def drain(self, client, res):
        """Execute the commands res (and the responses that follow) carry; returns how many.

        Responses still to look at form a FIFO: in DTLS mode both the GET that fetched a
        command and the POST of its reply may announce the next one.
        """
        done = 0
        self.left_queued = False
        pending = [res]
        while pending:
            res = pending.pop(0)
            if res is None or res.option(opt.ENOS_TOPIC) is None:
                continue
            if done >= self.max_per_wake:
                self.left_queued = True
                self._note("command limit %d reached; the rest waits for the next wake"
                           % self.max_per_wake)
                break
            done += 1
            try:
                topic = topics.topic_of_option(res.option(opt.ENOS_TOPIC))
            except UnicodeError:
                self.dropped += 1
                self._note("option 2100 is not UTF-8 text; command ignored")
                continue
            payload = res.option(opt.ENOS_PAYLOAD)
            if payload is None:
                got = self._request(client, codes.GET, topics.path(topic), b"", None,
                                    "fetching the command")
                if got is None:
                    break
                if not codes.is_success(got.code):
                    continue
                payload = got.payload
                pending.append(got)
            try:
                pending.append(self._handle(client, topic, bytes(payload)))
            except _LinkGone:
                break
        return done

    def _request(self, client, method, path, body, cf, what):
        """client.request(); None when the link failed (counted, logged). A refusal (an
        answer that is not 2.xx) is counted and logged too, and returned."""
        try:
            res = client.request(method, path, body, cf)
        except MemoryError:
            raise
        except Exception as e:  # CoapError, DtlsError, EnosError, ModemError: not ours
            self.failures += 1
            self._note("%s on %s failed (%s: %s); EnOS sends it again" % (
                what, path, type(e).__name__, e))
            return None
        if not codes.is_success(res.code):
            self.failures += 1
            self._note("%s on %s: EnOS answered %d.%02d" % (what, path, res.code >> 5,
                                                              res.code & 31))
        return res

    def _handle(self, client, topic, payload):
        kind, service_id = topics.classify_command(topic)
        if kind is None:
            self.dropped += 1
            self._note("ignored a command on unknown topic %s" % topic)
            return None
        if kind == topics.CMD_RAW:
            key = b"raw:" + binascii.hexlify(hashlib.sha256(payload).digest()[:8])
        else:
            try:
                cmd = bodies.loads(payload, "the command on " + topic)
            except EnosError as e:
                self.dropped += 1
                self._note(str(e))
                return None
            cmd_id = cmd.get("id")
            if cmd_id is None:
                self.dropped += 1
                self._note("command on %s has no id; ignored" % topic)
                return None
            cmd_id = str(cmd_id)
            key = ("json:" + topic + ":" + cmd_id).encode()
        reply_path = topics.path(topics.reply_topic(topic))
        slot = self._lookup(key)
        if slot is not None:
            self.duplicates += 1
            body = self._replies[slot]
        else:
            if kind == topics.CMD_RAW:
                body = self._run_raw(payload)
            else:
                body = self._run_json(kind, service_id, cmd, cmd_id)
            self.executed += 1
            self._store(key, body)
        if body is None:
            return None
        cf = _CF_OCTETS if kind == topics.CMD_RAW else _CF_JSON
        res = self._request(client, codes.POST, reply_path, body, cf, "the command reply")
        if res is None:
            raise _LinkGone()
        return res

    def _run_raw(self, payload):
        if self._raw is None:
            self._note("no raw command handler; down_raw ignored")
            return None
        try:
            out = self._raw(payload)
        except MemoryError:
            raise
        except Exception as e:
            self._note("raw command handler failed: %s" % type(e).__name__)
            return None
        if out is None:
            return None
        return out.encode() if isinstance(out, str) else bytes(out)

    def _run_json(self, kind, service_id, cmd, cmd_id):
        params = cmd.get("params")
        if params is None:
            params = {}
        if kind == topics.CMD_SET:
            fn, args = self._set, (params,)
        elif kind == topics.CMD_GET:
            fn, args = self._get, (params,)
        else:
            fn, args = self._service, (service_id, params)
        if fn is None:
            return bodies.reply(cmd_id, CODE_NO_HANDLER, {})
        try:
            code, data = _code_data(fn(*args))
            return bodies.reply(cmd_id, code, data)
        except MemoryError:
            raise
        except Exception as e:
            self._note("command handler failed: %s" % type(e).__name__)
            return bodies.reply(cmd_id, CODE_HANDLER_FAILED, {"error": type(e).__name__})

    # --- dedupe memory across deep sleep ------------------------------------------------

    def state(self):
        """Bytes to keep across deep sleep: the ids/hashes of recent commands and their
        short replies, so a command EnOS re-sends after the wake is not executed twice."""
        out = bytearray((_STATE_VERSION,))
        n = len(self._seen)
        for k in range(n):
            i = (self._pos + k) % n
            key = self._seen[i]
            if key is None or len(key) > 255:
                continue
            reply = self._replies[i]
            out += bytes((len(key),)) + key
            if reply is None or len(reply) > _KEEP_REPLY_MAX:
                out += _NO_REPLY.to_bytes(2, "big")
            else:
                out += len(reply).to_bytes(2, "big") + reply
        return bytes(out)

    def restore(self, state):
        """Take back state(); EnosError when it is not state()'s output."""
        if not state or state[0] != _STATE_VERSION:
            raise EnosError("command state is not from Commands.state(); discard it")
        entries = []
        p = 1
        while p < len(state):
            kl = state[p]
            key = bytes(state[p + 1:p + 1 + kl])
            p += 1 + kl
            if len(key) != kl or p + 2 > len(state):
                raise EnosError("command state is truncated; discard it")
            rl = (state[p] << 8) | state[p + 1]
            p += 2
            reply = None
            if rl != _NO_REPLY:
                reply = bytes(state[p:p + rl])
                if len(reply) != rl:
                    raise EnosError("command state is truncated; discard it")
                p += rl
            entries.append((key, reply))
        for key, reply in entries[-len(self._seen):]:
            self._store(key, reply)

    def _lookup(self, key):
        """The memory slot of key, or None."""
        for i in range(len(self._seen)):
            if self._seen[i] == key:
                return i
        return None

    def _store(self, key, body):
        self._seen[self._pos] = key
        self._replies[self._pos] = body
        self._pos = (self._pos + 1) % len(self._seen)
