"""A short seeded fault soak (tools/soak) as part of make test: the twin with faults drawn
every cycle, then the server's data against the sensor's own log. `make soak` runs 500
cycles and a run with NB-IoT round trips; this is the same check, shorter. The two energy
faults are scripted (a draw over 80 cycles could miss them): the server silent for an hour
from cycle 8, an attach of 5 minutes at cycle 62."""
import pytest

from tools.soak.run import BOOT_MS, TUNE, Soak

# The server's "no answer" refusal uses aiocoap's empty ACK, made with an API aiocoap deprecated.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SILENT_AT, SLOW_ATTACH_AT = 8, 62


@pytest.fixture(scope="module")
def soak(tmp_path_factory):
    s = Soak(cycles=80, seed=5, out=str(tmp_path_factory.mktemp("soak")), queue_max=12,
             scripted={"server_silent_1h": SILENT_AT, "attach_5min": SLOW_ATTACH_AT})
    try:
        s.start()
        s.run()
        s.check()
    finally:
        s.stop()
    for line in s.report("soak_short"):
        print(line)
    return s


def test_a_short_fault_soak_loses_no_reading_and_dates_each_within_its_bound(soak):
    f = soak.figures
    assert f["readings"] >= 70
    for bad in ("lost", "wrong_time", "resent_unexplained", "stuck", "dead_untraced",
                "time_unknown_unexplained"):
        assert f[bad] == 0, (bad, f.get("lost_readings"))
    # The run did meet what it is there for: the full queue, refusals, power cuts.
    assert f["dropped_by_policy"] > 0
    for kind in ("loss30", "refusal", "power_cut", "no_network_time", "sntp_blocked",
                 "registration_loss"):
        assert soak.counts[kind] > 0, kind
    assert f["via_post"] > 0


def test_a_silent_server_or_a_slow_attach_ends_every_boot_in_deep_sleep_within_the_budget(soak):
    assert soak.ok(), soak.failures()
    budget_s = (TUNE["cycle_budget_ms"] + BOOT_MS) / 1000.0
    silent = soak.figures["energy"]["server_silent_1h"]
    # An hour of 10-minute wakes: the device tried, failed, then skipped the radio (back-off).
    assert silent["boots"] >= 5
    assert silent["failed"] >= 2 and silent["radio_skipped"] >= 1, silent
    slow = soak.figures["energy"]["attach_5min"]
    assert slow["boots"] >= 1 and slow["failed"] >= 1, slow  # the attach was tried, given up
    for e in (silent, slow):
        for must_be_0 in ("not_slept", "over_budget", "no_backoff", "stranded"):
            assert e[must_be_0] == 0, (must_be_0, e)
        assert 0 < e["awake_s_max"] <= budget_s, e
        assert e["sleep_s_min"] >= 300, e  # half the 600 s interval at least: no quick retry
        # Queued during it, delivered after (or thinned by the full queue's policy).
        assert e["delivered"] > 0 and e["delivered"] + e["dropped"] == e["readings"], e
    # The whole run in device time: awake a small part of it, and the figures say so.
    assert soak.figures["lost"] == 0
    assert 0 < soak.figures["duty_cycle_pct"] < 5
    assert 0 < soak.figures["awake_s_per_reading"] < budget_s


def test_the_soak_fails_naming_the_figure_when_a_faulted_boot_stays_awake_or_skips_sleep():
    s = Soak(cycles=3)
    s.interval_ms = 600000
    backed_off = "[enosnb] report failed (2 in a row): DtlsTimeout"

    def boot(i, fault, sleep_ms, awake_ms, log):
        return {"i": i, "real0": i * 10.0, "real1": i * 10.0 + 5, "offset": 0.0,
                "killed": False, "sleep_ms": sleep_ms, "log": log, "queued": {i},
                "awake_ms": awake_ms, "budget_ms": 62000, "faults": [fault]}
    s.boots = [boot(0, "server_silent_1h", None, 3000, ""),            # never deep-slept
               boot(1, "attach_5min", 599000, 70000, backed_off),     # awake past the budget
               boot(2, "server_silent_1h", 1000, 900, backed_off),    # back at once
               boot(3, "attach_5min", 599000, 900, "[enosnb] cycle: sent 1")]  # no back-off
    log = dict((i, {"t": i * 10000 + 1000}) for i in range(4))
    s.figures = dict(lost=0, wrong_time=0, resent_unexplained=0, stuck=0, dead_untraced=0,
                     time_unknown_unexplained=0,
                     energy=s._energy(log, {0: [], 1: [], 2: [], 3: []}, {}, set(), set()))
    assert s.failures() == ["fault.attach_5min.over_budget", "fault.attach_5min.no_backoff",
                            "fault.server_silent_1h.not_slept",
                            "fault.server_silent_1h.no_backoff"]
    assert not s.ok()
    assert s.figures["energy"]["attach_5min"]["awake_s_max"] == 70.0
