"""What the local server's web page shows, read from its SQLite store and registry: the
devices with their state and counters, the measurement points of a device as time series,
and the rows of a CSV export.

A point's time is the device's own timestamp (`time` in the report, enos-coap.md §8.2) and,
for a report without one, the time it arrived. Values are stored as JSON; numbers (and
booleans as 0/1) are charted, other values (text, structures) only exported.

Nothing secret leaves this module: device rows are built field by field, never copied from
the registry (which holds deviceSecret and productSecret).
"""
import csv
import datetime
import io
import json

# The time of a point in ms: the device's timestamp, else when the server received it.
POINT_TIME = "COALESCE(time_ms, CAST(ROUND(received * 1000) AS INTEGER))"
CSV_COLUMNS = ("id", "productKey", "deviceKey", "point", "value", "quality", "time_ms",
               "time_utc", "topic", "received", "deliveries")


def devices(db, registry):
    """Every device that connected or is in the registry, sorted by product and device key:
    mode, lifetime, last seen, online by lifetime, points, resends, EnOS errors, commands.

    dead_letters is what the device reports of readings it gave up on; the server cannot
    count them itself, so it stays None until the device reports it.
    """
    seen = {(d["pk"], d["dk"]): d for d in db.devices()}
    points = {(r[0], r[1]): (r[2], r[3], r[4]) for r in db.conn.execute(
        "SELECT pk, dk, COUNT(*), COALESCE(SUM(deliveries - 1), 0), COUNT(DISTINCT name) "
        "FROM points GROUP BY pk, dk")}
    rejected = {(r[0], r[1]): r[2] for r in db.conn.execute(
        "SELECT pk, dk, COUNT(*) FROM messages WHERE code NOT IN (0, 200) GROUP BY pk, dk")}
    commands = {}
    for pk, dk, state, n in db.conn.execute(
            "SELECT pk, dk, state, COUNT(*) FROM commands GROUP BY pk, dk, state"):
        commands.setdefault((pk, dk), {})[state] = n
    out = []
    for key in sorted(set(seen) | set(registry.devices)):
        d = seen.get(key, {})
        reg = registry.devices.get(key)
        product = registry.products.get(key[0]) or {}
        n, resends, names = points.get(key, (0, 0, 0))
        if reg is None:
            auth = "not in the registry"
        elif reg.get("deviceSecret") and not d.get("activated"):
            auth = "deviceSecret"
        elif product.get("dynamicActivation"):
            auth = "dynamic activation" + (" (activated)" if d.get("activated") else "")
        else:
            auth = "no secret"
        last_seen, lifetime = d.get("last_seen"), d.get("lifetime")
        out.append({"pk": key[0], "dk": key[1], "mode": d.get("mode"), "lifetime": lifetime,
                    "last_seen": last_seen, "online": bool(d.get("online")),
                    "offline_at": last_seen + lifetime if last_seen and lifetime else None,
                    "auth": auth, "points": n, "point_names": names, "resends": resends,
                    "rejected": rejected.get(key, 0), "commands": commands.get(key, {}),
                    "dead_letters": None})
    return out


def _number(text):
    """A stored JSON value as a number for the chart, or None when it is not one."""
    try:
        v = json.loads(text)
    except (TypeError, ValueError):
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return v
    return None


def _range(t_from, t_to):
    where, args = "", []
    if t_from is not None:
        where += " AND %s >= ?" % POINT_TIME
        args.append(int(t_from))
    if t_to is not None:
        where += " AND %s <= ?" % POINT_TIME
        args.append(int(t_to))
    return where, args


def point_names(db, pk, dk):
    """[{name, count, numeric, first_ms, last_ms, latest}] of a device's points, by name."""
    out = []
    for name, n, first, last in db.conn.execute(
            "SELECT name, COUNT(*), MIN(%s), MAX(%s) FROM points WHERE pk=? AND dk=? "
            "GROUP BY name ORDER BY name" % (POINT_TIME, POINT_TIME), (pk, dk)):
        latest = db.conn.execute(
            "SELECT value FROM points WHERE pk=? AND dk=? AND name=? ORDER BY %s DESC, id DESC "
            "LIMIT 1" % POINT_TIME, (pk, dk, name)).fetchone()[0]
        numeric = db.conn.execute(
            "SELECT value FROM points WHERE pk=? AND dk=? AND name=? AND "
            "json_valid(value) AND json_type(value) IN ('integer', 'real', 'true', 'false') "
            "LIMIT 1", (pk, dk, name)).fetchone() is not None
        out.append({"name": name, "count": n, "numeric": numeric, "first_ms": first,
                    "last_ms": last, "latest": json.loads(latest)})
    return out


def series(db, pk, dk, name, t_from=None, t_to=None):
    """{"name", "t": [ms], "v": [number], "skipped": n}: the point's rows in time order
    (t_from/t_to in ms, inclusive); rows whose value is not a number are only counted."""
    where, args = _range(t_from, t_to)
    t, v, skipped = [], [], 0
    for ms, text in db.conn.execute(
            "SELECT %s, value FROM points WHERE pk=? AND dk=? AND name=?%s ORDER BY 1, id"
            % (POINT_TIME, where), [pk, dk, name] + args):
        x = _number(text)
        if x is None:
            skipped += 1
            continue
        t.append(ms)
        v.append(x)
    return {"name": name, "t": t, "v": v, "skipped": skipped}


def _utc(ms):
    if ms is None:
        return ""
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def _csv_value(text):
    """A stored value for a spreadsheet: text as itself, anything else as its JSON."""
    try:
        v = json.loads(text)
    except (TypeError, ValueError):
        return text
    return v if isinstance(v, str) else text


def csv_text(db, pk, dk, name=None, t_from=None, t_to=None):
    """The device's points (one point's with name) as CSV: one line per database row, in
    time order, columns CSV_COLUMNS (received in seconds since the epoch, as stored)."""
    where, args = _range(t_from, t_to)
    if name is not None:
        where += " AND name=?"
        args.append(name)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for r in db.conn.execute(
            "SELECT id, pk, dk, name, value, quality, time_ms, topic, received, deliveries, "
            "%s FROM points WHERE pk=? AND dk=?%s ORDER BY 11, id" % (POINT_TIME, where),
            [pk, dk] + args):
        w.writerow((r[0], r[1], r[2], r[3], _csv_value(r[4]),
                    "" if r[5] is None else r[5], "" if r[6] is None else r[6], _utc(r[10]),
                    r[7], repr(r[8]), r[9]))
    return buf.getvalue()
