"""Deploy tooling without a board (tools/deploy.py, firmware/package.json, boards/manifest.py):
the dry run prints mpremote/esptool commands that mpremote's own parser accepts, mpy-cross
compiles the whole package, mpremote's mip installs package.json to the right places, and
the frozen manifest points at the package."""
import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from tools import deploy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "Deploy-test-secret-0123456789"


@pytest.fixture
def repo(tmp_path):
    """A copy of firmware/ and boards/ (with a stand-in main.py if the real one is not
    written yet) so that the dry run can build into its own build/."""
    root = tmp_path / "repo"
    shutil.copytree(os.path.join(ROOT, "firmware"), root / "firmware",
                    ignore=shutil.ignore_patterns("__pycache__", "secrets.json"))
    shutil.copytree(os.path.join(ROOT, "boards"), root / "boards")
    main_py = root / "firmware" / "main.py"
    if not main_py.exists():
        main_py.write_text("import enosnb\n")
    return root


def _mpremote_parse(argv):
    """Runs mpremote's command-chain parser over argv (after `-m mpremote`) without
    executing anything; returns [(command, parsed args)]."""
    from mpremote import main as mp
    mp.prepare_command_expansions(type("NoUserConfig", (), {"commands": {}}))
    rest = list(argv)
    out = []
    while rest:
        if rest[0] == "+":
            rest.pop(0)
            continue
        mp.do_command_expansion(rest)
        cmd = rest.pop(0)
        assert cmd in mp._COMMANDS, "%r is not an mpremote command" % cmd
        try:
            t = rest.index("+")
            cmd_args, extra = rest[:t], rest[t:]
        except ValueError:
            cmd_args, extra = rest, []
        parser = mp._COMMANDS[cmd][1]()
        parser.add_argument("next_command", nargs="*")
        args = parser.parse_args(cmd_args)
        out.append((cmd, args))
        rest = args.next_command + extra
    return out


def _dry_run_command(capsys, argv):
    assert deploy.main(argv) == 0
    return _split_dry_run(capsys.readouterr().out)


def _split_dry_run(out):
    at = out.index(" -m mpremote ")
    start = out.rindex("\n", 0, at) + 1 if "\n" in out[:at] else 0
    return out[:start].splitlines(), shlex.split(out[start:])


def test_dry_run_compiles_the_package_and_copies_everything_but_the_secrets(repo, capsys):
    lines, cmd = _dry_run_command(capsys, ["--root", str(repo), "deploy", "--port",
                                           "/dev/ttyUSB0", "--board", "esp32-bc95",
                                           "--dry-run"])
    src = sorted(p for p in deploy.firmware_files(str(repo)) if p.startswith("lib/enosnb/"))
    built = []
    for dirpath, _, files in os.walk(repo / "build" / "deploy"):
        built += [os.path.relpath(os.path.join(dirpath, f), repo / "build" / "deploy")
                  for f in files]
    assert sorted(b[:-4] + ".py" for b in built) == src
    assert all(b.endswith(".mpy") for b in built)
    assert "mpy-cross: %d files" % len(src) in lines[0]
    steps = _mpremote_parse(cmd[cmd.index("mpremote") + 1:])
    names = [c for c, _ in steps]
    assert names[0] == "connect" and steps[0][1].device == ["/dev/ttyUSB0"]
    copies = {a.path[-1]: a.path[:-1] for c, a in steps if c == "fs" and a.command == ["cp"]}
    assert set(copies) == {":lib/enosnb", ":main.py", ":sensors.py", ":board.json"}
    assert copies[":board.json"][0].endswith("boards/esp32-bc95/board.json")
    assert copies[":lib/enosnb"][0].endswith("build/deploy/lib/enosnb")
    assert not any("secrets" in c for c in cmd)


def test_secrets_are_copied_only_when_asked_and_only_when_valid(repo, capsys, tmp_path):
    good = tmp_path / "secrets.json"
    good.write_text('{"productKey": "PK", "deviceKey": "imei", "deviceSecret": "%s", '
                    '"host": "coap-x.example.com"}' % SECRET)
    _, cmd = _dry_run_command(capsys, ["--root", str(repo), "deploy", "--port", "COM3",
                                       "--no-lib", "--secrets", "--secrets-file", str(good),
                                       "--dry-run"])
    copies = [a.path for c, a in _mpremote_parse(cmd[cmd.index("mpremote") + 1:])
              if c == "fs"]
    assert [str(good), ":secrets.json"] in copies
    bad = tmp_path / "bad.json"
    bad.write_text('{"productKey": "PK", "deviceKey": "imei", "deviceSecret": "%s"}' % SECRET)
    assert deploy.main(["--root", str(repo), "deploy", "--port", "COM3", "--secrets",
                        "--secrets-file", str(bad), "--dry-run"]) == 1
    out = capsys.readouterr()
    assert "host is missing" in out.err and SECRET not in out.out + out.err
    assert "mpremote" not in out.out


def test_the_board_cleanup_snippet_removes_the_old_package_and_keeps_the_rest(tmp_path):
    script = tmp_path / "board.py"
    script.write_text(
        "import os\n"
        "os.mkdir('/board'); os.chdir('/board')\n"
        "for d in ('lib', 'lib/enosnb', 'lib/enosnb/coap', 'lib/other'):\n"
        "    os.mkdir(d)\n"
        "for f in ('lib/enosnb/store.py', 'lib/enosnb/coap/x.py', 'lib/other/y.py', 'main.py'):\n"
        "    open(f, 'w').write('x')\n"
        + "exec(%r)\n" % deploy._CLEAN_SNIPPET +
        "print(sorted(os.listdir('lib')), sorted(os.listdir('.')))\n"
        "exec(%r)\n" % deploy._CLEAN_SNIPPET.replace("'lib/enosnb'", "'lib/gone'") +
        "print('again ok')\n")
    r = subprocess.run(["node", os.path.join(ROOT, "tools", "mpvm", "run.mjs"), "--script",
                        str(script)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "['other'] ['lib', 'main.py']" in r.stdout and "again ok" in r.stdout


def test_no_lib_deploy_for_a_frozen_image_copies_only_the_app_files(repo, capsys):
    _, cmd = _dry_run_command(capsys, ["--root", str(repo), "deploy", "--port", "p",
                                       "--no-lib", "--no-reset", "--dry-run"])
    steps = _mpremote_parse(cmd[cmd.index("mpremote") + 1:])
    copies = [a.path[-1] for c, a in steps if c == "fs"]
    assert copies == [":main.py", ":sensors.py", ":board.json"]
    assert not (repo / "build" / "deploy").exists()


def test_romfs_deploy_writes_the_image_then_the_files_the_romfs_layout_holds(repo, capsys,
                                                                            tmp_path):
    from tools import romfs
    from tools.host import mpruntime
    assert deploy.main(["--root", str(repo), "deploy", "--port", "p", "--romfs",
                        "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("romfs: ") and "bytes" in out[0]
    first = shlex.split(out[1])
    steps = _mpremote_parse(first[first.index("mpremote") + 1:])
    assert [c for c, _ in steps] == ["connect", "romfs"]
    assert steps[1][1].command == ["deploy"] and steps[1][1].path == romfs.DEFAULT_IMAGE
    with open(romfs.DEFAULT_IMAGE, "rb") as f:
        assert f.read(3) == romfs.HEADER
    second = shlex.split("\n".join(out[2:]))
    steps = _mpremote_parse(second[second.index("mpremote") + 1:])
    copies = sorted(a.path[-1][1:] for c, a in steps if c == "fs")
    assert not (repo / "build" / "deploy").exists()
    # The unix-port runs of mode romfs (make test's RAM caps) hold exactly these files.
    mpruntime.layout("romfs", str(tmp_path / "flash"), "esp32-sim7020")
    held = sorted(f for f in os.listdir(tmp_path / "flash") if f != "lib")
    assert copies == held == ["board.json", "main.py", "sensors.py"]
    assert os.listdir(tmp_path / "flash" / "lib") == []


def test_an_unknown_board_lists_the_known_ones(repo, capsys):
    assert deploy.main(["--root", str(repo), "deploy", "--port", "p", "--board", "esp8266",
                        "--dry-run"]) == 1
    assert "esp32-bc95, esp32-sim7020" in capsys.readouterr().err


def test_flash_dry_run_erases_then_writes_the_image_at_the_chip_offset(tmp_path, capsys):
    image = tmp_path / "ESP32_GENERIC.bin"
    image.write_bytes(b"\xe9" + b"\x00" * 15)
    assert deploy.main(["flash", "--port", "/dev/ttyUSB0", "--image", str(image),
                        "--dry-run"]) == 0
    erase, write = [shlex.split(ln) for ln in capsys.readouterr().out.strip().splitlines()]
    assert erase[-1] == "erase-flash" and "--chip" in erase and "esp32" in erase
    assert write[-3:] == ["-z", "0x1000", str(image)]
    assert deploy.main(["flash", "--port", "p", "--image", str(image), "--chip", "esp32s3",
                        "--dry-run"]) == 0
    assert "0x0 " in capsys.readouterr().out
    assert deploy.main(["flash", "--port", "p", "--image", str(tmp_path / "none.bin"),
                        "--dry-run"]) == 1


@pytest.mark.parametrize("sub", ["erase-flash", "write-flash"])
def test_the_esptool_subcommands_exist_in_the_pinned_esptool(sub):
    r = subprocess.run([sys.executable, "-m", "esptool", sub, "--help"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr


class FakeBoardFs:
    """The board side of mpremote's transport, as mip uses it."""

    def __init__(self):
        self.files = {}
        self.dirs = {"/"}

    def fs_exists(self, p):
        return p in self.dirs or p in self.files

    def fs_mkdir(self, p):
        self.dirs.add(p)

    def fs_writefile(self, p, data, progress_callback=None):
        parent = p.rsplit("/", 1)[0] or "/"
        assert parent in self.dirs, "mip wrote %s before creating %s" % (p, parent)
        self.files[p] = data


CUSTOM_SENSORS = b"from enosnb.sensor import Sensor\n# the maker's own sensor\n"


def test_mip_installs_the_firmware_at_the_root_and_keeps_a_customised_sensors_py(capsys):
    from mpremote import mip
    board = FakeBoardFs()
    board.files["/sensors.py"] = CUSTOM_SENSORS
    mip._install_json(board, os.path.join(ROOT, "firmware", "package.json"),
                      "https://micropython.org/pi/v2", "/", None, False)
    want = [f for f in deploy.firmware_files(ROOT) if f != "sensors.py"]
    assert sorted(board.files) == sorted(["/sensors.py"] + ["//" + f for f in want])
    assert "//lib/enosnb/store.py" in board.files and "//main.py" in board.files
    with open(os.path.join(ROOT, "firmware", "lib", "enosnb", "store.py"), "rb") as f:
        assert board.files["//lib/enosnb/store.py"] == f.read()
    assert board.files["/sensors.py"] == CUSTOM_SENSORS


def test_the_mpy_package_lists_compiled_files_that_mip_installs(repo, capsys):
    from mpremote import mip
    assert deploy.main(["--root", str(repo), "mip-package"]) == 0
    out = capsys.readouterr().out
    assert "mip install --target / build/mip/package.json" in out.replace(str(repo) + "/", "")
    pkg = json.loads((repo / "build" / "mip" / "package.json").read_text())
    names = [d for d, _ in pkg["urls"]]
    src = [f for f in deploy.firmware_files(str(repo)) if f.startswith("lib/")]
    assert sorted(n for n in names if n != "main.py") == sorted(f[:-3] + ".mpy" for f in src)
    assert "main.py" in names and "sensors.py" not in names
    board = FakeBoardFs()
    board.files["/sensors.py"] = CUSTOM_SENSORS
    mip._install_json(board, str(repo / "build" / "mip" / "package.json"),
                      "https://micropython.org/pi/v2", "", None, True)
    with open(repo / "build" / "mip" / "lib" / "enosnb" / "app.mpy", "rb") as f:
        assert board.files["/lib/enosnb/app.mpy"] == f.read()
    assert board.files["/lib/enosnb/app.mpy"][:1] == b"M"
    assert board.files["/sensors.py"] == CUSTOM_SENSORS


def test_the_mip_command_removes_the_old_package_then_installs_at_the_root(repo, capsys):
    assert deploy.main(["--root", str(repo), "mip", "--port", "COM3", "--dry-run"]) == 0
    _, cmd = _split_dry_run(capsys.readouterr().out)
    steps = _mpremote_parse(cmd[cmd.index("mpremote") + 1:])
    assert [c for c, _ in steps] == ["connect", "exec", "mip"]
    assert steps[1][1].expr == [deploy._CLEAN_SNIPPET]
    m = steps[2][1]
    assert m.command == ["install"] and m.target == "/"
    assert m.packages == [str(repo / "build" / "mip" / "package.json")]


def _served(directory):
    """An HTTP server on 127.0.0.1 for directory; returns (server, base URL)."""
    import functools
    import http.server
    import threading
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, "http://127.0.0.1:%d" % srv.server_address[1]


MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
# On the unix port: a LittleFS2 filesystem in RAM mounted at "/", as on an ESP32, with the
# maker's sensors.py on it; then MicroPython's own mip (the module an ESP32 with Wi-Fi runs)
# installs the package with target "/" and the app imports from what landed.
_BOARD_SCRIPT = """
import os, sys, vfs
class Ram:
    def __init__(self, n):
        self.data = bytearray(512 * n)
    def readblocks(self, b, buf, off=0):
        a = b * 512 + off
        buf[:] = self.data[a:a + len(buf)]
    def writeblocks(self, b, buf, off=None):
        if off is None:
            off = 0
        a = b * 512 + off
        self.data[a:a + len(buf)] = buf
    def ioctl(self, op, arg):
        return {4: len(self.data) // 512, 5: 512, 6: 0}.get(op)
bdev = Ram(2048)
vfs.VfsLfs2.mkfs(bdev)
import mip
vfs.umount("/")
vfs.mount(vfs.VfsLfs2(bdev), "/")
os.chdir("/")
with open("/sensors.py", "w") as f:
    f.write(%r)
mip.install(%r, target="/")
sys.path.append("/lib")
from enosnb import config, sensor
s = config.parse_secrets({"productKey": "PK", "deviceKey": "imei",
                          "deviceSecret": "sRlGhkC0TCGBz5sdSrkU", "host": "coap-x.example.com"})
print("root", sorted(os.listdir("/")))
print("lib", [n for n in sorted(os.listdir("/lib/enosnb")) if n.startswith(("__init__", "app."))])
print("sensors", repr(open("/sensors.py").read()))
print("ok", s.port, sensor.__file__)
"""


@pytest.mark.parametrize("variant", ["py", "mpy"])
def test_micropython_s_own_mip_installs_at_the_root_of_littlefs_and_keeps_sensors_py(
        repo, variant, capsys):
    if variant == "mpy":
        assert deploy.main(["--root", str(repo), "mip-package"]) == 0
        served = repo / "build" / "mip"
    else:
        served = repo / "firmware"
    srv, base = _served(served)
    try:
        r = subprocess.run([MICROPYTHON, "-c", _BOARD_SCRIPT % (
            CUSTOM_SENSORS.decode(), base + "/package.json")], capture_output=True, text=True,
            timeout=120)
    finally:
        srv.shutdown()
    assert r.returncode == 0, r.stdout + r.stderr
    out = dict(ln.split(" ", 1) for ln in r.stdout.splitlines() if ln.split(" ", 1)[0] in
               ("root", "lib", "sensors", "ok"))
    assert out["root"] == "['lib', 'main.py', 'sensors.py']"
    assert out["lib"] == "['__init__.%s', 'app.%s']" % (variant, variant)
    assert out["sensors"] == repr(CUSTOM_SENSORS.decode())
    assert out["ok"].startswith("5684 ") and out["ok"].endswith("." + variant)


def test_deploy_copies_the_makers_own_sensors_file_and_refuses_one_that_cannot_compile(
        repo, tmp_path, capsys):
    mine = tmp_path / "my_sensors.py"
    mine.write_text("from enosnb.sensor import Sensor\n\ndef make_sensor():\n"
                    "    return Sensor()\n")
    _, cmd = _dry_run_command(capsys, ["--root", str(repo), "deploy", "--port", "p",
                                       "--no-lib", "--sensors", str(mine), "--dry-run"])
    copies = {a.path[-1]: a.path[0] for c, a in _mpremote_parse(cmd[cmd.index("mpremote") + 1:])
              if c == "fs"}
    assert copies[":sensors.py"] == str(mine)
    mine.write_text("def make_sensor(:\n")
    assert deploy.main(["--root", str(repo), "deploy", "--port", "p", "--no-lib", "--sensors",
                        str(mine), "--dry-run"]) == 1
    err = capsys.readouterr()
    assert "does not compile for MicroPython" in err.err and "mpremote" not in err.out


def test_package_json_is_in_step_with_the_firmware_tree():
    assert deploy.main(["package-json", "--check"]) == 0, (
        "run `python tools/deploy.py package-json` after adding or removing firmware files")


def test_the_frozen_manifest_names_the_package_directory():
    calls = []
    base = os.path.join(ROOT, "boards")
    env = {"include": lambda p: calls.append(("include", p)),
           "package": lambda name, base_path=".", **kw: calls.append(("package", name,
                                                                       base_path)),
           "module": lambda name, base_path=".", **kw: calls.append(("module", name,
                                                                     base_path))}
    with open(os.path.join(base, "manifest.py")) as f:
        exec(compile(f.read(), "manifest.py", "exec"), env)
    assert ("include", "$(PORT_DIR)/boards/manifest.py") in calls
    pkgs = [c for c in calls if c[0] == "package"]
    assert pkgs == [("package", "enosnb", "../firmware/lib")]
    assert os.path.isfile(os.path.join(base, pkgs[0][2], "enosnb", "__init__.py"))
