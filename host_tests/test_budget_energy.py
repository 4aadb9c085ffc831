"""The budget's NAT and energy figures: what a wake behind an expired NAT binding costs per
server variant (real firmware code against the local server), the phase log the twin figures
come from, and the energy model's arithmetic."""
from tools.budget import energy, phases, wake_nat


def test_a_wake_behind_the_nat_costs_one_round_trip_with_cid_and_more_without():
    got = {}
    for v in wake_nat.VARIANTS:
        w, cid = wake_nat.run(v)
        got[v] = (w.figures()["round_trips"], w.figures()["ip_bytes"], cid is not None)
    assert [got[v][0] for v in ("cid", "resume", "hvr", "full")] == [1, 2, 3, 4]
    assert got["cid"][2] and not got["resume"][2]  # only the CID server negotiates one
    assert got["cid"][1] < got["resume"][1] < got["hvr"][1] < got["full"][1]
    assert energy.awake_s(1) < energy.awake_s(2)


def test_the_phase_log_line_is_read_back_per_phase():
    log = "[enosnb] cycle: x\n[enosnb] phases (ms): measure 3 attach 45 handshake 40 save 10\n"
    assert phases.parse(log) == {"measure": 3, "attach": 45, "handshake": 40, "save": 10}
    assert phases.parse("nothing") == {}


def test_energy_grows_with_round_trips_attach_and_failure_and_the_board_floor_counts():
    fig = {"round_trips": 1, "ip_bytes": 347}
    wake = energy.cycle(fig, 6)["mAh"]
    nat = energy.cycle({"round_trips": 2, "ip_bytes": 747}, 7)["mAh"]
    cold = energy.cycle({"round_trips": 4, "ip_bytes": 1100}, 15, cold=True)["mAh"]
    drain = energy.cycle(fig, 9, drain=True)["mAh"]
    assert wake < nat < cold < drain
    chips, _ = energy.sleep_floor_ma({})
    board, where = energy.sleep_floor_ma({"sleep_floor_ua": 120})
    assert abs(chips - 0.0134) < 1e-9 and board == 0.12 and "board.json" in where
    assert energy.battery_mah({"battery": {"capacity_mah": 5200}})[0] == 5200
    long_life = energy.life_days(wake, chips, 2600)
    assert energy.life_days(wake, board, 2600) < long_life
    assert energy.life_days(nat, chips, 2600) < long_life
    # 1 mAh per 600 s cycle and nothing else: 2600 mAh last 2600 cycles = 18.06 days.
    assert abs(energy.life_days(1.0, 0.0, 2600) - 2600 * 600 / 86400.0) < 1e-9
