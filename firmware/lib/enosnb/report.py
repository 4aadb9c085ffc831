"""The report phase of a cycle: the queue goes to EnOS oldest first (enosnb.delivery: topics,
each reading's time, refusals and dead letters; enos-coap.md §8.3, §9, §10, §18), then the
abnormal reset count goes as an attribute when it changed.
"""
import struct

from enosnb.app import log
from enosnb.enos.errors import EnosError


def quiet(s):
    """What the state holds ("dq") while the delivery settings need no look: a new
    replay_dead_letters or dead_attribute in secrets.json is a change."""
    return ("%d %s" % (s.replay_dead_letters, s.dead_attribute)).encode()


def send_queue(app, current):
    """Reports queued records oldest first (enosnb.delivery). The usual cycle, this cycle's
    reading alone on the queue with its time known for good, is one post done here without
    loading enosnb.delivery (RAM): it is loaded for anything else, and for a failure."""
    recs = None
    if current is not None and len(app.store) == 1 and _quiet(app):
        recs = _alone(app, current)
    if recs is not None:
        try:
            from enosnb import link
            link.probe(app, lambda: app.enos.post_measurepoints(recs[0][1]["p"], recs[0][3][0]))
        except Exception as e:  # the delivery module says what it means
            from enosnb.delivery import Delivery
            d = app.delivery = Delivery(app, current)
            if d.failed("post", recs, e):
                d.run()  # it went to the dead letters: tell EnOS the count
            return
        acked(app, current, 1)
        return
    from enosnb.delivery import Delivery
    app.delivery = Delivery(app, current)
    app.delivery.run()


def acked(app, seq, n):
    """EnOS took the n records up to seq: they leave the queue, counted, the progress kept."""
    app.state.delete("strk")
    app.store.ack(seq)
    app.report["sent"] += n
    app._save_progress()


def _quiet(app):
    """True when enosnb.delivery would find nothing to do but send: its settings said so at
    the end of its last run, or there are none yet and no replay is asked for."""
    q = quiet(app.secrets)
    if app.state.get("dq") == q:
        return True
    if app.secrets.replay_dead_letters:
        return False
    import os
    try:
        os.stat(app._path("delivery.json"))
        return False
    except OSError:
        app.state.set("dq", q)
        return True


def _alone(app, current):
    """[(seq, record, data, (ms, err))] for this cycle's reading when its time is final and
    within time_max_error_s, else None."""
    import json
    seq, data = app.store.peek(1)[0]
    if seq != current:
        return None
    try:
        obj = json.loads(bytes(data))
        got = app.times.resolve(obj["r"], obj["e"])
    except (ValueError, KeyError, TypeError):
        return None
    if got is None or not got[2] or got[1] > app.secrets.time_max_error_s * 1000:
        return None
    if app.sock is not None:
        app.sock.last_exchange = True  # the queue's last request (modems.md §3.7)
    return [(seq, obj, data, got[:2])]


def report_resets(app):
    """The abnormal reset count, once per new count, as an attribute (docs/power.md)."""
    total = app._u32("abt")
    if total == app._u32("abr") or app.enos is None:
        return
    try:
        app.enos.update_attributes({"enosnb_abnormal_resets": total})
    except EnosError as e:
        log("abnormal reset count not reported (%s); add the attribute "
            "enosnb_abnormal_resets to the thing model to see it" % e)
    app.state.set("abr", struct.pack(">I", total))
