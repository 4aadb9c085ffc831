"""Awake milliseconds per phase of a report cycle, from the host twin (tools/twin.py).

The firmware logs "[enosnb] phases (ms): ..." at the end of every cycle (enosnb.app): boot and
imports (measured by main.py on MicroPython; absent on CPython, whose time module has no
ticks_ms), measure, attach, handshake (socket, DNS, DTLS or /auth), report (the queue, with
a failed probe's new handshake), save (state, release, control lines held). The twin runs the
same main.py through the modem emulator without radio delays, so its milliseconds are the
firmware's own work on the host, not air time: tools/budget/energy.py models that.

Cycles: cold (power-on, full handshake), wake (no NAT: the saved session as is), wake_nat
(carrier NAT 45 s, server with resumption: the device knows the binding is gone and
resumes), drain (registration lost: the attach wait runs out).
"""
import tempfile

PHASES = ("boot", "imports", "measure", "attach", "handshake", "report", "save")


def parse(log):
    for line in log.splitlines():
        if line.startswith("[enosnb] phases (ms): "):
            words = line.split(": ", 1)[1].split()
            return dict((words[i], int(words[i + 1])) for i in range(0, len(words) - 1, 2))
    return {}


def _boot(twin):
    before = len(twin.emu.commands_log)
    b = twin.run_cycle()
    return parse(b.log), len(twin.emu.commands_log) - before, b


def run():
    """{cycle: (phases dict, AT commands, Boot)}."""
    from tools.twin import Twin
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        with Twin(out=tmp + "/a", sleep_scale=0.0002, emulator={"nat": None}) as twin:
            out["cold"] = _boot(twin)
            out["wake"] = _boot(twin)
            twin.outage(True)
            out["drain"] = _boot(twin)
        with Twin(out=tmp + "/b", sleep_scale=0.0002) as twin:
            _boot(twin)
            _boot(twin)  # the first wake behind the NAT learns that the binding is gone
            out["wake_nat"] = _boot(twin)
    return out
