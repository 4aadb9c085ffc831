"""Build and enqueue cloud commands the way EnOS delivers them (enos-coap.md §8.4, §11)."""
import json
import time


def _new_id():
    return str(int(time.time() * 1000) % 1000000000)


def _json_cmd(method, params, cmd_id):
    return json.dumps({"id": cmd_id, "version": "1.0", "method": method, "params": params},
                      separators=(",", ":")).encode()


def enqueue_set(db, pk, dk, points, cmd_id=None):
    cmd_id = cmd_id or _new_id()
    topic = "/sys/%s/%s/thing/service/measurepoint/set" % (pk, dk)
    return db.enqueue(pk, dk, topic, _json_cmd("thing.service.measurepoint.set", points, cmd_id),
                      cmd_id)


def enqueue_get(db, pk, dk, names, cmd_id=None):
    cmd_id = cmd_id or _new_id()
    topic = "/sys/%s/%s/thing/service/measurepoint/get" % (pk, dk)
    return db.enqueue(pk, dk, topic, _json_cmd("thing.service.measurepoint.get", list(names),
                                               cmd_id), cmd_id)


def enqueue_service(db, pk, dk, service_id, params, cmd_id=None):
    cmd_id = cmd_id or _new_id()
    topic = "/sys/%s/%s/thing/service/%s" % (pk, dk, service_id)
    return db.enqueue(pk, dk, topic, _json_cmd("thing.service.%s" % service_id, params, cmd_id),
                      cmd_id)


def enqueue_raw(db, pk, dk, data):
    topic = "/sys/%s/%s/thing/model/down_raw" % (pk, dk)
    return db.enqueue(pk, dk, topic, bytes(data))


def parse_value(text):
    """name=value arguments: JSON when it parses (21.5, true, "x"), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_pairs(args):
    out = {}
    for a in args:
        if "=" not in a:
            raise ValueError("expected name=value, got %r" % a)
        k, v = a.split("=", 1)
        out[k] = parse_value(v)
    return out
