"""A short seeded fault soak (tools/soak) as part of make test: the twin with faults drawn
every cycle, then the server's data against the sensor's own log. `make soak` runs 500
cycles and a run with NB-IoT round trips; this is the same check, shorter."""
import pytest

from tools.soak.run import Soak


# The server's "no answer" refusal uses aiocoap's empty ACK, made with an API aiocoap deprecated.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_short_fault_soak_loses_no_reading_and_dates_each_within_its_bound(tmp_path):
    soak = Soak(cycles=90, seed=5, out=str(tmp_path / "soak"), queue_max=12)
    try:
        soak.start()
        soak.run()
        f = soak.check()
    finally:
        soak.stop()
    for line in soak.report("soak_short"):
        print(line)
    assert f["readings"] >= 80
    for bad in ("lost", "wrong_time", "resent_unexplained", "stuck", "dead_untraced",
                "time_unknown_unexplained"):
        assert f[bad] == 0, (bad, f.get("lost_readings"))
    # The run did meet what it is there for: the full queue, refusals, power cuts.
    assert f["dropped_by_policy"] > 0
    for kind in ("loss30", "refusal", "power_cut", "no_network_time", "sntp_blocked",
                 "registration_loss"):
        assert soak.counts[kind] > 0, kind
    assert f["via_post"] > 0
