"""firmware/main.py on the MicroPython unix port through the modem emulator to the local EnOS
server: the demo path, power cuts (SIGKILL and torn flash pages), an outage, the watchdog, and
the `machine` stand-in behaving no friendlier than an ESP32. Prints powercut.micropython.*."""
import json
import os
import re
import subprocess
import sys

import pytest

from tools.host import mpruntime
from tools.host.powercut import run as powercut_run
from tools.twin import Twin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(mpruntime.why_unavailable() is not None,
                                reason=str(mpruntime.why_unavailable()))


@pytest.fixture
def mp_twin(tmp_path):
    made = []

    def make(board="esp32-sim7020", **kw):
        kw.setdefault("sleep_scale", 0.0002)
        t = Twin(board, out=str(tmp_path / ("t%d" % len(made))), runtime="micropython", **kw)
        made.append(t)
        return t.start()
    yield make
    for t in made:
        t.stop()


def test_demo_runs_on_micropython_with_the_output_it_has_on_cpython(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "twin.py"), "--runtime",
                        "micropython", "--cycles", "4", "--command", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "twin: MicroPython unix port, deployment mode mpy" in out
    assert "boot: enosnb " in out and "IMEI 866425031234567" in out
    assert re.search(r"cycle 1 \(power-on\): sent 1 reading; queue empty; full DTLS "
                     r"handshake; awake \d+ ms, modem ready in \d+ ms, 4 round trips, \d+ B up, "
                     r"\d+ B down; signal CSQ 20 \(-73 dBm\); deep sleep \d+ min", out), out
    # Behind the carrier NAT: the first wake's probe of the restored session goes unanswered
    # and the device learns the NAT; later wakes resume at once.
    for i, how in ((2, "restored session unanswered"), (3, "DTLS session resumed"),
                   (4, "DTLS session resumed")):
        assert ("cycle %d (wake from deep sleep): sent 1 reading; queue empty; %s"
                % (i, how)) in out
    assert "device executed the command: set points: {\"setpoint\": 23.5}" in out
    assert "twin: server received readings [1, 2, 3, 4]; device queue now []" in out
    assert "replied" in out


def test_cpython_is_used_when_asked_and_says_so_in_one_line(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "twin.py"), "--runtime",
                        "cpython", "--cycles", "1", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "twin: CPython\n" in r.stdout
    assert "server received readings [1]" in r.stdout


def test_flash_is_littlefs_holding_what_deploy_copies_and_survives_boots(mp_twin):
    twin = mp_twin()
    b = twin.run_cycle()
    files = sorted(os.listdir(twin.flash))
    for name in ("boot.py", "main.py", "sensors.py", "board.json", "secrets.json", "lib",
                 "queue", "reading.json"):
        assert name in files
    pkg = os.listdir(os.path.join(twin.flash, "lib", "enosnb"))
    assert "app.mpy" in pkg and not any(n.endswith(".py") for n in pkg)
    with open(twin.image.path, "rb") as f:
        f.seek(8)
        assert f.read(8) == b"littlefs"
    assert os.path.getsize(twin.image.path) == 512 * 4096
    # After a power-on the device sleeps to its own slot in the interval (fleet timing).
    assert 300000 <= b.sleep_ms <= 900000 and twin.readings() == [1]


def test_power_cuts_on_micropython_lose_and_duplicate_nothing():
    figures = powercut_run(kills=15, runtime="micropython", seed=3)
    for name, value in figures.items():
        print("%s: %s" % (name, value))
    assert figures["powercut.micropython.kills"] >= 30
    assert figures["powercut.micropython.lost"] == 0
    assert figures["powercut.micropython.duplicated"] == 0
    assert figures["powercut.micropython.out_of_order"] == 0
    assert figures["powercut.micropython.still_queued"] == 0
    assert figures["outage.micropython.lost"] == 0


def test_a_board_that_stops_feeding_the_watchdog_is_reset_with_wdt_reset(mp_twin):
    twin = mp_twin()
    twin.write_flash("main.py", "import machine\nw = machine.WDT(timeout=1200)\n"
                                "print('cause', machine.reset_cause())\nwhile True:\n    pass\n")
    b = twin.run_cycle()
    assert b.watchdog and "cause 1" in b.log
    b = twin.run_cycle()
    assert b.watchdog and "cause 3" in b.log


STANDIN = r'''
import machine, os, time
u = machine.UART(1, 115200, rxbuf=256, timeout=0)
for _ in range(100):
    u.write(b"AT\r\n")
time.sleep_ms(700)
print("any", u.any(), "dropped", u.dropped > 200)
data = u.read()
print("read", len(data), data[:4], "then", u.read())
r = machine.RTC()
r.memory(b"x" * 2048)
try:
    r.memory(b"x" * 2049)
except ValueError:
    print("rtc cap")
p = machine.Pin(25, machine.Pin.OUT, value=1)
p.init(hold=True)
p.value(0)
print("held", p.value())
print("consts", machine.PWRON_RESET, machine.HARD_RESET, machine.WDT_RESET,
      machine.DEEPSLEEP_RESET, machine.SOFT_RESET, machine.reset_cause())
print("cwd", os.getcwd(), sorted(os.listdir("/")))
machine.deepsleep(5000)
print("not reached")
'''


def test_machine_standin_on_micropython_is_no_friendlier_than_an_esp32(mp_twin):
    twin = mp_twin()
    twin.write_flash("main.py", STANDIN)
    b = twin.run_cycle()
    # 100 answers to AT arrive while the program sleeps: the 256-byte ring keeps 256.
    assert "any 256 dropped True" in b.log
    assert "read 256 b'AT\\r\\r' then None" in b.log
    assert "rtc cap" in b.log
    assert "held 1" in b.log
    assert "consts 1 2 3 4 5 1" in b.log
    assert "cwd / " in b.log and "'main.py'" in b.log
    assert "not reached" not in b.log
    assert b.sleep_ms == 5000 and b.pins == {"25": [1, 1]}


def test_the_phase_line_counts_boot_from_the_process_start_and_lists_phases_in_order(mp_twin):
    # The unix port's ticks count from the host's start; an ESP32's from the chip's, which
    # the boot figure means (tools/host/time.py makes the port count as a chip does).
    b = mp_twin().run_cycle()
    line = b.line("[enosnb] phases (ms): ")
    words = line.split(": ", 1)[1].split()
    names, ms = words[0::2], [int(w) for w in words[1::2]]
    assert names == ["boot", "imports", "measure", "attach", "handshake", "report", "save"]
    assert 0 <= ms[0] < 10000
