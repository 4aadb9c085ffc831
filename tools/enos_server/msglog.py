"""Message log of the local EnOS server: every CoAP datagram and DTLS flight it exchanges,
decoded for the web page (RFC 7252 §3 message format, §5.10 options; RFC 7959 Block options;
RFC 6347 §4.1 records and §4.2 handshake; enos-coap.md §11 options 2100/2102).

A Tap sits on the server's two sockets, so the log holds what went over the wire, the way
tshark sees it: retransmissions, duplicates answered from aiocoap's cache and Empty ACKs
included. The plain CoAP socket carries every CoAP message, also those of DTLS peers (the
DTLS front end relays their plaintext to it from a relay socket of their own); the DTLS
socket gives the handshakes, resumptions and alerts. Application-data records are not
logged twice: their content is the CoAP row; only those of a peer without a session (which
the server drops) get a row of their own.

Nothing secret reaches the log: JSON members named sign, deviceSecret or productSecret
(the /auth body, the activation answer) are replaced before an entry is stored, in JSON and
in text that does not parse; PSKs never travel (only the identity, `pk,dk,mode,lifetime`).
"""
import collections
import json
import re
import time

from aiocoap import Message
from aiocoap.error import UnparsableMessage
from aiocoap.numbers.contentformat import ContentFormat
from aiocoap.transports.udp6 import MessageInterfaceUDP6

from tools.coap_client import OPTION_NAMES
from tools.enos_server.registry import parse_identity
from tools.enos_server.site import OPT_PAYLOAD, OPT_TOPIC

CAPACITY = 20000
MAX_PEERS = 4096
PAYLOAD_SHOWN = 4096
HIDDEN = "(hidden)"
SECRET_NAMES = ("sign", "deviceSecret", "productSecret")
_SECRET_TEXT = re.compile(r'("(?:%s)"\s*:\s*)"[^"]*("|$)' % "|".join(SECRET_NAMES))

CONTENT_TYPES = {20: "ChangeCipherSpec", 21: "Alert", 22: "Handshake", 23: "ApplicationData",
                 25: "tls12_cid"}
HANDSHAKE_TYPES = {0: "HelloRequest", 1: "ClientHello", 2: "ServerHello",
                   3: "HelloVerifyRequest", 11: "Certificate", 12: "ServerKeyExchange",
                   13: "CertificateRequest", 14: "ServerHelloDone", 15: "CertificateVerify",
                   16: "ClientKeyExchange", 20: "Finished"}
ALERTS = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
          22: "record_overflow", 40: "handshake_failure", 42: "bad_certificate",
          47: "illegal_parameter", 50: "decode_error", 51: "decrypt_error",
          70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
          90: "user_canceled", 100: "no_renegotiation", 110: "unsupported_extension",
          115: "unknown_psk_identity"}
SUITES = {0xC0A8: "TLS_PSK_WITH_AES_128_CCM_8", 0x00AE: "TLS_PSK_WITH_AES_128_CBC_SHA256"}


# --- redaction -------------------------------------------------------------------------------

def redact(obj):
    """obj with the value of every member named in SECRET_NAMES replaced, at any depth."""
    if isinstance(obj, dict):
        return {k: HIDDEN if k in SECRET_NAMES else redact(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


def redact_text(text):
    return _SECRET_TEXT.sub(lambda m: m.group(1) + '"' + HIDDEN + '"', text)


def show_payload(data):
    """{"kind": json|text|hex|empty, "text": ..., "size": n}: JSON pretty-printed, UTF-8 text
    as is, anything else in hex; secrets hidden, long payloads cut at PAYLOAD_SHOWN."""
    data = bytes(data)
    out = {"size": len(data)}
    if not data:
        out.update(kind="empty", text="")
        return out
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        out.update(kind="hex", text=data[:PAYLOAD_SHOWN].hex())
        return out
    try:
        out.update(kind="json", text=json.dumps(redact(json.loads(text)), indent=2,
                                                ensure_ascii=False))
    except ValueError:
        out.update(kind="text", text=redact_text(text))
    out["text"] = out["text"][:PAYLOAD_SHOWN]
    return out


# --- CoAP ------------------------------------------------------------------------------------

def _option_value(number, value):
    if number == OPT_PAYLOAD:
        return show_payload(value)["text"]
    if number == OPT_TOPIC:
        return bytes(value).decode("utf-8", "replace")
    if number == 12 or number == 17:
        fmt = ContentFormat(value)
        return "%d (%s)" % (value, fmt.media_type) if fmt.media_type else str(value)
    if number in (23, 27):
        return "%d/%d/%d" % (value.block_number, int(value.more), 1 << (value.size_exponent + 4))
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return value if isinstance(value, (int, str)) else str(value)


def decode_coap(data):
    """The fields of one CoAP datagram, or {"error": ...} when aiocoap cannot parse it."""
    try:
        m = Message.decode(bytes(data))
    except (UnparsableMessage, ValueError, TypeError) as e:
        return {"error": "not CoAP: %s" % e, "size": len(data)}
    options = []
    for o in m.opt.option_list():
        n = int(o.number)
        options.append({"number": n, "name": OPTION_NAMES.get(n, "Option %d" % n),
                        "value": _option_value(n, o.value)})
    path = "/" + "/".join(m.opt.uri_path) if m.opt.uri_path else ""
    if m.opt.uri_query:
        path += "?" + "&".join(m.opt.uri_query)
    code = m.code
    name = code.name_printable
    return {"type": m.mtype.name, "code": code.dotted,
            "code_name": name.upper() if code.is_request() else name,
            "code_number": int(code), "mid": m.mid, "token": m.token.hex(), "path": path,
            "options": options, "payload": show_payload(m.payload), "size": len(data)}


# --- DTLS ------------------------------------------------------------------------------------

def _hello(body, server):
    """Session id, cookie and suite of a ClientHello (server False) or ServerHello body."""
    out = {}
    if len(body) < 35 or 35 + body[34] > len(body):
        return out
    sid = bytes(body[35:35 + body[34]])
    out["session_id"] = sid.hex()
    p = 35 + len(sid)
    if server:
        if p + 2 <= len(body):
            out["suite"] = SUITES.get(int.from_bytes(body[p:p + 2], "big"),
                                      "0x%04X" % int.from_bytes(body[p:p + 2], "big"))
    elif p < len(body):
        out["cookie_len"] = body[p]
    return out


def _handshake(body):
    """[{"type":..., details}] of the handshake messages in one epoch-0 record body."""
    msgs = []
    p = 0
    while p + 12 <= len(body):
        kind, length = body[p], int.from_bytes(body[p + 1:p + 4], "big")
        frag_len = int.from_bytes(body[p + 9:p + 12], "big")
        frag = body[p + 12:p + 12 + frag_len]
        msg = {"type": HANDSHAKE_TYPES.get(kind, "handshake %d" % kind)}
        if frag_len < length:
            msg["fragment"] = True
        elif kind in (1, 2):
            msg.update(_hello(frag, kind == 2))
        elif kind == 3 and len(frag) >= 3:
            msg["cookie_len"] = frag[2]
        elif kind == 16 and len(frag) >= 2:
            n = int.from_bytes(frag[:2], "big")
            msg["identity"] = bytes(frag[2:2 + n]).decode("ascii", "replace")
        msgs.append(msg)
        p += 12 + frag_len
    return msgs


def decode_dtls(data):
    """The records of one DTLS datagram: [{"content", "epoch", "seq", "length", ...}]."""
    records = []
    p = 0
    while p + 13 <= len(data):
        ctype = data[p]
        rec = {"content": CONTENT_TYPES.get(ctype, "type %d" % ctype),
               "epoch": int.from_bytes(data[p + 3:p + 5], "big"),
               "seq": int.from_bytes(data[p + 5:p + 11], "big")}
        if ctype == 25:
            # The header's CID has the negotiated length, which only the peers know.
            rec["length"] = len(data) - p - 11
            records.append(rec)
            break
        length = int.from_bytes(data[p + 11:p + 13], "big")
        body = data[p + 13:p + 13 + length]
        rec["length"] = length
        if ctype == 22 and rec["epoch"] == 0:
            rec["messages"] = _handshake(body)
        elif ctype == 21 and rec["epoch"] == 0 and len(body) == 2:
            rec["alert"] = "%s %s" % ("fatal" if body[0] == 2 else "warning",
                                      ALERTS.get(body[1], str(body[1])))
        records.append(rec)
        p += 13 + length
    return records


def _summary(records):
    parts = []
    for r in records:
        if r["content"] == "Handshake" and r["epoch"] == 0:
            for m in r["messages"]:
                detail = []
                if m.get("cookie_len"):
                    detail.append("cookie %d B" % m["cookie_len"])
                if m.get("session_id"):
                    detail.append("session id %d B" % (len(m["session_id"]) // 2))
                if m.get("suite"):
                    detail.append(m["suite"])
                if m.get("identity"):
                    detail.append("identity " + m["identity"])
                if m.get("fragment"):
                    detail.append("fragment")
                parts.append(m["type"] + (" (%s)" % ", ".join(detail) if detail else ""))
        elif r["content"] == "Handshake":
            parts.append("Finished (encrypted)")
        elif r["content"] == "Alert":
            parts.append("Alert " + r.get("alert", "(encrypted)"))
        elif r["content"] == "ApplicationData":
            parts.append("ApplicationData (%d B)" % r["length"])
        else:
            parts.append(r["content"])
    return ", ".join(parts)


def _messages(records):
    return [m for r in records if r["content"] == "Handshake" and r["epoch"] == 0
            for m in r["messages"]]


# --- the log ---------------------------------------------------------------------------------

class MessageLog:
    """The last `capacity` entries, each a dict with a growing `seq`."""

    def __init__(self, capacity=CAPACITY, clock=time.time):
        self.entries = collections.deque(maxlen=capacity)
        self.clock = clock
        self.seq = 0

    def add(self, entry):
        self.seq += 1
        entry["seq"] = self.seq
        entry["t"] = self.clock()
        self.entries.append(entry)
        return entry

    def since(self, seq=0, device=None, limit=1000):
        """Entries after seq (of device, "pk/dk", when given), the oldest first, at most limit:
        the newest ones when more match."""
        out = [e for e in self.entries if e["seq"] > seq and
               (device is None or e.get("device") == device)]
        return out[-limit:] if limit else out


class Tap:
    """Records the server's datagrams in a MessageLog: install with attach(server, ctx) once
    the server's sockets are open (the aiocoap context and the DTLS front end)."""

    def __init__(self, log):
        self.log = log
        self.site = None
        self.front = None
        self._paths = collections.OrderedDict()   # (peer, token) -> request path
        self._offered = {}      # DTLS peer -> session id its last ClientHello offered
        self._identity = {}     # DTLS peer -> "pk/dk" once its identity is known
        self._pending = {}      # DTLS peer -> entries of a handshake whose identity is unknown
        self._resuming = set()  # DTLS peers whose session id the server took

    def attach(self, server, ctx):
        self.site = server.site
        iface = _udp6_interface(ctx)
        iface.transport = _SendTap(iface.transport, self._coap_out)
        received = iface.datagram_msg_received

        def datagram_msg_received(data, ancdata, flags, addr):
            self._coap(data, addr, "up")
            received(data, ancdata, flags, addr)
        iface.datagram_msg_received = datagram_msg_received
        if server.front is not None:
            self.front = server.front
            self.front.transport = _SendTap(self.front.transport, self._dtls_out)
            dtls_received = self.front.datagram_received

            def datagram_received(data, addr):
                self._dtls(data, addr, "up")
                dtls_received(data, addr)
            self.front.datagram_received = datagram_received

    # --- CoAP ---

    def _coap_out(self, data, addr):
        self._coap(data, addr, "down")

    def _coap(self, data, addr, direction):
        try:
            key = _addr_key(addr)
            fields = decode_coap(data)
            device, peer, via_dtls = self._who(key, fields)
            self._track_path(key, fields, direction)
            self.log.add({"kind": "coap", "dir": direction, "peer": peer, "device": device,
                          "transport": "coaps" if via_dtls else "coap", "coap": fields})
        except Exception as e:  # the log must never cost the server a message
            self.log.add({"kind": "error", "dir": direction, "device": None,
                          "error": "message log: %r" % (e,)})

    def _who(self, key, fields):
        """(device "pk/dk" or None, the peer's own address, whether it came through DTLS)."""
        if self.front is not None:
            for addr, p in list(self.front.peers.items()):
                if p.relay_key == key:
                    peer = "%s:%d" % addr[:2]
                    b = self.site.bindings.get(key)
                    return (("%s/%s" % (b.pk, b.dk)) if b else self._identity.get(peer),
                            peer, True)
        b = self.site.bindings.get(key)
        if b is not None:
            return "%s/%s" % (b.pk, b.dk), key, False
        parts = fields.get("path", "").split("/")
        if len(parts) == 4 and parts[1] == "auth":
            return "%s/%s" % (parts[2], parts[3]), key, False
        return None, key, False

    def _track_path(self, key, fields, direction):
        """Requests remember their path by token; a response shows its request's path."""
        if "token" not in fields or not fields["token"]:
            return
        k = (key, fields["token"])
        if fields["code_number"] and fields["code_number"] < 32:
            self._paths[k] = (fields["path"], direction)
            if len(self._paths) > MAX_PEERS:
                self._paths.popitem(last=False)
        elif fields["code_number"] >= 64 and k in self._paths:
            path, req_dir = self._paths[k]
            if req_dir != direction:
                fields["request_path"] = path

    # --- DTLS ---

    def _dtls_out(self, data, addr):
        self._dtls(data, addr, "down")

    def _dtls(self, data, addr, direction):
        try:
            records = decode_dtls(data)
            peer = "%s:%d" % addr[:2]
            if records and all(r["content"] == "ApplicationData" for r in records):
                if direction == "down" or self._has_session(addr):
                    return
                # Records the server cannot read: a session it forgot (a restart) or never had.
                event = "no session (dropped)"
            else:
                event = self._dtls_event(peer, records, direction)
            entry = {"kind": "dtls", "dir": direction, "peer": peer,
                     "device": self._identity.get(peer), "transport": "dtls",
                     "dtls": {"summary": _summary(records) or "not DTLS (%d B)" % len(data),
                              "event": event, "records": records, "size": len(data)}}
            if entry["device"] is None:
                self._pending.setdefault(peer, []).append(entry)
                del self._pending[peer][:-16]
            self.log.add(entry)
        except Exception as e:
            self.log.add({"kind": "error", "dir": direction, "device": None,
                          "error": "message log: %r" % (e,)})

    def _has_session(self, addr):
        p = self.front.peers.get(addr) if self.front is not None else None
        return p is not None and p.established

    def _dtls_event(self, peer, records, direction):
        """What the datagram means for the session: hello-verify, handshake, resumption
        offered/accepted/refused, handshake complete, alert; or None."""
        msgs = _messages(records)
        kinds = [m["type"] for m in msgs]
        contents = [r["content"] for r in records]
        if "Alert" in contents:
            return "alert"
        if "ClientHello" in kinds:
            hello = msgs[kinds.index("ClientHello")]
            sid = hello.get("session_id", "")
            if len(self._offered) >= MAX_PEERS and peer not in self._offered:
                self._forget_peers()
            self._offered[peer] = sid
            self._resuming.discard(peer)
            if not hello.get("cookie_len"):
                # A new handshake; the one with the cookie continues it.
                self._identity.pop(peer, None)
                self._pending.pop(peer, None)
            if sid and self.front is not None:
                ident = self.front.session_identity(bytes.fromhex(sid))
                if ident is not None:
                    self._learn(peer, "%s/%s" % ident[:2])
            return "resumption offered" if sid else "handshake"
        if "HelloVerifyRequest" in kinds:
            return "hello verify"
        if "ServerHello" in kinds:
            offered = self._offered.get(peer)
            sid = msgs[kinds.index("ServerHello")].get("session_id")
            if offered and sid == offered:
                self._resuming.add(peer)
                return "session resumed"
            return "full handshake" + (" (resumption refused)" if offered else "")
        if "ClientKeyExchange" in kinds:
            ident = parse_identity(msgs[kinds.index("ClientKeyExchange")].get("identity", ""))
            if ident is not None:
                self._learn(peer, "%s/%s" % ident[:2])
            return "key exchange"
        if "ChangeCipherSpec" in contents and (direction == "down" or peer in self._resuming):
            # The server's Finished ends a full handshake, the client's a resumption.
            self._resuming.discard(peer)
            return "handshake complete"
        return None

    def _forget_peers(self):
        """Many addresses (a scan, a fuzzer): start over rather than grow without bound."""
        for table in (self._offered, self._identity, self._pending, self._resuming):
            table.clear()

    def _learn(self, peer, device):
        self._identity[peer] = device
        for e in self._pending.pop(peer, []):
            e["device"] = device


class _SendTap:
    """A datagram transport that shows every datagram to `seen(data, addr)` before sending."""

    def __init__(self, transport, seen):
        self._transport = transport
        self._seen = seen

    def sendto(self, data, addr=None):
        self._seen(data, addr)
        self._transport.sendto(data, addr)

    def sendmsg(self, data, ancdata, flags, addr):
        self._seen(data, addr)
        self._transport.sendmsg(data, ancdata, flags, addr)

    def __getattr__(self, name):
        return getattr(self._transport, name)


def _udp6_interface(ctx):
    """aiocoap's UDP socket interface of a server context (the one serving coap://)."""
    for ri in ctx.request_interfaces:
        iface = getattr(getattr(ri, "token_interface", None), "message_interface", None)
        if isinstance(iface, MessageInterfaceUDP6):
            return iface
    raise RuntimeError("the aiocoap context has no UDP interface to tap")


def _addr_key(addr):
    """'host:port' the way the site keys its bindings (IPv4-mapped addresses unmapped)."""
    host = addr[0]
    if host.startswith("::ffff:"):
        host = host[7:]
    return "%s:%d" % (host, addr[1])
