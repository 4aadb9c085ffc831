"""ROMFS image of the firmware package, for boards whose MicroPython image has a ROMFS
partition (a custom image: no stock ESP32 image enables ROMFS; docs/ram.md).

    python tools/romfs.py build [--out build/romfs/enosnb.romfs]
        compiles firmware/lib/enosnb as `make deploy` does (tools/deploy.py compile_package)
        and packs lib/enosnb/*.mpy into one image with mpremote's ROMFS writer. Mounted at
        /rom, /rom/lib is on sys.path, so `import enosnb` finds it; bytecode then runs from
        flash in place instead of being copied into RAM.
    python tools/romfs.py deploy --port /dev/ttyUSB0 [--image build/romfs/enosnb.romfs] [--dry-run]
        writes the image to the board's ROMFS partition (mpremote romfs deploy).

main.py, sensors.py, board.json and secrets.json stay ordinary files on the board's file
system. `make deploy ROMFS=1` (tools/deploy.py --romfs) does both: it builds and writes the
image, then copies those files and removes the board's lib/enosnb, which would only waste
flash (/rom/lib comes before /lib on sys.path: ['', '.frozen', '/rom', '/rom/lib', '/lib']).
"""
import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools import deploy  # noqa: E402

DEFAULT_IMAGE = os.path.join(ROOT, "build", "romfs", "enosnb.romfs")
HEADER = b"\xd2\xcd\x31"


def image(lib_root):
    """The ROMFS image (bytes) of the tree under lib_root (holding lib/enosnb/*.mpy)."""
    from mpremote.romfs import VfsRomWriter
    w = VfsRomWriter()

    def add(src):
        for name in sorted(os.listdir(src)):
            p = os.path.join(src, name)
            if os.path.isdir(p):
                w.opendir(name)
                add(p)
                w.closedir()
            elif name.endswith(".mpy"):
                with open(p, "rb") as f:
                    w.mkfile(name, f.read())
    w.opendir("lib")
    add(os.path.join(lib_root, "lib"))
    w.closedir()
    return w.finalise()


def build(out=DEFAULT_IMAGE, lib_root=None):
    """Writes the image to out; returns its size. lib_root: an existing compile_package()
    output, else the package is compiled first."""
    with tempfile.TemporaryDirectory() as tmp:
        if lib_root is None:
            lib_root = tmp
            deploy.compile_package(ROOT, arch="none", out=lib_root)
        data = image(lib_root)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "wb") as f:
        f.write(data)
    return len(data)


def deploy_command(port, path):
    if not os.path.isfile(path):
        raise deploy.DeployError("ROMFS image %s not found; run `python tools/romfs.py build`"
                                 % path)
    with open(path, "rb") as f:
        if f.read(3) != HEADER:
            raise deploy.DeployError("%s is not a ROMFS image" % path)
    return [sys.executable, "-m", "mpremote", "connect", port, "romfs", "deploy", path]


def main(argv=None):
    p = argparse.ArgumentParser(prog="tools/romfs.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--out", default=DEFAULT_IMAGE)
    d = sub.add_parser("deploy")
    d.add_argument("--port", required=True)
    d.add_argument("--image", default=DEFAULT_IMAGE)
    d.add_argument("--dry-run", action="store_true")
    a = p.parse_args(argv)
    try:
        if a.cmd == "build":
            n = build(a.out)
            print("romfs: %s, %d bytes" % (os.path.relpath(a.out), n))
            return 0
        cmd = deploy_command(a.port, a.image)
    except deploy.DeployError as e:
        print("romfs: %s" % e, file=sys.stderr)
        return 2
    print(" ".join(cmd))
    if a.dry_run:
        return 0
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
