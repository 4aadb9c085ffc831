"""SQLite store of the local EnOS server: devices' state, measurement points, messages and
the command queue. The CLI and the running server share it, so `command` enqueues from
another process and the server picks the command up at the device's next request."""
import json
import sqlite3
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    pk TEXT, dk TEXT, mode TEXT, lifetime INTEGER, last_seen REAL, activated INTEGER DEFAULT 0,
    attributes TEXT DEFAULT '{}', secret TEXT, PRIMARY KEY (pk, dk));
CREATE TABLE IF NOT EXISTS points (
    id INTEGER PRIMARY KEY, pk TEXT, dk TEXT, name TEXT, value TEXT, quality INTEGER,
    time_ms INTEGER, topic TEXT, received REAL, deliveries INTEGER DEFAULT 1);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY, pk TEXT, dk TEXT, topic TEXT, method TEXT, payload BLOB,
    code INTEGER, received REAL);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY, pk TEXT, dk TEXT, topic TEXT, payload BLOB, cmd_id TEXT,
    state TEXT DEFAULT 'queued', created REAL, delivered REAL, reply BLOB, replied REAL);
"""


class Db:
    def __init__(self, path):
        self.path = path
        self.conn = sqlite3.connect(path, timeout=10, check_same_thread=False,
                                    isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.executescript(SCHEMA)
        columns = [r[1] for r in self.conn.execute("PRAGMA table_info(points)")]
        if "deliveries" not in columns:  # a database made before resends were counted
            self.conn.execute("ALTER TABLE points ADD COLUMN deliveries INTEGER DEFAULT 1")
        self.conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS points_at_time "
                          "ON points (pk, dk, name, time_ms)")
        self.conn.row_factory = sqlite3.Row

    def close(self):
        self.conn.close()

    def seen(self, pk, dk, mode, lifetime):
        self.conn.execute(
            "INSERT INTO devices (pk, dk, mode, lifetime, last_seen) VALUES (?,?,?,?,?) "
            "ON CONFLICT (pk, dk) DO UPDATE SET mode=excluded.mode, "
            "lifetime=excluded.lifetime, last_seen=excluded.last_seen",
            (pk, dk, mode, lifetime, time.time()))

    def touch(self, pk, dk):
        self.conn.execute("UPDATE devices SET last_seen=? WHERE pk=? AND dk=?",
                          (time.time(), pk, dk))

    def mark_activated(self, pk, dk, secret):
        """Keeps the handed-out deviceSecret, so the device still connects after a restart."""
        self.conn.execute(
            "INSERT INTO devices (pk, dk, activated, secret) VALUES (?,?,1,?) "
            "ON CONFLICT (pk, dk) DO UPDATE SET activated=1, secret=excluded.secret",
            (pk, dk, secret))

    def activated_secrets(self):
        return {(r[0], r[1]): r[2] for r in self.conn.execute(
            "SELECT pk, dk, secret FROM devices WHERE activated=1 AND secret IS NOT NULL")}

    def devices(self):
        now = time.time()
        out = []
        for r in self.conn.execute("SELECT * FROM devices ORDER BY pk, dk"):
            d = dict(r)
            d.pop("secret", None)
            d["online"] = bool(d["last_seen"] and d["lifetime"]
                               and now - d["last_seen"] <= d["lifetime"])
            out.append(d)
        return out

    def attributes(self, pk, dk):
        r = self.conn.execute("SELECT attributes FROM devices WHERE pk=? AND dk=?",
                              (pk, dk)).fetchone()
        return json.loads(r[0]) if r and r[0] else {}

    def set_attributes(self, pk, dk, attrs):
        self.conn.execute("UPDATE devices SET attributes=? WHERE pk=? AND dk=?",
                          (json.dumps(attrs), pk, dk))

    def add_points(self, pk, dk, topic, points, time_ms):
        rows = []
        now = time.time()
        for name, v in points.items():
            quality = None
            if isinstance(v, dict) and "value" in v:
                quality = v.get("quality")
                v = v["value"]
            rows.append((pk, dk, name, json.dumps(v), quality, time_ms, topic, now))
        # EnOS keeps one value per point and timestamp: a resent report (a device that lost
        # power between our answer and its queue acknowledgement) updates the row and is
        # counted in `deliveries`. Points without a time are all distinct (NULLs never clash).
        self.conn.executemany(
            "INSERT INTO points (pk, dk, name, value, quality, time_ms, topic, received) "
            "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (pk, dk, name, time_ms) DO UPDATE SET "
            "value=excluded.value, quality=excluded.quality, received=excluded.received, "
            "deliveries=deliveries+1", rows)

    def points(self, dk=None, limit=50):
        q = "SELECT * FROM points"
        args = ()
        if dk:
            q += " WHERE dk=?"
            args = (dk,)
        q += " ORDER BY id DESC LIMIT ?"
        return [dict(r) for r in self.conn.execute(q, args + (limit,))][::-1]

    def log(self, pk, dk, topic, method, payload, code):
        self.conn.execute(
            "INSERT INTO messages (pk, dk, topic, method, payload, code, received) "
            "VALUES (?,?,?,?,?,?,?)", (pk, dk, topic, method, payload, code, time.time()))

    def messages(self, dk=None):
        q, args = "SELECT * FROM messages", ()
        if dk:
            q, args = q + " WHERE dk=?", (dk,)
        return [dict(r) for r in self.conn.execute(q + " ORDER BY id", args)]

    # --- command queue ---

    def enqueue(self, pk, dk, topic, payload, cmd_id=None):
        cur = self.conn.execute(
            "INSERT INTO commands (pk, dk, topic, payload, cmd_id, created) VALUES (?,?,?,?,?,?)",
            (pk, dk, topic, payload, cmd_id, time.time()))
        return cur.lastrowid

    def next_queued(self, pk, dk, resend_s=None):
        """The oldest command to deliver: queued, or delivered without a reply for resend_s."""
        q = "SELECT * FROM commands WHERE pk=? AND dk=? AND (state='queued'"
        args = [pk, dk]
        if resend_s is not None:
            q += " OR (state IN ('delivered', 'announced') AND delivered <= ?)"
            args.append(time.time() - resend_s)
        r = self.conn.execute(q + ") ORDER BY id LIMIT 1", args).fetchone()
        return dict(r) if r else None

    def mark(self, row_id, state):
        col = "delivered" if state in ("delivered", "announced") else "replied"
        self.conn.execute("UPDATE commands SET state=?, %s=? WHERE id=?" % col,
                          (state, time.time(), row_id))

    def announced(self, pk, dk, topic):
        """The oldest command announced by 2100 (DTLS mode) and not yet fetched, for topic."""
        r = self.conn.execute("SELECT * FROM commands WHERE pk=? AND dk=? AND topic=? AND "
                              "state='announced' ORDER BY id LIMIT 1", (pk, dk, topic)).fetchone()
        return dict(r) if r else None

    def record_reply(self, pk, dk, topic, cmd_id, reply):
        """Attach a device reply to the oldest delivered command it answers."""
        q = ("SELECT id FROM commands WHERE pk=? AND dk=? AND topic=? AND state='delivered'")
        args = [pk, dk, topic]
        if cmd_id is not None:
            q += " AND cmd_id=?"
            args.append(cmd_id)
        r = self.conn.execute(q + " ORDER BY id LIMIT 1", args).fetchone()
        if r is None:
            return False
        self.conn.execute("UPDATE commands SET state='replied', reply=?, replied=? WHERE id=?",
                          (reply, time.time(), r[0]))
        return True

    def commands(self, dk=None):
        q, args = "SELECT * FROM commands", ()
        if dk:
            q, args = q + " WHERE dk=?", (dk,)
        return [dict(r) for r in self.conn.execute(q + " ORDER BY id", args)]
