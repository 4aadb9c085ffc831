"""The virtual board's flash on the MicroPython unix port: a file-backed block device with the
ESP32's geometry and NOR semantics, mounted the way the ESP32 port's `_boot.py` does.

FlashBdev(file, blocks) has the interface of `esp32.Partition` that `vfs.VfsLfs2` uses:
readblocks(n, buf, off=0), writeblocks(n, buf, off=None) (no offset: erase, then program whole
blocks), ioctl(4) block count, ioctl(5) block size 4,096, ioctl(6, n) erase. Programming can
only clear bits (the stored byte is old & new), erasing sets a block to 0xFF, as on NOR flash.
littlefs is mounted with its defaults, read and prog size 32 (the ESP32 port's values).

A power cut inside the device (cut=k): the k-th erase or program stops part-way (a torn page:
a program leaves a prefix written and one byte half-programmed; an erase leaves bits of the
old block half-erased), then `on_cut()` ends the process.

mount(bdev) is `_boot.py` + `inisetup.py` of the ESP32 port: vfs.mount(bdev, "/"), and on a
blank flash mkfs + the stock boot.py; a flash that holds something unmountable is reported as
corrupted, as the board does (which then waits for a reflash).
"""
import os
import vfs

BLOCK = 4096
IOCTL_BLOCK_COUNT = 4
IOCTL_BLOCK_SIZE = 5
IOCTL_BLOCK_ERASE = 6

BOOT_PY = """\
# This file is executed on every boot (including wake-boot from deepsleep)
#import esp
#esp.osdebug(None)
#import webrepl
#webrepl.start()
"""


class FlashCorrupted(Exception):
    pass


class FlashBdev:
    def __init__(self, f, blocks, cut=0, rnd=None, on_cut=None):
        self.f = f
        self.blocks = blocks
        self.cut = cut
        self.rnd = rnd
        self.on_cut = on_cut
        self.ops = 0
        # Made once, before main.py runs (counted in the stand-in's bytes): an ESP32's erase
        # and program allocate nothing in the GC heap, so neither may this stand-in's.
        self._erased = b"\xff" * BLOCK
        self._scratch = bytearray(BLOCK)

    def readblocks(self, n, buf, off=0):
        self.f.seek(n * BLOCK + off)
        got = self.f.readinto(buf)
        if got != len(buf):
            raise OSError(5)  # EIO: beyond the end of the image

    def writeblocks(self, n, buf, off=None):
        if off is None:
            for i in range(len(buf) // BLOCK):
                self.ioctl(IOCTL_BLOCK_ERASE, n + i)
            off = 0
        self._program(n * BLOCK + off, buf)

    def ioctl(self, op, arg):
        if op == IOCTL_BLOCK_COUNT:
            return self.blocks
        if op == IOCTL_BLOCK_SIZE:
            return BLOCK
        if op == IOCTL_BLOCK_ERASE:
            self._erase(arg)
            return 0
        return None if op > 6 else 0

    def _tick(self):
        self.ops += 1
        return self.ops == self.cut

    def _old(self, pos, n):
        self.f.seek(pos)
        return bytearray(self.f.read(n))

    def _erase(self, n):
        if n < 0 or n >= self.blocks:
            raise OSError(5)
        if self._tick():
            old = self._old(n * BLOCK, BLOCK)
            for i in range(BLOCK):
                old[i] |= self.rnd.getrandbits(8)
            self.f.seek(n * BLOCK)
            self.f.write(old)
            self.on_cut()
        self.f.seek(n * BLOCK)
        self.f.write(self._erased)

    def _program(self, pos, buf):
        n = len(buf)
        new = memoryview(self._scratch if n <= BLOCK else bytearray(n))[:n]
        self.f.seek(pos)
        self.f.readinto(new)
        for i in range(len(buf)):
            new[i] &= buf[i]
        if self._tick():
            k = self.rnd.getrandbits(16) % (len(buf) + 1)
            old = self._old(pos, len(buf))
            if k < len(buf):
                old[k] &= new[k] | self.rnd.getrandbits(8)
            old[:k] = new[:k]
            self.f.seek(pos)
            self.f.write(old)
            self.on_cut()
        self.f.seek(pos)
        self.f.write(new)


def blank(f, blocks):
    """Fills an image file with erased flash (0xFF)."""
    row = b"\xff" * BLOCK
    for _ in range(blocks):
        f.write(row)


def _empty(bdev):
    buf = bytearray(BLOCK)
    bdev.readblocks(0, buf)
    for b in buf:
        if b != 0xFF:
            return False
    return True


def mount(bdev, verbose=True):
    """Mounts the flash at "/" as the ESP32 boots; FlashCorrupted when it holds a filesystem
    that does not mount (the board would print its 'filesystem appears to be corrupted')."""
    try:
        vfs.umount("/")
    except OSError:
        pass
    try:
        vfs.mount(bdev, "/")
    except OSError:
        if not _empty(bdev):
            raise FlashCorrupted("The filesystem appears to be corrupted.")
        if verbose:
            print("Performing initial setup")
        vfs.VfsLfs2.mkfs(bdev)
        vfs.mount(vfs.VfsLfs2(bdev), "/")
        with open("/boot.py", "w") as f:
            f.write(BOOT_PY)
    os.chdir("/")
