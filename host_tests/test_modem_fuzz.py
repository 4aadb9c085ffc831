"""Fuzzed modem output into the AT engine and both drivers: whatever bytes the modem
sends, in whatever pieces, the caller sees a result or a ModemError subclass, never another
exception and never a hang. Seed corpus: host_tests/corpus/at/.
"""
import os

from hypothesis import HealthCheck, given, settings, strategies as st

from enosnb.modem.at import AtEngine
from enosnb.modem.bc95 import Bc95
from enosnb.modem.errors import ModemError
from enosnb.modem.sim7020 import Sim7020
from vmcheck import VirtualClock

CORPUS_DIR = os.path.join(os.path.dirname(__file__), "corpus", "at")
CORPUS = [open(os.path.join(CORPUS_DIR, n), "rb").read() for n in sorted(os.listdir(CORPUS_DIR))]

# Pieces the modems really send, so that random streams reach the interesting states.
TOKENS = [b"\r\n", b"\r", b"\n", b"OK", b"ERROR", b"+CME ERROR: ", b"+CME ERROR:", b"159",
          b"+CSONMI: 0,8,CAFEBABE", b"+CSONMI: ", b"+CSOERR: 0,4", b"+CPIN: READY",
          b"+CEREG: 1,1", b"+CEREG:2", b"+CEREG: ", b"+NSONMI:0,4", b"+NSOCLI:0",
          b"0,127.0.0.1,5683,4,CAFEBABE,0", b"REBOOTING", b"Neul", b'+CPSMSTATUS: "EXIT PSM"',
          b"+NPSMR:0", b"+CSOC: 0", b"0", b"0,4", b",", b"\xff", b"\x00", b"A" * 1200,
          b"+CSQ: 20,99", b"+CGSN: 866425031234567", b"+CDNSGIP: 1,", b"+QDNS:",
          b"866425031234567", b"RDY", b"SMS Ready", b"+CFUN: 1", b"+CPIN: NOT READY",
          b"NORMAL POWER DOWN", b'+CLTS: "24/02/29,23:30:00+08"', b"+CTZV: +32",
          b"+CCLK: 24/02/29,23:30:00+32", b"+CCLK:80/01/06,00:00:07+00",
          b'+CEREG: 1,"5B57","01A50B1A",9,"00",,,"00000001","00111000"',
          b'+CEREG: 4,1,"5B57","01A50B1A",9,,,"11100000","11100000"',
          b"+NSONMI:0,127.0.0.1,5683,2,CAFE", b"+NSONMI:0,2,CAFE", b"+NSONMI:0,3,CA",
          b"APPLICATION,V100R100C10B650", b"Revision:1910B05SIM7020G"]

streams = st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=40),
                             st.sampled_from(CORPUS)), max_size=30).map(b"".join)


class FuzzUart:
    """Answers every command with the next piece of the fuzz stream, in small reads."""

    def __init__(self, data, pieces, chunk):
        self.data = data
        self.pieces = max(1, pieces)
        self.chunk = max(1, chunk)
        self.rx = bytearray()
        self.writes = 0

    def write(self, b):
        if b.endswith(b"\r"):
            self.writes += 1
            n = (len(self.data) + self.pieces - 1) // self.pieces
            self.rx.extend(self.data[:n])
            self.data = self.data[n:]
        return len(b)

    def any(self):
        return len(self.rx)

    def read(self, n):
        n = min(n, self.chunk, len(self.rx))
        if not n:
            return None
        out = bytes(self.rx[:n])
        del self.rx[:n]
        return out


# Plausible answers per command, so that noise lands in every state of the drivers.
ANSWERS = (("AT+CEREG?", b"\r\n+CEREG: 1,1\r\n"), ("AT+CSOC=", b"\r\n+CSOC: 0\r\n"),
           ("AT+NSOCR", b"\r\n0\r\n"), ("AT+NSOST", b"\r\n0,3\r\n"),
           ("AT+NSORF", b"\r\n0,127.0.0.1,5683,2,CAFE,0\r\n"),
           ("AT+CPIN?", b"\r\n+CPIN: READY\r\n"),
           ("AT+CGSN", b"\r\n866425031234567\r\n"),
           ("AT+CGSN=1", b"\r\n+CGSN: 866425031234567\r\n"), ("AT+CSQ", b"\r\n+CSQ: 20,99\r\n"),
           ("AT+CGMR", b"\r\nAPPLICATION,V100R100C10B657SP3\r\n"),
           ("AT+CCLK?", b"\r\n+CCLK: 24/02/29,23:30:00+32\r\n"),
           ("AT+CGPADDR", b"\r\n+CGPADDR: 1,\"10.1.2.3\"\r\n"))


class NoisyModem(FuzzUart):
    """A modem that answers sensibly, with fuzz bytes mixed into each answer."""

    def write(self, b):
        self._cmd = getattr(self, "_cmd", b"") + b
        if not b.endswith(b"\r"):
            return len(b)
        cmd, self._cmd = self._cmd[:-1].decode(), b""
        self.writes += 1
        n = (len(self.data) + self.pieces - 1) // self.pieces
        noise, self.data = self.data[:n], self.data[n:]
        info = b""
        for head, answer in ANSWERS:
            if cmd.startswith(head):
                info = answer
        cut = len(noise) // 2
        self.rx.extend(noise[:cut] + info + noise[cut:] + b"\r\nOK\r\n")
        return len(b)


FAST = dict(reg_poll_ms=200, reattach_timeout_ms=2000, boot_timeout_ms=2000,
            reinit_attempts=2)


def _run(fn):
    try:
        fn()
    except ModemError:
        pass


EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 300))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams, st.integers(1, 8), st.integers(1, 64))
def test_engine_gives_results_or_modem_errors_only(data, pieces, chunk):
    clock = VirtualClock()
    at = AtEngine(FuzzUart(data, pieces, chunk), clock)
    at.boot_markers(("REBOOTING", "Neul"), ("REBOOT_CAUSE",))
    at.urc("+CSONMI", lambda line: int(line.split(",")[1]))
    for cmd in ("AT+CSQ", "AT+NSORF=0,512", "AT+CGSN=1"):
        _run(lambda: at.command(cmd, 500))
    _run(lambda: at.sync(3, 200, "AT+CGSN=1", "+CGSN"))
    at.poll(100)
    assert clock.now < 60000


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from((Sim7020, Bc95)), st.booleans(), streams, st.integers(1, 30),
       st.integers(1, 64))
def test_drivers_give_results_or_modem_errors_only(cls, noisy, data, pieces, chunk):
    clock = VirtualClock()
    uart = (NoisyModem if noisy else FuzzUart)(data, pieces, chunk)
    m = cls(uart, clock, **FAST)
    _run(m.power_on)
    _run(m.init)
    _run(lambda: m.attach("iot.example", timeout_ms=1000))
    _run(m.signal)
    _run(m.ip)
    sock = [None]

    def open_and_use():
        sock[0] = m.socket("127.0.0.1", 5683)
        sock[0].send(b"\x01\x02\x03")
        sock[0].recv(300)

    _run(open_and_use)
    _run(m.network_time)
    _run(lambda: m.psm(3600, 2))
    _run(m.cold_start)
    _run(m.radio_off)
    assert isinstance(cls(uart, clock, memory=m.memory(), **FAST).memory(), bytes)
    # Every path is bounded: the virtual clock never runs away and the command count is finite.
    assert clock.now < 600000
    assert uart.writes < 2000


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.sampled_from((Sim7020, Bc95)), st.binary(max_size=80))
def test_a_garbled_driver_memory_is_forgotten_not_raised(cls, memory):
    m = cls(FuzzUart(b"", 1, 1), VirtualClock(), memory=memory)
    assert isinstance(m.memory(), bytes)
    assert all(m.can(f) in (True, False) for f in ("ate", "nsostf", "psm", "rai", "reg"))


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.one_of(st.text(max_size=40), st.from_regex(
    r"\A\+CCLK: ?\"?\d\d/\d\d/\d\d,\d\d:\d\d:\d\d([+-]\d\d)?\"?\Z")))
def test_network_time_answers_give_a_time_none_or_value_error(answer):
    from enosnb.modem.nettime import parse_cclk
    try:
        t = parse_cclk(answer, utc=True)
    except ValueError:
        return
    assert t is None or (len(t) == 8 and 1 <= t[1] <= 12 and 1 <= t[2] <= 31 and
                         0 <= t[3] <= 6 and t[4] < 24 and t[5] < 60)


def test_seed_corpus_parses_without_surprises():
    for data in CORPUS:
        clock = VirtualClock()
        at = AtEngine(FuzzUart(data, 1, 7), clock)
        at.boot_markers(("REBOOTING", "Neul"), ("REBOOT_CAUSE",))
        _run(lambda: at.command("AT+CSQ", 200))
        at.poll(50)
