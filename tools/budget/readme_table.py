"""The budget tables from a `make budget` run: figure, value, target, met?

  python -m tools.budget | python -m tools.budget.readme_table [docs/budget.md]
  python -m tools.budget.readme_table docs/budget.md < budget.txt
Reads `name: value unit` lines (and `# ` comments, kept as notes under the table) and writes
markdown to the given file (default docs/budget.md): every figure. The README gets a short
table of its own (README_SUMMARY: what a report costs, battery life) between two markers.
"""
import os
import sys

# name -> (comparison, limit, target text): the targets of the report budget.
TARGETS = {
    "report.cold.round_trips": ("<=", 4, "<= 4"),
    "report.warm.round_trips": ("<=", 1, "1"),
    "report.wake.round_trips": ("<=", 2, "<= 2"),
    "report.wake_nat.cid.round_trips": ("<=", 1, "1 (server with CID)"),
    "report.wake_nat.resume.round_trips": ("<=", 2, "<= 2 (resumption, no cookie)"),
    "report.wake_nat.cid.awake_s": (None, None, "(modeled)"),
    "report.wake_nat.resume.awake_s": (None, None, "(modeled)"),
    "report.cold.bytes": (None, None, "-"),
    "report.warm.bytes": ("==", 286, "286 (217 + 69)"),
    "report.raw.warm.bytes": ("<", 150, "< 150"),
    "mqtt_tls.cold.bytes": (None, None, "(comparison)"),
    "report.cold.ip_bytes": ("<=", 1050, "<= 1,050 (MicroPython mbedTLS: 1,126)"),
    "report.wake.ip_bytes": (None, None, "-"),
    "mqtt_tls.reconnect.ip_bytes": (None, None, "(comparison)"),
    "report.wake.ratio_vs_mqtt_tls": ("<=", 0.55, "<= 0.55"),
    "ram.vm.mpy.cold.peak_bytes": ("<=", 163840, "<= 160 KB (.mpy on a PSRAM board)"),
    "ram.vm.romfs.cold.peak_bytes": ("<=", 90112, "<= 88 KB"),
    "ram.vm.romfs.wake.peak_bytes": ("<=", 73728, "<= 72 KB"),
    "ram.vm.frozen.cold.peak_bytes_est": ("<=", 57344, "<= 56 KB (half of 112 KB)"),
    "report.warm.mpvm.alloc_bytes": ("<", 4096, "< 4 KB"),
    "mpy.total_bytes": ("<", 49152, "< 48 KB"),
    "energy.wake_nat.mAh": (None, None, "(modeled)"),
    "energy.battery_life_days": (None, None, "(modeled, 600 s interval)"),
}


# What limits a figure when it misses its target (from the analysis of the budget runs); shown
# under the table only for the figures that miss.
LIMITS = {
    "report.warm.bytes": "the local server's 2.04 reply carries Content-Format 50 (2 bytes) that "
                         "the enos-coap.md §17 reference reply does not; against that reply (the in-VM "
                         "peer, report.warm.mpvm_peer.bytes) the client's exchange is 217 + 69 = 286",
    "report.cold.ip_bytes": "server choices: the 32-byte session id Mbed TLS issues, and the "
                            "reply's Content-Format adds 2; against the §17 reply the same "
                            "client needs 1,042 (report.cold.mpvm_peer.ip_bytes)",
    "report.wake.round_trips": "a server that demands a cookie before resuming adds a round trip",
    "report.wake.ratio_vs_mqtt_tls": "a server that demands a cookie before resuming",
    "report.warm.mpvm.alloc_bytes": "CCM-8 sealing and opening build per-block bytes objects "
                                    "(about 3.5 KB for the 188 + 40-byte records), then CoAP "
                                    "message build and encode (1.2 KB) and the JSON body (0.8 KB); "
                                    "see the report.warm.mpvm.alloc.* lines",
    "ram.vm.mpy.cold.peak_bytes": "bytecode of every imported module is copied into RAM; "
                                  "see the ram.module.* lines",
    "ram.vm.romfs.cold.peak_bytes": "upper bound (a step's garbage counts as live); the app "
                                    "imports the whole DTLS, modem and EnOS stack at boot",
    "ram.vm.romfs.wake.peak_bytes": "the imports alone take about 70 KB from ROMFS: one module per "
                                    "phase of the cycle is the way down",
    "mpy.total_bytes": "every firmware module counts: the application, configuration checks, "
                       "both modem drivers and the flash queue are about half; long error "
                       "messages (the style asks for what-to-do text) and the pure-Python AES "
                       "fallback (not needed with cryptolib) add to it",
}


def parse(lines):
    """({name: (value text, unit)}, [comment lines])"""
    figures, notes = {}, []
    for line in lines:
        line = line.rstrip("\n")
        if line.startswith("# "):
            notes.append(line[2:])
            continue
        name, sep, rest = line.partition(": ")
        if not sep or " " in name:
            continue
        parts = rest.split(" ", 1)
        figures[name] = (parts[0], parts[1] if len(parts) > 1 else "")
    return figures, notes


def met(name, value):
    op, limit, _ = TARGETS[name]
    if op is None:
        return ""
    try:
        v = float(value)
    except ValueError:
        return "?"
    ok = {"<=": v <= limit, "<": v < limit, "==": v == limit}[op]
    return "yes" if ok else "**no**"


README_BEGIN = "<!-- budget table: written by make budget -->"
README_END = "<!-- end of budget table -->"
# The README's rows: what one report costs on the air, and the battery life.
README_SUMMARY = ["report.cold.round_trips", "report.wake.round_trips", "report.warm.bytes",
                  "report.cold.ip_bytes", "report.wake.ip_bytes", "energy.battery_life_days"]


def rows(figures, names=None):
    out = ["| Figure | Value | Target | Met? |", "|---|---|---|---|"]
    names = TARGETS if names is None else names
    for name in names:
        if name in figures:
            value, unit = figures[name]
            out.append("| `%s` | %s %s | %s | %s |" % (name, value, unit, TARGETS[name][2],
                                                      met(name, value)))
        else:
            out.append("| `%s` | not measured | %s | - |" % (name, TARGETS[name][2]))
    missed = [n for n in names if n in figures and met(n, figures[n][0]) == "**no**"]
    return out, missed


def splice_readme(path, figures):
    """Replaces the README's budget table (between its two marker comments) with this run's
    summary rows; docs/budget.md holds them all."""
    with open(path) as f:
        text = f.read()
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError("%s has no budget table markers (%s ... %s)" % (path, README_BEGIN,
                                                                          README_END))
    table_rows, missed = rows(figures, README_SUMMARY)
    block = [README_BEGIN, ""] + table_rows + [""]
    block += ["- `%s` misses: %s" % (n, LIMITS.get(n, "not analysed")) for n in missed]
    block += [""] * bool(missed) + ["All figures: [docs/budget.md](docs/budget.md)."]
    with open(path, "w") as f:
        f.write(text[:start] + "\n".join(block).rstrip() + "\n" + text[end:])


def table(figures, notes):
    table_rows, missed = rows(figures)
    out = ["# Budget", "", "Generated by `make budget` (tools/budget); figures, not assertions.",
           "", "\n".join(table_rows), ""]
    if missed:
        out += ["What limits the figures that miss:", ""]
        out += ["- `%s`: %s" % (n, LIMITS.get(n, "not analysed")) for n in missed] + [""]
    if notes:
        out += ["Notes from the run:", ""] + ["- " + n for n in notes] + [""]
    return "\n".join(out)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else os.path.join("docs", "budget.md")
    figures, notes = parse(sys.stdin)
    text = table(figures, notes)
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    print("wrote %s" % path)


if __name__ == "__main__":
    main()
