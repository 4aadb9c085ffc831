"""The host twin: firmware/main.py, unchanged, on CPython against the local EnOS server
through the modem emulator (docs: "The host twin").

    python tools/twin.py [--cycles 4] [--board esp32-sim7020|esp32-bc95] [--sleep-scale 0.002]
                         [--command] [--outage] [--plain] [--pcap out/demo.pcap] [--out out]

What runs where:
- this process: the local EnOS server (plain CoAP and DTLS ports, demo registry, SQLite in
  <out>/twin/enos.sqlite) and the modem emulator (SIM7020 or BC95 dialect from board.json,
  on a pseudo-terminal, every forwarded datagram written to the pcap);
- one process per boot of the device: tools/host/twin_boot.py runs firmware/main.py with
  the flash directory <out>/twin/flash as its working directory (board.json, secrets.json
  for the demo device, sensors.py, and what the firmware writes: queue/, state files).
  tools/host/machine.py stands in for `machine`: UART = the emulator's pty, RTC memory = a
  file (<out>/twin/rtc.bin), deepsleep = record the time and end the process.
After each deep sleep the runner waits the requested time times --sleep-scale and boots the
device again (reset cause DEEPSLEEP_RESET). A power cut (Twin.run_cycle(kill_flash=k) or
kill_at=k) ends the boot abruptly; RTC memory is then lost and the modem reboots, as on a
board whose supply is cut.

Python API (tests): Twin(...).start(); run_cycle() -> Boot; run_cycles(n); points();
readings(); enqueue_set(...); commands(); outage(True/False); cold_boot(); stop(). See host_tests/test_twin.py.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.enos_server import commands as server_commands  # noqa: E402
from tools.enos_server.db import Db  # noqa: E402
from tools.enos_server.registry import DEMO  # noqa: E402
from tools.enos_server.server import EnosServer  # noqa: E402
from tools.modem_emulator import ModemEmulator  # noqa: E402

BOOT = os.path.join(ROOT, "tools", "host", "twin_boot.py")
MAIN = os.path.join(ROOT, "firmware", "main.py")
LIB = os.path.join(ROOT, "firmware", "lib")
KILLED = 137
DEEPSLEEP_RESET = 4
PWRON_RESET = 1

DEMO_DEVICE = DEMO["devices"][0]

# Loopback timings for the firmware (enosnb.app.DEFAULTS via ENOSNB_TWIN_TUNE): the radio is
# emulated with no delay, so NB-IoT's 15 s ACK timeout would only make failures slow.
FAST_TUNE = {"attach_timeout_ms": 1500, "first_attach_timeout_ms": 3000, "coap": [400, 2],
             "dtls": [400, 3000, 3, 6000],
             "probe_retransmit": 1, "cycle_budget_ms": 60000}

# Twin sensor: a reading counter kept on flash, so every reading is unique and ordered.
SENSOR_PY = '''"""Twin sensor: temperature and a reading number kept on flash (unique, ordered)."""
import json
import os

from enosnb.sensor import Sensor


class CountingSensor(Sensor):
    def read(self):
        n = _load("reading.json", {"n": 0})["n"] + 1
        _save("reading.json", {"n": n})
        return {"temperature": 20.0 + (n % 10) * 0.5, "reading": n}

    def set_points(self, params):
        state = _load("setpoints.json", {})
        state.update(params)
        _save("setpoints.json", state)
        print("[sensor] set points: %s" % json.dumps(params))


def _load(name, default):
    try:
        with open(name) as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return default


def _save(name, obj):
    with open(name + ".tmp", "w") as f:
        f.write(json.dumps(obj))
    os.rename(name + ".tmp", name)


def make_sensor():
    return CountingSensor()
'''


class Boot:
    """What one boot of the device did: code (0 = deep sleep, 137 = power cut), sleep_ms,
    the device's log text, and killed."""

    def __init__(self, code, sleep_ms, log, ops=None):
        self.code = code
        self.sleep_ms = sleep_ms
        self.log = log
        self.ops = ops or {}
        self.killed = code == KILLED

    def line(self, prefix):
        for ln in self.log.splitlines():
            if ln.startswith(prefix):
                return ln
        return None

    def __repr__(self):
        return "<Boot code=%s sleep_ms=%s>" % (self.code, self.sleep_ms)


class Twin:
    """Server + emulator + flash directory, and the runner that boots the device."""

    def __init__(self, board="esp32-sim7020", out="out", pcap=None, sleep_scale=0.002,
                 dtls=True, fork=True, fast=True, seed=0, verbose=False, emulator=None,
                 dtls_commands="get"):
        self.board_name = board
        self.out = os.path.abspath(out)
        self.dir = os.path.join(self.out, "twin")
        self.flash = os.path.join(self.dir, "flash")
        self.pcap = os.path.abspath(pcap) if pcap else None
        self.sleep_scale = sleep_scale
        self.dtls = dtls
        self.fork = fork
        self.fast = fast
        self.verbose = verbose
        self.rnd = random.Random(seed)
        self.emulator_opts = dict(emulator or {})
        self.dtls_commands = dtls_commands
        self.server = None
        self.emu = None
        self.db = None
        self._zygote = None
        self.boots = []
        self.reset_cause = PWRON_RESET
        self.queued_seen = set()
        self.server_log = []

    # --- lifecycle -----------------------------------------------------------------------

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.flash)
        with open(os.path.join(ROOT, "boards", self.board_name, "board.json")) as f:
            self.board = json.load(f)
        db_path = os.path.join(self.dir, "enos.sqlite")
        self.server = EnosServer(None, db_path, "127.0.0.1", 0, 0, log=self._server_log,
                                 dtls_commands=self.dtls_commands).start()
        opts = dict(boot_time=0.02, registration_delay=0.05, cpin_delay=0.01, seed=0,
                    pcap=self.pcap)
        if self.board["modem"] == "bc95":
            opts["early_error"] = 0.05
        opts.update(self.emulator_opts)
        self.emu = ModemEmulator(self.board["modem"], **opts)
        self.db = Db(db_path)
        self._write_flash()
        if self.fork:
            self._start_zygote()
        return self

    def stop(self):
        if self._zygote is not None:
            try:
                self._zygote.stdin.close()
                self._zygote.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self._zygote.kill()
                self._zygote.wait()
            self._zygote = None
        if self.emu is not None:
            self.emu.stop()
            self.emu = None
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.db is not None:
            self.db.close()
            self.db = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _server_log(self, msg):
        self.server_log.append(msg)
        if self.verbose:
            print("  server: " + msg, flush=True)

    def secrets(self):
        d = DEMO_DEVICE
        return {"productKey": d["productKey"], "deviceKey": d["deviceKey"],
                "deviceSecret": d["deviceSecret"], "secureMode": 2, "lifetime": 3600,
                "host": "127.0.0.1", "dtls": self.dtls, "port_dtls": self.server.dtls_port,
                "port_plain": self.server.port, "report_interval_s": 600,
                "ack_timeout_ms": 2000, "max_retransmit": 2, "batch_max": 10}

    def _write_flash(self):
        with open(os.path.join(self.flash, "board.json"), "w") as f:
            json.dump(self.board, f, indent=1)
        with open(os.path.join(self.flash, "secrets.json"), "w") as f:
            json.dump(self.secrets(), f, indent=1)
        with open(os.path.join(self.flash, "sensors.py"), "w") as f:
            f.write(SENSOR_PY)

    # --- booting the device --------------------------------------------------------------

    def _env(self, kill_flash=None, kill_at=None):
        env = {"ENOSNB_UART%d" % self.board["uart"]["id"]: self.emu.port,
               "ENOSNB_RTC_FILE": os.path.join(self.dir, "rtc.bin"),
               "ENOSNB_DEEPSLEEP_FILE": os.path.join(self.dir, "deepsleep.txt"),
               "ENOSNB_RESET_CAUSE": str(self.reset_cause),
               "ENOSNB_FLASH": self.flash,
               "ENOSNB_KILL_FLASH": str(kill_flash or 0), "ENOSNB_KILL_AT": str(kill_at or 0),
               "ENOSNB_KILL_SEED": str(self.rnd.randrange(1 << 30)),
               "ENOSNB_OPS_FILE": os.path.join(self.dir, "ops.json")}
        if self.fast:
            env["ENOSNB_TWIN_TUNE"] = json.dumps(FAST_TUNE)
        return env

    def _start_zygote(self):
        self._zygote = subprocess.Popen([sys.executable, BOOT, "zygote", MAIN],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, cwd=self.flash)
        while True:
            line = self._zygote.stdout.readline()
            if not line:
                raise RuntimeError("twin_boot zygote did not start")
            msg = json.loads(line)
            if msg.get("preload_error"):
                print("twin: preload: " + msg["preload_error"], file=sys.stderr)
            if msg.get("ready"):
                return

    def _boot(self, env, log_path):
        if self._zygote is not None:
            self._zygote.stdin.write(json.dumps({"env": env, "log": log_path}) + "\n")
            self._zygote.stdin.flush()
            line = self._zygote.stdout.readline()
            if not line:
                raise RuntimeError("twin_boot zygote died")
            return json.loads(line)["code"]
        full = dict(os.environ)
        full.update(env)
        with open(log_path, "ab") as log:
            p = subprocess.run([sys.executable, BOOT, "run", MAIN], env=full, cwd=self.flash,
                               stdout=log, stderr=subprocess.STDOUT, timeout=300)
        return p.returncode

    def run_cycle(self, kill_flash=None, kill_at=None, sleep=True):
        """One boot of the device: runs main.py until deep sleep or a power cut."""
        sleep_file = os.path.join(self.dir, "deepsleep.txt")
        ops_file = os.path.join(self.dir, "ops.json")
        for p in (sleep_file, ops_file):
            if os.path.exists(p):
                os.remove(p)
        log_path = os.path.join(self.dir, "boot.log")
        if os.path.exists(log_path):
            os.remove(log_path)
        code = self._boot(self._env(kill_flash, kill_at), log_path)
        with open(log_path, errors="replace") as f:
            text = f.read()
        sleep_ms = None
        if os.path.exists(sleep_file):
            with open(sleep_file) as f:
                sleep_ms = int(f.read().strip() or 0)
        ops = None
        if os.path.exists(ops_file):
            with open(ops_file) as f:
                ops = json.load(f)
        b = Boot(code, sleep_ms, text, ops)
        self.boots.append(b)
        if self.verbose:
            for ln in text.splitlines():
                print("  device: " + ln, flush=True)
        self._snapshot_queue()
        if b.killed:
            self.power_cut()
        elif code == 0 and sleep_ms is not None:
            self.reset_cause = DEEPSLEEP_RESET
            if sleep:
                time.sleep(sleep_ms / 1000.0 * self.sleep_scale)
        else:
            raise RuntimeError("main.py ended with status %s without deep sleep:\n%s"
                               % (code, text[-3000:]))
        return b

    def run_cycles(self, n, **kw):
        return [self.run_cycle(**kw) for _ in range(n)]

    def power_cut(self):
        """The supply is cut: RTC memory is lost, the modem reboots; flash stays."""
        rtc = os.path.join(self.dir, "rtc.bin")
        if os.path.exists(rtc):
            os.remove(rtc)
        self.emu.reboot()
        # The ESP32 boots faster than the modem; waiting here only skips the time the
        # firmware would spend polling a booting modem (BC95: ERROR for a while).
        self.emu.wait_booted(2.0)
        self.emu.wait_registered(2.0)
        self.reset_cause = PWRON_RESET

    def cold_boot(self):
        """The ESP32 alone restarts from power-on (brown-out, reset button, a supply of its
        own): RTC memory is lost, the modem stays powered and keeps its sockets."""
        rtc = os.path.join(self.dir, "rtc.bin")
        if os.path.exists(rtc):
            os.remove(rtc)
        self.reset_cause = PWRON_RESET

    def outage(self, on):
        """The network drops the modem's registration (on) or gives it back (off)."""
        if on:
            self.emu.lose_registration(None)
        else:
            self.emu.regain_registration()

    # --- what the device and the server hold ---------------------------------------------

    def queued(self):
        """Readings now in the device's flash queue, oldest first (opens it like a boot)."""
        for p in (LIB, os.path.join(ROOT, "tools", "host")):
            if p not in sys.path:
                sys.path.append(p)
        from enosnb.store import Store
        qdir = os.path.join(self.flash, "queue")
        if not os.path.isdir(qdir):
            return []
        out = []
        for _, data in Store(qdir).peek(1 << 20):
            try:
                out.append(json.loads(data)["p"]["reading"])
            except (ValueError, KeyError, TypeError):
                out.append(None)
        return out

    def _snapshot_queue(self):
        self.queued_seen.update(r for r in self.queued() if r is not None)

    def points(self):
        """Points the server stored for the demo device, in arrival order."""
        return self.db.points(DEMO_DEVICE["deviceKey"], 1 << 30)

    def readings(self):
        """The `reading` numbers the server received, in arrival order."""
        return [json.loads(p["value"]) for p in self.points() if p["name"] == "reading"]

    def enqueue_set(self, points):
        d = DEMO_DEVICE
        return server_commands.enqueue_set(self.db, d["productKey"], d["deviceKey"], points)

    def commands(self):
        return self.db.commands(DEMO_DEVICE["deviceKey"])

    def messages(self):
        return self.db.messages(DEMO_DEVICE["deviceKey"])


# --- power loss -------------------------------------------------------------------------------

def recover_after_outage(twin, max_cycles=8):
    """After 1 good cycle and 3 without registration: cycles until the queue is empty and the
    backlog plus a new reading arrived (at most max_cycles). Returns (readings the server got,
    readings it should have got: one per boot)."""
    for _ in range(max_cycles):
        twin.run_cycle()
        if not twin.queued() and len(twin.readings()) >= 5:
            break
    return twin.readings(), list(range(1, len(twin.boots) + 1))


def powercut(twin, kills=200, seed=1, drain_cycles=12):
    """Cuts the power `kills` times at random flash operations and AT command lines (seeded),
    booting the device again after each cut; then lets it drain its queue. Returns a dict:
    kills, boots, lost (readings that were durably queued but never reached the server),
    duplicated (readings the server stored more than once), out_of_order, received."""
    rnd = random.Random(seed)
    span = {"flash": 12, "at": 14}
    done = boots = 0
    while done < kills:
        kind = "flash" if rnd.random() < 0.5 else "at"
        k = rnd.randint(1, span[kind])
        b = twin.run_cycle(sleep=False, **{"kill_" + kind: k})
        boots += 1
        if b.killed:
            done += 1
        elif b.ops.get(kind):
            span[kind] = max(2, b.ops[kind])
        if boots > kills * 4:
            raise RuntimeError("power-cut run: too few cuts land (%d of %d boots)" % (done, boots))
    for _ in range(drain_cycles):
        twin.run_cycle(sleep=False)
        if not twin.queued():
            break
    times = {}
    order = 0
    last = 0
    redelivered = 0
    for p in twin.points():
        if p["name"] != "reading":
            continue
        r = json.loads(p["value"])
        redelivered += p["deliveries"] - 1
        if r not in times:
            if r < last:
                order += 1
            last = r
        times.setdefault(r, set()).add(p["time_ms"])
    # EnOS keeps one value per point and timestamp: a resent record (same time) is the same
    # point again, a second timestamp for one reading would be a second point.
    duplicated = sum(1 for t in times.values() if len(t) > 1)
    lost = sorted(twin.queued_seen - set(times))
    return {"kills": done, "boots": boots, "lost": len(lost), "lost_readings": lost,
            "duplicated": duplicated, "redelivered": redelivered, "out_of_order": order,
            "received": len(times), "still_queued": len(twin.queued())}


# --- tshark --------------------------------------------------------------------------------

def psk_hex():
    import hashlib
    return hashlib.sha256(DEMO_DEVICE["deviceSecret"].encode()).digest()[8:24].hex()


def tshark_check(pcap, dtls_port, plain_port=None):
    """(problems, decrypted CoAP lines): tshark's malformed/error packets with the DTLS port
    decoded as DTLS, and the CoAP it shows when given the PSK."""
    base = ["tshark", "-n", "-r", pcap, "-d", "udp.port==%d,dtls" % dtls_port]
    if plain_port:
        base += ["-d", "udp.port==%d,coap" % plain_port]
    check = "_ws.malformed || _ws.expert.severity==error"
    bad = subprocess.run(base + ["-Y", check], capture_output=True, text=True, timeout=120)
    keyed = base + ["-d", "dtls.port==%d,coap" % dtls_port, "-o", "dtls.psk:" + psk_hex()]
    bad2 = subprocess.run(keyed + ["-Y", check], capture_output=True, text=True, timeout=120)
    coap = subprocess.run(keyed + ["-Y", "coap"], capture_output=True, text=True, timeout=120)
    problems = (bad.stdout.strip() + "\n" + bad2.stdout.strip()).strip()
    return problems, [ln for ln in coap.stdout.splitlines() if ln.strip()]


# --- command line --------------------------------------------------------------------------

def _print_points(twin, seen):
    new = twin.points()[seen:]
    for p in new:
        print("    server got %s = %s (time %s, %s)" % (
            p["name"], p["value"], p["time_ms"], p["topic"].rsplit("/thing/", 1)[-1]))
    return seen + len(new)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python tools/twin.py", description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=4)
    ap.add_argument("--board", default="esp32-sim7020", choices=("esp32-sim7020", "esp32-bc95"))
    ap.add_argument("--sleep-scale", type=float, default=0.002,
                    help="real seconds slept per second of requested deep sleep")
    ap.add_argument("--command", action="store_true",
                    help="queue a cloud command (measurepoint set) before cycle 2")
    ap.add_argument("--outage", action="store_true",
                    help="the emulator loses registration during cycles 2-3 (needs >= 6 cycles)")
    ap.add_argument("--plain", action="store_true", help="plain CoAP + /auth instead of DTLS")
    ap.add_argument("--pcap", default=None, help="pcap of every datagram (default <out>/demo.pcap)")
    ap.add_argument("--out", default="out")
    ap.add_argument("--spawn", action="store_true",
                    help="start a new CPython per boot instead of forking a preloaded one")
    ap.add_argument("-v", "--verbose", action="store_true", help="print device and server logs")
    a = ap.parse_args(argv)
    if a.outage and a.cycles < 7:
        a.cycles = 7
    os.makedirs(a.out, exist_ok=True)
    pcap = a.pcap or os.path.join(a.out, "demo.pcap")
    twin = Twin(a.board, a.out, pcap, a.sleep_scale, dtls=not a.plain, fork=not a.spawn,
                verbose=a.verbose)
    twin.start()
    ok = True
    try:
        print("twin: local EnOS server coap://127.0.0.1:%d coaps://127.0.0.1:%d, %s emulator "
              "on %s, flash %s" % (twin.server.port, twin.server.dtls_port, twin.board["modem"],
                                   twin.emu.port, twin.flash))
        seen = 0
        for i in range(1, a.cycles + 1):
            if a.command and i == 2:
                row = twin.enqueue_set({"setpoint": 23.5})
                print("twin: cloud command #%d queued (thing.service.measurepoint.set "
                      "setpoint=23.5)" % row)
            if a.outage and i == 2:
                twin.outage(True)
                print("twin: network outage begins (registration lost)")
            if a.outage and i == 4:
                twin.outage(False)
                print("twin: network back")
            b = twin.run_cycle()
            cyc = b.line("[enosnb] cycle: ") or "[enosnb] cycle: (no summary line)"
            cyc = cyc[len("[enosnb] cycle: "):].replace(
                "connect restored", "connect restored (DTLS state from RTC memory, no handshake)"
            ).replace("connect full", "connect full (DTLS handshake)")
            print("cycle %d (%s): %s; deep sleep %s ms" % (
                i, "cold boot" if i == 1 else "wake from deep sleep", cyc, b.sleep_ms))
            for ln in b.log.splitlines():
                if ln.startswith("[sensor]"):
                    print("    device executed the command: " + ln[len("[sensor] "):])
            seen = _print_points(twin, seen)
        for c in twin.commands():
            print("twin: command #%d %s, reply %s" % (c["id"], c["state"],
                                                       bytes(c["reply"] or b"").decode()))
            if a.command and c["state"] != "replied":
                ok = False
        readings = twin.readings()
        print("twin: server received readings %s; device queue now %s" % (readings,
                                                                         twin.queued()))
        twin.emu.stop()  # closes the pcap
        twin.emu = None
        if shutil.which("tshark"):
            bad, coap = tshark_check(pcap, twin.server.dtls_port,
                                     twin.server.port if a.plain else None)
            print("tshark: %s" % ("no malformed packet" if not bad else "PROBLEMS:\n" + bad))
            ok = ok and not bad
            print("tshark decodes %d CoAP messages%s%s" % (
                len(coap), "" if a.plain else " inside DTLS (decrypted with the demo PSK)",
                ", e.g." if coap else ""))
            for ln in coap[:4]:
                print("    " + ln.strip())
        else:
            print("tshark not installed: pcap check skipped")
        print("twin: pcap written to %s" % pcap)
    finally:
        twin.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
