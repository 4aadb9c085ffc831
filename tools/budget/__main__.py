"""`make budget`: radio, memory, CPU and energy figures of one measurement-point report.

Prints one `name: value unit` line per figure and `# ` lines saying how each was measured;
writes out/cycle.svg (the cold report cycle as a sequence diagram) and, with --table FILE,
the markdown table of readme_table.py. Figures are printed, not asserted.

  python -m tools.budget [--table docs/budget.md] [--readme README.md] [--svg out/cycle.svg] [--skip-mqtt] [--skip-vm] [--only-ram]
"""
import argparse
import io
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(ROOT, "firmware", "lib"), os.path.join(ROOT, "tools", "host"),
           os.path.join(ROOT, "host_tests", "vm"), ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from tools.budget import readme_table, sizes, trace_svg, wire  # noqa: E402

SCENARIO_NAMES = {"cold": "report.cold", "warm": "report.warm", "raw_warm": "report.raw.warm",
                  "wake": "report.wake"}
KEYS = ("round_trips", "datagrams_up", "datagrams_down", "bytes_up", "bytes_down", "bytes",
        "ip_bytes")


class Out:
    def __init__(self):
        self.lines = []

    def fig(self, name, value, unit=""):
        v = ("%.3f" % value) if isinstance(value, float) else str(value)
        self.emit(("%s: %s %s" % (name, v, unit)).rstrip())

    def note(self, text):
        self.emit("# " + text)

    def emit(self, line):
        self.lines.append(line)
        print(line, flush=True)


def wire_figures(out):
    from tools.enos_server.server import EnosServer
    srv = EnosServer(port=0, dtls_port=0, log=None).start()
    try:
        wires, notes = wire.run_local(srv)
    finally:
        srv.stop()
    out.note("wire: the real EnosClient/DtlsSession/CoAP Client on CPython over UdpEndpoint with "
             "a counting wrapper, against the local EnOS server (tools/enos_server, Mbed TLS DTLS "
             "front) on loopback; the host twin/modem emulator path is not used for these figures")
    out.note("bytes = UDP payload both ways; ip_bytes = bytes + 28 per datagram (IPv4 + UDP)")
    for n in notes:
        out.note(n)
    out.note("report.wake.*: abbreviated handshake against the local server (no cookie on "
             "resumption, dtls.md §16), the client's Finished and the request in one datagram")
    for key, w in wires.items():
        f = w.figures()
        for k in KEYS:
            out.fig("%s.%s" % (SCENARIO_NAMES[key], k), f[k], "B" if "bytes" in k else "")
    return wires


def nat_figures(out):
    """report.wake_nat.<variant>.*: a wake behind an expired NAT binding, per server variant."""
    from tools.budget import energy, wake_nat
    rtt = energy.value(energy.TIMES, "rtt")
    out.note("wake_nat: after a sleep longer than the carrier's NAT binding, from a new source "
             "port; the real firmware code against the local server in each DTLS variant: cid "
             "(RFC 9146, tools/enos_server/cid_front.py: the project's own scripted DTLS server, "
             "no independent peer here negotiates CID), resume (resumption, no cookie), hvr "
             "(resumption after a HelloVerifyRequest), full (no resumption)")
    out.note("wake_nat.awake_s: modeled RRC-connected time = setup %.1f s + round trips x RTT "
             "%.1f s + release tail %.1f s (NB-IoT timers of tools/budget/energy.py, stated "
             "there)" % (energy.value(energy.TIMES, "rrc_setup"), rtt,
                         energy.value(energy.TIMES, "release_tail")))
    got = {}
    for v in wake_nat.VARIANTS:
        w, cid = wake_nat.run(v)
        f = w.figures()
        got[v] = f
        out.fig("report.wake_nat.%s.round_trips" % v, f["round_trips"])
        out.fig("report.wake_nat.%s.ip_bytes" % v, f["ip_bytes"], "B")
        out.fig("report.wake_nat.%s.awake_s" % v, energy.awake_s(f["round_trips"]), "s")
    return got


def phase_figures(out):
    from tools.budget import phases
    try:
        runs = phases.run()
    except Exception as e:  # the twin is another layer's; its failure must not stop the budget
        out.note("phases not measured: %s: %s" % (type(e).__name__, e))
        return {}
    out.note("phase: " + " ".join(phases.__doc__.split("\n\n")[1].split()))
    for cycle in ("cold", "wake", "wake_nat", "drain"):
        ph, n_at, _ = runs[cycle]
        for name in phases.PHASES:
            if name in ph:
                out.fig("phase.%s.%s_ms" % (cycle, name), ph[name], "ms")
        out.fig("phase.%s.at_commands" % cycle, n_at)
    return runs


def energy_figures(out, wires, nat, runs):
    """energy.<cycle>.mAh and energy.battery_life_days under the stated current model."""
    import json
    from tools.budget import energy
    with open(os.path.join(ROOT, "boards", "esp32-sim7020", "board.json")) as f:
        board = json.load(f)
    out.note("energy: MODELED, not measured: " + " ".join(energy.__doc__.split("\n\n")[1].split()))
    for table in (energy.CURRENTS, energy.TIMES):
        for name, (v, unit, src) in table.items():
            out.note("energy model %s = %g %s: %s" % (name, v, unit, src))
    at = dict((c, runs[c][1]) for c in runs) if runs else {}
    cycles = {"cold": (wires["cold"].figures(), at.get("cold", 15), {"cold": True}),
              "wake": (nat["cid"], at.get("wake", 6), {}),
              "wake_nat": (nat["resume"], at.get("wake_nat", 7), {}),
              "drain": (nat["resume"], at.get("drain", 9), {"drain": True})}
    got = {}
    for name, (fig, n_at, kw) in cycles.items():
        c = energy.cycle(fig, n_at, **kw)
        got[name] = c
        out.fig("energy.%s.awake_s" % name, c["esp32_s"], "s")
        out.fig("energy.%s.mAh" % name, c["mAh"], "mAh")
    floor, where = energy.sleep_floor_ma(board)
    cap, cap_where = energy.battery_mah(board)
    out.note("energy: sleep floor %.1f uA (%s); battery %d mAh (%s); report interval %d s; "
             "a wake is the saved session (1 round trip) without NAT or with CID, wake_nat the "
             "resumed session (2 round trips) behind a NAT that outlived the sleep"
             % (floor * 1000, where, cap, cap_where, energy.INTERVAL_S))
    out.fig("energy.sleep_floor_ua", floor * 1000, "uA")
    out.fig("energy.battery_life_days", energy.life_days(
        got["wake_nat"]["mAh"], floor, cap, awake_s=got["wake_nat"]["esp32_s"]), "d")
    out.fig("energy.battery_life_days.cid", energy.life_days(
        got["wake"]["mAh"], floor, cap, awake_s=got["wake"]["esp32_s"]), "d")
    # No network at all: one drain cycle per back-off window (the app skips the radio on
    # 3/4 of the window on average, 4 h cap at 600 s: 24 cycles), measure-only wakes between.
    from enosnb.app import DEFAULTS
    window = max(1, DEFAULTS["skip_cap_s"] // energy.INTERVAL_S)
    idle = energy.cycle({"round_trips": 0, "ip_bytes": 0}, 0)
    idle_mah = idle["mAh"] - energy.value(energy.TIMES, "t3324") * energy._ma("modem_idle") / 3600
    skip = window * 3 // 4
    mean = (got["drain"]["mAh"] + skip * idle_mah) / (skip + 1)
    out.fig("energy.battery_life_days.no_network", energy.life_days(mean, floor, cap), "d")
    out.fig("energy.battery_life_days.no_network_without_backoff",
            energy.life_days(got["drain"]["mAh"], floor, cap, awake_s=energy.BUDGET_S), "d")


def mqtt_figures(out, wires):
    from enosnb.enos import identity
    from tools.budget import mqtt_tls
    topic = "/sys/%s/%s/thing/measurepoint/post" % (wire.PK, wire.DK)
    body = ('{"id":"1","version":"1.0","method":"thing.measurepoint.post","params":'
            '{"measurepoints":{"temp":21.5},"time":1764115200000}}')
    ident = identity.psk_identity(wire.PK, wire.DK, 2, 3600).decode()
    psk = identity.psk_key(wire.SECRET).hex()
    m = mqtt_tls.measure(topic, body, ident, psk)
    out.note("mqtt_tls: mosquitto_pub -> local mosquitto, TLS 1.2 PSK-AES128-CCM8, QoS 1, the "
             "same JSON and topic; loopback capture with tshark (TCP with timestamps: 32-byte "
             "TCP headers); a reconnect is a new TLS handshake (mosquitto_pub keeps no session)")
    out.fig("mqtt_tls.cold.bytes", m["tls_bytes_up"] + m["tls_bytes_down"], "B")
    out.fig("mqtt_tls.cold.ip_bytes", m["ip_bytes_to_puback"], "B")
    out.fig("mqtt_tls.cold.segments", m["segments_to_puback"])
    out.fig("mqtt_tls.cold.round_trips", m["round_trips_to_puback"])
    out.fig("mqtt_tls.reconnect.ip_bytes", m["ip_bytes_to_puback"], "B")
    out.fig("mqtt_tls.disconnect_total.ip_bytes", m["ip_bytes_total"], "B")
    # Loopback TCP carries 12-byte timestamp options, which links with header compression
    # or without timestamps do not: the issue's ~1,380 is the figure without them.
    no_ts = m["ip_bytes_to_puback"] - 12 * m["segments_to_puback"]
    out.fig("mqtt_tls.reconnect.ip_bytes_no_tcp_timestamps", no_ts, "B")
    mq = float(m["ip_bytes_to_puback"])
    out.fig("report.wake.ratio_vs_mqtt_tls", wires["wake"].figures()["ip_bytes"] / mq)
    out.fig("report.wake.ratio_vs_mqtt_tls_no_tcp_timestamps",
            wires["wake"].figures()["ip_bytes"] / float(no_ts))
    out.fig("report.cold.ratio_vs_mqtt_tls", wires["cold"].figures()["ip_bytes"] / mq)


def vm_figures(out):
    out.note("mpvm: " + " ".join(l.strip() for l in _doc_method()).strip())
    res = subprocess.run(["node", os.path.join(ROOT, "tools", "mpvm", "run.mjs"), "--script",
                          os.path.join(ROOT, "tools", "budget", "mpvm_cycle.py"), "--steps"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    if res.returncode != 0:
        out.note("mpvm run failed: %s" % res.stderr.strip()[-300:])
        return
    for line in res.stdout.splitlines():
        name, sep, rest = line.partition(": ")
        if not sep:
            continue
        if name.startswith("mpvm_peer."):
            # The in-VM peer answers the exact §17 reference reply: the client-side minimum.
            scenario, key = name[len("mpvm_peer."):].split(".", 1)
            name = "%s.mpvm_peer.%s" % (SCENARIO_NAMES[scenario], key)
        out.emit("%s: %s" % (name, rest))


def _doc_method():
    from tools.budget import mpvm_cycle
    doc = mpvm_cycle.__doc__
    return doc[doc.index("Method."):doc.index("The heap of the whole")].split("\n")


def ram_figures(out):
    from tools.budget import ram, ram_unix
    doc = ram.__doc__
    out.note("ram: " + " ".join(l.strip() for l in doc.split("\n")).strip())
    try:
        ratios = ram.measure(out)
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as e:
        out.note("ram not measured: %s" % e)
        return
    out.note("ram.unix: " + " ".join(l.strip() for l in ram_unix.__doc__.split("\n")).strip())
    if ratios:
        try:
            ram_unix.measure(out, ratios)
            ram_unix.boot_to_sleep(out)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            out.note("ram.unix not measured: %s" % e)


def size_figures(out):
    out.note("mpy: mpy-cross -march=xtensawin of every firmware/*.py (flash, not RAM: the "
             "ram.* lines are the RAM figures)")
    for name, value, unit in sizes.measure():
        out.fig(name, value, unit)


def twin_figures(out, svg):
    """The app's own cycles through the host twin; returns True when the trace was drawn."""
    from tools.budget import twin_trace
    try:
        runs = twin_trace.run(2)
    except Exception as e:  # the twin is another layer's; its failure must not stop the budget
        out.note("host twin not measured: %s: %s" % (type(e).__name__, e))
        return False
    out.note("twin: tools/twin.py boots firmware/main.py unchanged (SIM7020 emulator, local EnOS "
             "server), a cold boot then a wake from deep sleep; datagrams from the emulator's "
             "pcap, AT lines from its UART transcript. The app's own report (2 points, random "
             "9-digit id), not the reference one; its wake reuses the saved session on the "
             "socket the modem kept through PSM (no handshake)")
    events = []
    for name, (boot, f, ev, n_at) in zip(("cold", "wake"), runs):
        for k in KEYS:
            out.fig("twin.%s.%s" % (name, k), f[k], "B" if "bytes" in k else "")
        out.fig("twin.%s.at_commands" % name, n_at)
        shift = events[-1][0] + 0.02 if events else 0.0
        if events:
            events.append((shift, "device", "device", "deep sleep, then wake"))
        events += [(t + shift, a, b, label) for t, a, b, label in ev]
    os.makedirs(os.path.dirname(svg), exist_ok=True)
    trace_svg.write(svg, events, "Host twin: cold boot report, deep sleep, wake report (SIM7020)")
    out.note("trace: %s (AT commands, DTLS flights and CoAP exchanges with sizes and times, from "
             "the twin run)" % os.path.relpath(svg, ROOT))
    return True


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.budget")
    p.add_argument("--table", help="also write the markdown table here (e.g. docs/budget.md)")
    p.add_argument("--readme", help="also replace the budget table in this README")
    p.add_argument("--svg", default=os.path.join(ROOT, "out", "cycle.svg"))
    p.add_argument("--skip-mqtt", action="store_true")
    p.add_argument("--skip-vm", action="store_true")
    p.add_argument("--only-ram", action="store_true", help="only the ram.* figures")
    a = p.parse_args(argv)
    out = Out()
    if a.only_ram:
        ram_figures(out)
        return
    wires = wire_figures(out)
    nat = nat_figures(out)
    runs = phase_figures(out)
    energy_figures(out, wires, nat, runs)
    if not twin_figures(out, a.svg):
        os.makedirs(os.path.dirname(a.svg), exist_ok=True)
        events = trace_svg.events_from_wire(wires["cold"].events)
        wake = wires["wake"]
        events += trace_svg.events_from_wire(
            [(d, b, t + events[-1][0] + 0.05) for d, b, t in wake.events])
        trace_svg.write(a.svg, events, "Cold report cycle, then a wake from deep sleep (resumed)")
        out.note("trace: %s (DTLS flights and CoAP exchanges of the reference cycle; no AT "
                 "lines: the twin did not run)" % a.svg)
    if not a.skip_mqtt:
        try:
            mqtt_figures(out, wires)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            out.note("mqtt_tls not measured: %s" % e)
    if not a.skip_vm:
        vm_figures(out)
        size_figures(out)
        ram_figures(out)
    if a.table:
        figures, notes = readme_table.parse(io.StringIO("\n".join(out.lines)))
        with open(a.table, "w") as f:
            f.write(readme_table.table(figures, notes))
        print("# wrote %s" % a.table)
        if a.readme:
            readme_table.splice_readme(a.readme, figures)
            print("# updated the budget table in %s" % a.readme)


if __name__ == "__main__":
    main()
