"""The SIM7020 and BC95 drivers against the modem emulator on a pseudo-terminal.

Bring-up, a UDP round trip through the emulator to a real echo server on 127.0.0.1, every fault
of the emulator with the recovery or error the driver promises, and the CoAP client over the modem
socket to an aiocoap server. Real time, short emulator delays; every loop is bounded.
"""
import time

import pytest

import machine
from enosnb.modem.bc95 import Bc95
from enosnb.modem.errors import AtCommandError, AtTimeout, ModemError, RegistrationError
from enosnb.modem.sim7020 import Sim7020
from tools.modem_emulator import ModemEmulator
from tools.netutil import UdpEcho

DIALECTS = ("sim7020", "bc95")
DRIVERS = {"sim7020": Sim7020, "bc95": Bc95}
BUDGET = {"sim7020": 12, "bc95": 10}


@pytest.fixture
def echo():
    with UdpEcho() as e:
        yield e


_UART_ID = [100]


def start(dialect, **kw):
    opts = dict(boot_time=0.05, registration_delay=0.1, cpin_delay=0.05)
    if dialect == "bc95":
        opts["early_error"] = 0.1
    opts.update(kw)
    return ModemEmulator(dialect, **opts)


def driver(emu, dialect, **kw):
    _UART_ID[0] += 1
    machine.UART.attach(_UART_ID[0], emu.port)
    # The boards' RX ring (board.json rxbuf): with the ESP32's default of 256 bytes a 512-byte
    # datagram's URC (over 1 KB) is cut whenever the reader is late by more than 22 ms.
    uart = machine.UART(_UART_ID[0], 115200 if dialect == "sim7020" else 9600, rxbuf=4096)
    opts = dict(reg_poll_ms=100, reattach_timeout_ms=3000, boot_timeout_ms=5000)
    opts.update(kw)
    return DRIVERS[dialect](uart, **opts)


def attached(emu, dialect, timeout_ms=120000, **kw):
    """A driver on emu, powered on, initialised and attached with APN iot.example."""
    m = driver(emu, dialect, **kw)
    m.power_on()
    m.init()
    m.attach("iot.example", timeout_ms=timeout_ms)
    return m


def cold(emu, dialect):
    """A driver on emu, initialised, with the radio off as on a module never attached."""
    m = driver(emu, dialect)
    m.power_on()
    m.init()
    if dialect == "sim7020":
        # The emulated SIM7020 comes up registered; a cold module has the radio off.
        m.cmd("AT+CFUN=0")
        m.cereg()
    return m


@pytest.fixture(params=DIALECTS)
def rig(request, echo):
    """(dialect, emulator, driver with a socket to the echo server), already brought up."""
    dialect = request.param
    emu = start(dialect)
    try:
        assert emu.wait_registered(5)
        m = attached(emu, dialect, 5000)
        s = m.socket("127.0.0.1", echo.port)
        yield dialect, emu, m, s
    finally:
        emu.stop()


def round_trip(s, data, timeout_ms=2000):
    s.send(data)
    return s.recv(timeout_ms)


# -- bring-up ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dialect", DIALECTS)
def test_warm_bringup_to_first_datagram_stays_within_the_command_budget(dialect, echo):
    with start(dialect) as emu:
        assert emu.wait_registered(5)
        time.sleep(0.15)
        m = attached(emu, dialect)
        s = m.socket("127.0.0.1", echo.port)
        s.send(b"x" * 100)
        assert m.at.commands <= BUDGET[dialect]
        assert s.recv(2000) == b"x" * 100


@pytest.mark.parametrize("dialect", DIALECTS)
def test_cold_bringup_configures_apn_and_waits_for_delayed_registration(dialect, echo):
    with start(dialect, registration_delay=1.0, autoconnect=False) if dialect == "bc95" \
            else start(dialect, registration_delay=1.0) as emu:
        m = cold(emu, dialect)
        t0 = time.monotonic()
        m.attach("iot.example", bands=(20,) if dialect == "sim7020" else (8,), timeout_ms=5000)
        assert m.registered and time.monotonic() - t0 >= 0.9
        assert m.imei() == emu.imei
        assert m.iccid() == emu.iccid
        assert m.ip() == emu.ip
        assert m.signal() == -113 + 2 * emu.csq[0]
        s = m.socket("127.0.0.1", echo.port)
        assert round_trip(s, b"cold") == b"cold"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_registration_that_never_comes_gives_registration_error_by_the_deadline(dialect):
    with start(dialect, registration_delay=60.0) as emu:
        m = cold(emu, dialect)
        t0 = time.monotonic()
        with pytest.raises(RegistrationError) as e:
            m.attach("iot.example", timeout_ms=800)
        assert time.monotonic() - t0 < 5
        assert e.value.stat == 2


def test_power_on_pulses_the_power_key_only_when_the_module_is_silent():
    with start("sim7020") as emu:
        presses = []

        def on_pin(_id, v):
            if not v:
                presses.append(v)
                emu.pwrkey()

        machine.Pin.watch(3999, on_pin)
        assert emu.wait_booted(5)
        m = driver(emu, "sim7020", pwrkey=machine.Pin(3999, machine.Pin.OUT))
        m.power_on()
        assert presses == []
        emu.power_off()
        time.sleep(0.05)
        m.power_on()
        assert presses == [0] and emu.powered
        m.init()
        assert m.imei() == emu.imei


@pytest.mark.parametrize("board", ("esp32-sim7020", "esp32-bc95"))
def test_driver_wired_from_the_board_file_brings_the_module_up(board, echo):
    import json
    import os
    from enosnb.modem import from_board
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "boards", board, "board.json")) as f:
        cfg = json.load(f)
    with start(cfg["modem"]) as emu:
        assert emu.wait_registered(5)
        machine.UART.attach(cfg["uart"]["id"], emu.port)
        try:
            m = from_board(cfg, reg_poll_ms=100)
            key = cfg.get("pwrkey") or cfg["reset"]
            assert m.pwrkey is not None and m.pwrkey_ms == key["pulse_ms"]
            m.power_on()
            m.init()
            m.attach()
            assert round_trip(m.socket("127.0.0.1", echo.port), b"board") == b"board"
        finally:
            machine.UART.detach(cfg["uart"]["id"])


# -- data path ---------------------------------------------------------------------------------

def test_udp_round_trip_through_the_emulator_to_a_real_echo_server(rig, echo):
    dialect, emu, m, s = rig
    for size in (1, 100, 512):
        data = bytes(range(256)) * 2
        assert round_trip(s, data[:size]) == data[:size]
    assert echo.received[-1] == data[:512]
    assert s.datagrams_sent == 3 and s.datagrams_received == 3


def test_two_queued_downlinks_both_arrive(rig, echo):
    dialect, emu, m, s = rig
    s.send(b"one")
    s.send(b"two")
    got = [s.recv(2000), s.recv(2000)]
    assert sorted(got) == [b"one", b"two"]


# -- faults --------------------------------------------------------------------------------

def test_error_and_cme_error_on_a_command_reach_the_caller_then_the_modem_works(rig):
    dialect, emu, m, s = rig
    emu.fail_command("+CSQ")
    with pytest.raises(AtCommandError) as e:
        m.signal()
    assert e.value.code is None
    emu.fail_command("+CSQ", code=50)
    with pytest.raises(AtCommandError) as e:
        m.signal()
    assert e.value.code == 50
    assert m.signal() == -73


def test_refused_send_is_retried_once_and_the_datagram_arrives(rig, echo):
    dialect, emu, m, s = rig
    emu.fail_command("+CSOSEND" if dialect == "sim7020" else "+NSOST", code=3)
    assert round_trip(s, b"retry") == b"retry"
    assert echo.received.count(b"retry") == 1


def test_send_refused_every_time_raises_instead_of_losing_the_datagram(rig, echo):
    dialect, emu, m, s = rig
    emu.fail_command("+CSOSEND" if dialect == "sim7020" else "+NSOST", code=3, times=None)
    with pytest.raises(ModemError) as e:
        s.send(b"lost?")
    assert isinstance(e.value, OSError) and "not sent" in str(e.value)
    emu.clear_faults()
    assert round_trip(s, b"after") == b"after"


def test_busy_uplink_is_retried(rig, echo):
    dialect, emu, m, s = rig
    emu.busy_on_send(times=1)
    assert round_trip(s, b"busy") == b"busy"


def test_response_delayed_past_its_timeout_gives_at_timeout_then_resyncs(rig):
    dialect, emu, m, s = rig
    m.timeouts["AT+CSQ"] = 300
    emu.delay_response("+CSQ", 0.8)
    with pytest.raises(AtTimeout):
        m.signal()
    assert m.at.stale
    assert m.signal() == -73
    assert not m.at.stale and m.resyncs == 1


def test_send_answer_delayed_past_its_timeout_recovers_and_delivers(rig, echo):
    dialect, emu, m, s = rig
    key = "AT+CSOSEND" if dialect == "sim7020" else "AT+NSOST"
    m.timeouts[key] = 500
    emu.delay_response(key[2:], 1.5)
    s.send(b"slow")
    # At least once: the first copy may have gone out before its OK was late.
    assert s.recv(3000) == b"slow"
    assert 1 <= echo.received.count(b"slow") <= 2


@pytest.mark.parametrize("send_first", (False, True))
def test_reboot_in_the_middle_of_a_send_reinitialises_and_sends(rig, echo, send_first):
    dialect, emu, m, s = rig
    emu.reboot_on("+CSOSEND" if dialect == "sim7020" else "+NSOST", send_first=send_first)
    s.send(b"reboot")
    assert m.recoveries == 1
    assert s.recv(3000) == b"reboot"
    assert 1 <= echo.received.count(b"reboot") <= 2
    assert round_trip(s, b"again") == b"again"


def test_spontaneous_reboot_while_idle_is_noticed_and_the_socket_reopened(rig, echo):
    dialect, emu, m, s = rig
    emu.reboot()
    assert s.recv(1500) is None
    assert m.recoveries >= 1
    assert round_trip(s, b"alive") == b"alive"


def test_lost_registration_waits_for_it_to_come_back_then_sends(rig, echo):
    dialect, emu, m, s = rig
    emu.lose_registration(duration=1.0)
    time.sleep(0.1)
    assert round_trip(s, b"back") == b"back"


def test_registration_lost_for_good_gives_registration_error(rig):
    dialect, emu, m, s = rig
    m.reattach_timeout_ms = 800
    emu.lose_registration(duration=None)
    time.sleep(0.1)
    with pytest.raises(RegistrationError):
        s.send(b"nowhere")


def test_urc_inside_a_response_is_routed_and_the_response_still_parses(rig, echo):
    dialect, emu, m, s = rig
    if dialect == "sim7020":
        emu.urc_in_response("+CSONMI: %d,8,CAFEBABE" % s.id, command="+CSQ")
    else:
        emu.urc_in_response("+CSCON:1", command="+CSQ")
    assert m.signal() == -73
    if dialect == "sim7020":
        assert s.recv(0) == b"\xca\xfe\xba\xbe"


def test_garbage_on_the_line_is_dropped_and_counted(rig, echo):
    dialect, emu, m, s = rig
    emu.send_garbage()
    emu.garbage_in_response(command="+CSQ")
    assert m.signal() == -73
    assert m.at.dropped_bytes > 0
    assert round_trip(s, b"clean") == b"clean"


def test_dropped_uplink_means_no_answer_and_the_next_send_works(rig, echo):
    dialect, emu, m, s = rig
    emu.drop_uplink(1)
    assert round_trip(s, b"gone", 500) is None
    emu.drop_downlink(1)
    assert round_trip(s, b"gone too", 500) is None
    assert round_trip(s, b"here") == b"here"


def test_socket_closed_by_network_is_reopened_on_the_next_send(rig, echo):
    dialect, emu, m, s = rig
    emu.close_socket_by_network()
    assert s.recv(300) is None
    assert s.net_closed == 1 and s.id is None
    assert round_trip(s, b"reopened") == b"reopened"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_socket_kept_over_a_host_reboot_is_adopted_by_the_next_driver(dialect, echo):
    with start(dialect) as emu:
        assert emu.wait_registered(5)
        first = attached(emu, dialect, 5000)
        sid = first.socket("127.0.0.1", echo.port).id
        # The ESP32 deep-sleeps and boots again: a new driver, the module's socket still open.
        first.at.uart.deinit()
        m = attached(emu, dialect, 5000)
        del emu.commands_log[:]
        s = m.adopt_socket(sid, "127.0.0.1", echo.port)
        assert round_trip(s, b"kept") == b"kept"
        assert s.id == sid
        assert not [c for c in emu.commands_log if c.startswith(("AT+CSOC=", "AT+NSOCR"))]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_psm_wake_reinitialises_and_the_socket_still_carries_datagrams(dialect, echo):
    with start(dialect) as emu:
        assert emu.wait_registered(5)
        kw = {}
        if dialect == "sim7020":
            # LilyGO wiring: the GPIO drives a transistor, so the pulse is active-high.
            pin_id = 4000 + _UART_ID[0]
            machine.Pin.watch(pin_id, lambda _id, v: v and emu.pwrkey())
            kw = dict(pwrkey=machine.Pin(pin_id, machine.Pin.OUT), pwrkey_active_high=True,
                      pwrkey_ms=50)
        m = attached(emu, dialect, **kw)
        s = m.socket("127.0.0.1", echo.port)
        m.psm(6 * 3600, 10)
        assert emu.psm_req == ("00100110", "00000101")
        emu.enter_psm()
        assert s.recv(300) is None and m.in_psm
        assert round_trip(s, b"awake") == b"awake"
        assert not m.in_psm and m.recoveries == 1
        if dialect == "sim7020":
            log = emu.commands_log
            after = log[len(log) - 1 - log[::-1].index("AT+CPSMSTATUS=1"):]
            assert "AT+CSORCVFLAG=0" in after


# -- CoAP over the modem socket ----------------------------------------------------------------

@pytest.mark.parametrize("dialect", DIALECTS)
def test_coap_client_over_the_modem_socket_talks_to_aiocoap(dialect):
    aiocoap = pytest.importorskip("aiocoap")
    from aiocoap.resource import Resource
    from enosnb.coap.client import Client, Timing
    from tools.aiocoap_server import AiocoapServer

    class Hello(Resource):
        async def render_post(self, request):
            return aiocoap.Message(code=aiocoap.CHANGED, payload=b"hi " + request.payload)

    with AiocoapServer() as server, start(dialect) as emu:
        server.site.add_resource(["hello"], Hello())
        assert emu.wait_registered(5)
        m = attached(emu, dialect)
        s = m.socket("127.0.0.1", server.port)
        s.last_exchange = True
        c = Client(s, timing=Timing(ack_timeout_ms=1000, max_retransmit=2))
        r = c.post("/hello", b"modem")
        assert r.code == 0x44 and r.payload == b"hi modem"
        emu.drop_uplink(1)
        r = c.post("/hello", b"again")
        assert r.payload == b"hi again" and r.retransmissions == 1


# -- as the real modules behave (modems.md §13): each test fails with the drivers of before ----

def sent(emu, prefix):
    return [c for c in emu.commands_log if c.startswith(prefix)]


def utc_seconds(t):
    """Seconds since 1970 of an RTC datetime tuple (y, m, d, weekday, h, m, s, sub)."""
    import calendar
    return calendar.timegm((t[0], t[1], t[2], t[4], t[5], t[6]))


def test_sim7020_cold_attach_with_apn_and_bands_takes_cpin_not_ready_for_the_radio_going_off():
    # Point 1: AT+CFUN=0 answers +CPIN: NOT READY before OK (Low Power Mode AN §6.1.2).
    with start("sim7020", bands=(3, 8), network_band=20) as emu:
        m = driver(emu, "sim7020")
        m.power_on()
        m.init()
        m.attach("iot.example", bands=(20,), timeout_ms=5000)
        assert m.registered and m.recoveries == 0 and emu.bands == [20]
        assert emu.apn == "iot.example" and emu.reboots == 0


@pytest.mark.parametrize("revision", ("old", "V100R100C10B657SP1"))
def test_bc95_firmware_without_ate_initialises_recovers_and_never_sends_ate_again(
        revision, echo):
    # Point 2: ATE exists from B657SP2 only (manual V1.8 §2, FAQ §2.10).
    with start("bc95", revision=revision) as emu:
        assert emu.wait_registered(5)
        m = attached(emu, "bc95", 5000)
        s = m.socket("127.0.0.1", echo.port)
        assert round_trip(s, b"old") == b"old"
        emu.reboot()
        assert s.recv(1500) is None and m.recoveries == 1
        assert round_trip(s, b"after reboot") == b"after reboot"
        assert not sent(emu, "ATE") and sent(emu, "AT+CGMR") == ["AT+CGMR"]
        # The next cycle's driver knows the module: no AT+CGMR, no ATE.
        del emu.commands_log[:]
        m2 = driver(emu, "bc95", memory=m.memory())
        m2.power_on()
        m2.init()
        assert not sent(emu, "ATE") and not sent(emu, "AT+CGMR")


@pytest.mark.parametrize("curtc", (0, 1))
def test_sim7020_network_time_is_utc_whatever_curtc_the_module_came_with(curtc):
    # Point 3: AT+CCLK? shows UTC after NITZ with AT+CURTC=0 (manual V1.05).
    with start("sim7020", curtc=curtc, tz=32) as emu:
        assert emu.wait_registered(5)
        m = attached(emu, "sim7020")
        assert abs(utc_seconds(m.network_time()) - time.time()) < 5
        assert m.tz_quarters == 32 and emu.curtc == 0


@pytest.mark.parametrize("cclk,utc", (("utc", None), ("local", False)))
def test_bc95_network_time_reads_the_clock_as_the_board_file_says(cclk, utc):
    with start("bc95", cclk=cclk, tz=-20) as emu:
        assert emu.wait_registered(5)
        m = attached(emu, "bc95", cclk_utc=utc)
        assert abs(utc_seconds(m.network_time()) - time.time()) < 5


def test_sim7020_network_time_from_the_clts_urc_when_the_clock_has_none():
    with start("sim7020", nitz=False) as emu:
        assert emu.wait_registered(5)
        m = attached(emu, "sim7020")
        assert m.network_time() is None
        emu.inject_urc('+CLTS: "24/02/29,23:30:00+08"')     # local, UTC+2
        m.at.poll(300)
        assert m.network_time()[:7] == (2024, 2, 29, 3, 21, 30, 0)


@pytest.mark.parametrize("apn", (None, "iot.example"))
def test_bc95_cold_attach_while_autoconnect_attaches_waits_instead_of_aborting(apn):
    # Point 4: AT+CGATT=1 and AT+CFUN are refused while AUTOCONNECT attaches (FAQ §2.4, §2.6).
    with start("bc95", registration_delay=1.0) as emu:
        assert emu.wait_booted(5)
        time.sleep(0.2)
        m = driver(emu, "bc95")
        m.power_on()
        m.init()
        m.attach(apn, timeout_ms=8000)
        assert m.registered and (emu.apn == (apn or ""))


def test_sim7020_imei_and_resync_work_where_cgsn_1_is_refused(rig):
    # Point 5: only AT+CGSN and AT+GSN are documented (manual §3.2.6).
    dialect, emu, m, s = rig
    assert m.imei() == emu.imei
    m.timeouts["AT+CSQ"] = 300
    emu.delay_response("+CSQ", 0.8)
    with pytest.raises(AtTimeout):
        m.signal()
    assert m.signal() == -73 and m.resyncs == 1 and m.recoveries == 0


def test_bc95_b657sp1_psm_is_granted_without_npsmr_and_reported():
    # Point 6: AT+NPSMR needs B657SP2, AT+CPSMS B657SP1.
    with start("bc95", revision="V100R100C10B657SP1") as emu:
        assert emu.wait_registered(5)
        m = attached(emu, "bc95")
        assert m.psm(86400, 2) == (86400, 2)
        assert not sent(emu, "AT+NPSMR") and emu.psm_req == ("00111000", "00000001")
    with start("bc95", revision="old") as emu:
        assert emu.wait_registered(5)
        m = attached(emu, "bc95")
        assert m.psm(86400, 2) is None and not sent(emu, "AT+CPSMS")


def test_sim7020_last_exchange_lets_the_network_release_the_radio_right_after_the_reply(echo):
    # Point 7: AT+CNBIOTRAI (manual §5.2.27), not AT+CNMPSD; PSM after ~4 s instead of ~20 s.
    with start("sim7020", rrc_inactivity=20.0, release_delay=0.05) as emu:
        assert emu.wait_registered(5)
        m = attached(emu, "sim7020")
        s = m.socket("127.0.0.1", echo.port)
        s.last_exchange = True
        assert round_trip(s, b"last") == b"last"
        m.release()
        assert emu.wait_until(lambda: emu.rrc == 0, 1.0)


def test_sim7020_psm_wake_pulse_never_switches_off_a_module_already_awake():
    # Point 8: PWRKEY low for 0.8 s powers off (Hardware Design V1.02 tables 8, 9).
    with start("sim7020") as emu:
        assert emu.wait_registered(5)
        held = []
        pin_id = 4100 + _UART_ID[0]

        def on_pin(_id, v, since=[]):
            if not v:
                since.append(time.monotonic())
            elif since:
                held.append(time.monotonic() - since.pop())
                emu.pwrkey(held[-1])
        machine.Pin.watch(pin_id, on_pin)
        m = attached(emu, "sim7020", pwrkey=machine.Pin(pin_id, machine.Pin.OUT), pwrkey_ms=800)
        m.in_psm = True        # it went to PSM, then woke for a TAU while the host slept
        assert m.signal() == -73
        assert held and max(held) < 0.8
        assert emu.powered and emu.reboots == 0
        assert b"NORMAL POWER DOWN" not in b"".join(d for k, d in emu.transcript if k == "out")


def test_bc95_before_b656_sends_the_last_request_from_the_same_socket():
    # Point 9: no AT+NSOSTF before B656; a new socket would mean a new source port.
    with UdpEcho() as peer:
        with start("bc95", revision="old") as emu:
            assert emu.wait_registered(5)
            m = attached(emu, "bc95")
            s = m.socket("127.0.0.1", peer.port)
            s.last_exchange = True
            assert round_trip(s, b"one") == b"one" and round_trip(s, b"two") == b"two"
            assert len(set(peer.sources)) == 1 and len(sent(emu, "AT+NSOCR")) == 1
            assert not sent(emu, "AT+NSOCL") and len(sent(emu, "AT+NSOSTF")) <= 1
            # Kept across deep sleep: the next cycle does not try NSOSTF at all.
            del emu.commands_log[:]
            m2 = driver(emu, "bc95", memory=m.memory())
            m2.power_on()
            m2.init()
            s2 = m2.adopt_socket(s.id, "127.0.0.1", peer.port)
            s2.last_exchange = True
            assert round_trip(s2, b"three") == b"three" and not sent(emu, "AT+NSOSTF")


def test_sim7020_psm_fixes_the_baud_rate_so_the_first_command_after_a_wake_is_answered(echo):
    # Point 10: the factory rate is autobaud (AT+IPR=0).
    with start("sim7020") as emu:
        assert emu.wait_registered(5)
        pin_id = 4200 + _UART_ID[0]
        machine.Pin.watch(pin_id, lambda _id, v: v and emu.pwrkey(0.3))
        m = attached(emu, "sim7020", pwrkey=machine.Pin(pin_id, machine.Pin.OUT),
                     pwrkey_active_high=True, pwrkey_ms=300, baudrate=115200)
        s = m.socket("127.0.0.1", echo.port)
        m.psm(3600, 2)
        assert emu.ipr == 115200
        emu.enter_psm()
        assert s.recv(300) is None and m.in_psm
        before = emu.commands_received
        sent_before = m.at.commands
        assert round_trip(s, b"awake") == b"awake"
        assert m.at.commands - sent_before == emu.commands_received - before
        assert m.resyncs == 0


@pytest.mark.parametrize("mode", (2, 3))
def test_bc95g_left_in_a_data_carrying_nsonmi_mode_loses_no_downlink(mode, echo):
    # Point 11: AT+NSONMI (BC95-G&BC68 manual) left at 2 or 3 puts the data in the URC.
    with start("bc95", revision="bc95g", nsonmi=mode) as emu:
        assert emu.wait_registered(5)
        m = attached(emu, "bc95")
        s = m.socket("127.0.0.1", echo.port)
        assert round_trip(s, b"inline") == b"inline"     # a wake: the mode is as found
        m.cold_start()
        assert emu.nsonmi_mode == 1
        assert round_trip(s, b"buffered") == b"buffered"


def test_bc95_band_change_is_followed_by_a_reboot_and_registers_on_the_new_band():
    # Point 12: AT+NBAND takes effect only after AT+NRB (manual §5.19, §9.1).
    with start("bc95", autoconnect=False, bands=(20,), network_band=8) as emu:
        assert emu.wait_booted(5)
        m = driver(emu, "bc95")
        m.power_on()
        m.init()
        m.attach("iot.example", bands=(8,), timeout_ms=5000)
        assert m.registered and emu.active_bands() == [8]
        assert sent(emu, "AT+NRB")


def test_bc95_datagram_over_512_bytes_arrives_whole():
    # Point 13: up to 1,472 bytes (manual §5.17); NSORF returns at most what was asked.
    big = bytes(range(256)) * 3 + bytes(232)
    with UdpEcho(lambda d: big) as peer, start("bc95") as emu:
        assert emu.wait_registered(5)
        m = attached(emu, "bc95")
        s = m.socket("127.0.0.1", peer.port)
        assert round_trip(s, b"?") == big
        assert s.recv(300) is None


# -- nothing drains the battery (issue of registration, sockets, PSM) ------------------------

@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_searching_module_with_the_right_settings_is_left_searching(dialect):
    bands = (20,) if dialect == "sim7020" else (8,)
    kw = {"bands": bands}
    with start(dialect, registration_delay=1.0, **kw) as emu:
        emu.apn = "iot.example"
        assert emu.wait_booted(5)
        time.sleep(0.15)
        m = driver(emu, dialect)
        m.power_on()
        m.init()
        del emu.commands_log[:]
        m.attach("iot.example", bands=bands, timeout_ms=5000)
        assert m.registered
        assert not [c for c in emu.commands_log if c.startswith(
            ("AT+CFUN=", "AT+CBAND=", "AT+NBAND=", "AT*MCGDEFCONT=", "AT+CGDCONT=", "AT+NRB"))]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_radio_off_stops_a_module_that_cannot_register_and_attach_brings_it_back(dialect):
    with start(dialect) as emu:
        assert emu.wait_registered(5)
        m = attached(emu, dialect, 5000)
        emu.lose_registration(duration=None)       # searching, in a coverage hole
        time.sleep(0.1)
        m.radio_off()
        assert emu.cfun == 0 and emu.stat == 0
        emu.regain_registration()
        m2 = driver(emu, dialect, memory=m.memory())
        m2.power_on()
        m2.init()
        m2.attach(timeout_ms=5000)
        assert m2.registered and emu.cfun == 1


def test_radio_off_powers_a_sim7020_down_where_the_board_can_power_it_up_again():
    with start("sim7020") as emu:
        assert emu.wait_registered(5)
        pin_id = 4300 + _UART_ID[0]
        machine.Pin.watch(pin_id, lambda _id, v: v and emu.pwrkey(0.5))
        kw = dict(pwrkey=machine.Pin(pin_id, machine.Pin.OUT), pwrkey_active_high=True,
                  pwrkey_ms=50)
        m = attached(emu, "sim7020", 5000, **kw)
        m.radio_off()
        assert emu.wait_until(lambda: not emu.powered, 1.0)
        m2 = driver(emu, "sim7020", memory=m.memory(), **kw)
        m2.power_on()
        assert m2.fresh and emu.powered
        m2.init()
        m2.attach(timeout_ms=5000)
        assert m2.registered


def test_a_first_attach_gets_the_scan_budget_and_a_later_one_does_not():
    with start("sim7020", registration_delay=1.0) as emu:
        assert emu.wait_booted(5)
        scans = []
        m = driver(emu, "sim7020")
        m.power_on()
        m.init()
        m.attach(timeout_ms=300, scan_timeout_ms=5000, on_scan=scans.append)
        assert m.registered and scans == [5000]
        emu.lose_registration(duration=None)
        m2 = driver(emu, "sim7020", memory=m.memory())
        m2.power_on()
        m2.init()
        t0 = time.monotonic()
        with pytest.raises(RegistrationError):
            m2.attach(timeout_ms=300, scan_timeout_ms=5000, on_scan=scans.append)
        assert time.monotonic() - t0 < 2 and scans == [5000]


def leave_every_socket_open(emu, dialect, port):
    """Sockets opened by earlier host boots until the module has none left; returns how many."""
    n = 5 if dialect == "sim7020" else 7
    for _ in range(n):
        attached(emu, dialect, 5000).socket("127.0.0.1", port)
    assert emu.open_sockets() == list(range(n))
    return n


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_cold_boot_closes_the_sockets_a_previous_boot_left_on_the_module(dialect, echo):
    with start(dialect) as emu:
        assert emu.wait_registered(5)
        leave_every_socket_open(emu, dialect, echo.port)
        m = attached(emu, dialect, 5000)
        m.cold_start()
        assert emu.open_sockets() == []
        assert round_trip(m.socket("127.0.0.1", echo.port), b"fresh") == b"fresh"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_module_out_of_sockets_is_reset_only_when_closing_them_fails(dialect, echo):
    with start(dialect) as emu:
        assert emu.wait_registered(5)
        leave_every_socket_open(emu, dialect, echo.port)
        m = attached(emu, dialect, 5000)
        s = m.socket("127.0.0.1", echo.port)       # no cold_start: the ids are freed anyway
        assert emu.reboots == 0 and round_trip(s, b"freed") == b"freed"
        m.close()
        leave_every_socket_open(emu, dialect, echo.port)
        emu.fail_command("+CSOCL" if dialect == "sim7020" else "+NSOCL", times=None)
        m = attached(emu, dialect, 5000)
        s = m.socket("127.0.0.1", echo.port)
        assert emu.reboots == 1 and round_trip(s, b"reset") == b"reset"


@pytest.mark.parametrize("dialect,grant,expected", [
    ("sim7020", "request", (3600, 2)), ("bc95", "request", (3600, 2)),
    ("sim7020", "refuse", False), ("bc95", ("00100010", "00100001"), (7200, 60)),
])
def test_psm_reads_back_what_the_network_granted_and_switches_edrx_off(dialect, grant, expected):
    with start(dialect, psm_grant=grant, edrx="0101") as emu:
        assert emu.wait_registered(5)
        m = attached(emu, dialect)
        assert m.psm(3600, 2) == expected == m.psm_granted
        assert emu.edrx is None
        m2 = attached(emu, dialect, memory=m.memory())  # a wake reads it for free
        assert m2.psm_granted == expected
