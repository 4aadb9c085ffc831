"""`make monitor` and `make repl` (tools/board_console.py) against a scripted board on a
pseudo-terminal that sleeps, wakes, logs a cycle, and falls to its REPL on Ctrl-C the way
firmware/main.py does; the last test drives mpremote's own REPL through a terminal."""
import os
import pty
import re
import subprocess
import sys
import threading
import time
import tty

import pytest

from ptyproc import PtyProcess
from tools import board_console

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "board_console.py")
CYCLE_LOG = [b"[enosnb] boot: enosnb 0.1.0, reset power-on, modem SIMCOM_SIM7020G 1910B05SIM7020G",
             b"[enosnb] connected (full)",
             b"[enosnb] cycle: sent 1, queue 0, connect full, awake 1412 ms, attach 1200 ms"]


class ScriptedBoard:
    """The board side of the serial line. asleep_s: deaf and silent (deep sleep); then it
    boots and runs a cycle of cycle_s during which Ctrl-C stops main.py with the watchdog
    armed (armed_wdt_s) or, before the cycle (armed_wdt_s None), at a plain prompt; at the
    prompt it evaluates what is typed."""

    def __init__(self, asleep_s=0.0, cycle_s=30.0, armed_wdt_s=180, cycles=1):
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.asleep_s = asleep_s
        self.cycle_s = cycle_s
        self.armed_wdt_s = armed_wdt_s
        self.cycles = cycles
        self.received = b""
        self.at_prompt = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _write(self, data):
        os.write(self.master, data)

    def _read(self, timeout):
        import select
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return b""
        try:
            data = os.read(self.master, 1024)
        except OSError:
            return b""
        self.received += data
        return data

    def _run(self):
        end = time.monotonic() + self.asleep_s
        while time.monotonic() < end and not self._stop:
            self._read(0.05)  # the UART of a sleeping ESP32 hears nothing
        for n in range(self.cycles):
            self._write(b"ets Jun  8 2016 00:22:57\r\nrst:0x5 (DEEPSLEEP_RESET),boot:0x13\r\n")
            for line in CYCLE_LOG:
                self._write(line + b"\r\n")
                if self._wait_ctrl_c(self.cycle_s / len(CYCLE_LOG)):
                    return self._repl()
            self._write(b"[enosnb] deep sleep 600000 ms\r\n")
            if n + 1 < self.cycles:
                time.sleep(0.2)
        while not self._stop:
            self._read(0.05)

    def _wait_ctrl_c(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self._stop:
            if b"\x03" in self._read(0.02):
                return True
        return False

    def _repl(self):
        self._write(b"Traceback (most recent call last):\r\nKeyboardInterrupt: \r\n")
        if self.armed_wdt_s:
            self._write(b"enosnb: stopped by Ctrl-C; the watchdog resets the board in %d s\r\n"
                        % self.armed_wdt_s)
        self._write(b"MicroPython v1.24.1 on 2024-11-29; Generic ESP32 module with ESP32\r\n"
                    b'Type "help()" for more information.\r\n>>> ')
        self.at_prompt = True
        line = b""
        while not self._stop:
            for c in self._read(0.05):
                ch = bytes((c,))
                if ch == b"\x03":
                    line = b""
                    self._write(b"\r\n>>> ")
                elif ch == b"\r":
                    try:
                        result = repr(eval(line.decode(), {})).encode()
                    except Exception as e:
                        result = type(e).__name__.encode()
                    self._write(b"\r\n" + result + b"\r\n>>> ")
                    line = b""
                elif ch in (b"\x01", b"\x02", b"\x04"):
                    pass
                else:
                    line += ch
                    self._write(ch)

    def close(self):
        self._stop = True
        self._thread.join(5)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def board(request):
    b = ScriptedBoard(**getattr(request, "param", {}))
    yield b
    b.close()


@pytest.mark.parametrize("board", [{"asleep_s": 0.7, "cycle_s": 0.6}], indirect=True)
def test_monitor_prints_each_line_with_host_time_and_never_writes_to_the_board(board,
                                                                               tmp_path):
    log = tmp_path / "console.log"
    r = subprocess.run([sys.executable, TOOL, "monitor", "--port", board.port, "--seconds",
                        "2.5", "--log", str(log)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    stamped = [ln for ln in r.stdout.splitlines() if re.match(r"\d\d:\d\d:\d\d\.\d{3} ", ln)]
    assert [ln[13:] for ln in stamped] == [
        "ets Jun  8 2016 00:22:57", "rst:0x5 (DEEPSLEEP_RESET),boot:0x13"] + [
        c.decode() for c in CYCLE_LOG] + ["[enosnb] deep sleep 600000 ms"]
    assert log.read_text().splitlines() == stamped
    assert board.received == b"", "monitor must not send anything to a running board"


@pytest.mark.parametrize("board", [{"asleep_s": 1.5, "cycle_s": 6.0}], indirect=True)
def test_repl_waits_for_a_sleeping_board_to_wake_and_breaks_into_the_cycle(board):
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, TOOL, "repl", "--port", board.port, "--wait", "20",
                        "--break-only"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert time.monotonic() - t0 >= 1.5
    assert board.at_prompt
    assert "-- at the REPL" in r.stdout
    assert "the board resets in 180 s" in r.stdout
    assert "os.rename('main.py', 'main_off.py')" in r.stdout


@pytest.mark.parametrize("board", [{"cycle_s": 6.0, "armed_wdt_s": None}], indirect=True)
def test_repl_before_the_cycle_says_the_watchdog_is_not_armed(board):
    r = subprocess.run([sys.executable, TOOL, "repl", "--port", board.port, "--wait", "10",
                        "--break-only"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the watchdog was not armed" in r.stdout


@pytest.mark.parametrize("board", [{"asleep_s": 30.0}], indirect=True)
def test_repl_gives_up_with_advice_when_the_board_never_answers(board):
    r = subprocess.run([sys.executable, TOOL, "repl", "--port", board.port, "--wait", "1",
                        "--break-only"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "no REPL prompt" in r.stderr and "RESET" in r.stderr and "make ports" in r.stderr


def test_a_missing_port_and_a_port_without_rts_are_explained(board, capsys):
    r = subprocess.run([sys.executable, TOOL, "monitor", "--port", "/dev/ttyUSB-none",
                        "--seconds", "0.5"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "does not exist" in r.stderr and "make ports" in r.stderr
    # A pseudo-terminal has no modem-control lines, like a bare UART adapter.
    board_console.monitor(board.port, reset=True, seconds=0.3)
    assert "cannot reset the board (no RTS line" in capsys.readouterr().out


def use_mpremote_repl(p):
    """On the terminal of `repl`: the prompt reached, mpremote's REPL evaluates 6*7 on the
    board, Ctrl-] leaves it and the command ends well."""
    try:
        p.expect(r"-- at the REPL", timeout=120)
        p.expect(r"Use Ctrl-\] or Ctrl-x to exit this shell", timeout=30)
        p.wait_raw()
        p.send("6*7\r")
        p.expect(r"\n42\n", timeout=10)
        p.send("\x1d")
        assert p.wait(30) == 0
    finally:
        p.close()


@pytest.mark.parametrize("board", [{"cycle_s": 8.0}], indirect=True)
def test_repl_hands_the_prompt_to_mpremote_and_the_board_answers(board):
    use_mpremote_repl(PtyProcess([sys.executable, TOOL, "repl", "--port", board.port,
                                  "--wait", "20"]))
