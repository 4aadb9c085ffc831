"""The modem emulator's own behaviour, byte for byte (docs/modems.md §10), driven by raw AT text
written to its pseudo-terminal (not through the drivers)."""
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import time
import tty

import pytest

from tools.modem_emulator import ModemEmulator
from tools.netutil import Process, udp_socket

FINAL = re.compile(rb"\r\n(OK|ERROR|\+CME ERROR:[^\r\n]*)\r\n")
SIM_BANNER = b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nSMS Ready\r\n"
BC95_BANNER_END = b"\r\nNeul\r\n\r\nOK\r\n"


class Term:
    """The device side of the pty, at the byte level."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.buf = b""

    def write(self, data):
        os.write(self.fd, data)

    def _fill(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if r:
            self.buf += os.read(self.fd, 65536)
            return True
        return False

    def read_until(self, pattern, timeout=3.0):
        """Bytes up to and including the first match of pattern (bytes or compiled regex)."""
        deadline = time.monotonic() + timeout
        rx = re.compile(re.escape(pattern)) if isinstance(pattern, bytes) else pattern
        while True:
            m = rx.search(self.buf)
            if m:
                out, self.buf = self.buf[:m.end()], self.buf[m.end():]
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %r within %.1f s; got %r" % (rx.pattern, timeout, self.buf))
            self._fill(min(left, 0.2))

    def drain(self, seconds=0.1):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._fill(max(0.0, deadline - time.monotonic()))
        out, self.buf = self.buf, b""
        return out

    def at(self, cmd, timeout=3.0):
        """Sends one command; returns every byte up to and including its final result."""
        self.write(cmd.encode("latin-1") + b"\r")
        return self.read_until(FINAL, timeout)

    def close(self):
        os.close(self.fd)


class Peer:
    """A UDP server on 127.0.0.1 standing in for the cloud."""

    def __init__(self):
        self.sock = udp_socket(2.0)
        self.port = self.sock.getsockname()[1]

    def recv(self, timeout=2.0):
        self.sock.settimeout(timeout)
        return self.sock.recvfrom(65535)

    def nothing(self, timeout=0.2):
        self.sock.settimeout(timeout)
        try:
            self.sock.recvfrom(65535)
        except socket.timeout:
            return True
        return False


@pytest.fixture
def make():
    made = []

    def _make(dialect="sim7020", ready=True, **kw):
        kw.setdefault("boot_time", 0.01)
        kw.setdefault("registration_delay", 0.02)
        if dialect == "bc95":
            kw.setdefault("early_error", 0.0)
        emu = ModemEmulator(dialect, **kw)
        term = Term(emu.port)
        made.append((emu, term))
        if ready:
            term.read_until(SIM_BANNER if dialect == "sim7020" else BC95_BANNER_END)
            assert term.at("ATE0") == b"ATE0\r\r\nOK\r\n"
            assert term.at("AT+CMEE=1") == b"\r\nOK\r\n"
            assert emu.wait_registered(3)
        return emu, term

    yield _make
    for emu, term in made:
        term.close()
        emu.stop()
    assert [emu.error for emu, _ in made] == [None] * len(made)


@pytest.fixture
def peer():
    p = Peer()
    yield p
    p.sock.close()


def sim_socket(term, peer, ip="203.0.113.10"):
    assert term.at("AT+CSOC=1,2,1") == b"\r\n+CSOC: 0\r\n\r\nOK\r\n"
    assert term.at('AT+CSOCON=0,%d,"%s"' % (peer.port, ip)) == b"\r\nOK\r\n"


def sim_socket_heard(term, peer):
    """Opens socket 0 to `peer` and sends one datagram; returns the modem's address as the peer
    sees it, so the peer can send downlinks."""
    sim_socket(term, peer)
    term.at("AT+CSOSEND=0,2,01")
    return peer.recv()[1]


def downlink_during_slow_csq(emu, term, peer, src, data, delay=0.3, gap=0.05):
    """AT+CSQ whose answer is held back `delay` s; `data` reaches the modem meanwhile."""
    emu.delay_response("+CSQ", delay)
    term.write(b"AT+CSQ\r")
    time.sleep(gap)
    peer.sock.sendto(data, src)


def open_all_sockets(term, cmd, answer, count):
    """Opens `count` sockets, each answered with its number (answer % i); one more is an ERROR."""
    for i in range(count):
        assert term.at(cmd) == answer % i
    assert term.at(cmd) == b"\r\nERROR\r\n"


def bc_socket(term):
    assert term.at("AT+NSOCR=DGRAM,17,0,1") == b"\r\n0\r\n\r\nOK\r\n"


# ---------------------------------------------------------------------------- §10.1 general


@pytest.mark.parametrize("dialect", ["sim7020", "bc95"])
def test_echo_is_on_after_boot_until_ate0(make, dialect):
    emu, term = make(dialect, ready=False)
    term.read_until(SIM_BANNER if dialect == "sim7020" else BC95_BANNER_END)
    assert term.at("AT") == b"AT\r\r\nOK\r\n"
    assert term.at("ATE0") == b"ATE0\r\r\nOK\r\n"
    assert term.at("AT") == b"\r\nOK\r\n"


@pytest.mark.parametrize("dialect,texts", [
    ("sim7020", (b"\r\nERROR\r\n", b"\r\n+CME ERROR: 4\r\n", b"\r\n+CME ERROR: operation not supported\r\n")),
    ("bc95", (b"\r\nERROR\r\n", b"\r\n+CME ERROR:4\r\n")),
])
def test_unknown_command_error_follows_cmee_mode(make, dialect, texts):
    emu, term = make(dialect)
    for mode, expected in enumerate(texts):
        assert term.at("AT+CMEE=%d" % mode) == b"\r\nOK\r\n"
        assert term.at("AT+NOSUCH") == expected


def test_bc95_has_no_text_error_mode(make):
    emu, term = make("bc95")
    assert term.at("AT+CMEE=2") == b"\r\n+CME ERROR:50\r\n"


def test_lines_that_are_not_commands_get_no_answer(make):
    emu, term = make("sim7020")
    term.write(b"hello\r")
    assert term.drain(0.2) == b""
    assert term.at("AT") == b"\r\nOK\r\n"


def test_command_split_across_writes_is_one_command(make):
    emu, term = make("sim7020")
    term.write(b"AT+C")
    time.sleep(0.05)
    term.write(b"SQ\r\n")
    assert term.read_until(FINAL) == b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"
    assert emu.commands_log[-1] == "AT+CSQ"


# ---------------------------------------------------------------------------- §10.2 SIM7020 rows

SIM_ROWS = [
    ("AT", b"\r\nOK\r\n"),
    ("ATE1", b"\r\nOK\r\n"),
    ("AT+CGMR", b"\r\nRevision:1910B05SIM7020G\r\n\r\nOK\r\n"),
    ("AT+CPIN?", b"\r\n+CPIN: READY\r\n\r\nOK\r\n"),
    ("AT+CCID", b"\r\n89860318492040123456\r\n\r\nOK\r\n"),
    ("AT+CIMI", b"\r\n460001357924680\r\n\r\nOK\r\n"),
    ("AT+CGSN", b"\r\n866425031234567\r\n\r\nOK\r\n"),
    ("AT+GSN", b"\r\n866425031234567\r\n\r\nOK\r\n"),
    ("AT+CGSN=1", b"\r\n+CME ERROR: 50\r\n"),
    ('AT*MCGDEFCONT="IP","iot.apn"', b"\r\nOK\r\n"),
    ("AT+CBAND=20", b"\r\nOK\r\n"),
    ("AT+CGATT?", b"\r\n+CGATT: 1\r\n\r\nOK\r\n"),
    ("AT+CEREG?", b"\r\n+CEREG: 0,1\r\n\r\nOK\r\n"),
    ("AT+CGREG?", b"\r\n+CGREG: 0,1\r\n\r\nOK\r\n"),
    ("AT+CSQ", b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"),
    ("AT+CGPADDR=1", b'\r\n+CGPADDR: 1,"10.1.2.3"\r\n\r\nOK\r\n'),
    ("AT+CGCONTRDP", b'\r\n+CGCONTRDP: 1,5,"","10.1.2.3.255.255.255.0"\r\n\r\nOK\r\n'),
    ("AT+CSORCVFLAG=0", b"\r\nOK\r\n"),
    ('AT+CPSMS=1,,,"00100110","00000101"', b"\r\nOK\r\n"),
    ("AT+CPSMSTATUS=1", b"\r\nOK\r\n"),
    ("AT+CSCLK=0", b"\r\nOK\r\n"),
    ("AT+RETENTION=1", b"\r\nOK\r\n"),
]


def test_sim7020_band_and_apn_are_read_back(make):
    emu, term = make("sim7020")
    term.at("AT+CBAND=20,8")
    assert term.at("AT+CBAND?") == b"\r\n+CBAND: 20,8\r\n\r\nOK\r\n"
    term.at('AT*MCGDEFCONT="IP","iot.apn"')
    assert term.at("AT+CGCONTRDP") == b'\r\n+CGCONTRDP: 1,5,"iot.apn","10.1.2.3.255.255.255.0"\r\n\r\nOK\r\n'


def test_sim7020_ccid_can_be_prefixed_and_identities_configured(make):
    emu, term = make("sim7020", ccid_prefixed=True, iccid="8988", imei="123456789012345", imsi="001")
    assert term.at("AT+CCID") == b"\r\n+CCID: 8988\r\n\r\nOK\r\n"
    assert term.at("AT+CGSN") == b"\r\n123456789012345\r\n\r\nOK\r\n"
    assert term.at("AT+CIMI") == b"\r\n001\r\n\r\nOK\r\n"


def test_sim7020_radio_off_then_on_gives_cpin_ready_then_registration_urc(make):
    emu, term = make("sim7020")
    assert term.at("AT+CEREG=1") == b"\r\nOK\r\n"
    # Low Power Mode AN §6.1.2: the SIM goes off with the radio, said before the OK.
    assert term.at("AT+CFUN=0") == b"\r\n+CPIN: NOT READY\r\n\r\nOK\r\n"
    assert term.read_until(b"\r\n+CEREG: 0\r\n") == b"\r\n+CEREG: 0\r\n"
    assert term.at("AT+CPIN?") == b"\r\n+CPIN: NOT READY\r\n\r\nOK\r\n"
    assert term.at("AT+CEREG?") == b"\r\n+CEREG: 1,0\r\n\r\nOK\r\n"
    assert term.at("AT+CSQ") == b"\r\n+CSQ: 99,99\r\n\r\nOK\r\n"
    assert term.at("AT+CFUN=1") == b"\r\nOK\r\n"
    assert term.read_until(b"\r\n+CPIN: READY\r\n") == b"\r\n+CPIN: READY\r\n"
    assert term.read_until(b"\r\n+CEREG: 1\r\n") == b"\r\n+CEREG: 2\r\n\r\n+CEREG: 1\r\n"


def test_sim7020_a_search_switched_off_before_it_registers_does_not_register_later(make):
    # A network search begun at boot must not end in registration after CFUN=0 / CFUN=1:
    # the new search starts with +CPIN: READY and only then registers.
    emu, term = make("sim7020", ready=False, registration_delay=0.3, cpin_delay=0.5)
    term.read_until(SIM_BANNER)
    term.at("ATE0")
    term.at("AT+CEREG=1")
    term.at("AT+CFUN=0")
    after_on = term.at("AT+CFUN=1") + term.read_until(b"\r\n+CEREG: 1\r\n", timeout=3)
    assert after_on.index(b"+CPIN: READY") < after_on.index(b"+CEREG: 2") < \
        after_on.index(b"+CEREG: 1")


def test_sim7020_cereg_4_reports_the_psm_timers(make):
    emu, term = make("sim7020")
    term.at('AT+CPSMS=1,,,"00100110","00000101"')
    term.at("AT+CEREG=4")
    assert term.at("AT+CEREG?") == \
        b'\r\n+CEREG: 4,1,"5B57","01A50B1A",9,"00",,,"00000101","00100110"\r\n\r\nOK\r\n'


def test_sim7020_dns_answers_ok_then_urc(make):
    emu, term = make("sim7020", dns={"cloud.example": "127.0.0.1"})
    assert term.at('AT+CDNSGIP="cloud.example"') == b"\r\nOK\r\n"
    assert term.read_until(b'"\r\n') == b'\r\n+CDNSGIP: 1,"cloud.example","127.0.0.1"\r\n'


# ---------------------------------------------------------------------------- SIM7020 sockets


def test_sim7020_udp_round_trip_uses_hex_character_lengths(make, peer):
    emu, term = make("sim7020")
    sim_socket(term, peer)
    assert term.at("AT+CSOSEND=0,8,DEADBEEF") == b"\r\nOK\r\n"
    data, src = peer.recv()
    assert data == b"\xde\xad\xbe\xef"
    assert src == emu.socket_address(0)
    peer.sock.sendto(b"\xca\xfe\xba\xbe", src)
    assert term.read_until(b"BE\r\n") == b"\r\n+CSONMI: 0,8,CAFEBABE\r\n"
    assert emu.counters()["datagrams_up"] == 1 and emu.counters()["datagrams_down"] == 1


def test_sim7020_csosend_with_byte_length_is_an_error(make, peer):
    emu, term = make("sim7020")
    sim_socket(term, peer)
    assert term.at("AT+CSOSEND=0,4,DEADBEEF") == b"\r\nERROR\r\n"
    assert peer.nothing()


def test_sim7020_accepts_lowercase_hex_and_text_mode(make, peer):
    emu, term = make("sim7020")
    sim_socket(term, peer)
    assert term.at("AT+CSOSEND=0,4,abcd") == b"\r\nOK\r\n"
    assert peer.recv()[0] == b"\xab\xcd"
    assert term.at('AT+CSOSEND=0,0,"hi there"') == b"\r\nOK\r\n"
    assert peer.recv()[0] == b"hi there"


def test_sim7020_sends_over_512_bytes_are_refused(make, peer):
    emu, term = make("sim7020")
    sim_socket(term, peer)
    assert term.at("AT+CSOSEND=0,1024," + "AB" * 512) == b"\r\nOK\r\n"
    assert len(peer.recv()[0]) == 512
    assert term.at("AT+CSOSEND=0,1026," + "AB" * 513) == b"\r\n+CME ERROR: 50\r\n"


def test_sim7020_has_five_sockets(make):
    emu, term = make("sim7020")
    open_all_sockets(term, "AT+CSOC=1,2,1", b"\r\n+CSOC: %d\r\n\r\nOK\r\n", 5)
    assert term.at("AT+CSOCL=3") == b"\r\nOK\r\n"
    assert term.at("AT+CSOC=1,2,1") == b"\r\n+CSOC: 3\r\n\r\nOK\r\n"


def test_sim7020_binary_receive_mode_sends_raw_bytes_with_byte_length(make, peer):
    emu, term = make("sim7020")
    sim_socket(term, peer)
    term.at("AT+CSORCVFLAG=1")
    term.at("AT+CSOSEND=0,2,00")
    _, src = peer.recv()
    peer.sock.sendto(b"a\r\nb", src)
    assert term.read_until(b"b\r\n") == b"\r\n+CSONMI: 0,4,a\r\nb\r\n"


def test_sim7020_csodsend_prompts_then_takes_raw_bytes(make, peer):
    emu, term = make("sim7020")
    sim_socket(term, peer)
    term.write(b"AT+CSODSEND=0,4\r")
    assert term.read_until(b"> ") == b"> "
    term.write(b"\r\n\x00\xff")
    assert term.read_until(FINAL) == b"\r\nDATA ACCEPT: 4\r\n\r\nOK\r\n"
    assert peer.recv()[0] == b"\r\n\x00\xff"


def test_sim7020_socket_status_and_close(make, peer):
    emu, term = make("sim7020")
    sim_socket(term, peer)
    assert term.at("AT+CSOSTATUS=0") == b"\r\n+CSOSTATUS: 0,2\r\n\r\nOK\r\n"
    assert term.at("AT+CSOCL=0") == b"\r\nOK\r\n"
    assert term.at("AT+CSOSEND=0,2,00") == b"\r\n+CME ERROR: 3\r\n"


def test_sim7020_maps_any_remote_ip_to_localhost_unless_configured(make, peer):
    other = Peer()
    try:
        emu, term = make("sim7020", remote_map={"198.51.100.7": ("127.0.0.1", other.port)})
        assert term.at("AT+CSOC=1,2,1").startswith(b"\r\n+CSOC: 0")
        term.at('AT+CSOCON=0,5684,"198.51.100.7"')
        term.at("AT+CSOSEND=0,2,01")
        assert other.recv()[0] == b"\x01"
    finally:
        other.sock.close()


def test_sim7020_urc_between_information_line_and_ok_when_forced(make, peer):
    emu, term = make("sim7020", urc_inside=True)
    src = sim_socket_heard(term, peer)
    downlink_during_slow_csq(emu, term, peer, src, b"\xca\xfe\xba\xbe")
    assert term.read_until(FINAL) == b"\r\n+CSQ: 20,99\r\n\r\n+CSONMI: 0,8,CAFEBABE\r\n\r\nOK\r\n"


def test_sim7020_urc_placement_probability_zero_keeps_urcs_after_ok(make, peer):
    emu, term = make("sim7020", urc_inside_prob=0.0)
    src = sim_socket_heard(term, peer)
    downlink_during_slow_csq(emu, term, peer, src, b"\xca\xfe")
    assert term.read_until(b"FE\r\n") == b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n\r\n+CSONMI: 0,4,CAFE\r\n"


def test_sim7020_urc_placement_by_seeded_probability_does_both(make, peer):
    emu, term = make("sim7020", urc_inside_prob=0.5, seed=7)
    src = sim_socket_heard(term, peer)
    placements = set()
    for _ in range(12):
        downlink_during_slow_csq(emu, term, peer, src, b"\x01", delay=0.1, gap=0.03)
        out = term.read_until(FINAL)
        inside = b"+CSONMI" in out
        if not inside:
            term.read_until(b",01\r\n")
        placements.add(inside)
    assert placements == {True, False}


def test_sim7020_creset_reboots_with_echo_on_sockets_gone_and_the_receive_flag_saved(make, peer):
    emu, term = make("sim7020")
    sim_socket(term, peer)
    term.at("AT+CSORCVFLAG=1")
    assert term.at("AT+CRESET") == b"\r\nOK\r\n"
    assert term.read_until(SIM_BANNER) == SIM_BANNER
    assert term.at("AT+CSORCVFLAG?") == b"AT+CSORCVFLAG?\r\r\n+CSORCVFLAG: 1\r\n\r\nOK\r\n"
    assert term.at("AT+CSOSTATUS=0") == b"AT+CSOSTATUS=0\r\r\nERROR\r\n"
    assert emu.reboots == 1


def test_sim7020_boot_lines_are_configurable(make):
    emu, term = make("sim7020", ready=False, boot_lines=["RDY", "+CPIN: READY", "SMS Ready"])
    assert term.read_until(b"SMS Ready\r\n") == b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS Ready\r\n"


def test_sim7020_power_down_is_silent_until_pwrkey(make):
    emu, term = make("sim7020")
    term.write(b"AT+CPOWD=1\r")
    assert term.read_until(b"DOWN\r\n") == b"\r\nNORMAL POWER DOWN\r\n"
    term.write(b"AT\r")
    assert term.drain(0.2) == b""
    emu.pwrkey()
    assert term.read_until(SIM_BANNER) == SIM_BANNER


def test_sim7020_psm_kills_the_uart_until_pwrkey_then_exit_psm(make):
    emu, term = make("sim7020")
    term.at("AT+CPSMSTATUS=1")
    term.at("AT+CSORCVFLAG=1")
    emu.enter_psm()
    assert term.read_until(b'PSM"\r\n') == b'\r\n+CPSMSTATUS: "ENTER PSM"\r\n'
    term.write(b"AT\r")
    assert term.drain(0.2) == b""
    emu.pwrkey()
    assert term.read_until(b'EXIT PSM"\r\n') == b'\r\n+CPIN: READY\r\n\r\n+CPSMSTATUS: "EXIT PSM"\r\n'
    # Factory autobaud (AT+IPR=0): the first line after the wake only syncs the rate.
    term.write(b"AT\r")
    assert term.drain(0.2) == b""
    assert term.at("AT+CSORCVFLAG?") == b"AT+CSORCVFLAG?\r\r\n+CSORCVFLAG: 0\r\n\r\nOK\r\n"


def test_sim7020_with_a_fixed_baud_rate_answers_the_first_command_after_psm(make):
    emu, term = make("sim7020")
    assert term.at("AT+IPR?") == b"\r\n+IPR: 0\r\n\r\nOK\r\n"
    assert term.at("AT+IPR=115200") == b"\r\nOK\r\n"
    emu.enter_psm()
    emu.pwrkey(0.3)
    term.read_until(b"\r\n+CPIN: READY\r\n")
    assert term.at("AT") == b"AT\r\r\nOK\r\n"


def test_sim7020_pwrkey_pulse_below_the_power_off_minimum_leaves_an_awake_module_on(make):
    emu, term = make("sim7020")
    emu.pwrkey(0.6)
    assert emu.powered and term.at("AT") == b"\r\nOK\r\n"
    emu.pwrkey(0.8)     # Hardware Design V1.02 table 9: 0.8 s switches it off
    assert term.read_until(b"DOWN\r\n") == b"\r\nNORMAL POWER DOWN\r\n"
    assert not emu.powered


def test_sim7020_clock_is_utc_with_curtc_0_and_local_time_with_curtc_1(make):
    emu, term = make("sim7020", tz=32)
    for curtc, shift in ((0, 0), (1, 8 * 3600)):
        term.at("AT+CURTC=%d" % curtc)
        line = term.at("AT+CCLK?").split(b"\r\n")[1].decode()
        assert line.startswith("+CCLK: ") and line.endswith("+32")
        secs, zone = emu.clock_seconds(line[7:])
        assert zone == 32 and abs(secs - shift - time.time()) < 3


def test_sim7020_clock_before_network_time_is_the_1980_default(make):
    emu, term = make("sim7020", nitz=False)
    assert term.at("AT+CCLK?").startswith(b"\r\n+CCLK: 80/01/06,00:00:0")


def test_sim7020_network_time_urcs_come_with_the_first_registration_when_clts_is_on(make):
    emu, term = make("sim7020", ready=False, registration_delay=0.4, tz=-20)
    term.read_until(SIM_BANNER)
    assert term.at("AT+CLTS=1") == b"AT+CLTS=1\r\r\nOK\r\n"
    out = term.read_until(re.compile(rb'\+CLTS: "[^"]*"\r\n'), 2.0)
    assert b"\r\n+CTZV: -20\r\n" in out
    secs, zone = emu.clock_seconds(out.split(b"+CLTS: ")[1].strip().decode())
    assert zone == -20 and abs(secs + 5 * 3600 - time.time()) < 3   # local time, UTC-5
    term.at("AT+CFUN=0")
    term.at("AT+CFUN=1")
    assert emu.wait_registered(3)
    assert b"CLTS" not in term.drain(0.2)   # NITZ once per boot


def test_sim7020_release_assistance_releases_the_rrc_connection_after_the_reply(make, peer):
    emu, term = make("sim7020", release_delay=0.05, rrc_inactivity=5.0)
    term.at("AT+CSCON=1")
    src = sim_socket_heard(term, peer)
    term.read_until(b"\r\n+CSCON: 1\r\n")
    assert term.at("AT+CNMPSD") == b"\r\n+CME ERROR: 4\r\n"
    assert term.at("AT+CNBIOTRAI=2") == b"\r\nOK\r\n"
    term.at("AT+CSOSEND=0,4,CAFE")
    peer.recv()
    assert term.drain(0.2) == b""      # still connected: one reply is expected
    peer.sock.sendto(b"\x01", src)
    assert term.read_until(b"\r\n+CSCON: 0\r\n", 1.0).endswith(b"\r\n+CSCON: 0\r\n")
    assert term.at("AT+CNBIOTRAI?") == b"\r\n+CNBIOTRAI: 0\r\n\r\nOK\r\n"


# ---------------------------------------------------------------------------- §10.4 BC95 rows

BC_ROWS = [
    ("AT", b"\r\nOK\r\n"),
    ("AT+NCONFIG?", b"\r\n+NCONFIG:AUTOCONNECT,TRUE\r\n\r\n+NCONFIG:CR_0354_0338_SCRAMBLING,TRUE\r\n"
                    b"\r\n+NCONFIG:CR_0859_SI_AVOID,TRUE\r\n\r\n+NCONFIG:COMBINE_ATTACH,FALSE\r\n"
                    b"\r\n+NCONFIG:CELL_RESELECTION,TRUE\r\n\r\n+NCONFIG:ENABLE_BIP,FALSE\r\n\r\nOK\r\n"),
    ("AT+NCONFIG=AUTOCONNECT,TRUE", b"\r\nOK\r\n"),
    ("AT+NBAND?", b"\r\n+NBAND:8\r\n\r\nOK\r\n"),
    ("AT+NBAND=8", b"\r\nERROR\r\n"),
    ("AT+QREGSWT=2", b"\r\nOK\r\n"),
    ("AT+CFUN?", b"\r\n+CFUN:1\r\n\r\nOK\r\n"),
    ("AT+NCCID", b"\r\n+NCCID:89860318492040123456\r\n\r\nOK\r\n"),
    ("AT+CIMI", b"\r\n460001357924680\r\n\r\nOK\r\n"),
    ("AT+CGSN=1", b"\r\n+CGSN:866425031234567\r\n\r\nOK\r\n"),
    ("AT+CGSN", b"\r\n866425031234567\r\n\r\nOK\r\n"),
    ('AT+CGDCONT=0,"IP","iot.apn"', b"\r\nOK\r\n"),
    ("AT+CGATT?", b"\r\n+CGATT:1\r\n\r\nOK\r\n"),
    ("AT+CEREG?", b"\r\n+CEREG:0,1\r\n\r\nOK\r\n"),
    ("AT+CSCON?", b"\r\n+CSCON:0,0\r\n\r\nOK\r\n"),
    ("AT+CSQ", b"\r\n+CSQ:20,99\r\n\r\nOK\r\n"),
    ("AT+CGPADDR", b"\r\n+CGPADDR:0,10.1.2.3\r\n\r\nOK\r\n"),
    ('AT+CPSMS=1,,,"00100110","00000101"', b"\r\nOK\r\n"),
    ("AT+NPSMR=1", b"\r\nOK\r\n"),
    ("AT+CSCON=1", b"\r\nOK\r\n"),
    ('AT+CEDRXS=1,5,"0101"', b"\r\nOK\r\n"),
    ("AT+NSOCR=DGRAM,17,0,1", b"\r\n0\r\n\r\nOK\r\n"),
    ("AT+NSOCR=DGRAM,17,5683,1", b"\r\n+CME ERROR:3\r\n"),
]


@pytest.mark.parametrize("dialect,cmd,expected",
                         [("sim7020",) + row for row in SIM_ROWS]
                         + [("bc95",) + row for row in BC_ROWS])
def test_each_dialect_answers_each_command_as_the_modems_page_tables(make, dialect, cmd, expected):
    emu, term = make(dialect)
    assert term.at(cmd) == expected


def test_bc95_nuestats_are_bare_lines(make):
    emu, term = make("bc95")
    out = term.at("AT+NUESTATS")
    lines = [ln for ln in out.split(b"\r\n") if ln]
    assert lines[0] == b"Signal power:-819" and lines[-1] == b"OK"
    assert all(not ln.startswith(b"+") for ln in lines)
    assert b"TX power:230" in lines and b"RSRQ:-108" in lines and b"ECL:0" in lines


def test_bc95_band_needs_radio_off_and_cimi_needs_radio_on(make):
    emu, term = make("bc95")
    assert term.at("AT+CFUN=0") == b"\r\nOK\r\n"
    assert term.at("AT+NBAND=20") == b"\r\nOK\r\n"
    assert term.at("AT+NBAND?") == b"\r\n+NBAND:20\r\n\r\nOK\r\n"
    assert term.at("AT+CIMI") == b"\r\nERROR\r\n"
    assert term.at("AT+CEREG?") == b"\r\n+CEREG:0,0\r\n\r\nOK\r\n"


def test_bc95_power_on_banner_then_errors_for_a_while(make):
    emu, term = make("bc95", ready=False, early_error=0.4)
    banner = term.read_until(BC95_BANNER_END)
    assert banner == (b"\r\nBoot: Unsigned\r\n\r\nSecurity B.. Verified\r\n\r\nProtocol A.. Verified\r\n"
                      b"\r\nApps A...... Verified\r\n\r\nREBOOT_CAUSE_SECURITY_RESET_PIN\r\n"
                      b"\r\nNeul\r\n\r\nOK\r\n")
    assert term.at("AT") == b"AT\r\r\nERROR\r\n"
    time.sleep(0.45)
    assert term.at("AT") == b"AT\r\r\nOK\r\n"


def test_bc95_nrb_prints_rebooting_then_banner_and_ok(make):
    emu, term = make("bc95", boot_time=0.1)
    term.write(b"AT+NRB\r")
    assert term.read_until(b"REBOOTING\r\n") == b"\r\nREBOOTING\r\n"
    out = term.read_until(BC95_BANNER_END)
    assert b"\r\nREBOOT_CAUSE_APPLICATION_AT\r\n" in out and out.startswith(b"\r\nBoot: Unsigned\r\n")
    assert term.at("AT") == b"AT\r\r\nOK\r\n"


def test_bc95_nconfig_survives_reboot_and_acts_after_it(make):
    emu, term = make("bc95")
    term.at("AT+NCONFIG=AUTOCONNECT,FALSE")
    assert term.at("AT+CFUN?") == b"\r\n+CFUN:1\r\n\r\nOK\r\n"
    term.write(b"AT+NRB\r")
    term.read_until(BC95_BANNER_END)
    assert term.at("AT+CFUN?") == b"AT+CFUN?\r\r\n+CFUN:0\r\n\r\nOK\r\n"
    assert b"+NCONFIG:AUTOCONNECT,FALSE" in term.at("AT+NCONFIG?")


def test_bc95_before_b657sp2_has_no_echo_and_refuses_the_commands_of_later_firmware(make):
    emu, term = make("bc95", ready=False, revision="old")
    term.read_until(BC95_BANNER_END)
    assert term.at("AT") == b"\r\nOK\r\n"                    # no echo at all (FAQ §2.10)
    assert term.at("AT+CMEE=1") == b"\r\nOK\r\n"
    for cmd in ("ATE0", 'AT+CPSMS=1,,,"00100110","00000001"', "AT+NPSMR=1", "AT+NCCID",
                "AT+CEDRXS=0,5", "AT+NSOSTF=0,1.2.3.4,5,0x400,1,00", "AT+NSONMI=1"):
        assert term.at(cmd) == b"\r\n+CME ERROR:4\r\n", cmd
    assert term.at("AT+CEREG=4") == b"\r\n+CME ERROR:50\r\n"
    assert b"APPLICATION,V100R100C10B650\r\n" in term.at("AT+CGMR")


def test_bc95_b657sp1_has_psm_but_not_its_urc(make):
    emu, term = make("bc95", ready=False, revision="V100R100C10B657SP1")
    term.read_until(BC95_BANNER_END)
    assert term.at('AT+CPSMS=1,,,"00100110","00000001"') == b"\r\nOK\r\n"
    assert term.at("AT+NPSMR=1") == b"\r\nERROR\r\n"


def test_bc95_refuses_radio_commands_while_autoconnect_attaches_but_answers_queries(make):
    emu, term = make("bc95", ready=False, registration_delay=0.6)
    term.read_until(BC95_BANNER_END)
    term.at("AT+CMEE=1")
    for cmd in ("AT+CFUN=0", "AT+CFUN=1", "AT+CGATT=1"):
        assert term.at(cmd).endswith(b"\r\n+CME ERROR:3\r\n"), cmd
    assert term.at("AT+CEREG?").endswith(b"\r\n+CEREG:0,2\r\n\r\nOK\r\n")
    assert emu.wait_registered(3)
    assert term.at("AT+CFUN=0").endswith(b"\r\nOK\r\n")


def test_bc95_band_change_takes_effect_at_the_next_reboot(make):
    emu, term = make("bc95", ready=False, bands=(20,), network_band=8)
    term.read_until(BC95_BANNER_END)
    time.sleep(0.1)
    assert term.at("AT+CEREG?").endswith(b"\r\n+CEREG:0,2\r\n\r\nOK\r\n")  # no band 8
    term.at("AT+NCONFIG=AUTOCONNECT,FALSE")
    term.write(b"AT+NRB\r")
    term.read_until(BC95_BANNER_END)
    assert term.at("AT+NBAND=8").endswith(b"\r\nOK\r\n")
    assert term.at("AT+NBAND?").endswith(b"\r\n+NBAND:8\r\n\r\nOK\r\n")
    term.at("AT+CFUN=1")
    term.at("AT+CGATT=1")
    time.sleep(0.1)
    assert term.at("AT+CEREG?").endswith(b"\r\n+CEREG:0,2\r\n\r\nOK\r\n")  # still 20
    term.at("AT+NCONFIG=AUTOCONNECT,TRUE")
    term.write(b"AT+NRB\r")
    term.read_until(BC95_BANNER_END)
    assert emu.wait_registered(3)


def test_bc95_clock_fields_are_utc_or_local_as_chosen(make):
    for cclk, shift in (("utc", 0), ("local", 8 * 3600)):
        emu, term = make("bc95", cclk=cclk, tz=32)
        line = term.at("AT+CCLK?").split(b"\r\n")[1].decode()
        assert line.startswith("+CCLK:") and line.endswith("+32")
        secs, zone = emu.clock_seconds(line[6:])
        assert abs(secs - shift - time.time()) < 3


@pytest.mark.parametrize("grant,expected", [
    ("request", b'"00000001","00111000"'),
    ("refuse", b'"11100000","11100000"'),
    (("00100001", "00100011"), b'"00100011","00100001"'),
])
def test_cereg_4_shows_the_psm_timers_the_network_granted(make, grant, expected):
    emu, term = make("bc95", psm_grant=grant)
    term.at("AT+CEREG=4")
    assert term.at('AT+CPSMS=1,,,"00111000","00000001"') == b"\r\nOK\r\n"
    assert term.read_until(b"\r\n", 1.0) and expected in term.read_until(b"\r\n")
    assert term.at("AT+CEREG?") == \
        b'\r\n+CEREG:4,1,"5B57","01A50B1A",9,,,' + expected + b"\r\n\r\nOK\r\n"


def test_edrx_kept_from_the_modules_settings_until_switched_off(make):
    emu, term = make("bc95", edrx="0101")
    assert term.at("AT+CEDRXRDP") == b'\r\n+CEDRXRDP:5,"0101","0101","0011"\r\n\r\nOK\r\n'
    assert term.at("AT+CEDRXS=0,5") == b"\r\nOK\r\n"
    assert term.at("AT+CEDRXRDP") == b"\r\n+CEDRXRDP:0\r\n\r\nOK\r\n"


def test_bc95_dns_answers_ok_then_urc(make):
    emu, term = make("bc95", dns={"cloud.example": "127.0.0.1"}, dns_fail_delay=0.1)
    assert term.at("AT+QDNS=0,cloud.example") == b"\r\nOK\r\n"
    assert term.read_until(b"1\r\n") == b"\r\n+QDNS:127.0.0.1\r\n"
    assert term.at("AT+QDNS=0,nowhere.example") == b"\r\nOK\r\n"
    assert term.read_until(b"FAILED\r\n") == b"\r\n+QDNS:QUERY_DNS_FAILED\r\n"


# ---------------------------------------------------------------------------- BC95 sockets


def test_bc95_udp_round_trip_uses_byte_lengths_and_unquoted_ip(make, peer):
    emu, term = make("bc95")
    bc_socket(term)
    assert term.at("AT+NSOST=0,203.0.113.10,%d,4,DEADBEEF" % peer.port) == b"\r\n0,4\r\n\r\nOK\r\n"
    data, src = peer.recv()
    assert data == b"\xde\xad\xbe\xef"
    peer.sock.sendto(b"\xca\xfe\xba\xbe", src)
    assert term.read_until(b"\r\n+NSONMI:0,4\r\n") == b"\r\n+NSONMI:0,4\r\n"
    assert term.at("AT+NSORF=0,512") == b"\r\n0,203.0.113.10,%d,4,CAFEBABE,0\r\n\r\nOK\r\n" % peer.port
    assert term.at("AT+NSORF=0,512") == b"\r\nOK\r\n"


def test_bc95_rejects_hex_length_and_quoted_ip(make, peer):
    emu, term = make("bc95")
    bc_socket(term)
    assert term.at("AT+NSOST=0,127.0.0.1,%d,8,DEADBEEF" % peer.port) == b"\r\n+CME ERROR:50\r\n"
    assert term.at('AT+NSOST=0,"127.0.0.1",%d,4,DEADBEEF' % peer.port) == b"\r\n+CME ERROR:50\r\n"
    assert peer.nothing()


def test_bc95_nsonmi_only_when_buffer_was_empty(make, peer):
    emu, term = make("bc95")
    bc_socket(term)
    term.at("AT+NSOST=0,127.0.0.1,%d,1,00" % peer.port)
    _, src = peer.recv()
    peer.sock.sendto(b"\x01\x02", src)
    peer.sock.sendto(b"\x03\x04\x05", src)
    assert term.read_until(b"\r\n+NSONMI:0,2\r\n") == b"\r\n+NSONMI:0,2\r\n"
    assert term.drain(0.2) == b""
    assert emu.wait_until(lambda: emu.datagrams_down == 2)
    assert term.at("AT+NSORF=0,512") == b"\r\n0,127.0.0.1,%d,2,0102,0\r\n\r\nOK\r\n" % peer.port
    assert term.at("AT+NSORF=0,512") == b"\r\n0,127.0.0.1,%d,3,030405,0\r\n\r\nOK\r\n" % peer.port
    assert term.at("AT+NSORF=0,512") == b"\r\nOK\r\n"
    peer.sock.sendto(b"\x06", src)
    assert term.read_until(b"\r\n+NSONMI:0,1\r\n") == b"\r\n+NSONMI:0,1\r\n"


def test_bc95_nsorf_reports_remaining_bytes_of_a_partial_read(make, peer):
    emu, term = make("bc95")
    bc_socket(term)
    term.at("AT+NSOST=0,127.0.0.1,%d,1,00" % peer.port)
    _, src = peer.recv()
    peer.sock.sendto(bytes(range(10)), src)
    term.read_until(b"+NSONMI:0,10\r\n")
    assert term.at("AT+NSORF=0,4") == b"\r\n0,127.0.0.1,%d,4,00010203,6\r\n\r\nOK\r\n" % peer.port
    assert term.at("AT+NSORF=0,512") == b"\r\n0,127.0.0.1,%d,6,040506070809,0\r\n\r\nOK\r\n" % peer.port


def test_bc95_nsorf_remaining_can_count_the_whole_buffer(make, peer):
    emu, term = make("bc95", nsorf_remaining="buffer")
    bc_socket(term)
    term.at("AT+NSOST=0,127.0.0.1,%d,1,00" % peer.port)
    _, src = peer.recv()
    peer.sock.sendto(b"\x01\x02", src)
    peer.sock.sendto(b"\x03", src)
    assert emu.wait_until(lambda: emu.datagrams_down == 2)
    term.read_until(b"+NSONMI:0,2\r\n")
    assert term.at("AT+NSORF=0,512").startswith(b"\r\n0,127.0.0.1,%d,2,0102,1\r\n" % peer.port)


def test_bc95_receives_1472_bytes_in_as_many_reads_as_asked(make, peer):
    emu, term = make("bc95")
    bc_socket(term)
    term.at("AT+NSOST=0,127.0.0.1,%d,1,00" % peer.port)
    _, src = peer.recv()
    data = bytes(range(256)) * 5 + bytes(192)
    peer.sock.sendto(data, src)
    assert term.read_until(b"\r\n+NSONMI:0,1472\r\n")
    first = term.at("AT+NSORF=0,512").split(b"\r\n")[1].split(b",")
    assert first[3:] == [b"512", data[:512].hex().upper().encode(), b"960"]
    rest = term.at("AT+NSORF=0,1472").split(b"\r\n")[1].split(b",")
    assert rest[3:] == [b"960", data[512:].hex().upper().encode(), b"0"]
    peer.sock.sendto(bytes(1473), src)
    assert emu.wait_until(lambda: emu.dropped_down == 1)


def test_bc95g_nsonmi_mode_is_kept_across_reboots_and_mode_2_carries_the_data(make, peer):
    emu, term = make("bc95", revision="bc95g", nsonmi=2)
    assert term.at("AT+NSONMI?") == b"\r\n+NSONMI:2\r\n\r\nOK\r\n"
    bc_socket(term)
    term.at("AT+NSOST=0,127.0.0.1,%d,1,00" % peer.port)
    _, src = peer.recv()
    peer.sock.sendto(b"\xca\xfe", src)
    assert term.read_until(b"CAFE\r\n") == b"\r\n+NSONMI:0,127.0.0.1,%d,2,CAFE\r\n" % peer.port
    assert term.at("AT+NSONMI=1") == b"\r\nOK\r\n"
    term.write(b"AT+NRB\r")
    term.read_until(BC95_BANNER_END)
    assert term.at("AT+NSONMI?") == b"AT+NSONMI?\r\r\n+NSONMI:1\r\n\r\nOK\r\n"


def test_bc95_seven_sockets(make):
    emu, term = make("bc95")
    open_all_sockets(term, "AT+NSOCR=DGRAM,17,0,1", b"\r\n%d\r\n\r\nOK\r\n", 7)
    assert term.at("AT+NSOCL=6") == b"\r\nOK\r\n"


def test_bc95_nsostf_release_flags_drive_cscon(make, peer):
    emu, term = make("bc95", release_delay=0.05)
    term.at("AT+CSCON=1")
    bc_socket(term)
    assert term.at("AT+NSOSTF=0,127.0.0.1,%d,0x200,1,FF" % peer.port) == b"\r\n0,1\r\n\r\nOK\r\n"
    assert term.read_until(b"\r\n+CSCON:0\r\n") == b"\r\n+CSCON:1\r\n\r\n+CSCON:0\r\n"
    _, src = peer.recv()
    assert term.at("AT+NSOSTF=0,127.0.0.1,%d,0x400,1,FF" % peer.port) == b"\r\n0,1\r\n\r\nOK\r\n"
    assert term.read_until(b"\r\n+CSCON:1\r\n") == b"\r\n+CSCON:1\r\n"
    assert term.drain(0.2) == b""          # stays connected until the reply
    peer.sock.sendto(b"\x01", src)
    assert term.read_until(b"\r\n+CSCON:0\r\n") == b"\r\n+NSONMI:0,1\r\n\r\n+CSCON:0\r\n"


def test_bc95_send_with_sequence_reports_delivery(make, peer):
    emu, term = make("bc95")
    bc_socket(term)
    assert term.at("AT+NSOST=0,127.0.0.1,%d,1,AA,5" % peer.port) == b"\r\n0,1\r\n\r\nOK\r\n"
    assert term.read_until(b"\r\n+NSOSTR:0,5,1\r\n") == b"\r\n+NSOSTR:0,5,1\r\n"


def test_bc95_never_puts_a_urc_inside_a_response(make, peer):
    emu, term = make("bc95", urc_inside_prob=1.0)
    bc_socket(term)
    term.at("AT+NSOST=0,127.0.0.1,%d,1,00" % peer.port)
    _, src = peer.recv()
    emu.delay_response("+CSQ", 0.3)
    term.write(b"AT+CSQ\r")
    time.sleep(0.05)
    peer.sock.sendto(b"\x01", src)
    assert term.read_until(b"NSONMI:0,1\r\n") == b"\r\n+CSQ:20,99\r\n\r\nOK\r\n\r\n+NSONMI:0,1\r\n"


def test_bc95_nsocr_can_answer_ok_without_socket(make):
    emu, term = make("bc95")
    emu.nsocr_without_id()
    assert term.at("AT+NSOCR=DGRAM,17,0,1") == b"\r\nOK\r\n"
    assert term.at("AT+NSOCR=DGRAM,17,0,1") == b"\r\n0\r\n\r\nOK\r\n"


def test_bc95_psm_loses_first_character_and_reports_npsmr(make):
    emu, term = make("bc95")
    term.at("AT+NPSMR=1")
    emu.enter_psm()
    assert term.read_until(b"\r\n+NPSMR:1\r\n") == b"\r\n+NPSMR:1\r\n"
    term.write(b"AT\r")
    assert term.read_until(b"\r\n+NPSMR:0\r\n") == b"\r\n+NPSMR:0\r\n"
    assert term.drain(0.2) == b"T\r"       # echo is back on; 'A' was lost, "T" is no command
    assert term.at("AT") == b"AT\r\r\nOK\r\n"


# ---------------------------------------------------------------------------- faults


@pytest.mark.parametrize("dialect", ["sim7020", "bc95"])
def test_registration_is_delayed_by_the_configured_time(make, dialect):
    emu, term = make(dialect, ready=False, registration_delay=0.5)
    term.read_until(SIM_BANNER if dialect == "sim7020" else BC95_BANNER_END)
    sep = b": " if dialect == "sim7020" else b":"
    assert term.at("AT+CEREG?").endswith(b"\r\n+CEREG" + sep + b"0,2\r\n\r\nOK\r\n")
    assert emu.wait_registered(3)
    assert term.at("AT+CEREG?").endswith(b"\r\n+CEREG" + sep + b"0,1\r\n\r\nOK\r\n")


def test_lost_registration_fails_sends_drops_downlinks_then_comes_back(make, peer):
    emu, term = make("sim7020")
    term.at("AT+CEREG=1")
    src = sim_socket_heard(term, peer)
    emu.lose_registration(duration=0.4)
    assert term.read_until(b"\r\n+CEREG: 2\r\n") == b"\r\n+CEREG: 2\r\n"
    assert term.at("AT+CGATT?") == b"\r\n+CGATT: 0\r\n\r\nOK\r\n"
    assert term.at("AT+CSOSEND=0,2,01") == b"\r\n+CME ERROR: 30\r\n"
    peer.sock.sendto(b"\x99", src)
    assert term.read_until(b"\r\n+CEREG: 1\r\n") == b"\r\n+CEREG: 1\r\n"
    assert emu.dropped_down == 1
    assert term.at("AT+CSOSEND=0,2,02") == b"\r\nOK\r\n"
    assert peer.recv()[0] == b"\x02"


def test_lost_registration_without_duration_needs_regain(make):
    emu, term = make("bc95")
    emu.lose_registration(stat=0)
    assert term.at("AT+CEREG?") == b"\r\n+CEREG:0,0\r\n\r\nOK\r\n"
    time.sleep(0.2)
    assert not emu.registered
    emu.regain_registration()
    assert emu.wait_registered(2)


def test_error_on_chosen_command_once_then_normal(make, peer):
    emu, term = make("sim7020")
    sim_socket(term, peer)
    emu.fail_command("+CSOSEND", code=100)
    assert term.at("AT+CSOSEND=0,2,01") == b"\r\n+CME ERROR: 100\r\n"
    assert term.at("AT+CSOSEND=0,2,01") == b"\r\nOK\r\n"
    assert peer.recv()[0] == b"\x01"
    assert peer.nothing()


def test_error_n_times_plain_error_and_skip(make):
    emu, term = make("bc95")
    emu.fail_command("AT+CSQ", times=2, skip=1)
    assert term.at("AT+CSQ") == b"\r\n+CSQ:20,99\r\n\r\nOK\r\n"
    assert term.at("AT+CSQ") == b"\r\nERROR\r\n"
    assert term.at("AT+CSQ") == b"\r\nERROR\r\n"
    assert term.at("AT+CSQ") == b"\r\n+CSQ:20,99\r\n\r\nOK\r\n"


def test_cme_error_fault_shows_as_error_while_cmee_is_0(make):
    emu, term = make("sim7020")
    term.at("AT+CMEE=0")
    emu.fail_command("+CSQ", code=30)
    assert term.at("AT+CSQ") == b"\r\nERROR\r\n"


def test_response_delayed_past_a_timeout(make):
    emu, term = make("sim7020")
    emu.delay_response("+CGSN", 0.5)
    term.write(b"AT+CGSN\r")
    assert term.drain(0.25) == b""
    assert term.read_until(FINAL) == b"\r\n866425031234567\r\n\r\nOK\r\n"


def test_per_command_delay_knob(make):
    emu, term = make("sim7020", cmd_delays={"+CSQ": 0.4})
    term.write(b"AT+CSQ\r")
    assert term.drain(0.2) == b""
    assert term.read_until(FINAL) == b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"


def test_reboot_in_the_middle_of_a_send_loses_the_datagram(make, peer):
    emu, term = make("sim7020")
    sim_socket(term, peer)
    emu.reboot_on("+CSOSEND")
    term.write(b"AT+CSOSEND=0,2,01\r")
    assert term.read_until(SIM_BANNER) == SIM_BANNER
    assert peer.nothing()
    assert term.at("AT") == b"AT\r\r\nOK\r\n"
    assert emu.reboots == 1


def test_bc95_reboot_in_the_middle_of_a_send_after_it_went_out(make, peer):
    emu, term = make("bc95")
    bc_socket(term)
    emu.reboot_on("+NSOST", send_first=True, partial=b"\r\n0,")
    term.write(b"AT+NSOST=0,127.0.0.1,%d,1,07\r" % peer.port)
    out = term.read_until(BC95_BANNER_END)
    assert out.startswith(b"\r\n0,\r\nBoot: Unsigned\r\n")
    assert b"REBOOT_CAUSE_SECURITY_RESET_UNKNOWN" in out
    assert peer.recv()[0] == b"\x07"


@pytest.mark.parametrize("dialect,urc", [("sim7020", "+CEREG: 5"), ("bc95", "+CEREG:5")])
def test_urc_inserted_in_the_middle_of_a_response(make, dialect, urc):
    emu, term = make(dialect)
    emu.urc_in_response(urc, command="+CGSN")
    out = term.at("AT+CGSN")
    assert out == b"\r\n866425031234567\r\n\r\n" + urc.encode() + b"\r\n\r\nOK\r\n"


def test_garbage_bytes_on_the_line(make):
    emu, term = make("sim7020", seed=3)
    sent = emu.send_garbage()
    assert len(sent) == 16 and term.read_until(sent) == sent
    emu.send_garbage(b"\xff\x00\xfe")
    assert term.read_until(b"\xfe") == b"\xff\x00\xfe"
    emu.garbage_in_response(b"\x80\x81", command="+CSQ")
    assert term.at("AT+CSQ") == b"\r\n+CSQ: 20,99\r\n\x80\x81\r\nOK\r\n"


def test_uplink_datagram_dropped_but_send_says_ok(make, peer):
    emu, term = make("bc95")
    bc_socket(term)
    emu.drop_uplink()
    assert term.at("AT+NSOST=0,127.0.0.1,%d,1,01" % peer.port) == b"\r\n0,1\r\n\r\nOK\r\n"
    assert peer.nothing()
    term.at("AT+NSOST=0,127.0.0.1,%d,1,02" % peer.port)
    assert peer.recv()[0] == b"\x02"
    assert emu.dropped_up == 1 and emu.datagrams_up == 1


def test_downlink_dropped_delayed_and_reordered(make, peer):
    emu, term = make("sim7020")
    src = sim_socket_heard(term, peer)
    emu.drop_downlink()
    peer.sock.sendto(b"\x01", src)
    assert term.drain(0.2) == b""
    assert emu.dropped_down == 1
    emu.delay_downlink(0.3)
    peer.sock.sendto(b"\x02", src)
    assert term.drain(0.15) == b""
    assert term.read_until(b"02\r\n") == b"\r\n+CSONMI: 0,2,02\r\n"
    emu.reorder_downlinks(2)
    peer.sock.sendto(b"\x03", src)
    peer.sock.sendto(b"\x04", src)
    assert term.read_until(b"03\r\n") == b"\r\n+CSONMI: 0,2,04\r\n\r\n+CSONMI: 0,2,03\r\n"


@pytest.mark.parametrize("dialect,urc,send", [
    ("sim7020", b"\r\n+CSOERR: 0,4\r\n", "AT+CSOSEND=0,2,01"),
    ("bc95", b"\r\n+NSOCLI:0\r\n", "AT+NSOST=0,127.0.0.1,9,1,01"),
])
def test_socket_closed_by_the_network(make, peer, dialect, urc, send):
    emu, term = make(dialect)
    if dialect == "sim7020":
        sim_socket(term, peer)
    else:
        bc_socket(term)
    assert emu.close_socket_by_network(0) == [0]
    assert term.read_until(urc) == urc
    assert term.at(send) == (b"\r\n+CME ERROR: 3\r\n" if dialect == "sim7020" else b"\r\n+CME ERROR:3\r\n")


def test_busy_error_on_send(make, peer):
    emu, term = make("bc95")
    bc_socket(term)
    emu.busy_on_send()
    assert term.at("AT+NSOSTF=0,127.0.0.1,%d,0x400,1,01" % peer.port) == b"\r\n+CME ERROR:159\r\n"
    assert term.at("AT+NSOSTF=0,127.0.0.1,%d,0x400,1,01" % peer.port) == b"\r\n0,1\r\n\r\nOK\r\n"
    emu2, term2 = make("sim7020")
    sim_socket(term2, peer)
    emu2.busy_on_send()
    assert term2.at("AT+CSODSEND=0,1") == b"\r\n+CME ERROR: 516\r\n"


def test_first_character_lost_after_sleep(make):
    emu, term = make("sim7020")
    emu.sleep()
    term.write(b"AT\r")
    assert term.drain(0.2) == b""
    assert term.at("AT") == b"\r\nOK\r\n"


def test_sim7020_csclk2_sleeps_when_idle(make):
    emu, term = make("sim7020", sleep_idle=0.3)
    term.at("AT+CSCLK=2")
    time.sleep(0.5)
    before = emu.commands_received
    term.write(b"AT\r")
    assert term.at("AT") == b"\r\nOK\r\n"
    assert emu.commands_received == before + 1


def test_spontaneous_reboot_and_scripted_faults(make, peer):
    emu, term = make("sim7020", faults=[(0.3, "close_socket_by_network", {"sock_id": 0}),
                                        {"at": 0.6, "fault": "reboot"}])
    sim_socket(term, peer)
    assert term.read_until(b"\r\n+CSOERR: 0,4\r\n", timeout=3) == b"\r\n+CSOERR: 0,4\r\n"
    assert term.read_until(SIM_BANNER, timeout=3) == SIM_BANNER
    assert term.at("AT") == b"AT\r\r\nOK\r\n"


def test_counters_and_transcript_account_for_every_byte(make):
    emu, term = make("sim7020")
    emu.reset_counters()
    outs = [term.at(c) for c in ("AT", "AT+CSQ", "AT+CGSN")]
    assert emu.commands_received == 3
    assert emu.commands_log == ["AT", "AT+CSQ", "AT+CGSN"]
    assert emu.bytes_from_device == len(b"AT\rAT+CSQ\rAT+CGSN\r")
    assert emu.bytes_to_device == sum(len(o) for o in outs)
    assert b"".join(d for k, d in emu.transcript if k == "in") == b"AT\rAT+CSQ\rAT+CGSN\r"
    assert b"".join(d for k, d in emu.transcript if k == "out") == b"".join(outs)


# ---------------------------------------------------------------------------- pcap


def _dtls_record(seq, payload):
    return bytes([23, 0xFE, 0xFD, 0, 1]) + seq.to_bytes(6, "big") + len(payload).to_bytes(2, "big") + payload


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_pcap_decodes_in_tshark_with_lengths_checksums_and_dtls(make, peer, tmp_path):
    path = str(tmp_path / "modem.pcap")
    emu, term = make("bc95", pcap=path)
    bc_socket(term)
    up = [_dtls_record(1, b"\x11" * 40), _dtls_record(2, b"\x22" * 3)]
    for rec in up:
        assert term.at("AT+NSOST=0,127.0.0.1,%d,%d,%s" % (peer.port, len(rec), rec.hex().upper())).endswith(b"OK\r\n")
    _, src = peer.recv()
    peer.recv()
    down = _dtls_record(7, b"\x33" * 100)
    peer.sock.sendto(down, src)
    term.read_until(b"+NSONMI:0,%d\r\n" % len(down))
    emu.stop()
    base = ["tshark", "-r", path, "-o", "udp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
            "-d", "udp.port==%d,dtls" % peer.port]
    fields = subprocess.run(base + ["-T", "fields", "-E", "separator=,", "-e", "udp.srcport", "-e", "udp.dstport",
                                    "-e", "udp.length", "-e", "udp.checksum.status", "-e", "ip.checksum.status",
                                    "-e", "dtls.record.content_type"],
                            capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert fields == [
        "%d,%d,%d,1,1,23" % (src[1], peer.port, 8 + len(up[0])),
        "%d,%d,%d,1,1,23" % (src[1], peer.port, 8 + len(up[1])),
        "%d,%d,%d,1,1,23" % (peer.port, src[1], 8 + len(down)),
    ]
    malformed = subprocess.run(base + ["-Y", "_ws.malformed || _ws.expert.severity >= warning"],
                               capture_output=True, text=True, timeout=60, check=True).stdout
    assert malformed.strip() == ""


# ---------------------------------------------------------------------------- CLI


def test_cli_prints_the_pty_and_answers_until_terminated(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with Process([sys.executable, "-m", "tools.modem_emulator", "--dialect", "bc95",
                  "--early-error", "0", "--pcap", str(tmp_path / "x.pcap")], grace=10,
                 cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as cli:
        port = cli.proc.stdout.readline().decode().strip()
        assert cli.proc.stdout.readline().strip() == b"ready"
        term = Term(port)
        term.read_until(BC95_BANNER_END)
        assert term.at("AT+CGSN=1") == b"AT+CGSN=1\r\r\n+CGSN:866425031234567\r\n\r\nOK\r\n"
        term.close()
    assert cli.proc.returncode == 0
    assert os.path.getsize(str(tmp_path / "x.pcap")) == 24


def test_timeline_has_timestamped_uart_and_datagram_events(make, peer):
    emu, term = make("sim7020")
    sim_socket(term, peer)
    emu.reset_counters()
    term.at("AT+CSOSEND=0,2,AB")
    _, src = peer.recv()
    peer.sock.sendto(b"\xcd", src)
    term.read_until(b"CD\r\n")
    kinds = [k for _, k, _ in emu.timeline]
    assert kinds[0] == "in" and "up" in kinds and "down" in kinds
    assert [d for _, k, d in emu.timeline if k in ("up", "down")] == [b"\xab", b"\xcd"]
    times = [t for t, _, _ in emu.timeline]
    assert times == sorted(times)


def test_sporadic_busy_error_on_send_by_seeded_probability(make, peer):
    emu, term = make("sim7020", busy_prob=0.5, seed=1)
    sim_socket(term, peer)
    answers = set(term.at("AT+CSOSEND=0,2,01") for _ in range(12))
    assert answers == {b"\r\nOK\r\n", b"\r\n+CME ERROR: 516\r\n"}


def test_sim7020_csosend_length_unit_can_be_bytes_for_other_firmware(make, peer):
    emu, term = make("sim7020", csosend_length="bytes")
    sim_socket(term, peer)
    assert term.at("AT+CSOSEND=0,8,DEADBEEF") == b"\r\nERROR\r\n"
    assert term.at("AT+CSOSEND=0,4,DEADBEEF") == b"\r\nOK\r\n"
    assert peer.recv()[0] == b"\xde\xad\xbe\xef"


def test_send_after_the_peer_was_unreachable_still_goes_out(make):
    emu, term = make("bc95")
    bc_socket(term)
    gone = Peer()
    port = gone.port
    gone.sock.close()
    term.at("AT+NSOST=0,127.0.0.1,%d,1,01" % port)
    time.sleep(0.05)
    back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        back.bind(("127.0.0.1", port))
        back.settimeout(2)
        assert term.at("AT+NSOST=0,127.0.0.1,%d,1,02" % port) == b"\r\n0,1\r\n\r\nOK\r\n"
        assert back.recvfrom(10)[0] == b"\x02"
    finally:
        back.close()


@pytest.mark.parametrize("dialect", ["sim7020", "bc95"])
def test_a_coverage_hole_shows_no_signal_and_the_signal_comes_back_with_the_cell(make, dialect):
    emu, term = make(dialect)
    assert emu.wait_registered(3)
    sep = b": " if dialect == "sim7020" else b":"
    assert term.at("AT+CSQ") == b"\r\n+CSQ" + sep + b"20,99\r\n\r\nOK\r\n"
    emu.lose_registration(duration=None)            # searching: no cell in sight
    assert term.at("AT+CSQ") == b"\r\n+CSQ" + sep + b"99,99\r\n\r\nOK\r\n"
    emu.regain_registration()
    assert emu.wait_registered(2)
    assert term.at("AT+CSQ") == b"\r\n+CSQ" + sep + b"20,99\r\n\r\nOK\r\n"
    emu.lose_registration(duration=None, stat=3)    # denied: the cell is there
    assert term.at("AT+CSQ") == b"\r\n+CSQ" + sep + b"20,99\r\n\r\nOK\r\n"
