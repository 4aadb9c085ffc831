"""What `make demo` prints, in the reader's words (docs/demo.md): the device's boot and cycle
lines (docs/diagnostics.md) retold with readable times and durations, the points EnOS stored,
and with -v the AT dialogue between the firmware and the emulated modem.

Pure functions over the device's log text and the emulator's timeline, so tests can check
them without running a twin.
"""
import time

# What differs between the two modems, as the demo shows it (modems.md §2, §3).
DIALECTS = {
    "sim7020": "SIM7020 at 115200 baud: datagrams go out as AT+CSOSEND (hex) and come in as "
               "+CSONMI lines; the signal is AT+CSQ only",
    "bc95": "BC95 at 9600 baud: datagrams go out as AT+NSOST, +NSONMI announces an answer "
            "that AT+NSORF reads; AT+NUESTATS adds RSRP, SNR and the coverage class",
}

# The device's "connect <how>" (enosnb.app) in words.
CONNECT = {
    "full": "full DTLS handshake",
    "resumed": "DTLS session resumed (abbreviated handshake)",
    "restored": "DTLS session restored from RTC memory, no handshake",
    "restore-failed/resumed": "restored session unanswered (the carrier's NAT gave the modem a "
                              "new address), session resumed",
    "restore-failed/full": "restored session unanswered, full DTLS handshake",
    "plain": "POST /auth (plain CoAP)",
    "plain-kept": "plain CoAP, /auth binding kept",
    "failed": "not connected",
}


def utc(ms):
    """Epoch milliseconds as 2026-12-06 07:10:01 UTC."""
    if ms is None:
        return "no time (EnOS dates it on arrival)"
    t = time.gmtime(ms // 1000)
    return "%04d-%02d-%02d %02d:%02d:%02d UTC" % t[:6]


def duration(ms):
    """600000 -> "10 min", 317839 -> "5 min 18 s", 1234 -> "1.2 s"."""
    if ms is None:
        return "?"
    s = ms / 1000.0
    if s < 60:
        return "%.1f s" % s if s < 10 else "%d s" % round(s)
    m, s = divmod(int(round(s)), 60)
    if m < 60:
        return "%d min" % m + (" %d s" % s if s else "")
    h, m = divmod(m, 60)
    return "%d h" % h + (" %d min" % m if m else "")


def fields(line):
    """{key: text} of a device line after its "boot: " / "cycle: " prefix. Keys are the
    first word of each comma-separated item; "error" takes the rest of the line."""
    out = {}
    rest = line
    while rest:
        item, sep, rest = rest.partition(", ")
        if item.startswith("error "):
            out["error"] = item[6:] + sep + rest
            break
        words = item.split(" ")
        if len(words) > 1 and words[0].isdigit():
            out[" ".join(words[1:])] = words[0]      # "4 round trips", "544 B up"
        else:
            out[words[0]] = " ".join(words[1:])       # "sent 1", "connect full", "CSQ 20 (..)"
    return out


def retell_cycle(line):
    """The device's cycle line in words."""
    f = fields(line)
    sent = int(f.get("sent", 0))
    out = ["sent %d reading%s" % (sent, "" if sent == 1 else "s")]
    q = f.get("queue")
    if q is not None:
        out.append("queue empty" if q == "0" else "%s waiting in the queue" % q)
    if "radio" in f:
        out.append("radio skipped (back-off after failures)")
    if "connect" in f:
        out.append(CONNECT.get(f["connect"], f["connect"]))
    cost = []
    if "awake" in f:
        cost.append("awake %s" % f["awake"])
    if "attach" in f:
        cost.append("modem ready in %s" % f["attach"])
    if "round trips" in f:
        cost.append("%s round trips, %s B up, %s B down" % (
            f["round trips"], f.get("B up", "0"), f.get("B down", "0")))
    if cost:
        out.append(", ".join(cost))
    if "CSQ" in f:
        out.append("signal CSQ " + f["CSQ"])
    if "not" in f:
        out.append("not " + f["not"])
    if "error" in f:
        out.append("failed: " + f["error"])
    return "; ".join(out)


def points_text(points):
    """The points EnOS stored, one line per report: "reading = 1, temperature = 20.5
    (measured 2026-12-06 07:10:01 UTC, measurepoint/post)"."""
    lines, by_time = [], {}
    for p in points:
        key = (p["time_ms"], p["topic"].rsplit("/thing/", 1)[-1])
        by_time.setdefault(key, []).append("%s = %s" % (p["name"], p["value"]))
    for (t, topic), values in by_time.items():
        lines.append("%s (measured %s, %s)" % (", ".join(values), utc(t), topic))
    return lines


def at_dialogue(timeline, width=100):
    """The AT dialogue and datagrams of an emulator timeline slice, one line each:
    "AT> AT+CEREG?", "AT< +CEREG: 1,1", "UDP> 77 B", "UDP< 60 B"."""
    out = []
    pending = {"in": b"", "out": b""}
    for _, kind, data in timeline:
        if kind in ("up", "down"):
            out.append("UDP%s %d B" % (">" if kind == "up" else "<", len(data)))
            continue
        buf = pending[kind] + bytes(data)
        sep = b"\r" if kind == "in" else b"\n"
        *done, pending[kind] = buf.split(sep)
        for raw in done:
            text = raw.strip(b"\r\n").decode("latin-1")
            if text:
                text = ("AT> " if kind == "in" else "AT< ") + text
                out.append(text if len(text) <= width else text[:width - 3] + "...")
    return out


def uart_cost(timeline, baudrate):
    """(AT commands, UART bytes both ways, seconds those bytes take on the wire at 8N1)."""
    commands = sum(bytes(d).count(b"\r") for _, k, d in timeline if k == "in")
    n = sum(len(d) for _, k, d in timeline if k in ("in", "out"))
    return commands, n, n * 10.0 / baudrate
