"""One boot of the virtual ESP32 on the MicroPython unix port, as the ESP32 port boots:

    micropython -X heapsize=<cap> tools/host/mpboot.py        (tools/twin.py, per boot)
    micropython -X heapsize=<cap> -i tools/host/mpboot.py     (tools/host/board.py: then the REPL)

1. The `machine` stand-in (tools/host/machine.py) is imported and the host files it needs are
   opened (UART ptys, RTC memory, sleep/reset/pins/WDT records), because step 2 hides the host.
2. The flash image ENOSNB_FLASH_IMAGE (littlefs2 on tools/host/flashdev.py's block device) is
   mounted at "/" as the ESP32's `_boot.py` does; sys.path becomes ['', '.frozen', '/lib'].
3. boot.py runs, then main.py unless ENOSNB_REPL=raw (the ESP32 skips main.py after a soft
   reset in the raw REPL). An exception in either is printed and the boot goes on, as pyexec does.

Environment (set by the runner):
  ENOSNB_FLASH_IMAGE, ENOSNB_FLASH_BLOCKS   the image and its size in 4 KiB blocks
  ENOSNB_UART<id>, ENOSNB_RTC_FILE, ENOSNB_DEEPSLEEP_FILE, ENOSNB_RESET_FILE, ENOSNB_PINS_FILE,
  ENOSNB_WDT_FILE, ENOSNB_RESET_CAUSE, ENOSNB_PIN_LOG    tools/host/machine.py
  ENOSNB_KILL_FLASH=k  power cut inside the k-th erase or program of the flash (torn page)
  ENOSNB_KILL_AT=k     power cut at the k-th AT command line written to the UART
  ENOSNB_KILL_SEED     seeds what a torn write leaves and whether the cut AT line went out
  ENOSNB_OPS_FILE      gets {"flash": erases+programs, "at": AT lines} when the board sleeps
  ENOSNB_TWIN_TUNE     JSON overrides of enosnb.app.DEFAULTS (tools/host/twin_boot.py)
A power cut is a SIGKILL of this process: nothing after it runs, as when the battery is pulled.
"""
import os
import sys

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, _here)
import machine  # noqa: E402
import flashdev  # noqa: E402
sys.path.pop(0)

KILLED = 137
CORRUPTED = 3


def _kill():
    # MicroPython has no os._exit: the shell's parent is this process.
    os.system("kill -9 $PPID")
    while True:
        pass


def _open_host():
    for i in range(3):
        name = "ENOSNB_UART%d" % i
        if os.getenv(name):
            machine._files[name] = open(os.getenv(name), "r+b")
    for name in ("ENOSNB_RTC_FILE", "ENOSNB_DEEPSLEEP_FILE", "ENOSNB_RESET_FILE",
                 "ENOSNB_PINS_FILE", "ENOSNB_WDT_FILE", "ENOSNB_OPS_FILE", "ENOSNB_PIN_LOG"):
        path = os.getenv(name)
        if path:
            try:
                f = open(path, "r+b")
            except OSError:
                f = open(path, "w+b")
            machine._files[name] = f


def _int(name):
    return int(os.getenv(name) or 0)


class _Cuts:
    def __init__(self):
        import random
        self.rnd = random
        random.seed(_int("ENOSNB_KILL_SEED"))
        self.at = 0
        self.kill_at = _int("ENOSNB_KILL_AT")
        self.bdev = None

    def install(self):
        real = machine.UART.write
        cuts = self

        def write(uart, buf):
            if bytes(buf[:2]).upper() == b"AT":
                cuts.at += 1
                if cuts.at == cuts.kill_at:
                    if cuts.rnd.getrandbits(1):
                        real(uart, buf)
                    _kill()
            return real(uart, buf)
        machine.UART.write = write
        machine._halt_hooks.append(self.write_ops)

    def write_ops(self):
        ops = self.bdev.ops if self.bdev else 0
        machine._write_host("ENOSNB_OPS_FILE",
                            ('{"flash": %d, "at": %d}\n' % (ops, self.at)).encode())


def _tune():
    raw = os.getenv("ENOSNB_TWIN_TUNE")
    if not raw:
        return
    import json
    tune = json.loads(raw)
    from enosnb import app
    if "coap" in tune:
        from enosnb.coap.client import Timing
        ack, retx = tune.pop("coap")
        tune["coap_timing"] = Timing(ack_timeout_ms=ack, max_retransmit=retx)
    if "dtls" in tune:
        from enosnb.dtls.timers import Timers
        tune["dtls_timers"] = Timers(*tune.pop("dtls"))
    app.DEFAULTS.update(tune)


def _run(name):
    try:
        os.stat(name)
    except OSError:
        return
    try:
        execfile(name, {"__name__": "__main__"})
    except Exception as e:
        sys.print_exception(e)


def boot():
    machine._hard_halt = _kill
    _open_host()
    cuts = _Cuts()
    cuts.install()
    image = open(os.getenv("ENOSNB_FLASH_IMAGE"), "r+b")
    cuts.bdev = flashdev.FlashBdev(image, _int("ENOSNB_FLASH_BLOCKS"), _int("ENOSNB_KILL_FLASH"),
                                   cuts.rnd, _kill)
    try:
        flashdev.mount(cuts.bdev)
    except flashdev.FlashCorrupted as e:
        print(e)
        sys.exit(CORRUPTED)
    sys.path[:] = ["", ".frozen", "/lib"]
    _tune()
    _run("boot.py")
    if os.getenv("ENOSNB_REPL") != "raw":
        _run("main.py")


boot()
del boot, _run, _tune, _Cuts, _open_host, _int, flashdev, machine, os, sys
