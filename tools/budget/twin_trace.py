"""Report cycles of the host twin (tools/twin.py: firmware/main.py unchanged, SIM7020 modem
emulator, local EnOS server), as the device really runs them: per boot, the AT commands on
the UART and the datagrams the emulated modem forwarded, each with its time.

Datagrams come from the emulator's pcap (LINKTYPE_RAW IPv4/UDP, real timestamps); AT lines
from its UART transcript, timestamped here by swapping the transcript list for one that
records the time of each append. Boot windows split both per report cycle.
"""
import os
import struct
import tempfile
import time

from tools.budget.trace_svg import describe


class TimedList(list):
    """The emulator's transcript list, with the wall time of every append in .times."""

    def __init__(self):
        list.__init__(self)
        self.times = []

    def append(self, item):
        self.times.append(time.time())
        list.append(self, item)


def read_pcap(path):
    """[(time, src_port, dst_port, payload)] of a LINKTYPE_RAW IPv4/UDP pcap."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    p = 24
    while p + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack("<IIII", data[p:p + 16])
        pkt = data[p + 16:p + 16 + incl]
        p += 16 + incl
        ihl = (pkt[0] & 0x0F) * 4
        sport, dport = struct.unpack("!HH", pkt[ihl:ihl + 4])
        out.append((sec + usec / 1e6, sport, dport, pkt[ihl + 8:]))
    return out


def at_lines(transcript, times):
    """[(time, direction, line)] from raw UART chunks: "in" = device -> modem."""
    out = []
    bufs = {"in": b"", "out": b""}
    for (direction, chunk), t in zip(list(transcript), list(times)):
        buf = bufs[direction] + bytes(chunk)
        while True:
            cut = min([i for i in (buf.find(b"\r"), buf.find(b"\n")) if i >= 0] or [-1])
            if cut < 0:
                break
            line, buf = buf[:cut], buf[cut + 1:]
            text = line.decode("latin-1").strip()
            if text:
                out.append((t, direction, text))
        bufs[direction] = buf
    return out


def _is_hex(s):
    return len(s) > 16 and all(c in "0123456789abcdefABCDEF" for c in s)


def short_at(text):
    """AT+CSOSEND=0,154,16FE... -> AT+CSOSEND=0,154,<77 B>; long lines cut."""
    head, sep, last = text.rpartition(",")
    last = last.strip('"')
    if sep and _is_hex(last):
        return "%s,<%d B>" % (head, len(last) // 2)
    return text if len(text) <= 48 else text[:45] + "..."


def boot_events(at, datagrams, start, end, server_ports):
    """trace_svg events of one boot window, times relative to its first event."""
    ev = []
    for t, direction, text in at:
        if start <= t < end:
            a, b = ("device", "modem") if direction == "in" else ("modem", "device")
            ev.append((t, a, b, short_at(text)))
    for t, sport, dport, payload in datagrams:
        if start <= t < end:
            up = dport in server_ports
            a, b = ("modem", "server") if up else ("server", "modem")
            ev.append((t, a, b, "%s %d B" % (describe(payload, up), len(payload))))
    ev.sort(key=lambda e: e[0])
    if ev:
        t0 = ev[0][0]
        ev = [(t - t0, a, b, label) for t, a, b, label in ev]
    return ev


def wire_of(datagrams, start, end, server_ports):
    """Figures of the datagrams of one boot, as tools/budget/wire.Wire.figures()."""
    from tools.budget.wire import Wire
    w = Wire("twin")
    for t, sport, dport, payload in datagrams:
        if start <= t < end:
            w.add("up" if dport in server_ports else "down", payload)
    return w.figures()


def run(cycles=2, board="esp32-sim7020"):
    """Boots the twin `cycles` times; returns ([(boot, figures, events, at_count)], notes)."""
    from tools.twin import Twin
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        pcap = os.path.join(tmp, "twin.pcap")
        with Twin(board=board, out=tmp, pcap=pcap, sleep_scale=0.0005) as twin:
            twin.emu.transcript = TimedList()
            windows = []
            for i in range(cycles):
                t0 = time.time()
                boot = twin.run_cycle(sleep=i + 1 < cycles)
                windows.append((t0, time.time(), boot))
            ports = {twin.server.dtls_port, twin.server.port}
            transcript, times = list(twin.emu.transcript), list(twin.emu.transcript.times)
        datagrams = read_pcap(pcap)
    at = at_lines(transcript, times)
    for t0, t1, boot in windows:
        ev = boot_events(at, datagrams, t0, t1, ports)
        n_at = sum(1 for t, d, _ in at if t0 <= t < t1 and d == "in")
        results.append((boot, wire_of(datagrams, t0, t1, ports), ev, n_at))
    return results
