"""The device path needs only Python and pip: in a copy of the repository, as a user without
root, with a PATH that holds Python, make and the shell's basic commands but no C compiler,
apt-get, npm or Node.js, the documented commands create their own environment from
requirements-device.txt and then flash (dry run), write and check secrets, deploy (dry
run), monitor, get onto the REPL with mpremote, and run the pre-flight against a local
EnOS server; the plain pip route (no make) works the same way.

Run as root (CI), the test creates a system user for this and removes it afterwards; run
as another user, it runs as that user. pip uses this machine's package-index settings,
passed on as PIP_* variables the way a maker's own pip configuration would be."""
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from enos_fixtures import DK, PK, SECRET
from ptyproc import PtyProcess
from test_board_console import ScriptedBoard, use_mpremote_repl
from tools.enos_server.server import EnosServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAKER = "enosnb-maker"
# What a device maker's shell offers besides Python: make and the basic file commands.
ALLOWED = ["make", "sh", "bash", "env", "mkdir", "touch", "rm", "cp", "mv", "cat", "ls", "find",
           "sort", "dirname", "basename", "uname", "tr", "sed", "grep", "head", "tail", "id"]
FORBIDDEN = ["cc", "gcc", "clang", "apt-get", "apt", "npm", "node", "git"]


def _python():
    """A Python 3.10+ that any user can run (the session's own may live under /root)."""
    for name in ("python3.11", "python3.12", "python3.10", "python3"):
        exe = shutil.which(name, path="/usr/local/bin:/usr/bin:/bin")
        if exe and os.access(exe, os.X_OK):
            return os.path.realpath(exe)
    pytest.fail("no system Python 3.10+ for the maker's user; install python3 and python3-venv")


def _pip_settings():
    """This machine's pip index settings as PIP_* variables (a maker's pip has its own)."""
    env = {k: v for k, v in os.environ.items()
           if k.startswith("PIP_") or k.lower() in ("http_proxy", "https_proxy", "no_proxy")
           or k in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")}
    r = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                       text=True, timeout=60)
    for line in r.stdout.splitlines():
        m = re.match(r"^[\w-]+\.([\w-]+)='(.*)'$", line)
        if m and m.group(1) in ("index-url", "extra-index-url", "find-links", "trusted-host",
                                "cert", "constraint"):
            env["PIP_" + m.group(1).upper().replace("-", "_")] = m.group(2)
    return env


@pytest.fixture(scope="module")
def maker():
    """(uid, gid, created) of the user the device path runs as."""
    if os.geteuid() != 0:
        yield os.getuid(), os.getgid()
        return
    created = False
    try:
        pw = pwd.getpwnam(MAKER)
    except KeyError:
        r = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                            "--home-dir", "/nonexistent", "--shell", "/bin/sh", MAKER],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, "useradd: %s" % r.stderr
        created = True
        pw = pwd.getpwnam(MAKER)
    try:
        yield pw.pw_uid, pw.pw_gid
    finally:
        if created:
            subprocess.run(["userdel", MAKER], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def workspace(maker):
    """A copy of the tracked files, a home and a PATH of allowed commands, owned by the
    maker; removed afterwards."""
    top = tempfile.mkdtemp(prefix="enosnb-device-path-")
    repo = os.path.join(top, "repo")
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    for rel in files:
        if rel.startswith("host_tests/") or not os.path.isfile(os.path.join(ROOT, rel)):
            continue
        dst = os.path.join(repo, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), dst)
    bin_dir = os.path.join(top, "bin")
    os.makedirs(bin_dir)
    py = _python()
    for name in ("python3", "python3.11", "python"):
        os.symlink(py, os.path.join(bin_dir, name))
    for name in ALLOWED:
        exe = shutil.which(name)
        assert exe, "%s is not on this machine" % name
        os.symlink(exe, os.path.join(bin_dir, name))
    home = os.path.join(top, "home")
    os.makedirs(home)
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            os.lchown(os.path.join(dirpath, n), *maker)
    os.chown(top, *maker)
    env = dict(_pip_settings(), HOME=home, PATH=bin_dir, LANG="C.UTF-8", USER=MAKER)
    try:
        yield {"repo": repo, "env": env, "path": bin_dir, "top": top}
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _run(ws, maker, argv, timeout=300):
    r = subprocess.run(argv, cwd=ws["repo"], env=ws["env"], capture_output=True, text=True,
                       timeout=timeout, **_as(maker))
    return r


def _as(maker):
    if os.geteuid() != 0:
        return {}
    return {"user": maker[0], "group": maker[1], "extra_groups": []}


def test_the_path_has_python_and_make_but_no_compiler_apt_or_npm(workspace, maker):
    for name in FORBIDDEN:
        assert shutil.which(name, path=workspace["path"]) is None, name
    r = _run(workspace, maker, ["id", "-u"])
    assert r.stdout.strip() != "0", "the device path must run without root"


def test_make_creates_the_device_environment_and_dry_runs_flash_and_deploy(workspace, maker,
                                                                           tmp_path):
    r = _run(workspace, maker, ["make", "device-deps"])
    assert r.returncode == 0, r.stdout + r.stderr
    repo = workspace["repo"]
    assert os.path.isfile(os.path.join(repo, ".venv-device", "bin", "python"))
    assert not os.path.exists(os.path.join(repo, ".venv")), "the test stack was installed"
    assert not os.path.exists(os.path.join(repo, "node_modules"))
    r = _run(workspace, maker, ["make", "deploy", "DRY=1", "PORT=/dev/ttyUSB0",
                                "BOARD=esp32-bc95"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"mpy-cross: \d+ files -> build/deploy/lib/enosnb", r.stdout)
    assert "-m mpremote connect /dev/ttyUSB0 exec" in r.stdout
    assert os.path.isfile(os.path.join(repo, "build", "deploy", "lib", "enosnb", "app.mpy"))
    image = os.path.join(repo, "ESP32_GENERIC.bin")
    with open(image, "wb") as f:
        f.write(b"\xe9" + bytes(15))
    os.chown(image, *maker)
    r = _run(workspace, maker, ["make", "flash", "DRY=1", "IMAGE=ESP32_GENERIC.bin"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "-m esptool --chip esp32 --port /dev/ttyUSB0 erase-flash" in r.stdout
    r = _run(workspace, maker, [".venv-device/bin/python", "-m", "esptool", "version"])
    assert r.returncode == 0 and "5.6.0" in r.stdout, r.stdout + r.stderr


def test_make_secrets_on_a_terminal_then_check_and_deploy_them(workspace, maker):
    env = dict(workspace["env"], COLUMNS="200")
    p = PtyProcess(["make", "secrets", "BOARD=esp32-bc95"], env=env, cwd=workspace["repo"],
                   user=maker if os.geteuid() == 0 else None)
    try:
        p.expect(r"(?m)^secureMode \[2\]: ", timeout=120)
        p.sendline("")
        p.expect(r"(?m)^productKey: ")
        p.sendline(PK)
        p.expect(r"(?m)^deviceKey \[imei\]: ")
        p.sendline("")
        p.expect(r"(?m)^deviceSecret: ")
        p.sendline("abc")
        p.expect(r"deviceSecret is 3 characters long; EnOS secrets are 8 to 64")
        p.expect(r"(?m)^deviceSecret: ")
        p.sendline(SECRET)
        p.expect(r"(?m)^host: ")
        p.sendline("coap-tenant.example.com")
        p.expect(r"(?m)^apn \[network default\]: ")
        p.sendline("")
        assert p.wait(60) == 0, p.text
    finally:
        p.close()
    assert "make deploy PORT=<port> BOARD=esp32-bc95 SECRETS=1" in p.text
    assert SECRET not in p.text
    secrets = os.path.join(workspace["repo"], "firmware", "secrets.json")
    assert os.stat(secrets).st_mode & 0o777 == 0o600
    r = _run(workspace, maker, ["make", "secrets", "CHECK=firmware/secrets.json"])
    assert r.returncode == 0 and "firmware/secrets.json OK" in r.stdout, r.stdout + r.stderr
    r = _run(workspace, maker, ["make", "secrets", "CHECK=boards/esp32-bc95/board.json"])
    assert r.returncode == 0 and "is a board.json: OK" in r.stdout, r.stdout + r.stderr
    r = _run(workspace, maker, ["make", "deploy", "DRY=1", "SECRETS=1", "BOARD=esp32-bc95"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "firmware/secrets.json :secrets.json" in r.stdout and SECRET not in r.stdout


def test_monitor_and_repl_reach_a_board_from_the_device_environment(workspace, maker):
    assert _run(workspace, maker, ["make", "device-deps"]).returncode == 0
    board = ScriptedBoard(asleep_s=0.5, cycle_s=6.0)
    try:
        os.chown(board.port, maker[0], -1)
        use_mpremote_repl(PtyProcess(["make", "repl", "PORT=" + board.port],
                                     env=workspace["env"], cwd=workspace["repo"],
                                     user=maker if os.geteuid() == 0 else None))
    finally:
        board.close()
    board = ScriptedBoard(asleep_s=0.5, cycle_s=0.3)
    try:
        os.chown(board.port, maker[0], -1)
        r = _run(workspace, maker, [".venv-device/bin/python", "tools/board_console.py",
                                    "monitor", "--port", board.port, "--seconds", "2"])
    finally:
        board.close()
    assert r.returncode == 0, r.stderr
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3} \[enosnb\] cycle: sent 1, queue 0", r.stdout)


def test_preflight_reaches_a_local_server_from_the_device_environment(workspace, maker,
                                                                       tmp_path):
    with EnosServer(db_path=":memory:", port=0, dtls_port=0, log=None) as srv:
        path = os.path.join(workspace["top"], "preflight-secrets.json")
        with open(path, "w") as f:
            json.dump({"productKey": PK, "deviceKey": DK, "deviceSecret": SECRET,
                       "host": "127.0.0.1", "port_dtls": srv.dtls_port}, f)
        os.chown(path, *maker)
        r = _run(workspace, maker, ["make", "preflight", "SECRETS_FILE=" + path], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "preflight passed: EnOS stored temperature = 21.5" in r.stdout


def test_the_plain_pip_route_works_without_make(workspace, maker):
    cmds = [["python3", "-m", "venv", "venv-plain"],
            ["venv-plain/bin/python", "-m", "pip", "install", "-q", "-r",
             "requirements-device.txt"],
            ["venv-plain/bin/python", "tools/deploy.py", "deploy", "--port", "COM3", "--board",
             "esp32-sim7020", "--dry-run"],
            ["venv-plain/bin/python", "tools/secrets_tool.py", "check",
             "boards/esp32-sim7020/board.json"],
            ["venv-plain/bin/python", "-m", "mpremote", "connect", "list"]]
    for argv in cmds:
        r = _run(workspace, maker, argv)
        assert r.returncode == 0, (argv, r.stdout + r.stderr)
    assert "-m mpremote connect COM3 exec" in _run(workspace, maker, cmds[2]).stdout
