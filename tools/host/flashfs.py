"""Files in and out of a virtual board's flash image, with MicroPython's own littlefs2:

    micropython tools/host/flashfs.py IMAGE BLOCKS put HOSTDIR       copy a host tree in
    micropython tools/host/flashfs.py IMAGE BLOCKS export HOSTDIR    mirror the flash to HOSTDIR
    micropython tools/host/flashfs.py IMAGE BLOCKS rm PATH...        remove files from the flash

A blank image gets the ESP32's first-boot setup (littlefs2 and the stock boot.py), as the board
would give it; the runner (tools/host/mpruntime.py) calls this between boots, never during one.
"""
import os
import sys
import vfs

sys.path.insert(0, __file__.rsplit("/", 1)[0] if "/" in __file__ else ".")
import flashdev  # noqa: E402

MNT = "/flash"


def _isdir(path):
    return os.stat(path)[0] & 0x4000


def _copy(src, dst):
    with open(src, "rb") as a, open(dst, "wb") as b:
        while True:
            chunk = a.read(4096)
            if not chunk:
                break
            b.write(chunk)


def _mkdir(path):
    try:
        os.mkdir(path)
    except OSError:
        pass


def put(src, dst):
    for name in os.listdir(src):
        s, d = src + "/" + name, dst + "/" + name
        if _isdir(s):
            _mkdir(d)
            put(s, d)
        else:
            _copy(s, d)


def _rmtree(path):
    if _isdir(path):
        for name in os.listdir(path):
            _rmtree(path + "/" + name)
        os.rmdir(path)
    else:
        os.remove(path)


def export(src, dst):
    _mkdir(dst)
    for name in os.listdir(dst):
        _rmtree(dst + "/" + name)
    for name in os.listdir(src):
        s, d = src + "/" + name, dst + "/" + name
        if _isdir(s):
            export(s, d)
        else:
            _copy(s, d)


def main(argv):
    image, blocks, cmd = argv[1], int(argv[2]), argv[3]
    bdev = flashdev.FlashBdev(open(image, "r+b"), blocks)
    try:
        vfs.mount(bdev, MNT)
    except OSError:
        if not flashdev._empty(bdev):
            print("flashfs: the image does not mount (corrupted filesystem)")
            sys.exit(3)
        vfs.VfsLfs2.mkfs(bdev)
        vfs.mount(vfs.VfsLfs2(bdev), MNT)
        with open(MNT + "/boot.py", "w") as f:
            f.write(flashdev.BOOT_PY)
    if cmd == "put":
        put(argv[4], MNT)
    elif cmd == "export":
        export(MNT, argv[4])
    elif cmd == "rm":
        for p in argv[4:]:
            try:
                _rmtree(MNT + "/" + p)
            except OSError:
                pass
    else:
        print("flashfs: unknown command %s" % cmd)
        sys.exit(2)
    vfs.umount(MNT)


main(sys.argv)
