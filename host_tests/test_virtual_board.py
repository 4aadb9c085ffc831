"""The virtual board (tools/host/board.py) as a device maker meets a real one: `make deploy`
copies the firmware with the real mpremote over the board's pseudo-terminal, the reset runs
main.py, a reading reaches the local EnOS server; Ctrl-C stops main.py at the REPL; the board
runs under the heap cap of its deployment mode."""
import json
import os
import shlex
import subprocess
import sys
import time

import pytest

from tools.host import mpruntime
from tools.host.board import VirtualBoard
from tools.twin import DEMO_DEVICE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(mpruntime.why_unavailable() is not None,
                                reason=str(mpruntime.why_unavailable()))


def _make_deploy(port, *extra):
    r = subprocess.run(["make", "-s", "-C", ROOT, "deploy", "PORT=" + port,
                        "BOARD=esp32-sim7020"] + list(extra),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    # deploy.py prints the mpremote command (shell-quoted; the clean-up snippet spans lines)
    # before it runs it, after the mpy-cross summary; mpremote's own output follows.
    return "\n".join(ln for ln in r.stdout.splitlines() if not ln.startswith("mpy-cross:"))


def _readings(board):
    from tools.enos_server.db import Db
    db = Db(os.path.join(board.dir, "enos.sqlite"))
    try:
        return [p for p in db.points(DEMO_DEVICE["deviceKey"], 1000) if p["name"] == "temperature"]
    finally:
        db.close()


def _mpremote(port, *args):
    r = subprocess.run([sys.executable, "-m", "mpremote", "connect", port] + list(args),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _read_until(fd, marker, timeout=20):
    import select
    out = b""
    end = time.time() + timeout
    while marker not in out and time.time() < end:
        if select.select([fd], [], [], 0.1)[0]:
            out += os.read(fd, 4096)
    return out


@pytest.fixture
def board(tmp_path):
    b = VirtualBoard("esp32-sim7020", str(tmp_path / "board"), mode="mpy", fresh=True,
                     sleep_scale=0.01).start()
    yield b
    b.stop()


def test_make_deploy_to_the_virtual_board_then_reset_reports_a_reading(board):
    dry = _make_deploy("/dev/ttyUSB0", "DRY=1")
    ran = _make_deploy(board.port)
    # The command run is the one a user runs against a real ESP32, the port aside.
    cmd = shlex.split(dry)
    assert cmd[1:5] == ["-m", "mpremote", "connect", "/dev/ttyUSB0"] and cmd[-1] == "reset"
    assert ran.startswith(dry.replace(" /dev/ttyUSB0 ", " %s " % board.port) + "\n")
    deadline = time.time() + 90
    while not _readings(board) and time.time() < deadline:
        time.sleep(0.2)
    points = _readings(board)
    assert points, "no reading reached the server after the reset"
    assert board.boots[0] == (1, "friendly")          # power-on, empty board: REPL
    assert (1, "raw") in board.boots                   # mpremote's soft reset, raw REPL
    assert (5, "friendly") in board.boots              # machine.reset(): main.py ran
    files = board.files()
    assert set(os.listdir(files)) >= {"board.json", "boot.py", "lib", "main.py", "queue",
                                      "secrets.json", "sensors.py"}
    assert "app.mpy" in os.listdir(os.path.join(files, "lib", "enosnb"))


def test_ctrl_c_reaches_the_repl_and_the_heap_is_the_modes_cap(board):
    heap = _mpremote(board.port, "exec", "import gc; print(gc.mem_free() + gc.mem_alloc())")
    cap = mpruntime.heap_cap("mpy")
    assert cap * 0.97 < int(heap) <= cap  # the GC's own tables take the rest
    loop = "import time\nwhile True:\n    print('tick')\n    time.sleep_ms(100)\n"
    with open(os.path.join(board.dir, "loop.py"), "w") as f:
        f.write(loop)
    _mpremote(board.port, "fs", "cp", os.path.join(board.dir, "loop.py"), ":main.py", "+",
              "reset")
    fd = os.open(board.port, os.O_RDWR | os.O_NOCTTY)
    try:
        assert b"tick" in _read_until(fd, b"tick")
        os.write(fd, b"\x03")
        out = _read_until(fd, b">>> ")
        assert b"KeyboardInterrupt" in out and out.endswith(b">>> ")
        os.write(fd, b"print(6 * 7)\r")
        assert b"42" in _read_until(fd, b"42")
    finally:
        os.close(fd)
    assert json.loads(json.dumps(board.boots[-1])) == [5, "friendly"]
