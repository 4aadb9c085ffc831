"""A report cycle drawn as an SVG sequence diagram: one lane per party (device, modem, EnOS
server), one arrow per AT command/response or datagram, labelled with what it is, its size
and its time since the start of the cycle.

Events are (seconds, from_lane, to_lane, label); from_lane == to_lane draws a note across
the diagram instead of an arrow. events_from_wire() makes them from the
datagrams budget's CountingEndpoint logged, naming each DTLS flight by its records
(ClientHello, HelloVerifyRequest, ServerHello+ServerHelloDone, ...) and CoAP records by
direction; AT lines (from a modem emulator transcript) can be added as device<->modem events.
"""
from xml.sax.saxutils import escape

LANES = ("device", "modem", "server")
_TITLES = {"device": "Device (enosnb)", "modem": "NB-IoT modem", "server": "EnOS server"}
_HS = {1: "ClientHello", 2: "ServerHello", 3: "HelloVerifyRequest", 12: "ServerKeyExchange",
       14: "ServerHelloDone", 16: "ClientKeyExchange", 20: "Finished"}


def records(datagram):
    """[(content type, epoch, first handshake type or None)] of the DTLS records."""
    out, p = [], 0
    while p + 13 <= len(datagram):
        ctype, epoch = datagram[p], (datagram[p + 3] << 8) | datagram[p + 4]
        n = (datagram[p + 11] << 8) | datagram[p + 12]
        hs = datagram[p + 13] if ctype == 22 and epoch == 0 and n else None
        out.append((ctype, epoch, hs))
        p += 13 + n
    return out


def describe(datagram, up):
    """'ClientHello', 'CCS+Finished+CoAP request', ... for one DTLS datagram."""
    names = []
    for ctype, epoch, hs in records(datagram):
        if ctype == 22:
            if epoch == 0:
                name = _HS.get(hs, "Handshake")
                if hs == 1 and datagram[13 + 12 + 2 + 32 + 1 + datagram[13 + 12 + 2 + 32]]:
                    name += "(cookie)"
            else:
                name = "Finished"
        elif ctype == 20:
            name = "CCS"
        elif ctype == 23:
            name = "CoAP request" if up else "CoAP response"
        elif ctype == 21:
            name = "Alert"
        else:
            name = "type %d" % ctype
        names.append(name)
    return "+".join(names) or "datagram"


def events_from_wire(wire_events, via_modem=False):
    """Events from Wire.events [(direction, bytes, seconds)]."""
    out = []
    for direction, data, t in wire_events:
        up = direction == "up"
        label = "%s %d B" % (describe(data, up), len(data))
        a, b = ("device", "server") if up else ("server", "device")
        out.append((t, a, b, label))
    return out


def render(events, title="One report cycle"):
    """SVG text of the sequence diagram."""
    width, lane_gap, top, row = 760, 250, 70, 34
    xs = {lane: 130 + i * lane_gap for i, lane in enumerate(LANES)}
    height = top + row * (len(events) + 1) + 20
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (width, height),
           '<defs><marker id="arrow" markerWidth="10" markerHeight="8" refX="9" refY="4" '
           'orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="#333"/></marker></defs>',
           '<text x="10" y="20" font-size="15" font-weight="bold">%s</text>' % escape(title)]
    for lane in LANES:
        x = xs[lane]
        out.append('<g class="lane" id="lane-%s"><text x="%d" y="50" text-anchor="middle" '
                   'font-weight="bold">%s</text><line x1="%d" y1="58" x2="%d" y2="%d" '
                   'stroke="#999" stroke-dasharray="4,3"/></g>'
                   % (lane, x, escape(_TITLES[lane]), x, x, height - 10))
    for i, (t, a, b, label) in enumerate(events):
        y = top + row * (i + 1)
        if a == b:
            # A note across the lanes (e.g. the deep sleep between two cycles).
            out.append('<g class="note"><line x1="60" y1="%d" x2="%d" y2="%d" stroke="#36c" '
                       'stroke-dasharray="6,4"/><text x="%d" y="%d" text-anchor="middle" '
                       'fill="#36c">%s</text></g>' % (y, width - 20, y, width // 2, y - 5,
                                                      escape(label)))
            continue
        x1, x2 = xs[a], xs[b]
        out.append('<g class="event"><text x="8" y="%d" fill="#666">%.0f ms</text>'
                   '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333" '
                   'marker-end="url(#arrow)"/><text x="%d" y="%d" text-anchor="middle">%s</text>'
                   '</g>' % (y + 4, t * 1000, x1, y, x2, y, (x1 + x2) // 2, y - 5, escape(label)))
    out.append("</svg>")
    return "\n".join(out)


def write(path, events, title="One report cycle"):
    with open(path, "w") as f:
        f.write(render(events, title))
