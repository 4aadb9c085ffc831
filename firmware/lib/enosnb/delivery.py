"""Sending the queue: topics, each reading's time, refusals, dead letters (enos-coap.md §8.3,
§9, §10, §18). App.send_queue() runs Delivery(app, current).run() once the link is up.

Order and topics. Records go oldest first. The reading taken in this cycle, when nothing
older waits, goes to thing.measurepoint.post. Older ones (the backlog) take the path of
secrets.json "backlog":
- "auto" (default): single thing.measurepoint.resume, which EnOS documents as not firing
  alerts or stream processing. EnOS's protocol comparison lists offline points as not offered
  over CoAP, so on the first "unsupported" answer (4.03, 4.04, 4.05, or code 1009, 1250,
  1260) the device switches to thing.measurepoint.post with each reading's own time, in time
  order, keeps that choice on flash (delivery.json: it survives a power-on reset), and tries
  resume again once backlog_probe_s (a week) later. A resume that gets no answer at all
  while post to the same server does, twice in a row, counts as unsupported too.
- "post": always thing.measurepoint.post.
- "resume_batch" / "post_batch": the batch topics, batch_max readings per request; an
  unsupported answer turns batches off (kept on flash) and the "auto" path takes over.

Time. A record carries the RTC value and epoch it was taken at (enosnb.timelog); its time is
recovered when it is sent. One whose error bound is above time_max_error_s and that a later
sync could improve waits (with every newer one: the queue stays in time order), for at most
time_hold_s. The reading of this cycle with no time at all goes without one when nothing
older waits: EnOS stamps it on arrival, seconds after it was taken. A record whose time cannot
be recovered (an epoch between two power-ons without a sync) follows time_unknown:
"dead_letter" (default) or "send" (without a time: EnOS stamps it on arrival, so its time is
wrong; the log says so and the count is in report["time_unknown"]).

Refusals. A refusal resending cannot fix (1008, 1202, 1204, 1206, 1220, 1251, 4.00, 4.13) moves
the record to the dead letters (enosnb.deadletter) at once, with its reason; a batch is split
into single requests first. Any other refusal, a reply EnOS does not document, or a
MemoryError while sending counts a strike against the oldest record (kept in RTC memory);
dead_after strikes in a row move it to the dead letters. Server errors (5.xx, 1274 "too
frequent") and link failures hold the queue: the cycle fails and backs off.

The dead-letter count goes to EnOS as the attribute secrets.json dead_attribute (when it
changed; a thing model without it is logged once, not retried), and to report["dead"].
"""
import struct

from micropython import const

from enosnb import flashjson, link
from enosnb.app import log
from enosnb.coap.errors import CoapTimeout
from enosnb.enos.errors import EnosCoapError, EnosError, EnosProtocolError, EnosReplyError
from enosnb.report import acked, quiet

SETTINGS = "delivery.json"
POST = "post"
RESUME = "resume"
POST_BATCH = "post_batch"
RESUME_BATCH = "resume_batch"
_MAX_REQUESTS = const(20)
# EnOS refuses the topic itself (§9, §10, §18): another topic may take the record.
_UNSUPPORTED_COAP = [0x83, 0x84, 0x85]
_UNSUPPORTED_CODES = [1009, 1250, 1260]
# The record itself is wrong: resending it cannot help.
_PERMANENT_CODES = [1008, 1202, 1204, 1206, 1220, 1251]
_PERMANENT_COAP = [0x80, 0x8D]
_TRANSIENT_CODES = [1274]
_SILENT_STRIKES = const(2)
_HOLD = "hold"


def unsupported(e):
    """True when EnOS refused the topic (not the record): another topic may take it."""
    if isinstance(e, EnosCoapError):
        return e.coap_code in _UNSUPPORTED_COAP
    return isinstance(e, EnosReplyError) and e.code in _UNSUPPORTED_CODES


def permanent(e):
    """True when EnOS refused the record in a way resending cannot fix."""
    if isinstance(e, EnosCoapError):
        return e.coap_code in _PERMANENT_COAP
    return isinstance(e, EnosReplyError) and e.code in _PERMANENT_CODES


def reason(e):
    if isinstance(e, EnosReplyError):
        return "EnOS code %d" % e.code
    if isinstance(e, EnosCoapError):
        return "EnOS %d.%02d" % (e.coap_code >> 5, e.coap_code & 31)
    return type(e).__name__


def decode(data):
    """The queued record as a dict (p: points, r/e: RTC ms and epoch, t: time when known);
    ValueError when it is not one of ours."""
    import json
    obj = json.loads(bytes(data))
    if not isinstance(obj, dict) or not isinstance(obj.get("p"), dict):
        raise ValueError("queued record is not {p, ...}")
    return obj


def encode(obj):
    from enosnb.enos.bodies import dumps
    return dumps(obj).encode()


class Delivery:
    def __init__(self, app, current):
        self.app = app
        self.s = app.secrets
        self.store = app.store
        self.times = app.times
        self.current = current
        self.report = app.report
        self.path = app._path(SETTINGS)
        self.settings = flashjson.load(self.path)
        self._dead = None
        self._singles = False

    # --- settings on flash -------------------------------------------------------------

    def _set(self, key, value):
        if self.settings.get(key) != value:
            self.settings[key] = value
            try:
                flashjson.save(self.path, self.settings)
            except OSError as e:
                log("delivery settings not saved (%s): the choice is made again" % e)

    def now(self):
        got = self.times.now()
        return got[0] if got is not None else None

    def backlog_topic(self):
        mode = self.s.backlog
        if mode == POST:
            return POST
        if mode in (POST_BATCH, RESUME_BATCH):
            if self.settings.get("batch", True) and not self._singles:
                return mode
            if mode == POST_BATCH:
                return POST
        if self.settings.get("topic") != POST:
            return RESUME
        since = self.settings.get("since")
        now = self.now()
        if since is None and now is not None:
            self._set("since", now)  # switched while the time was unknown: count from now
        elif since is not None and now is not None and \
                now - since >= self.s.backlog_probe_s * 1000:
            return RESUME  # the rare probe: maybe EnOS takes resume now
        return POST

    def _switch(self, topic, why):
        """EnOS refused a backlog topic: take the next one, and keep the choice."""
        if topic in (POST_BATCH, RESUME_BATCH):
            log("EnOS refuses %s (%s): batches off, single requests from now on"
                % (topic, why))
            self._set("batch", False)
            return
        log("EnOS refuses thing.measurepoint.resume (%s): the backlog goes through "
            "thing.measurepoint.post with each reading's own time; resume is tried again in "
            "%d days" % (why, self.s.backlog_probe_s // 86400))
        self._set("topic", POST)
        self._set("since", self.now())

    # --- dead letters ------------------------------------------------------------------

    def dead(self):
        if self._dead is None:
            from enosnb.deadletter import DeadLetters
            self._dead = DeadLetters(self.app._path("dead"), self.s.dead_max)
        return self._dead

    def _held(self, n):
        """The dead-letter count changed: keep it for the report, the LED and EnOS."""
        self.app.state.delete("dq")
        self.report["dead"] = n
        self.app.state.set("dl", struct.pack(">H", min(n, 0xFFFF)))
        self._set("dead", n)

    def bury(self, seq, obj, data, why):
        """Moves one record to the dead letters (logged once, here), then off the queue."""
        if obj is not None and "t" not in obj:
            got = self._time(obj)
            if isinstance(got, tuple):
                obj["t"] = got[0]
                data = encode(obj)
        dead = self.dead()
        dead.add(data, why)
        self.store.ack(seq)
        self.app.state.delete("strk")
        self.report["rejected"] = self.report.get("rejected", 0) + 1
        self._held(len(dead))
        log("record %d moved to the dead letters (%s); %d held, replay them with the service "
            "%s or a new value of replay_dead_letters in secrets.json" % (
                seq, why, len(dead), self.s.replay_service))

    def replay(self):
        n = self.dead().replay(self.store)
        self._held(len(self.dead()))
        log("%d dead letters back in the queue" % n)
        return n

    def _strike(self, seq, obj, data, e):
        """One more failure of the oldest record; True when it went to the dead letters."""
        got = self.app.state.get("strk")
        n = 1
        if got and len(got) == 5:
            last, count = struct.unpack(">IB", got)
            if last == seq:
                n = count + 1
        if n >= self.s.dead_after:
            self.bury(seq, obj, data, "%s, %d times in a row" % (reason(e), n))
            return True
        self.app.state.set("strk", struct.pack(">IB", seq, min(n, 255)))
        return False

    # --- time of a record --------------------------------------------------------------

    def _time(self, obj, seq=None):
        """(ms, err) to send with, None to send without a time, _HOLD to wait, or the
        string "unknown"."""
        if "t" in obj:
            return obj["t"], 0
        r, e = obj.get("r"), obj.get("e")
        if not isinstance(r, int) or not isinstance(e, int):
            return "unknown"
        pinned = self._pins().get(seq)
        if pinned is not None:
            return pinned, 0
        got = self.times.resolve(r, e)
        age = self.times.rtc_ms() - r if e == self.times.epoch else None
        waited = age is not None and age >= self.s.time_hold_s * 1000
        if got is None:
            return "unknown" if age is None or waited else _HOLD
        t, err, final = got
        if err > self.s.time_max_error_s * 1000 and not final and not waited:
            return _HOLD
        if not final and seq is not None:
            # A later sync would date it better; if this request's answer is lost, it must
            # go again with the same time, or EnOS would keep it twice.
            self._pin(seq, t)
        return t, err

    def _pins(self):
        raw = self.app.state.get("tpin") or b""
        out = {}
        for i in range(0, len(raw) - 11, 12):
            seq, t = struct.unpack_from(">Iq", raw, i)
            out[seq] = t
        return out

    def _pin(self, seq, t):
        pins = self._pins()
        pins[seq] = t
        keep = sorted(k for k in pins if k > self.store.acked)[-16:]
        self.app.state.set("tpin", b"".join(struct.pack(">Iq", k, pins[k]) for k in keep))

    # --- the loop ------------------------------------------------------------------------

    def _ready(self, n):
        """Up to n records ready to send, oldest first: [(seq, obj, data, time)]. Records
        that go to the dead letters on the way are moved (at most _MAX_REQUESTS a call)."""
        out = []
        buried = 0
        while buried <= _MAX_REQUESTS:
            again = False
            for seq, data in self.store.peek(n):
                try:
                    obj = decode(data)
                except ValueError:
                    if out:
                        return out
                    self.bury(seq, None, data, "not a queued reading (corrupt)")
                    again = True
                    break
                got = self._time(obj, seq)
                if got == _HOLD:
                    if seq == self.current and not out and len(self.store) == 1:
                        got = None  # this cycle's reading, alone: EnOS's arrival time is right
                    else:
                        if not out:
                            self.report["held"] = len(self.store)
                            log("%d records wait for a time sync (oldest %d)"
                                % (len(self.store), seq))
                        return out
                if got == "unknown":
                    if out:
                        return out
                    self.report["time_unknown"] = self.report.get("time_unknown", 0) + 1
                    if self.s.time_unknown != "send":
                        self.bury(seq, obj, data, "time unknown (power-on before any sync)")
                        again = True
                        break
                    log("record %d: its time is lost (power-on before any sync); sent "
                        "without one, EnOS dates it on arrival" % seq)
                    got = None
                out.append((seq, obj, data, got))
            if not again:
                return out
            buried += 1
        return out

    def run(self):
        replay = self.s.replay_dead_letters
        if replay != self.settings.get("replay", 0):
            self.replay()
            self._set("replay", replay)
        for _ in range(_MAX_REQUESTS):
            topic = self.backlog_topic()
            batch = topic in (POST_BATCH, RESUME_BATCH)
            recs = self._ready(self.s.batch_max if batch else 1)
            if not recs:
                break
            if recs[0][0] == self.current:
                topic, batch = POST, False
            elif batch:
                recs = [r for r in recs if r[0] != self.current] or recs
            if self.sock_last(recs):
                self.app.sock.last_exchange = True
            if self._send(topic, recs) is None:
                break
        self._attribute()
        if len(self.store):
            log("%d records still queued; the rest goes next cycle" % len(self.store))
        st = self.settings
        if not self.s.dead_attribute or st.get("dead", 0) == st.get("attr", 0):
            # Nothing for this module to do while the queue holds only the new reading:
            # enosnb.report posts it without loading it.
            self.app.state.set("dq", quiet(self.s))
        else:
            self.app.state.delete("dq")

    def sock_last(self, recs):
        # The queue's last request: the modem may release the RRC connection as soon as the
        # reply is in (BC95 AT+NSOSTF 0x400, modems.md §3.7).
        return len(recs) == len(self.store) and self.app.sock is not None

    def _send(self, topic, recs):
        """One request; True when the records left the queue, False to go round again, None
        to stop for this cycle."""
        try:
            link.probe(self.app, lambda: self._request(topic, recs))
        except Exception as e:  # what failed() does not handle goes up again
            return self.failed(topic, recs, e)
        return self.done(topic, recs)

    def failed(self, topic, recs, e):
        """What a failed request means for its records (see _send), or e raised again.
        enosnb.report's one-post path hands its failures here too."""
        seq, obj, data = recs[0][0], recs[0][1], recs[0][2]
        if isinstance(e, MemoryError):
            self._strike(seq, obj, data, e)
            raise e
        if isinstance(e, CoapTimeout):
            if topic != RESUME or self.s.backlog not in ("auto", RESUME_BATCH):
                raise e
            # No answer to resume: EnOS may drop the topic without a word. Post it now; if
            # post is answered (a refusal is an answer too), resume was silent while the link
            # worked. A post without an answer either: the link is gone, that goes up.
            log("no answer to thing.measurepoint.resume; record %d goes through post" % seq)
            try:
                done = self._send(POST, recs)
            except EnosError:
                self._silent_resume()
                raise
            self._silent_resume()
            return done
        if not isinstance(e, EnosError):
            raise e
        if unsupported(e) and topic != POST:
            self._switch(topic, reason(e))
            return False
        if unsupported(e):
            raise EnosError("EnOS refuses thing.measurepoint.post (%s): check productKey, "
                            "deviceKey and that the product takes JSON" % reason(e))
        if permanent(e):
            if len(recs) > 1:
                log("EnOS refused a batch (%s); sending one by one" % reason(e))
                self._singles = True
                return False
            self.bury(seq, obj, data, reason(e))
            return True
        if isinstance(e, EnosCoapError) or \
                isinstance(e, EnosReplyError) and e.code in _TRANSIENT_CODES:
            raise e
        if not isinstance(e, (EnosReplyError, EnosProtocolError)):
            raise e
        if self._strike(seq, obj, data, e):
            return True
        # The link works; only this record is refused: no back-off, it goes again next
        # cycle (and newer readings wait behind it until it goes or is buried).
        self.report["refused"] = reason(e)
        log("EnOS refused record %d (%s); it goes again next cycle, to the dead letters "
            "after %d refusals in a row" % (seq, e, self.s.dead_after))
        return None

    def done(self, topic, recs):
        app = self.app
        if topic == RESUME:
            app.state.delete("rsil")
            if self.settings.get("topic") == POST:
                log("EnOS took thing.measurepoint.resume again: the backlog goes there")
                self._set("topic", RESUME)
                self._set("since", None)
        acked(app, recs[-1][0], len(recs))
        return True

    def _silent_resume(self):
        app = self.app
        n = app._u8("rsil") + 1
        if n >= _SILENT_STRIKES:
            app.state.delete("rsil")
            self._switch(RESUME, "no answer, twice, while post was answered")
        else:
            app._set_u8("rsil", n)

    def _request(self, topic, recs):
        enos = self.app.enos
        items = []
        for _, obj, _, got in recs:
            items.append({"measurepoints": obj["p"], "time": None if got is None else got[0]})
        if topic == POST:
            return enos.post_measurepoints(items[0]["measurepoints"], items[0]["time"])
        if topic == RESUME:
            return enos.resume_measurepoint(items[0]["measurepoints"], items[0]["time"])
        if topic == POST_BATCH:
            return enos.post_measurepoints_batch(items)
        return enos.resume_measurepoints(items)

    def _attribute(self):
        """Tells EnOS how many dead letters are held, when that changed since it was told."""
        name = self.s.dead_attribute
        held = self.settings.get("dead", 0)
        if not name or held == self.settings.get("attr", 0):
            return
        try:
            self.app.enos.update_attributes({name: held})
        except MemoryError:
            raise
        except EnosError as e:
            log("attribute %s not taken (%s): add it (integer) to the thing model to see the "
                "dead-letter count in EnOS" % (name, reason(e)))
        except Exception as e:  # the link: the readings went, tell EnOS next cycle
            log("attribute %s not sent (%s)" % (name, type(e).__name__))
            return
        self._set("attr", held)
