"""One boot of the virtual ESP32 on the MicroPython unix port, as the ESP32 port boots:

    micropython -X heapsize=<cap> tools/host/mpboot.py        (tools/twin.py, per boot)
    micropython -X heapsize=<cap> -i tools/host/mpboot.py     (tools/host/board.py: then the REPL)

1. `time` is extended so that ticks_ms() counts from the process start, as an ESP32's from
   the chip's (tools/host/time.py). The `machine` stand-in (tools/host/machine.py) is imported and the host files it needs are
   opened (UART ptys, RTC memory, sleep/reset/pins/WDT records), because step 2 hides the host.
2. The flash image ENOSNB_FLASH_IMAGE (littlefs2 on tools/host/flashdev.py's block device) is
   mounted at "/" as the ESP32's `_boot.py` does; sys.path becomes ['', '.frozen', '/lib'].
   With ENOSNB_ROMFS_IMAGE (deployment mode romfs) that ROMFS image is mounted at /rom, as a
   board whose image has a ROMFS partition mounts it, and sys.path becomes
   ['', '.frozen', '/rom', '/rom/lib', '/lib']. This port has vfs.VfsRom but no ROM partition
   (no vfs.rom_ioctl) and no ffi to map a file: the image is read into the heap as one block
   first, and the runner subtracts that block from its heap figures (ENOSNB_MEM_FILE).
3. boot.py runs, then main.py unless ENOSNB_REPL=raw (the ESP32 skips main.py after a soft
   reset in the raw REPL). An exception in either is printed and the boot goes on, as pyexec does.

Environment (set by the runner):
  ENOSNB_FLASH_IMAGE, ENOSNB_FLASH_BLOCKS   the image and its size in 4 KiB blocks
  ENOSNB_UART<id>, ENOSNB_RTC_FILE, ENOSNB_DEEPSLEEP_FILE, ENOSNB_RESET_FILE, ENOSNB_PINS_FILE,
  ENOSNB_WDT_FILE, ENOSNB_RESET_CAUSE, ENOSNB_PIN_LOG,
  ENOSNB_RTC_CLOCK                                      tools/host/machine.py
  ENOSNB_KILL_FLASH=k  power cut inside the k-th erase or program of the flash (torn page)
  ENOSNB_KILL_AT=k     power cut at the k-th AT command line written to the UART
  ENOSNB_KILL_SEED     seeds what a torn write leaves and whether the cut AT line went out
  ENOSNB_OPS_FILE      gets {"flash": erases+programs, "at": AT lines} when the board sleeps
  ENOSNB_TWIN_TUNE     JSON overrides of enosnb.app.DEFAULTS (tools/host/twin_boot.py)
  ENOSNB_ROMFS_IMAGE   a ROMFS image to mount at /rom (see 2.)
  ENOSNB_HEADROOM_SCALE  enosnb.memreport.SCALE: the headroom probe's blocks in this port's
                       bytes (its objects are larger than a 32-bit board's)
  ENOSNB_MEM_FILE      gets, before main.py runs, the live heap in bytes after a collection
                       {"stand_in": the machine stand-in, this script, the block device and the
                       host files, none of which is in an ESP32's heap; "image": the ROMFS
                       block; "mount": the mounted file system (an ESP32 has that too)}
A power cut is a SIGKILL of this process: nothing after it runs, as when the battery is pulled.
"""
import gc
import os
import sys

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, _here)
import time  # noqa: E402,F401  (ticks from the process start, as from a chip's: time.py)
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
                 "ENOSNB_PINS_FILE", "ENOSNB_WDT_FILE", "ENOSNB_OPS_FILE", "ENOSNB_PIN_LOG",
                 "ENOSNB_MEM_FILE", "ENOSNB_RTC_CLOCK"):
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


def _alloc():
    gc.collect()
    return gc.mem_alloc()


def _romfs(path):
    """The ROMFS image as one heap block, mounted at /rom; returns the block's heap bytes."""
    import vfs
    before = _alloc()
    with open(path, "rb") as f:
        f.seek(0, 2)
        data = bytearray(f.tell())
        f.seek(0)
        f.readinto(data)
    vfs.mount(vfs.VfsRom(data), "/rom")
    return _alloc() - before


def boot():
    machine._hard_halt = _kill
    _open_host()
    cuts = _Cuts()
    cuts.install()
    image = open(os.getenv("ENOSNB_FLASH_IMAGE"), "r+b")
    cuts.bdev = flashdev.FlashBdev(image, _int("ENOSNB_FLASH_BLOCKS"), _int("ENOSNB_KILL_FLASH"),
                                   cuts.rnd, _kill)
    rom = os.getenv("ENOSNB_ROMFS_IMAGE")
    mem = {"image": _romfs(rom) if rom else 0}
    mem["stand_in"] = _alloc() - mem["image"]
    try:
        flashdev.mount(cuts.bdev)
    except flashdev.FlashCorrupted as e:
        print(e)
        sys.exit(CORRUPTED)
    mem["mount"] = _alloc() - mem["image"] - mem["stand_in"]
    sys.path[:] = ["", ".frozen", "/rom", "/rom/lib", "/lib"] if rom else ["", ".frozen", "/lib"]
    if os.getenv("ENOSNB_MEM_FILE"):
        machine._write_host("ENOSNB_MEM_FILE", ('{"stand_in": %d, "image": %d, "mount": %d}\n'
                                                % (mem["stand_in"], mem["image"], mem["mount"])
                                                ).encode())
    del mem
    if os.getenv("ENOSNB_HEADROOM_SCALE"):
        from enosnb import memreport
        memreport.SCALE = float(os.getenv("ENOSNB_HEADROOM_SCALE"))
    _tune()
    _run("boot.py")
    if os.getenv("ENOSNB_REPL") != "raw":
        _run("main.py")


boot()
del boot, _run, _tune, _Cuts, _open_host, _int, _alloc, _romfs, flashdev, machine, gc, os, sys
