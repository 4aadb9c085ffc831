"""The report phase of a cycle: the queue goes to EnOS oldest first (enos-coap.md §8.3, §9,
§10). One record goes to thing.measurepoint.post; records left over from an outage go first
to thing.measurepoint.resume(.batch), in order; a record leaves the queue only after EnOS
answered code 200 for it, or refused it for good (then it is dropped and counted). Each
request on a restored DTLS session goes through link.probe().
"""
import json
import struct

from micropython import const

from enosnb import link
from enosnb.app import log
from enosnb.enos.errors import EnosCoapError, EnosError, EnosReplyError

_MAX_BATCHES = const(20)
# EnOS answers these when the record itself is wrong: resending cannot help (§9, §10).
# Lists: smaller in the .mpy than constant tuples.
_REJECTED_CODES = [1008, 1204, 1206, 1220, 1251]
_REJECTED_COAP = [0x80, 0x8D]  # 4.00 Bad Request, 4.13 Request Entity Too Large


def decode_record(data):
    """(points, time_ms) of a queued record; ValueError when it is not one of ours."""
    obj = json.loads(bytes(data))
    if not isinstance(obj, dict) or not isinstance(obj.get("p"), dict):
        raise ValueError("queued record is not {p, t}")
    return obj["p"], obj.get("t")


def _rejected(e):
    if isinstance(e, EnosReplyError):
        return e.code in _REJECTED_CODES
    if isinstance(e, EnosCoapError):
        return e.coap_code in _REJECTED_COAP
    return False


def send_queue(app, current):
    """Reports queued records oldest first; acks each batch after EnOS's code 200."""
    singles = False
    for _ in range(_MAX_BATCHES):
        recs = app.store.peek(1 if singles else app.secrets.batch_max)
        if not recs:
            return
        old = [r for r in recs if r[0] != current]
        batch = old if old else recs
        items = []
        for seq, data in batch:
            try:
                points, t = decode_record(data)
            except ValueError:
                log("queued record %d is corrupt; dropped" % seq)
                app.report["rejected"] += 1
                app.store.ack(seq)
                break
            items.append({"measurepoints": points, "time": t})
        else:
            if len(batch) == len(app.store) and app.sock is not None:
                # The queue's last request: the modem may release the RRC connection as
                # soon as the reply is in (BC95 AT+NSOSTF 0x400, modems.md §3.7).
                app.sock.last_exchange = True
            try:
                link.probe(app, lambda: _post(app, batch, items, current))
            except EnosError as e:
                if not _rejected(e):
                    raise
                if len(batch) > 1:
                    log("EnOS rejected a batch (%s); sending one by one" % e)
                    singles = True
                    continue
                log("EnOS rejected record %d (%s); dropped" % (batch[0][0], e))
                app.report["rejected"] += 1
            app.store.ack(batch[-1][0])
            app.report["sent"] += len(batch)
            app._save_progress()
    log("%d records still queued; the rest goes next cycle" % len(app.store))


def _post(app, batch, items, current):
    enos = app.enos
    if len(batch) == 1 and batch[0][0] == current:
        return enos.post_measurepoints(items[0]["measurepoints"], items[0]["time"])
    if len(batch) == 1:
        return enos.resume_measurepoint(items[0]["measurepoints"], items[0]["time"])
    return enos.resume_measurepoints(items)


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
