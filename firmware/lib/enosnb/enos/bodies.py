"""EnOS JSON bodies, written compactly and in a fixed key order (enos-coap.md §8.2, §8.4, §11.6).

MicroPython's json.dumps puts spaces after separators and its dicts have no insertion order,
so the envelope is written by hand and user objects go through dumps() below: no spaces,
object keys sorted, so that both runtimes give the same bytes. Obj keeps a given key order
where EnOS examples show one (a point with quality: {"value":..,"quality":..}).
"""
import json

from enosnb.enos.errors import EnosError, EnosProtocolError

VERSION = "1.0"


class Obj:
    """A JSON object written with its keys in the given order: Obj(("value", 1), ("quality", 9))."""

    def __init__(self, *pairs):
        self.pairs = pairs


def with_quality(value, quality):
    """A measurement point carrying a quality flag 0..9 (§8.4)."""
    return Obj(("value", value), ("quality", quality))


# Built once: tuples of types and float constants written inline in _write would be
# allocated again on every call on MicroPython, and a report writes many values.
_SCALARS = (int, str)
_SEQUENCES = (list, tuple)
_INF = float("inf")
_NINF = float("-inf")


def _write(obj, out):
    # MicroPython's bool is no int subclass: True and False need their own test.
    if obj is None or obj is True or obj is False or isinstance(obj, _SCALARS):
        out.append(json.dumps(obj))
    elif isinstance(obj, float):
        if obj != obj or obj == _INF or obj == _NINF:
            raise EnosError("JSON has no NaN or infinity: send a number or leave the point out")
        out.append(json.dumps(obj))
    elif isinstance(obj, Obj):
        out.append("{")
        sep = ""
        for k, v in obj.pairs:
            _write_pair(k, v, sep, out)
            sep = ","
        out.append("}")
    elif isinstance(obj, dict):
        out.append("{")
        sep = ""
        for k in sorted(obj):
            _write_pair(k, obj[k], sep, out)
            sep = ","
        out.append("}")
    elif isinstance(obj, _SEQUENCES):
        out.append("[")
        sep = ""
        for v in obj:
            out.append(sep)
            sep = ","
            _write(v, out)
        out.append("]")
    else:
        raise EnosError("cannot send a %s in JSON: use numbers, strings, lists or dicts"
                        % type(obj).__name__)


def _write_pair(k, v, sep, out):
    if not isinstance(k, str):
        raise EnosError("JSON object keys must be strings")
    out.append(sep)
    out.append(json.dumps(k))
    out.append(":")
    _write(v, out)


def dumps(obj):
    """Compact JSON text of obj (no spaces, sorted dict keys, Obj keeps its order)."""
    out = []
    _write(obj, out)
    return "".join(out)


def request(msg_id, method, params):
    """{"id":..,"version":"1.0","method":..,"params":..} as bytes; params is already JSON text."""
    return ('{"id":%s,"version":"%s","method":%s,"params":%s}' % (
        json.dumps(str(msg_id)), VERSION, json.dumps(method), params)).encode()


def _points_params(key, points, time_ms):
    out = []
    _write_points(key, points, time_ms, out)
    return "".join(out)


def _write_points(key, points, time_ms, out):
    if not isinstance(points, (dict, Obj)):
        raise EnosError("%s must be a dict of name -> value" % key)
    out.append('{"')
    out.append(key)
    out.append('":')
    _write(points, out)
    out.append('}' if time_ms is None else ',"time":%d}' % time_ms)


def measurepoints(msg_id, points, time_ms=None, method="thing.measurepoint.post"):
    """thing.measurepoint.post (or .resume): {"measurepoints":{..},"time":ms}."""
    # request() written out into one list: one join instead of a string per nesting level,
    # since this body is built on every report.
    out = ['{"id":', json.dumps(str(msg_id)), ',"version":"', VERSION, '","method":',
           json.dumps(method), ',"params":']
    _write_points("measurepoints", points, time_ms, out)
    out.append("}")
    return "".join(out).encode()


def measurepoints_batch(msg_id, items, method="thing.measurepoint.post.batch"):
    """A batch: items are dicts with "measurepoints" and optional "time", "productKey", "deviceKey"."""
    if not items:
        raise EnosError("a batch needs at least one element")
    parts = []
    for it in items:
        pairs = []
        for key in ("productKey", "deviceKey", "measurepoints", "time"):
            if key in it and it[key] is not None:
                pairs.append((key, it[key]))
        if "measurepoints" not in it:
            raise EnosError("every batch element needs measurepoints")
        parts.append(dumps(Obj(*pairs)))
    return request(msg_id, method, "[" + ",".join(parts) + "]")


def event(msg_id, event_id, values, time_ms=None):
    """thing.event.{eventId}.post: {"events":{..},"time":ms}."""
    return request(msg_id, "thing.event.%s.post" % event_id,
                   _points_params("events", values, time_ms))


def attribute_update(msg_id, attributes):
    return request(msg_id, "thing.attribute.update", '{"attributes":%s}' % dumps(attributes))


def attribute_names(msg_id, names, method):
    """thing.attribute.query / .delete with a list of names (empty = all, for query)."""
    return request(msg_id, method, '{"attributes":%s}' % dumps(list(names)))


def reply(msg_id, code=200, data=None):
    """A command reply: {"id":..,"code":200,"data":{..}} (§11.6)."""
    return ('{"id":%s,"code":%d,"data":%s}' % (
        json.dumps(str(msg_id)), code, dumps({} if data is None else data))).encode()


def loads(payload, what):
    """Parse a JSON payload into a dict; EnosError naming `what` when it is not one."""
    try:
        obj = json.loads(bytes(payload))
    except (ValueError, UnicodeError, RuntimeError):
        # RuntimeError: nesting deeper than the parser's recursion limit.
        raise EnosProtocolError("%s is not valid JSON" % what)
    if not isinstance(obj, dict):
        raise EnosProtocolError("%s is not a JSON object" % what)
    return obj
