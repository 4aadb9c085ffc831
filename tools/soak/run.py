"""The soak run: setup, the cycle loop with faults, the drain, and the check.

The sensor (SENSOR below, on the twin's flash as sensors.py) appends every reading, with the
true time it was taken at, to a log outside the flash (the sensor's own log). After the run
every logged reading must be in exactly one of these states:

  delivered        at the server with a time within the stated bound (or, sent without a
                   time in the cycle it was taken, dated by the server on arrival)
  dead_lettered    in the device's dead letters with a reason traced to an injected
                   permanent refusal (1204 for the point the thing model lacked)
  time_unknown     in the dead letters because its time could not be recovered (a power-on
                   between it and any sync), by the time_unknown rule
  dropped          removed by the queue's full policy (counted by the queue)
  cut_before_queue taken in a boot the power cut before the queue had written it

Anything else is lost (not at the server, not queued, not explained) or stuck (still queued
after the drain). A reading the server received more than once is a resend; it is explained
when the device had not acknowledged it after the boot that sent it (the answer was lost on
the radio or refused, or the power went between the answer and the flash write), or the boot
that sent it twice had a request go unanswered first.

Energy, in simulated device time (the twin's clock): a boot is awake from its start to its
deep sleep record (a power cut: to its last log line) and asleep for the sleep it requested.
Every boot with an energy fault (faults.ENERGY_KINDS: the server silent for an hour, an
attach of 5 minutes) must deep-sleep (a power cut drawn into it excepted), stay awake no
longer than the cycle budget (plus the scan budget where a first attach scans, plus
BOOT_MS), back off (its log says the cycle failed or skipped the radio, and it sleeps at
least half the report interval) and leave its reading queued (not stranded).
"""
import json
import os
import random
import re
import socket
import time

from tools.enos_server import commands as server_commands
from tools.enos_server.policy import Policy
from tools.lossy import LossyRelay
from tools.simclock import SntpServer
from tools.soak.faults import ENERGY_KINDS, EXTRA_POINT, KINDS
from tools.twin import DEMO_DEVICE, MODEL, SENSOR_FILES_PY, Twin

SENSOR = '''"""Soak sensor: a reading number kept on flash; every reading goes to the
sensor's own log (outside the flash) with the true time it was taken at."""
import json
import os
import time

from enosnb.sensor import Sensor


class SoakSensor(Sensor):
    def read(self):
        n = _load("reading.json", {"n": 0})["n"] + 1
        _save("reading.json", {"n": n})
        points = {"temperature": 20.0 + (n % 10) * 0.5, "reading": n}
        extra = os.environ.get("ENOSNB_SOAK_EXTRA")
        if extra:
            points[extra] = 1
        with open(os.environ["ENOSNB_RTC_CLOCK"]) as f:
            true = int(time.time() * 1000 + json.load(f)["true_offset"])
        with open(os.environ["ENOSNB_SOAK_LOG"], "a") as f:
            f.write(json.dumps({"n": n, "t": true, "extra": extra}) + "\\n")
        return points

    def set_points(self, params):
        pass
''' + SENSOR_FILES_PY + '''

def make_sensor():
    return SoakSensor()
'''

# Loopback timings, shorter than the twin's: a soak cycle with 30 % loss must stay cheap.
TUNE = {"attach_timeout_ms": 800, "first_attach_timeout_ms": 1600, "coap": [250, 2],
        "dtls": [250, 2000, 3, 4000],
        "probe_retransmit": 1, "cycle_budget_ms": 60000, "sntp_timeout_ms": 500}
# The same firmware with NB-IoT's timings, for round trips of seconds (--rtt).
NBIOT_TUNE = {"attach_timeout_ms": 5000, "first_attach_timeout_ms": 20000, "coap": [15000, 4],
              "dtls": [12000, 60000, 4, 180000],
              "probe_retransmit": 1, "cycle_budget_ms": 170000, "sntp_timeout_ms": 15000}
RTC_DRIFT_VAR = 0.04      # the soak's drift is drawn in 1-5 % every cycle: it varies by 4 %
CCLK_ERR_MS = 1000        # what the device states for a +CCLK time
SLACK_MS = 50
DRIFT_MAX = 0.05
# Awake before the cycle's clock starts (ESP32 boot 0.4 s, imports 1 s: docs/power.md's model):
# a boot may exceed the cycle budget by this much.
BOOT_MS = 2000
ENERGY_MUST_BE_0 = ("not_slept", "over_budget", "no_backoff", "stranded")
SCAN_RE = re.compile(r"first attach: the modem scans its bands, up to (\d+) s")


class Soak:
    def __init__(self, cycles=500, seed=1, board="esp32-sim7020", out="out/soak",
                 sleep_scale=0.00005, rtt_ms=None, fault_rate=1.0, outage_at=None,
                 queue_max=40, verbose=False, scripted=None):
        """outage_at: (cycle, length) of one scripted outage besides the drawn ones; by
        default a third of the way in, 5 cycles longer than the queue's queue_max records,
        so that the full policy acts. scripted: {fault name: cycle} faults that begin at
        that cycle instead of being drawn (a short run must meet them, once)."""
        self.cycles = cycles
        self.seed = seed
        self.rng = random.Random(seed)
        self.board = board
        self.out = os.path.abspath(out)
        self.sleep_scale = sleep_scale
        self.rtt_ms = rtt_ms
        self.fault_rate = fault_rate
        self.outage_at = outage_at if outage_at is not None else (cycles // 3, queue_max + 5)
        self.queue_max = queue_max
        self.verbose = verbose
        self.scripted = dict(scripted or {})
        self.kinds = [k() for k in KINDS]
        unknown = set(self.scripted) - set(k.name for k in self.kinds)
        if unknown:
            raise ValueError("no fault kind named %s" % ", ".join(sorted(unknown)))
        self.skipped = [k.name for k in self.kinds if k.needs]
        self.counts = dict((k.name, 0) for k in self.kinds if not k.needs)
        self.twin = None
        self.relays = []
        self.sntp = None
        self.boots = []
        self.kill = None
        self.in_outage = False
        self.next_drift = 0.03
        self.figures = {}
        self.blocks = set()  # faults holding the modem's registration back
        self.sink = None     # where a silent server's datagrams go
        self.timed = {}      # active faults with lasts_s -> simulated ms their window ends
        self.outage = None
        self.interval_ms = None

    # --- setup ---------------------------------------------------------------------------

    def start(self):
        os.makedirs(self.out, exist_ok=True)
        self.log_path = os.path.join(self.out, "sensor.log")
        if os.path.exists(self.log_path):
            os.remove(self.log_path)
        d = DEMO_DEVICE
        self.key = "%s/%s" % (d["productKey"], d["deviceKey"])
        self.sntp = SntpServer(lambda: self.twin.clock.true_ms())
        config = {"sntp_host": "127.0.0.1", "sntp_port": self.sntp.port,
                  "sntp_interval_s": 600, "queue_max_records": self.queue_max, "queue_full": "thin",
                  "time_max_error_s": 60, "backlog_probe_s": 3600}
        tune = dict(NBIOT_TUNE if self.rtt_ms else TUNE)
        self.tune = tune
        if self.rtt_ms:
            config.update(ack_timeout_ms=15000, max_retransmit=4)
        self.twin = Twin(self.board, out=self.out, sleep_scale=self.sleep_scale,
                         seed=self.seed, policy=Policy(models={self.key: MODEL}),
                         config=config, sensor_source=SENSOR, drift=self.next_drift,
                         board_json={"rtc_drift_var": RTC_DRIFT_VAR}, tune=tune)
        self.twin.start()
        self.interval_ms = self.twin.secrets()["report_interval_s"] * 1000
        self.twin.emu.nat.timeout = None  # no carrier NAT unless the nat fault is drawn
        self.twin.boot_env.update(ENOSNB_SOAK_LOG=self.log_path)
        delay = (self.rtt_ms[0] / 2.0, self.rtt_ms[1] / 2.0) if self.rtt_ms else (0, 0)
        srv = self.twin.server
        for port in (srv.dtls_port, srv.port, self.sntp.port):
            relay = LossyRelay(("127.0.0.1", port), delay_ms=delay,
                               seed=self.rng.randrange(1 << 30))
            self.relays.append(relay)
            self.twin.emu.remote_map[("127.0.0.1", port)] = relay.address
        self.sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sink.bind(("127.0.0.1", 0))
        return self

    def stop(self):
        for r in self.relays:
            r.stop()
        if self.sink is not None:
            self.sink.close()
        if self.sntp is not None:
            self.sntp.stop()
        if self.twin is not None:
            self.twin.stop()

    def random_kill(self, rng):
        """A power cut at a random flash write or AT line of a normal boot's counts."""
        ops = {"flash": 12, "at": 14}
        for b in reversed(self.boots):
            if not b["killed"] and b["ops"]:
                ops = b["ops"]
                break
        kind = "flash" if rng.random() < 0.5 else "at"
        return kind, rng.randint(1, max(2, ops.get(kind, 2)))

    def block_registration(self, why):
        """The network refuses the modem's registration until every fault that asked for
        it (why) has let it go."""
        if not self.blocks:
            self.twin.outage(True)
        self.blocks.add(why)

    def unblock_registration(self, why):
        self.blocks.discard(why)
        if not self.blocks:
            self.twin.outage(False)

    def silence_server(self, on):
        """The emulator sends the datagrams for the server's CoAP and DTLS ports into the
        sink (nothing answers), or to their relays again."""
        srv = self.twin.server
        for port, relay in zip((srv.dtls_port, srv.port), self.relays):
            self.twin.emu.remote_map[("127.0.0.1", port)] = \
                self.sink.getsockname() if on else relay.address

    # --- the run -------------------------------------------------------------------------

    def run(self):
        t0 = time.monotonic()
        outage_left = 0
        outage = None
        long_at, long_len = self.outage_at
        for i in range(self.cycles):
            active = []
            self.kill = None
            self.twin.power_off_ms = self.rng.randint(1000, 60000)
            now = self.twin.clock.true_ms()
            for k, until in list(self.timed.items()):
                if now >= until:
                    k.end(self)
                    del self.timed[k]
            if i == self.cycles // 2:
                self.twin.write_secrets(replay_dead_letters=1)  # a config change: replay
            if i == long_at and long_len:
                outage_left = long_len
                outage = next(k for k in self.kinds if k.name == "registration_loss")
                outage.begin(self, self.rng)
                self.counts[outage.name] += 1
            for k in self.kinds:
                if k.needs or k.lasting and outage_left or k in self.timed:
                    continue
                if k.name == "registration_loss" and outage_left:
                    continue
                if k.name in self.scripted:
                    if self.scripted[k.name] != i:
                        continue
                elif self.rng.random() >= min(1.0, k.prob * (1 if k.prob >= 1 else
                                                               self.fault_rate)):
                    continue
                note = k.begin(self, self.rng)
                if note == "skip":
                    continue
                self.counts[k.name] += 1
                if k.lasting:
                    outage, outage_left = k, note
                elif k.lasts_s:
                    self.timed[k] = now + k.lasts_s * 1000
                else:
                    active.append(k)
            self.in_outage = outage_left > 0
            self.outage = outage if outage_left else None
            self.twin.clock.drift = self.next_drift
            self._boot(i, active + list(self.timed))
            for k in active:
                k.end(self)
            if outage_left:
                outage_left -= 1
                if not outage_left:
                    outage.end(self)
                    self.outage = None
        self.fault_s = time.monotonic() - t0
        self._drain()
        self.wall_s = time.monotonic() - t0

    def _boot(self, i, faults):
        tw = self.twin
        kw = {}
        if self.kill is not None:
            kw = {"kill_" + self.kill[0]: self.kill[1]}
        offset = tw.clock.offset
        real0 = time.time()
        b = tw.run_cycle(**kw)
        real1 = time.time()
        awake_ms = self._awake_ms(real0, b)
        if b.killed and self.blocks:
            tw.outage(True)  # the modem rebooted with the power: the network is still gone
        queued = set(r for r in tw.queued() if r is not None)
        budget_ms = self.tune["cycle_budget_ms"] + BOOT_MS
        scan = SCAN_RE.search(b.log)
        if scan:
            budget_ms += int(scan.group(1)) * 1000 + 10000  # the budget a band scan adds
        self.boots.append({"i": i, "real0": real0, "real1": real1, "offset": offset,
                           "killed": b.killed, "sleep_ms": b.sleep_ms, "log": b.log,
                           "ops": b.ops, "queued": queued, "awake_ms": awake_ms,
                           "budget_ms": budget_ms,
                           "faults": [k.name for k in faults]})
        if self.verbose:
            line = b.line("[enosnb] cycle:") or ("killed at %s" % (self.kill,))
            print("cycle %d %s: %s" % (i, ",".join(k.name for k in faults), line), flush=True)

    def _awake_ms(self, real0, b):
        """Device time from the boot's start to its deep sleep record (the twin's clock runs
        at host speed while the device is awake); a power cut: to its last log line."""
        if b.wall_ms is not None:
            return b.wall_ms
        name = "deepsleep.txt" if b.sleep_ms is not None else "boot.log"
        try:
            end = os.stat(os.path.join(self.twin.dir, name)).st_mtime
        except OSError:
            return None
        return max(0, int((end - real0) * 1000))

    def _drain(self):
        """No more faults; the thing model learns the point it lacked, a cloud command replays
        the dead letters; cycles until the queue is empty."""
        tw = self.twin
        for k in list(self.timed):
            k.end(self)
        self.timed.clear()
        if self.outage is not None:
            self.outage.end(self)
            self.outage = None
        self.in_outage = False
        tw.policy.set_model(self.key, {"measurepoints": dict(MODEL["measurepoints"],
                                                             **{EXTRA_POINT: "int"}),
                                       "attributes": MODEL["attributes"]})
        d = DEMO_DEVICE
        server_commands.enqueue_service(tw.db, d["productKey"], d["deviceKey"],
                                        "replay_dead_letters", {})
        self.drain_cycles = 0
        self.kill = None
        for n in range(40):
            self.drain_cycles += 1
            self._boot(self.cycles + n, [])
            if not tw.queued() and n >= 2 and self._replayed():
                break

    def _replayed(self):
        return any(c["state"] == "replied" and b"replay_dead_letters" in bytes(c["topic"], "ascii")
                   for c in self.twin.commands())

    # --- the check -----------------------------------------------------------------------

    def _true_of_real(self, real_s):
        """Simulated true ms of a host time during one of the boots."""
        for b in self.boots:
            if b["real0"] <= real_s <= b["real1"]:
                return real_s * 1000 + b["offset"], b
        return None, None

    def check(self):
        tw = self.twin
        tw.clock.collect()
        log = {}
        with open(self.log_path) as f:
            for line in f:
                rec = json.loads(line)
                log[rec["n"]] = rec
        deliveries = {}  # reading -> [(real s, time_ms)]
        for m in tw.messages():
            if m["code"] != 200 or "/thing/measurepoint/" not in m["topic"]:
                continue
            body = json.loads(bytes(m["payload"]))
            params = body["params"]
            for p in params if isinstance(params, list) else [params]:
                r = p["measurepoints"].get("reading")
                if r is not None:
                    deliveries.setdefault(r, []).append((m["received"], p.get("time")))
        from tools.twin import dead_letters
        dead = {}
        for why, r in dead_letters(tw):
            dead.setdefault(r, why)
        stuck = set(r for r in tw.queued() if r is not None)
        seen = set()
        for b in self.boots:
            seen |= b["queued"]
        from enosnb.store import Store
        dropped_total = Store(os.path.join(tw.flash, "queue")).dropped

        f = dict(delivered=0, dead_lettered=0, dead_untraced=0, time_unknown=0,
                 time_unknown_unexplained=0, dropped_by_policy=0, lost=0, stuck=len(stuck),
                 cut_before_queue=0, wrong_time=0, resent=0, resent_unexplained=0,
                 arrival_dated=0, replayed=0)
        errors = []
        missing = []
        for n, rec in sorted(log.items()):
            if n in deliveries:
                f["delivered"] += 1
                self._check_time(n, rec, deliveries[n], errors, f)
                self._check_resends(n, deliveries[n], f)
                if rec["extra"]:
                    f["replayed"] += 1
            elif n in dead:
                if dead[n].startswith("time unknown"):
                    f["time_unknown"] += 1
                    if not self._time_lost(rec["t"]):
                        f["time_unknown_unexplained"] += 1
                elif dead[n] == "EnOS code 1204" and rec["extra"]:
                    f["dead_lettered"] += 1
                else:
                    f["dead_lettered"] += 1
                    f["dead_untraced"] += 1
            elif n in stuck:
                pass
            elif n in seen:
                missing.append(n)
            else:
                booted = self._boot_of_true(rec["t"])
                if booted is not None and booted["killed"]:
                    f["cut_before_queue"] += 1
                else:
                    missing.append(n)
        f["dropped_by_policy"] = min(len(missing), dropped_total)
        f["lost"] = len(missing) - f["dropped_by_policy"]
        f["lost_readings"] = missing[f["dropped_by_policy"]:][:20] if f["lost"] else []
        f["readings"] = len(log)
        for topic in ("resume", "post"):
            f["via_" + topic] = sum(1 for m in tw.messages() if m["code"] == 200 and
                                   m["topic"].endswith("/thing/measurepoint/" + topic))
        f["dead_lettered"] += sum(1 for n in log if n in deliveries and log[n]["extra"])
        errors.sort()
        f["time_err_max_ms"] = errors[-1] if errors else 0
        f["time_err_p50_ms"] = errors[len(errors) // 2] if errors else 0
        f["time_err_p99_ms"] = errors[int(len(errors) * 0.99)] if errors else 0
        f["deep_sleep_pct"] = 100.0 * sum(1 for b in self.boots if b["sleep_ms"] is not None) \
            / len(self.boots)
        awake = [b["awake_ms"] for b in self.boots if b["awake_ms"] is not None]
        asleep = sum(b["sleep_ms"] or 0 for b in self.boots)
        f["duty_cycle_pct"] = 100.0 * sum(awake) / (sum(awake) + asleep) if awake else 0
        f["awake_s_per_reading"] = sum(awake) / 1000.0 / max(1, len(log))
        f["awake_s_max"] = max(awake or [0]) / 1000.0
        f["energy"] = self._energy(log, deliveries, dead, stuck, set(missing))
        self.figures = f
        return f

    def _energy(self, log, deliveries, dead, stuck, missing):
        """Per energy fault: what its boots did (module docstring); the four counts that
        must be 0 are in ENERGY_MUST_BE_0. Its readings are delivered (or dead-lettered by
        a rule), or dropped (thinned by the queue's full policy, counted in the soak's
        dropped_by_policy; when soak.lost is 0 none of them is lost)."""
        interval_ms = self.interval_ms
        taken = {}  # boot index -> readings taken in it
        for n, rec in log.items():
            b = self._boot_of_true(rec["t"])
            if b is not None:
                taken.setdefault(b["i"], []).append(n)
        out = {}
        for name in ENERGY_KINDS:
            e = dict(boots=0, power_cut=0, failed=0, radio_skipped=0, readings=0,
                     delivered=0, dropped=0, not_slept=0, over_budget=0, no_backoff=0,
                     stranded=0)
            awake, sleeps = [], []
            for b in self.boots:
                if name not in b["faults"]:
                    continue
                e["boots"] += 1
                mine = taken.get(b["i"], [])
                e["readings"] += len(mine)
                e["delivered"] += sum(1 for n in mine if n in deliveries or n in dead)
                e["dropped"] += sum(1 for n in mine if n in missing)
                e["stranded"] += sum(1 for n in mine if n in stuck)
                if b["killed"]:
                    e["power_cut"] += 1
                    continue
                if b["sleep_ms"] is None:
                    e["not_slept"] += 1
                    continue
                awake.append(b["awake_ms"] or 0)
                sleeps.append(b["sleep_ms"])
                if (b["awake_ms"] or 0) > b["budget_ms"]:
                    e["over_budget"] += 1
                failed = " failed (" in b["log"]
                skipped = "back-off: radio skipped" in b["log"]
                e["failed"] += failed
                e["radio_skipped"] += skipped
                if not (failed or skipped) or b["sleep_ms"] < interval_ms // 2:
                    e["no_backoff"] += 1
                if "queue full:" not in b["log"]:  # else the full policy may have thinned it
                    e["stranded"] += sum(1 for n in mine if n not in b["queued"] and
                                         n not in stuck)
            e["awake_s_max"] = max(awake or [0]) / 1000.0
            e["awake_s_mean"] = sum(awake) / 1000.0 / max(1, len(awake))
            e["sleep_s_min"] = min(sleeps or [0]) / 1000.0
            out[name] = e
        return out

    def _syncs(self):
        return sorted(t for t, _ in self.twin.clock.sets)

    def _segment(self, t):
        """(power-on before t, power-on after t or None) in true ms."""
        powers = sorted(self.twin.clock.powers)
        before = max([p for p in powers if p <= t] or [0])
        after = min([p for p in powers if p > t] or [None], key=lambda x: x or 1 << 62)
        return before, after

    def _time_lost(self, t):
        """True when no sync happened between the power-ons around true time t: the rule."""
        lo, hi = self._segment(t)
        return not any(lo <= s and (hi is None or s < hi) for s in self._syncs())

    def _boot_of_true(self, t):
        for b in self.boots:
            if b["real0"] * 1000 + b["offset"] <= t <= b["real1"] * 1000 + b["offset"]:
                return b
        return None

    def _check_time(self, n, rec, got, errors, f):
        """The first delivery's time against the bound the device states for it."""
        real, time_ms = got[0]
        true = rec["t"]
        arrival, boot = self._true_of_real(real)
        if time_ms is None:
            # Sent without a time: the server dates it on arrival, in the cycle it was taken.
            f["arrival_dated"] += 1
            if arrival is None or boot is None or abs(arrival - true) > \
                    (boot["real1"] - boot["real0"]) * 1000 + 1000:
                f["wrong_time"] += 1
            return
        err = abs(time_ms - true)
        errors.append(err)
        lo, hi = self._segment(true)
        syncs = [s for s in self._syncs() if lo <= s and (hi is None or s < hi)]
        prev = max([s for s in syncs if s <= true] or [None], key=lambda x: x or 0)
        nxt = [s for s in syncs if s > true and (arrival is None or s <= arrival)]
        nxt = nxt[0] if nxt else None
        e = CCLK_ERR_MS + (self.rtt_ms[1] // 2 if self.rtt_ms else 0) + SLACK_MS
        if prev is not None and nxt is not None:
            bound = e + RTC_DRIFT_VAR * (nxt - prev) / 4  # interpolation, as stated
            if self._tried_before(true, nxt):
                # Sent before that sync with a time dated forward, it keeps that time when it
                # goes again (the device pins it), so the forward bound applies.
                bound = max(bound, e + DRIFT_MAX * (true - prev) * 1.01)
        elif nxt is not None:
            bound = e + DRIFT_MAX * (nxt - true) * 1.01
        elif prev is not None:
            bound = e + DRIFT_MAX * (true - prev) * 1.01
        else:
            bound = 0
        if err > bound:
            f["wrong_time"] += 1
            if self.verbose:
                print("wrong time: reading %d off by %d ms, bound %d (prev %s next %s, true %d,"
                      " segment %s)" % (n, time_ms - true, bound, prev and prev - true,
                                       nxt and nxt - true, true, (lo - true, hi and hi - true)))

    def _tried_before(self, t, sync):
        """Whether the device was connected in a boot that ended after true time t and
        before the sync (a boot that syncs does so before it sends)."""
        for b in self.boots:
            end = b["real1"] * 1000 + b["offset"]
            if t <= end < sync and "connected (" in b["log"]:
                return True
        return False

    def _check_resends(self, n, got, f):
        for (r1, _), (r2, _) in zip(got, got[1:]):
            f["resent"] += 1
            _, b1 = self._true_of_real(r1)
            _, b2 = self._true_of_real(r2)
            if b1 is None or b2 is None or b1["killed"]:
                continue
            if b1 is not b2 and n in b1["queued"]:
                continue  # not acknowledged after the boot that sent it
            if b1 is b2 and ("not answered" in b1["log"] or "no answer" in b1["log"]):
                continue
            f["resent_unexplained"] += 1
            if self.verbose:
                print("unexplained resend of reading %d: boots %d and %d\n%s\n---\n%s" % (
                    n, b1["i"], b2["i"], b1["log"], b2["log"] if b2 is not b1 else ""))

    def report(self, prefix="soak"):
        f = self.figures
        lines = ["%s.cycles: %d" % (prefix, self.cycles),
                 "%s.drain_cycles: %d" % (prefix, self.drain_cycles)]
        for name in ("readings", "delivered", "dead_lettered", "dropped_by_policy", "lost",
                     "wrong_time", "time_unknown", "resent", "resent_unexplained", "stuck",
                     "cut_before_queue", "dead_untraced", "time_unknown_unexplained",
                     "replayed", "arrival_dated", "via_resume", "via_post"):
            lines.append("%s.%s: %d" % (prefix, name, f[name]))
        lines += ["%s.time_err_max_ms: %d ms" % (prefix, f["time_err_max_ms"]),
                  "%s.time_err_p50_ms: %d ms" % (prefix, f["time_err_p50_ms"]),
                  "%s.time_err_p99_ms: %d ms" % (prefix, f["time_err_p99_ms"]),
                  "%s.deep_sleep_pct: %.1f %%" % (prefix, f["deep_sleep_pct"]),
                  "%s.duty_cycle_pct: %.4f %%" % (prefix, f["duty_cycle_pct"]),
                  "%s.awake_s_per_reading: %.3f s" % (prefix, f["awake_s_per_reading"]),
                  "%s.awake_s_max: %.3f s" % (prefix, f["awake_s_max"]),
                  "%s.wall_s: %.0f s" % (prefix, self.wall_s)]
        lasting = set(k.name for k in self.kinds if k.lasting or k.lasts_s)
        for name, n in sorted(self.counts.items()):
            lines.append("%s.fault.%s: %d %s" % (prefix, name, n,
                                                 "draws" if name in lasting else "cycles"))
        for name, e in sorted(f["energy"].items()):
            for key in ("boots", "power_cut", "failed", "radio_skipped", "readings",
                        "delivered", "dropped") + ENERGY_MUST_BE_0:
                lines.append("%s.fault.%s.%s: %d" % (prefix, name, key, e[key]))
            for key in ("awake_s_max", "awake_s_mean", "sleep_s_min"):
                lines.append("%s.fault.%s.%s: %.3f s" % (prefix, name, key, e[key]))
        for name in self.skipped:
            lines.append("%s.fault.%s: skipped (needs %s)" % (
                prefix, name, next(k.needs for k in self.kinds if k.name == name)))
        return lines

    def failures(self):
        """The names of the figures that are not 0 and must be."""
        f = self.figures
        bad = [n for n in ("lost", "wrong_time", "resent_unexplained", "stuck", "dead_untraced",
                           "time_unknown_unexplained") if f[n]]
        for name, e in sorted(f["energy"].items()):
            bad += ["fault.%s.%s" % (name, key) for key in ENERGY_MUST_BE_0 if e[key]]
        return bad

    def ok(self):
        return not self.failures()
