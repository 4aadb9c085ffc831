"""A virtual ESP32 on the MicroPython unix port: its REPL on a pseudo-terminal that mpremote
(or a terminal program) opens like /dev/ttyUSB0, its flash in a folder, its UART wired to the
modem emulator, the local EnOS server behind that, and the resets of a real board.

    python -m tools.host.board [--board esp32-sim7020] [--dir out/board] [--mode mpy]
                               [--heap BYTES] [--sleep-scale 0.01] [--fresh]
    (make board)   prints "board: port /dev/pts/N"; Enter presses the reset button; Ctrl-C ends.

What a real board does, and how this one does it:
- Flash: littlefs2 in <dir>/flash.bin (tools/host/flashdev.py), kept between runs (--fresh
  erases it, as `make flash` does). The first boot formats it and writes the stock boot.py.
  The board comes with secrets.json for the local server's demo device, as after `make secrets`
  and a first `make deploy SECRETS=1`.
- Power-on, reset button, machine.reset(), watchdog, wake from deep sleep: a new MicroPython
  process runs boot.py, then main.py, then the REPL (tools/host/mpboot.py, `micropython -i`),
  under the heap cap of the deployment mode. reset_cause() tells which; RTC memory survives all
  but power-on. Deep sleep lasts the requested time times --sleep-scale; what the host sends
  meanwhile is lost, as the UART of a sleeping ESP32 hears nothing.
- Soft reset (Ctrl-D in the REPL, mpremote's soft reset before it copies files): the unix port
  exits there, so this runner prints "MPY: soft reboot" and starts it again in the same REPL mode:
  in the raw REPL boot.py runs but main.py does not, and the new process is put into the raw
  REPL before the host sees it, as on the ESP32.
- Ctrl-C: the process has the inner pty as its controlling terminal, so Ctrl-C interrupts a
  running main.py (KeyboardInterrupt) and the REPL follows.
The port the host opens is the slave of an outer pty; this runner copies bytes between it and
the inner pty of the running process, which is where the resets above are handled.
"""
import argparse
import fcntl
import json
import os
import select
import subprocess
import sys
import termios
import threading
import time
import tty

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.host import mpruntime  # noqa: E402

PWRON_RESET = 1
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
CORRUPTED = 3
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER = b'Type "help()" for more information.'


def _set_ctty():
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _inner_pty():
    """A pty for one boot: raw (the REPL's own "\\r\\n" must reach the host unchanged), but
    Ctrl-C raises SIGINT while code runs; the unix REPL turns ISIG off while it reads a line."""
    master, slave = os.openpty()
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    attrs[3] |= termios.ISIG
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    return master, slave


class VirtualBoard:
    def __init__(self, board="esp32-sim7020", dir="out/board", mode="mpy", heap=None,
                 sleep_scale=0.01, fresh=False, server=None, emulator=None, log=None):
        self.board_name = board
        self.dir = os.path.abspath(dir)
        self.mode = mode
        self.heap = heap or mpruntime.heap_cap(mode)
        self.sleep_scale = sleep_scale
        self.fresh = fresh
        self.server = server
        self._own_server = server is None
        self.emulator_opts = dict(emulator or {})
        self.log = log or (lambda msg: None)
        self.emu = None
        self.proc = None
        self.boots = []          # (reset cause, REPL mode) of every boot, oldest first
        self.cause = PWRON_RESET
        self.repl = "friendly"
        self._stop = threading.Event()
        self._reset_button = threading.Event()
        self._thread = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self):
        from tools.enos_server.server import EnosServer
        from tools.modem_emulator import ModemEmulator
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(ROOT, "boards", self.board_name, "board.json")) as f:
            self.board = json.load(f)
        if self.server is None:
            self.server = EnosServer(None, os.path.join(self.dir, "enos.sqlite"), "127.0.0.1",
                                     0, 0, log=None).start()
        opts = dict(boot_time=0.02, registration_delay=0.05, cpin_delay=0.01, seed=0)
        opts.update(self.emulator_opts)
        self.emu = ModemEmulator(self.board["modem"], **opts)
        self.flash = mpruntime.Flash(os.path.join(self.dir, "flash.bin"))
        if self.fresh or not os.path.exists(self.flash.path):
            self.flash.create()
        self._provision()
        for name in ("rtc.bin", "pins.json"):
            self._remove(name)
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._kill()
        if self.emu is not None:
            self.emu.stop()
            self.emu = None
        if self._own_server and self.server is not None:
            self.server.stop()
            self.server = None
        for fd in ("master", "_slave"):
            if getattr(self, fd, None) is not None:
                os.close(getattr(self, fd))
                setattr(self, fd, None)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def press_reset(self):
        """The EN button: the chip restarts as at power-on (RTC memory lost)."""
        self._reset_button.set()

    def secrets(self):
        from tools.twin import DEMO_DEVICE
        d = DEMO_DEVICE
        return {"productKey": d["productKey"], "deviceKey": d["deviceKey"],
                "deviceSecret": d["deviceSecret"], "secureMode": 2, "lifetime": 3600,
                "host": "127.0.0.1", "dtls": True, "port_dtls": self.server.dtls_port,
                "port_plain": self.server.port}

    def _provision(self):
        stage = os.path.join(self.dir, "stage")
        os.makedirs(stage, exist_ok=True)
        with open(os.path.join(stage, "secrets.json"), "w") as f:
            json.dump(self.secrets(), f, indent=1)
        self.flash.put(stage)
        os.remove(os.path.join(stage, "secrets.json"))
        os.rmdir(stage)

    def files(self, dest=None):
        """Copies the flash's files to dest (default <dir>/files) and returns that path."""
        dest = dest or os.path.join(self.dir, "files")
        self.flash.export(dest)
        return dest

    # --- one boot ------------------------------------------------------------------------

    def _path(self, name):
        return os.path.join(self.dir, name)

    def _remove(self, name):
        if os.path.exists(self._path(name)):
            os.remove(self._path(name))

    def _env(self):
        env = dict(os.environ)
        env.update({"ENOSNB_UART%d" % self.board["uart"]["id"]: self.emu.port,
                    "ENOSNB_RTC_FILE": self._path("rtc.bin"),
                    "ENOSNB_DEEPSLEEP_FILE": self._path("deepsleep.txt"),
                    "ENOSNB_RESET_FILE": self._path("reset.txt"),
                    "ENOSNB_PINS_FILE": self._path("pins.json"),
                    "ENOSNB_WDT_FILE": self._path("wdt.txt"),
                    "ENOSNB_RESET_CAUSE": str(self.cause),
                    "ENOSNB_FLASH_IMAGE": self.flash.path,
                    "ENOSNB_FLASH_BLOCKS": str(self.flash.blocks),
                    "ENOSNB_REPL": self.repl})
        for k in ("ENOSNB_TWIN_TUNE", "ENOSNB_KILL_FLASH", "ENOSNB_KILL_AT"):
            env.pop(k, None)
        return env

    def _boot(self):
        for name in ("deepsleep.txt", "reset.txt", "wdt.txt"):
            self._remove(name)
        self.boots.append((self.cause, self.repl))
        self.log("boot: reset cause %d, %s REPL" % (self.cause, self.repl))
        self.inner, slave = _inner_pty()
        self.proc = subprocess.Popen(mpruntime.command(self.heap, interactive=True),
                                     stdin=slave, stdout=slave, stderr=slave,
                                     preexec_fn=_set_ctty, env=self._env(), cwd=self.dir)
        os.close(slave)
        # After a soft reset in the raw REPL the new process must be in the raw REPL before
        # the host sees it: its friendly banner is held back until Ctrl-A has been sent.
        self._hold = bytearray() if self.repl == "raw" else None

    def _kill(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None
        if getattr(self, "inner", None) is not None:
            os.close(self.inner)
            self.inner = None

    def _to_host(self, data):
        if self._hold is not None:
            self._hold += data
            i = self._hold.find(b"MicroPython ")
            j = self._hold.find(b">>> ", max(i, 0))
            if i < 0 or j < 0:
                if i < 0 and b"\n" in self._hold:  # boot.py output: passes as it comes
                    k = self._hold.rfind(b"\n") + 1
                    self._write_host(bytes(self._hold[:k]))
                    del self._hold[:k]
                return
            self._write_host(bytes(self._hold[:i]))
            self._hold = None
            os.write(self.inner, b"\x01")
            return
        if RAW_BANNER in data:
            self.repl = "raw"
        elif FRIENDLY_BANNER in data:
            self.repl = "friendly"
        self._write_host(data)

    def _write_host(self, data):
        try:
            os.write(self.master, data)
        except OSError:
            pass

    def _drain_host(self):
        """What the host sent while the board was resetting or asleep is lost."""
        while select.select([self.master], [], [], 0)[0]:
            try:
                os.read(self.master, 4096)
            except OSError:
                return

    def _sleep(self, ms):
        end = time.time() + ms / 1000.0 * self.sleep_scale
        while time.time() < end and not self._stop.is_set() and not self._reset_button.is_set():
            self._drain_host()
            time.sleep(0.02)
        self._drain_host()

    def _after_exit(self):
        """Decides what the ended process means for the board and boots it again."""
        code = self.proc.returncode
        self._kill()
        from tools.twin import _first_line
        sleep_ms = _first_line(self._path("deepsleep.txt"), int)
        if self._reset_button.is_set():
            self._reset_button.clear()
            self.cause, self.repl = PWRON_RESET, "friendly"
            self._remove("rtc.bin")
            self._remove("pins.json")
        elif sleep_ms is not None:
            self.log("deep sleep %d ms" % sleep_ms)
            self._sleep(sleep_ms)
            self.cause, self.repl = DEEPSLEEP_RESET, "friendly"
            if self._reset_button.is_set():
                return self._after_exit_button()
        elif _first_line(self._path("reset.txt"), str):
            self.cause, self.repl = SOFT_RESET, "friendly"
        elif code == CORRUPTED:
            self.log("flash corrupted: the board waits for `make board FRESH=1`")
            self._stop.wait()
            return
        else:
            self._write_host(b"MPY: soft reboot\r\n")
        self._boot()

    def _after_exit_button(self):
        self._reset_button.clear()
        self.cause, self.repl = PWRON_RESET, "friendly"
        self._remove("rtc.bin")
        self._boot()

    def _run(self):
        from tools.twin import _wdt_expired
        self._boot()
        while not self._stop.is_set():
            fds = [self.master] + ([self.inner] if self.inner is not None else [])
            ready = select.select(fds, [], [], 0.05)[0]
            if self.master in ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    data = b""
                if data and self.inner is not None and self._hold is None:
                    os.write(self.inner, data)
            drained = self.inner is None or self.inner not in ready
            if not drained:
                try:
                    data = os.read(self.inner, 4096)
                except OSError:  # EIO: the process closed its terminal
                    data = b""
                if data:
                    self._to_host(data)
                    continue
                drained = True
            if self._reset_button.is_set() and self.proc.poll() is None:
                self.proc.kill()
            if _wdt_expired(self._path("wdt.txt")) and self.proc.poll() is None:
                self.log("watchdog reset")
                self._kill()
                self.cause, self.repl = WDT_RESET, "friendly"
                self._boot()
                continue
            if drained and self.proc.poll() is not None:
                self._after_exit()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.host.board",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="esp32-sim7020", choices=("esp32-sim7020", "esp32-bc95"))
    ap.add_argument("--dir", default="out/board")
    # Not romfs: `mpremote romfs deploy` needs a ROM partition, which this port does not have
    # (the twin mounts the image itself: tools/twin.py --mode romfs).
    ap.add_argument("--mode", default="mpy", choices=["mpy", "py"])
    ap.add_argument("--heap", type=int, default=None)
    ap.add_argument("--sleep-scale", type=float, default=0.01)
    ap.add_argument("--fresh", action="store_true", help="erase the flash first")
    a = ap.parse_args(argv)
    why = mpruntime.why_unavailable()
    if why:
        print("board: " + why)
        return 1
    b = VirtualBoard(a.board, a.dir, a.mode, a.heap, a.sleep_scale, a.fresh,
                     log=lambda m: print("board: " + m, flush=True))
    b.start()
    try:
        print("board: %s, deployment mode %s, heap cap %d bytes, flash %s" % (
            a.board, b.mode, b.heap, b.flash.path))
        print("board: local EnOS server coaps://127.0.0.1:%d, %s emulator on %s" % (
            b.server.dtls_port, b.board["modem"], b.emu.port))
        print("board: port %s" % b.port, flush=True)
        print("board: make deploy PORT=%s BOARD=%s   (Enter: reset button, Ctrl-C: stop)"
              % (b.port, a.board), flush=True)
        for _ in sys.stdin:
            b.press_reset()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
