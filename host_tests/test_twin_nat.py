"""The device behind the carrier's NAT and through resets, in the host twin (firmware/main.py
unchanged, modem emulator with its NAT model, local EnOS server): the NAT lifetime is learnt,
a restored session is probed for about two round trips only, a server with Connection ID
keeps every wake at one round trip, plain mode re-authenticates, and a reset in the middle of
a cycle is followed by a back-off sleep with the radio off."""
from host_tests.test_twin import twin_factory  # noqa: F401  (the fixture)


def _connect(boot):
    line = boot.line("[enosnb] cycle: ")
    return line.split("connect ")[1].split(",")[0] if line else None


def _gap_to_next_hello(twin, after):
    """Seconds from the first uplink at or after `after` to the next ClientHello."""
    ups = [(t, d) for t, k, d in list(twin.emu.timeline) if k == "up" and t >= after]
    probe = ups[0][0]
    hello = [t for t, d in ups[1:] if d[0] == 22 and len(d) > 13 and d[13] == 1]
    return hello[0] - probe


def test_behind_a_nat_the_device_learns_its_lifetime_and_resumes_without_probing_again(
        twin_factory):
    import time
    twin = twin_factory()
    twin.run_cycle()
    t = time.monotonic()
    boots = twin.run_cycles(3)
    assert twin.emu.nat.rebinds == 3  # every 600 s sleep outlived the 45 s binding
    assert [_connect(b) for b in boots] == ["restore-failed/resumed", "resumed", "resumed"]
    assert twin.readings() == [1, 2, 3, 4]
    # One short probe (about two round trips, at least probe_min_ms = 1 s), not the CoAP
    # ACK timeout of 2 s with a retransmission (6 s and more).
    assert 0.9 <= _gap_to_next_hello(twin, t) < 4.5
    assert sum("handshake ok" in m for m in twin.server_log) == 1
    assert sum("session resumed" in m for m in twin.server_log) == 3


def test_with_connection_id_every_wake_behind_the_nat_is_one_round_trip(twin_factory):
    twin = twin_factory(dtls_variant="cid")
    twin.run_cycle()
    ups = []
    boots = []
    for _ in range(3):
        before = (twin.emu.datagrams_up, twin.emu.datagrams_down)
        boots.append(twin.run_cycle())
        ups.append((twin.emu.datagrams_up - before[0], twin.emu.datagrams_down - before[1]))
    assert twin.emu.nat.rebinds == 3
    assert [_connect(b) for b in boots] == ["restored"] * 3
    assert ups == [(1, 1)] * 3
    assert twin.readings() == [1, 2, 3, 4]
    assert sum("session moved" in m for m in twin.server_log) == 3
    assert sum("handshake ok" in m for m in twin.server_log) == 1


def test_plain_mode_behind_a_nat_authenticates_again_once_then_goes_straight_to_auth(
        twin_factory):
    twin = twin_factory(dtls=False)
    boots = twin.run_cycles(3)
    assert [_connect(b) for b in boots] == ["plain", "plain-kept", "plain"]
    assert twin.readings() == [1, 2, 3]
    # Wake 1: the kept /auth binding is refused from the new port (4.01), one new /auth.
    # Wake 2: the device knows the binding is gone and sends /auth first: no 4.01.
    assert sum(m.startswith("4.01 ") for m in twin.server_log) == 1
    assert sum(m.startswith("auth ") for m in twin.server_log) == 3


def test_a_reset_in_the_middle_of_a_cycle_is_followed_by_a_back_off_sleep_with_the_radio_off(
        twin_factory):
    twin = twin_factory(emulator={"nat": None})
    twin.run_cycle()
    crashed = twin.run_cycle(kill_at=6, crash=True)
    assert crashed.killed
    del twin.emu.commands_log[:]
    up = twin.emu.datagrams_up
    b = twin.run_cycle()
    assert "watchdog, brown-out or crash reset (1 in a row)" in b.log
    assert 30000 <= b.sleep_ms <= 60000  # randomised back-off, not the report interval
    # The half-written command of the crashed boot is flushed by the sync, then the module is
    # powered down (the board has a power key to bring it back); nothing is sent.
    assert twin.emu.commands_log[-1] == "AT+CPOWD=1"
    assert twin.emu.datagrams_up == up
    b = twin.run_cycle()
    assert twin.readings()[-1] == 3 and b.sleep_ms > 590000
