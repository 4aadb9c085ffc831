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
    uart = machine.UART(_UART_ID[0], 115200 if dialect == "sim7020" else 9600)
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
