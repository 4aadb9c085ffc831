"""The host twin: firmware/main.py, unchanged, on MicroPython or CPython against the local EnOS
server through the modem emulator (docs/micropython.md, docs: "The host twin").

    python tools/twin.py [--cycles 4] [--board esp32-sim7020|esp32-bc95] [--sleep-scale 0.002]
                         [--command] [--outage] [--plain] [--pcap out/demo.pcap] [--out out]
                         [--lenient] [--resume refuse|accept] [--unsupported 4.04|...|none]
                         [--keep [--web-port 8684]]
                         [--runtime auto|micropython|cpython] [--mode mpy|py] [--heap BYTES]
                         [--sensors firmware/sensors.py] [--secrets firmware/secrets.json]

--sensors runs the maker's own sensors.py instead of the twin's counting sensor; --secrets
puts the maker's device (its keys from secrets.json; "imei" is the emulated modem's IMEI)
into the local server's registry and onto the device's flash, pointed at the local server.

What runs where:
- this process: the local EnOS server (plain CoAP and DTLS ports, demo registry, SQLite in
  <out>/twin/enos.sqlite) and the modem emulator (SIM7020 or BC95 dialect from board.json,
  on a pseudo-terminal, every forwarded datagram written to the pcap);
- one process per boot of the device, on one of two runtimes:
  micropython (the default where the unix port is installed): tools/host/mpboot.py boots the
  MicroPython unix port like an ESP32, under the heap cap of the deployment mode (--mode,
  --heap): the flash is littlefs2 in <out>/twin/flash.bin holding the files that mode deploys
  (lib/enosnb/*.mpy for mpy), mounted at "/"; <out>/twin/flash is a copy of its files taken
  after every boot (read it; write with Twin.write_flash). docs/micropython.md.
  cpython: tools/host/twin_boot.py runs firmware/main.py with the flash directory
  <out>/twin/flash as its working directory.
  Both hold board.json, secrets.json for the demo device, sensors.py, and what the firmware
  writes (queue/, state files). tools/host/machine.py stands in for `machine`: UART = the
  emulator's pty, RTC memory = a file (<out>/twin/rtc.bin), deepsleep = record the time and
  end the process.
After each deep sleep the runner waits the requested time times --sleep-scale and boots the
device again (reset cause DEEPSLEEP_RESET). A power cut (Twin.run_cycle(kill_flash=k) or
kill_at=k) ends the boot abruptly; RTC memory is then lost and the modem reboots, as on a
board whose supply is cut.

Python API (tests): Twin(..., runtime="cpython"|"micropython", board_json={overrides},
boot_env={extra environment of each boot}).start(); run_cycle() -> Boot;
run_cycles(n); points(); readings(); enqueue_set(...); commands(); outage(True/False);
write_flash(name, data); cold_boot(); stop(). See host_tests/test_twin.py and test_micropython_twin.py.

The emulator's carrier NAT (tools/modem_emulator/nat.py, 45 s unless emulator={"nat": ...})
sees each deep sleep at its full requested length: the runner advances the NAT's clock by
the part it did not sleep for real, so a wake after 600 s comes from a new source port.
dtls_variant picks the local server's DTLS front end (tools/enos_server: "resume", "hvr",
"full" or "cid"). run_cycle(kill_at=k, crash=True) ends the boot like a watchdog or panic
reset: RTC memory is kept, the modem keeps running, the next boot's reset cause is WDT.

Time (tools/simclock.py): simulated true time jumps by the whole deep sleep; the board's RTC
follows it at (1 + drift) and restarts at 2000 on a power cut; the emulated modem answers
AT+CCLK? with the true time (network time). The server is strict, as EnOS documents CoAP
(tools/enos_server/policy.py), with a thing model for the twin's points; --lenient,
--resume and --unsupported change that.
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

from tools import demo_output  # noqa: E402
from tools.enos_server import commands as server_commands  # noqa: E402
from tools.enos_server.db import Db  # noqa: E402
from tools.enos_server.policy import Policy, model_from_template  # noqa: E402
from tools.enos_server.registry import DEMO, Registry  # noqa: E402
from tools.enos_server.server import EnosServer  # noqa: E402
from tools.host import mpruntime  # noqa: E402
from tools.host.pinwire import PinWire  # noqa: E402
from tools.modem_emulator import ModemEmulator  # noqa: E402
from tools.simclock import SimClock, network_time  # noqa: E402

BOOT = os.path.join(ROOT, "tools", "host", "twin_boot.py")
MAIN = os.path.join(ROOT, "firmware", "main.py")
LIB = os.path.join(ROOT, "firmware", "lib")
KILLED = 137
WDT_FIRED = 136
CORRUPTED = 3
DEEPSLEEP_RESET = 4
PWRON_RESET = 1
WDT_RESET = 3
SOFT_RESET = 5
RUNTIMES = ("micropython", "cpython")

DEMO_DEVICE = DEMO["devices"][0]

# Loopback timings for the firmware (enosnb.app.DEFAULTS via ENOSNB_TWIN_TUNE): the radio is
# emulated with no delay, so NB-IoT's 15 s ACK timeout would only make failures slow.
FAST_TUNE = {"attach_timeout_ms": 1500, "first_attach_timeout_ms": 3000, "coap": [400, 2],
             "dtls": [400, 3000, 3, 6000],
             "probe_retransmit": 1, "cycle_budget_ms": 60000, "sntp_timeout_ms": 800}

# The thing model of the twin's device on the strict server: the template a maker imports
# into EnOS (firmware/thing-model.json): a point it lacks gets 1204.
MODEL = model_from_template(os.path.join(ROOT, "firmware", "thing-model.json"))

# A sensor's small JSON files on the flash (written whole, then renamed: a cut leaves the old).
SENSOR_FILES_PY = '''

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
'''

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
''' + SENSOR_FILES_PY + '''

def make_sensor():
    return CountingSensor()
'''


class Boot:
    """What one boot of the device did: code (0 = deep sleep, 137 = power cut, 136 = the
    watchdog reset it), sleep_ms, the device's log text, killed, and on the MicroPython
    runtime pins ({id: [level, held]} when it went to sleep), pin_log ([[id, value], ...]:
    every pin write of the boot, in order), mem (the heap the stand-in, the ROMFS image and
    the file system held before main.py: tools/host/mpboot.py) and wall_ms (from starting the
    process to its deep sleep record: boot to sleep)."""

    def __init__(self, code, sleep_ms, log, ops=None, pins=None, mem=None, wall_ms=None):
        self.code = code
        self.sleep_ms = sleep_ms
        self.log = log
        self.ops = ops or {}
        self.pins = pins
        self.mem = mem
        self.wall_ms = wall_ms
        self.killed = code == KILLED
        self.watchdog = code == WDT_FIRED

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
                 dtls_commands="get", web_port=None, dtls_variant="resume",
                 runtime="cpython", mode="mpy", heap=None, sensors=None, device=None,
                 board_json=None, boot_env=None, policy=None, config=None, sensor_source=None,
                 drift=0.0, tune=None):
        """board_json: more board.json fields; boot_env: more environment of each boot
        (a dict the caller may change between boots); policy: the server's strictness
        (default strict, with MODEL for the demo device); config: more secrets.json fields;
        sensor_source: sensors.py text instead of the twin's sensor; drift: the RTC's drift
        in deep sleep; tune: more enosnb.app.DEFAULTS overrides."""
        if runtime not in RUNTIMES:
            raise ValueError("runtime must be one of %s" % ", ".join(RUNTIMES))
        self.runtime = runtime
        self.mode = mode
        self.heap = heap or (mpruntime.heap_cap(mode) if runtime == "micropython" else None)
        self.board_name = board
        self.sensors_file = sensors
        self.maker = device
        self.device = DEMO_DEVICE
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
        self.web_port = web_port
        self.dtls_variant = dtls_variant
        self.board_json = dict(board_json or {})
        self.boot_env = dict(boot_env or {})
        if policy is None:
            d = DEMO_DEVICE
            policy = Policy(models={"%s/%s" % (d["productKey"], d["deviceKey"]): MODEL})
        self.policy = policy
        self.config = dict(config or {})
        self.sensor_source = sensor_source
        self.drift = drift
        self.tune = dict(FAST_TUNE if fast else {}, **(tune or {}))
        self.clock = None
        self.power_off_ms = 5000  # how long a power cut lasts (simulated time)
        self.server = None
        self.emu = None
        self.wire = None
        self.db = None
        self._zygote = None
        self.boots = []
        self.reset_cause = PWRON_RESET
        self.queued_seen = set()
        self.server_log = []
        self._started = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.flash)
        with open(os.path.join(ROOT, "boards", self.board_name, "board.json")) as f:
            self.board = json.load(f)
        self.board.update(self.board_json)
        self.clock = SimClock(os.path.join(self.dir, "rtc_clock.json"), drift=self.drift)
        db_path = os.path.join(self.dir, "enos.sqlite")
        registry = Registry.load()
        self.server = EnosServer(registry, db_path, "127.0.0.1", 0, 0, log=self._server_log,
                                 dtls_commands=self.dtls_commands,
                                 web_port=self.web_port,
                                 dtls_variant=self.dtls_variant, policy=self.policy).start()
        opts = dict(boot_time=0.02, registration_delay=0.05, cpin_delay=0.01, seed=0,
                    pcap=self.pcap)
        if self.board["modem"] == "bc95":
            opts["early_error"] = 0.05
        opts.update(self.emulator_opts)
        self.emu = ModemEmulator(self.board["modem"], **opts)
        network_time(self.emu, self.clock)
        self.wire = PinWire()
        for name, follow in (("pwrkey", self.emu.follow_pwrkey), ("reset", self.emu.follow_reset)):
            line = self.board.get(name)
            if line:
                follow(self.wire, line["pin"], 1 if line.get("active_high") else 0)
        if self.maker is not None:
            self.device = _register(registry, self.maker, self.emu.imei)
        self.db = Db(db_path)
        if self.runtime == "micropython":
            self.image = mpruntime.Flash(os.path.join(self.dir, "flash.bin")).create()
            stage = os.path.join(self.dir, "stage")
            mpruntime.layout(self.mode, stage, self.board_name)
            self._write_flash(stage)
            self.image.put(stage)
            shutil.rmtree(stage)
            self.image.export(self.flash)
        else:
            self._write_flash(self.flash)
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
        if self.wire is not None:
            self.wire.close()
            self.wire = None
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
        d = self.maker or DEMO_DEVICE
        keys = {k: d[k] for k in ("productKey", "deviceKey", "deviceSecret", "productSecret",
                                  "secureMode", "lifetime") if d.get(k) is not None}
        keys.setdefault("secureMode", 2)
        keys.setdefault("lifetime", 3600)
        return dict(keys, **dict({
                "host": "127.0.0.1", "dtls": self.dtls, "port_dtls": self.server.dtls_port,
                "port_plain": self.server.port, "report_interval_s": 600,
                "ack_timeout_ms": 2000, "max_retransmit": 2, "batch_max": 10}, **self.config))

    def write_secrets(self, **changes):
        """Changes secrets.json on the device's flash (as a redeploy of the config does)."""
        self.config.update(changes)
        self.write_flash("secrets.json", json.dumps(self.secrets(), indent=1))

    def _write_flash(self, where):
        with open(os.path.join(where, "board.json"), "w") as f:
            json.dump(self.board, f, indent=1)
        with open(os.path.join(where, "secrets.json"), "w") as f:
            json.dump(self.secrets(), f, indent=1)
        if self.sensors_file:
            shutil.copy(self.sensors_file, os.path.join(where, "sensors.py"))
        else:
            with open(os.path.join(where, "sensors.py"), "w") as f:
                f.write(self.sensor_source or SENSOR_PY)

    def write_flash(self, name, data):
        """Writes one file (bytes or str) onto the device's flash between boots."""
        mode = "wb" if isinstance(data, bytes) else "w"
        if self.runtime != "micropython":
            with open(os.path.join(self.flash, name), mode) as f:
                f.write(data)
            return
        stage = os.path.join(self.dir, "stage")
        os.makedirs(os.path.dirname(os.path.join(stage, name)), exist_ok=True)
        with open(os.path.join(stage, name), mode) as f:
            f.write(data)
        self.image.put(stage)
        shutil.rmtree(stage)
        self.image.export(self.flash)

    # --- booting the device --------------------------------------------------------------

    def _env(self, kill_flash=None, kill_at=None):
        env = {"ENOSNB_UART%d" % self.board["uart"]["id"]: self.emu.port,
               "ENOSNB_RTC_FILE": os.path.join(self.dir, "rtc.bin"),
               "ENOSNB_DEEPSLEEP_FILE": os.path.join(self.dir, "deepsleep.txt"),
               "ENOSNB_RESET_FILE": os.path.join(self.dir, "reset.txt"),
               "ENOSNB_PINS_FILE": os.path.join(self.dir, "pins.json"),
               "ENOSNB_PIN_LOG": os.path.join(self.dir, "pin_log.json"),
               "ENOSNB_WDT_FILE": os.path.join(self.dir, "wdt.txt"),
               "ENOSNB_RESET_CAUSE": str(self.reset_cause),
               "ENOSNB_PIN_PORT": str(self.wire.port),
               "ENOSNB_FLASH": self.flash,
               "ENOSNB_KILL_FLASH": str(kill_flash or 0), "ENOSNB_KILL_AT": str(kill_at or 0),
               "ENOSNB_KILL_SEED": str(self.rnd.randrange(1 << 30)),
               "ENOSNB_OPS_FILE": os.path.join(self.dir, "ops.json")}
        env.update(self.clock.env())
        if self.tune:
            env["ENOSNB_TWIN_TUNE"] = json.dumps(self.tune)
        if self.runtime == "micropython":
            env["ENOSNB_FLASH_IMAGE"] = self.image.path
            env["ENOSNB_FLASH_BLOCKS"] = str(self.image.blocks)
            env["ENOSNB_MEM_FILE"] = os.path.join(self.dir, "mem.json")
            env.update(mpruntime.boot_env(self.mode))
        env.update(self.boot_env)
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
        if self.runtime == "micropython":
            return self._boot_micropython(env, log_path)
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

    def _boot_micropython(self, env, log_path):
        """One MicroPython process per boot. The watchdog is enforced here: when the deadline
        the board last wrote (ENOSNB_WDT_FILE) is more than a second past, the board is
        reset (WDT_FIRED). A process that killed itself after writing its sleep record slept."""
        full = dict(os.environ)
        full.update(env)
        wdt_file = env["ENOSNB_WDT_FILE"]
        self._started = time.time()
        with open(log_path, "ab") as log:
            p = subprocess.Popen(mpruntime.command(self.heap), env=full, cwd=self.dir,
                                 stdout=log, stderr=subprocess.STDOUT)
            give_up = time.time() + 300
            while True:
                try:
                    code = p.wait(0.05)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if time.time() > give_up or _wdt_expired(wdt_file):
                    p.kill()
                    p.wait()
                    return WDT_FIRED
        if _first_line(env["ENOSNB_DEEPSLEEP_FILE"], str) or \
                _first_line(env["ENOSNB_RESET_FILE"], str):
            return 0
        return KILLED if code == -9 else code

    def run_cycle(self, kill_flash=None, kill_at=None, sleep=True, crash=False):
        """One boot of the device: runs main.py until deep sleep or a power cut (a reset
        that keeps RTC memory and the modem with crash=True)."""
        sleep_file = os.path.join(self.dir, "deepsleep.txt")
        ops_file = os.path.join(self.dir, "ops.json")
        pins_file = os.path.join(self.dir, "pins.json")
        mem_file = os.path.join(self.dir, "mem.json")
        pin_log = os.path.join(self.dir, "pin_log.json")
        for p in (sleep_file, ops_file, mem_file, pin_log, os.path.join(self.dir, "wdt.txt"),
                  os.path.join(self.dir, "reset.txt")):
            if os.path.exists(p):
                os.remove(p)
        log_path = os.path.join(self.dir, "boot.log")
        if os.path.exists(log_path):
            os.remove(log_path)
        self._started = None
        code = self._boot(self._env(kill_flash, kill_at), log_path)
        wall_ms = None
        if self._started is not None and os.path.exists(sleep_file):
            # The stand-in writes the sleep record as its last act: its time is the sleep's.
            wall_ms = int((os.stat(sleep_file).st_mtime - self._started) * 1000)
        with open(log_path, errors="replace") as f:
            text = f.read()
        sleep_ms = _first_line(sleep_file, int)
        ops = _first_line(ops_file, json.loads)
        pins = _first_line(pins_file, json.loads) if sleep_ms is not None else None
        mem = _first_line(mem_file, json.loads)
        b = Boot(code, sleep_ms, text, ops, pins, mem, wall_ms)
        b.pin_log = _first_line(pin_log, json.loads) or []
        self.boots.append(b)
        if self.verbose:
            for ln in text.splitlines():
                print("  device: " + ln, flush=True)
        if self.runtime == "micropython" and code != CORRUPTED:
            self.image.export(self.flash)
        self._snapshot_queue()
        if b.killed and crash:
            self.reset_cause = WDT_RESET
        elif b.killed:
            self.power_cut()
        elif b.watchdog:
            self.reset_cause = WDT_RESET
        elif code == 0 and sleep_ms is not None:
            self.reset_cause = DEEPSLEEP_RESET
            # Simulated time moves on by the whole sleep even when the host does not wait.
            self.clock.sleep(sleep_ms, self.sleep_scale if sleep else 0.0)
            if sleep:
                self.emu.nat.advance(sleep_ms / 1000.0 * (1 - self.sleep_scale))
        else:
            raise RuntimeError("main.py ended with status %s without deep sleep:\n%s"
                               % (code, text[-3000:]))
        return b

    def run_cycles(self, n, **kw):
        return [self.run_cycle(**kw) for _ in range(n)]

    def power_cut(self, off_ms=None):
        """The supply is cut (for off_ms of simulated time, default .power_off_ms): RTC
        memory is lost, the RTC restarts at 2000, the modem reboots; flash stays."""
        for name in ("rtc.bin", "pins.json"):
            if os.path.exists(os.path.join(self.dir, name)):
                os.remove(os.path.join(self.dir, name))
        self.clock.power_on(self.power_off_ms if off_ms is None else off_ms)
        self.emu.reboot()
        # The ESP32 boots faster than the modem; waiting here only skips the time the
        # firmware would spend polling a booting modem (BC95: ERROR for a while).
        self.emu.wait_booted(2.0)
        self.emu.wait_registered(2.0)
        self.reset_cause = PWRON_RESET

    def restart_server(self):
        """The server restarts on the same ports and database: it forgets every DTLS session
        and /auth binding, as a redeployed EnOS front end does."""
        s = self.server
        s.stop()
        self.server = EnosServer(s.registry, s.db_path, "127.0.0.1", s.port, s.dtls_port,
                                 log=self._server_log, dtls_commands=self.dtls_commands,
                                 dtls_variant=self.dtls_variant, policy=self.policy).start()

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
        return self.db.points(self.device["deviceKey"], 1 << 30)

    def readings(self):
        """The `reading` numbers the server received, in arrival order."""
        return [json.loads(p["value"]) for p in self.points() if p["name"] == "reading"]

    def enqueue_set(self, points):
        d = self.device
        return server_commands.enqueue_set(self.db, d["productKey"], d["deviceKey"], points)

    def commands(self):
        return self.db.commands(self.device["deviceKey"])

    def messages(self):
        return self.db.messages(self.device["deviceKey"])


def _register(registry, keys, imei):
    """The maker's device in the local server's registry; returns its registry entry."""
    pk = keys["productKey"]
    dk = imei if keys["deviceKey"] == "imei" else keys["deviceKey"]
    product = registry.products.setdefault(pk, {"productKey": pk})
    if keys.get("productSecret"):
        product.update(productSecret=keys["productSecret"], dynamicActivation=True)
    device = {"productKey": pk, "deviceKey": dk}
    if keys.get("deviceSecret"):
        device["deviceSecret"] = keys["deviceSecret"]
    registry.devices[(pk, dk)] = device
    return device


def load_maker_secrets(path):
    """The keys of the maker's secrets.json, validated as the board would."""
    for p in (LIB, os.path.join(ROOT, "tools", "host")):
        if p not in sys.path:
            sys.path.append(p)
    from enosnb.config import load_secrets
    load_secrets(path)
    with open(path) as f:
        return json.load(f)


def _first_line(path, parse):
    """parse(first line of the file) or None: the MicroPython runtime rewrites these records in
    place without truncating, so only the first line counts."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        line = f.readline().strip()
    return parse(line) if line else None


def _wdt_expired(path):
    deadline = _first_line(path, int)
    return deadline is not None and time.time() * 1000 > deadline + 1000


def pick_runtime(requested="auto"):
    """(runtime, note): micropython where the unix port runs here unless cpython is asked
    for; note is one line saying why the MicroPython runtime is not used, or None."""
    if requested == "cpython":
        return "cpython", None
    why = mpruntime.why_unavailable()
    if why is None:
        return "micropython", None
    if requested == "micropython":
        raise mpruntime.RuntimeMissing(why)
    return "cpython", why + "; running on CPython instead"


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
    kills, boots, lost (readings that were durably queued but never reached the server and
    are not in the dead letters), duplicated (readings the server stored more than once),
    out_of_order, received, time_unknown (readings whose time a power cut erased before any
    sync: dead letters by the time_unknown rule)."""
    rnd = random.Random(seed)
    span = {"flash": 12, "at": 14}
    if twin.runtime == "micropython":
        # A cut counts the block device's erases and programs, several hundred a boot: one
        # boot without a cut measures the span the cuts are drawn from.
        b = twin.run_cycle(sleep=False)
        span = {k: max(2, b.ops.get(k, 0)) for k in span}
    done = boots = 0
    by_kind = {"flash": 0, "at": 0}
    while done < kills:
        kind = "flash" if rnd.random() < 0.5 else "at"
        k = rnd.randint(1, span[kind])
        b = twin.run_cycle(sleep=False, **{"kill_" + kind: k})
        boots += 1
        if b.killed:
            done += 1
            by_kind[kind] += 1
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
    unknown = set(r for why, r in dead_letters(twin) if why.startswith("time unknown"))
    lost = sorted(twin.queued_seen - set(times) - unknown)
    return {"kills": done, "kills_flash": by_kind["flash"], "kills_at": by_kind["at"],
            "boots": boots, "lost": len(lost), "lost_readings": lost,
            "duplicated": duplicated, "redelivered": redelivered, "out_of_order": order,
            "received": len(times), "still_queued": len(twin.queued()),
            "time_unknown": len(unknown)}


def dead_letters(twin):
    """[(reason, reading number)] of the device's dead letters."""
    from enosnb.deadletter import DeadLetters
    path = os.path.join(twin.flash, "dead")
    if not os.path.isdir(path):
        return []
    out = []
    for why, rec in DeadLetters(path).peek(1 << 20):
        try:
            out.append((why, json.loads(rec)["p"]["reading"]))
        except (ValueError, KeyError, TypeError):
            out.append((why, None))
    return out


# --- tshark --------------------------------------------------------------------------------

def psk_hex():
    import hashlib
    return hashlib.sha256(DEMO_DEVICE["deviceSecret"].encode()).digest()[8:24].hex()


def tshark_decrypt_command(pcap, dtls_port):
    """The tshark command line that shows the CoAP inside the demo's DTLS: the port decoded as
    DTLS, the DTLS payload as CoAP, and the demo device's PSK (public: it is the demo's)."""
    return ["tshark", "-n", "-r", pcap, "-d", "udp.port==%d,dtls" % dtls_port,
            "-d", "dtls.port==%d,coap" % dtls_port, "-o", "dtls.psk:" + psk_hex(), "-Y", "coap"]


def tshark_check(pcap, dtls_port, plain_port=None):
    """(problems, decrypted CoAP lines): tshark's malformed/error packets with the DTLS port
    decoded as DTLS, and the CoAP it shows when given the PSK."""
    base = ["tshark", "-n", "-r", pcap, "-d", "udp.port==%d,dtls" % dtls_port]
    if plain_port:
        base += ["-d", "udp.port==%d,coap" % plain_port]
    check = "_ws.malformed || _ws.expert.severity==error"
    bad = subprocess.run(base + ["-Y", check], capture_output=True, text=True, timeout=120)
    keyed = tshark_decrypt_command(pcap, dtls_port)[:-2]
    bad2 = subprocess.run(keyed + ["-Y", check], capture_output=True, text=True, timeout=120)
    coap = subprocess.run(keyed + ["-Y", "coap"], capture_output=True, text=True, timeout=120)
    problems = (bad.stdout.strip() + "\n" + bad2.stdout.strip()).strip()
    return problems, [ln for ln in coap.stdout.splitlines() if ln.strip()]


# --- command line --------------------------------------------------------------------------

def _print_points(twin, seen):
    new = twin.points()[seen:]
    for line in demo_output.points_text(new):
        print("    EnOS stored " + line)
    return seen + len(new)


def _print_boot(twin, i, b, mark, verbose):
    """One boot of the demo: the device's boot line, its cycle line in words, the AT
    dialogue with -v, and what the modem's UART carried."""
    boot = b.line("[enosnb] boot: ")
    if boot:
        print("boot: " + boot[len("[enosnb] boot: "):])
    cyc = b.line("[enosnb] cycle: ")
    told = demo_output.retell_cycle(cyc[len("[enosnb] cycle: "):]) if cyc else \
        "no cycle line (see -v)"
    print("cycle %d (%s): %s; deep sleep %s" % (
        i, "power-on" if i == 1 else "wake from deep sleep", told,
        demo_output.duration(b.sleep_ms)))
    timeline = list(twin.emu.timeline)[mark:]
    n, size, secs = demo_output.uart_cost(timeline, twin.board["uart"]["baudrate"])
    print("    modem: %d AT commands, %d UART bytes (%.2f s on the wire at %d baud)" % (
        n, size, secs, twin.board["uart"]["baudrate"]))
    if verbose:
        for ln in demo_output.at_dialogue(timeline):
            print("      " + ln)


def keep_reporting(twin, interval_s, seen):
    """After the demo cycles: the device reports every interval_s seconds until Ctrl-C, while
    the web page shows it."""
    print("twin: the device reports every %g s; web page %s; Ctrl-C stops" % (
        interval_s, twin.server.web.url), flush=True)
    try:
        while True:
            time.sleep(interval_s)
            b = twin.run_cycle(sleep=False)
            summary = (b.line("[enosnb] cycle: ") or "").partition("cycle: ")[2]
            print("cycle %d: %s" % (len(twin.boots), demo_output.retell_cycle(summary)),
                  flush=True)
            seen = _print_points(twin, seen)
    except KeyboardInterrupt:
        print("twin: stopped")


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
    ap.add_argument("--lenient", action="store_true",
                    help="the server takes every topic (batch, resume), as earlier versions did")
    ap.add_argument("--resume", choices=("refuse", "accept"), default="refuse",
                    help="whether the strict server takes single thing.measurepoint.resume")
    ap.add_argument("--unsupported", default="4.04",
                    help="how the strict server refuses a topic: 4.04 4.05 4.03 1250 1260 1009 "
                         "none")
    ap.add_argument("--pcap", default=None, help="pcap of every datagram (default <out>/demo.pcap)")
    ap.add_argument("--out", default="out")
    ap.add_argument("--spawn", action="store_true",
                    help="start a new CPython per boot instead of forking a preloaded one")
    ap.add_argument("-v", "--verbose", action="store_true", help="print device and server logs")
    ap.add_argument("--keep", action="store_true",
                    help="after the cycles, keep the device reporting and the server with its "
                         "web page running until Ctrl-C")
    ap.add_argument("--keep-interval", type=float, default=10.0,
                    help="seconds between reports with --keep")
    ap.add_argument("--web-port", type=int, default=8684,
                    help="port of the web page with --keep (0: a free one)")
    ap.add_argument("--runtime", default="auto", choices=("auto",) + RUNTIMES,
                    help="auto: the MicroPython unix port where it is installed, else CPython")
    ap.add_argument("--mode", default="mpy", choices=sorted(mpruntime.MODES),
                    help="deployment mode on MicroPython: the files on the flash, the heap cap")
    ap.add_argument("--heap", type=int, default=None, help="MicroPython heap cap in bytes")
    ap.add_argument("--sensors", help="run this sensors.py (yours) instead of the twin's sensor")
    ap.add_argument("--secrets", help="your secrets.json: your device, on the local server")
    a = ap.parse_args(argv)
    maker = None
    if a.secrets:
        try:
            maker = load_maker_secrets(a.secrets)
        except Exception as e:  # enosnb.config.ConfigError, imported with the package
            print("twin: %s" % e, file=sys.stderr)
            return 2
    if a.sensors and not os.path.isfile(a.sensors):
        print("twin: %s not found" % a.sensors, file=sys.stderr)
        return 2
    if a.outage and a.cycles < 7:
        a.cycles = 7
    runtime, note = pick_runtime(a.runtime)
    if note:
        print("twin: " + note)
    os.makedirs(a.out, exist_ok=True)
    pcap = a.pcap or os.path.join(a.out, "demo.pcap")
    d = DEMO_DEVICE
    policy = Policy(a.lenient, a.resume, a.unsupported,
                    models=None if a.sensors or maker else {
                        "%s/%s" % (d["productKey"], d["deviceKey"]): MODEL})
    twin = Twin(a.board, a.out, pcap, a.sleep_scale, dtls=not a.plain, fork=not a.spawn,
                verbose=a.verbose, web_port=a.web_port if a.keep else None,
                runtime=runtime, mode=a.mode, heap=a.heap, sensors=a.sensors, device=maker,
                policy=policy)
    twin.start()
    ok = True
    try:
        if runtime == "micropython":
            where = "flash %s (littlefs2; files copied to %s)" % (twin.image.path, twin.flash)
            print("twin: MicroPython unix port, deployment mode %s, heap cap %d bytes"
                  % (twin.mode, twin.heap))
        else:
            where = "flash %s" % twin.flash
            print("twin: CPython")
        print("twin: local EnOS server coap://127.0.0.1:%d coaps://127.0.0.1:%d (%s), %s "
              "emulator on %s, %s" % (twin.server.port, twin.server.dtls_port,
                                      "lenient" if a.lenient else "strict: batch refused, "
                                      "resume %sed" % a.resume, twin.board["modem"],
                                      twin.emu.port, where))
        if twin.server.web is not None:
            print("twin: web page %s" % twin.server.web.url, flush=True)
        print("twin: " + demo_output.DIALECTS[twin.board["modem"]])
        print("twin: device %s/%s (%s), sensor %s" % (
            twin.device["productKey"], twin.device["deviceKey"],
            "your secrets.json" if maker else "demo keys", a.sensors or "the twin's"))
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
            mark = len(twin.emu.timeline)
            b = twin.run_cycle()
            _print_boot(twin, i, b, mark, a.verbose)
            for ln in b.log.splitlines():
                if ln.startswith("[sensor]"):
                    print("    device executed the command: " + ln[len("[sensor] "):])
                elif ln.startswith(("[enosnb] EnOS refuses", "[enosnb] record ")):
                    print("    device: " + ln[len("[enosnb] "):])
            seen = _print_points(twin, seen)
        for c in twin.commands():
            print("twin: command #%d %s, reply %s" % (c["id"], c["state"],
                                                       bytes(c["reply"] or b"").decode()))
            if a.command and c["state"] != "replied":
                ok = False
        if a.sensors:
            print("twin: server stored %d points from your sensor" % len(twin.points()))
        else:
            print("twin: server received readings %s; device queue now %s" % (
                twin.readings(), twin.queued()))
        if a.keep:
            keep_reporting(twin, a.keep_interval, seen)
        twin.emu.stop()  # closes the pcap
        twin.emu = None
        if maker is not None:
            print("tshark: skipped with your keys (a PSK on tshark's command line would be "
                  "readable by every process)")
        elif shutil.which("tshark"):
            bad, coap = tshark_check(pcap, twin.server.dtls_port,
                                     twin.server.port if a.plain else None)
            print("tshark: %s" % ("no malformed packet" if not bad else "PROBLEMS:\n" + bad))
            ok = ok and not bad
            print("tshark decodes %d CoAP messages%s%s" % (
                len(coap), "" if a.plain else " inside DTLS (decrypted with the demo PSK)",
                ", e.g." if coap else ""))
            for ln in coap[:4]:
                print("    " + ln.strip())
            if not a.plain:
                print("tshark: to see them yourself: " + " ".join(
                    tshark_decrypt_command(pcap, twin.server.dtls_port)))
        else:
            print("tshark not installed: pcap check skipped")
        print("twin: pcap written to %s" % pcap)
    finally:
        twin.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
