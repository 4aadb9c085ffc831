"""The README says what a device maker can rely on; each claim a test can check is checked
here against behaviour: its two commands come first, every make command it shows runs in
dry-run form and does what it says, the make targets it names exist, its links and the docs'
links resolve, no file refers outside the repository, the output it shows is what the demo
and the board print, the tshark command the demo prints decrypts the capture, and its budget
summary is the budget page's."""
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


def code_blocks(text):
    return re.findall(r"```[^\n]*\n(.*?)```", text, re.S)


def shape(line):
    return re.sub(r"\d+", "9", line.strip())


def markdown_files():
    out = ["README.md"]
    for d in ("docs", "boards", "tools", "host_tests", "firmware"):
        for base, _, files in os.walk(os.path.join(ROOT, d)):
            out += [os.path.relpath(os.path.join(base, f), ROOT) for f in files
                    if f.endswith(".md")]
    return sorted(out)


def anchors(text):
    """GitHub's anchors of a markdown file's headings."""
    out = set()
    for line in text.splitlines():
        m = re.match(r"#+ (.*)", line)
        if m:
            a = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
            out.add(a)
    return out


def test_the_readme_is_the_device_makers_page_and_starts_with_demo_and_test():
    text = read("README.md")
    assert len(text.splitlines()) <= 300
    first = code_blocks(text)[0].splitlines()
    assert [ln.split()[:2] for ln in first] == [["make", "demo"], ["make", "test"]]
    steps = re.findall(r"^### \d\. (.*)$", text, re.M)
    assert steps == ["The board", "The tools and MicroPython", "The device in EnOS",
                     "The keys: secrets.json", "Your sensor", "Deploy", "See your data"]
    assert "## Troubleshooting" in text


def test_links_in_the_readme_and_the_docs_resolve():
    broken = []
    for md in markdown_files():
        text = read(md)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
                continue
            path, _, anchor = target.partition("#")
            full = os.path.normpath(os.path.join(ROOT, os.path.dirname(md), path)) if path \
                else os.path.join(ROOT, md)
            if not os.path.exists(full):
                broken.append("%s: %s" % (md, target))
            elif anchor and full.endswith(".md") and anchor not in anchors(read(full)):
                broken.append("%s: %s (no such heading)" % (md, target))
    assert broken == []


def test_no_file_refers_to_a_file_outside_the_repository():
    me = os.path.relpath(__file__, ROOT)
    r = subprocess.run(["git", "grep", "-nE", r"\.\./shared|shared/spec|spec/|spec §|the spec",
                        "--", ".", ":!" + me], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode in (0, 1), r.stderr
    assert r.stdout == ""


def _make_commands(text):
    cmds = []
    for block in code_blocks(text):
        for line in block.splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("make "):
                cmds.append(shlex.split(line)[1:])
    cmds += [shlex.split(c)[1:] for c in re.findall(r"`(make [^`]+)`", text)]
    return cmds


def test_every_make_target_the_readme_names_exists():
    targets = set(re.findall(r"^([a-z][\w-]*):", read("Makefile"), re.M))
    named = set(re.findall(r"`make ([a-z][\w-]*)", read("README.md")))
    named |= {c[0] for c in _make_commands(read("README.md"))}
    assert named and named <= targets, named - targets


def _dry(args):
    r = subprocess.run(["make", "-n", "--no-print-directory"] + args, cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def test_each_make_command_of_the_readme_runs_in_dry_run_form_as_described():
    for args in _make_commands(read("README.md")):
        _dry(args)
    demo = _dry(["demo", "V=1"])
    assert "tools/twin.py --board esp32-sim7020" in demo and " -v " in demo
    assert "--board esp32-bc95" in _dry(["demo", "BOARD=esp32-bc95"])
    assert "--keep" in _dry(["demo", "KEEP=1"])
    mine = _dry(["demo", "SENSORS=firmware/sensors.py", "SECRETS=1"])
    assert "--sensors firmware/sensors.py --secrets firmware/secrets.json" in mine
    flash = _dry(["flash", "PORT=/dev/ttyUSB0", "IMAGE=x.bin", "DRY=1"])
    assert "deploy.py flash --port /dev/ttyUSB0 --image x.bin" in flash and "--dry-run" in flash
    deploy = _dry(["deploy", "PORT=/dev/ttyUSB0", "BOARD=esp32-sim7020", "SECRETS=1", "DRY=1"])
    assert "--board esp32-sim7020 --secrets" in deploy and "--dry-run" in deploy
    assert "--secrets" not in _dry(["deploy", "PORT=/dev/ttyUSB0", "BOARD=esp32-sim7020"])
    assert "--imei 866425031234567" in _dry(["preflight", "IMEI=866425031234567"])
    assert "check firmware/secrets.json" in _dry(["secrets", "CHECK=firmware/secrets.json"])
    assert "--board esp32-sim7020" in _dry(["secrets", "BOARD=esp32-sim7020"])
    assert "board_console.py monitor --port /dev/ttyUSB0" in _dry(
        ["monitor", "PORT=/dev/ttyUSB0"])
    assert "board_console.py repl --port /dev/ttyUSB0" in _dry(["repl", "PORT=/dev/ttyUSB0"])
    assert "--readme README.md" in _dry(["budget"])
    # The device path stands apart from the test stack (.venv-device, requirements-device.txt).
    assert ".venv-device/bin/python" in flash and ".venv/bin/" not in flash


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`make demo`'s command, shortened to two cycles, once per board."""
    out = {}
    for board in ("esp32-sim7020", "esp32-bc95"):
        d = tmp_path_factory.mktemp(board)
        pcap = str(d / "demo.pcap")
        r = subprocess.run([sys.executable, "tools/twin.py", "--board", board, "--cycles", "2",
                            "--command", "--pcap", pcap, "--out", str(d)], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        out[board] = r.stdout
        out[board + "/as make demo"] = r.stdout.replace(pcap, "out/demo.pcap")
    return out


def _lines(text, *prefixes):
    return [ln for ln in text.splitlines() if ln.strip().startswith(prefixes)]


def test_the_demo_output_the_readme_and_the_demo_page_show_is_what_make_demo_prints(demo):
    printed = {shape(ln) for board, out in demo.items() if board.endswith("make demo")
               for ln in out.splitlines()}
    shown = _lines(code_blocks(read("README.md"))[1], "boot:", "cycle", "modem:", "EnOS")
    assert len(shown) == 4
    page = "\n".join(code_blocks(read("docs/demo.md")))
    shown += _lines(page, "boot:", "cycle 1", "cycle 2", "modem:", "EnOS", "twin: SIM7020",
                    "twin: BC95", "tshark: to see")
    missing = [ln for ln in shown if shape(ln) not in printed]
    assert missing == []
    # In the user's words: readable times and durations, no raw None.
    for out in demo.values():
        assert "None" not in out
        assert re.search(r"measured 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC", out)
        assert re.search(r"deep sleep \d+ min", out)


def test_the_board_lines_the_readme_shows_are_what_the_firmware_prints(tmp_path):
    from tools.twin import Twin
    t = Twin("esp32-bc95", out=str(tmp_path), sleep_scale=0.0002).start()
    try:
        log = t.run_cycle().log
    finally:
        t.stop()
    printed = {shape(ln) for ln in log.splitlines()}
    shown = _lines(read("README.md"), "[enosnb]")
    assert len(shown) == 4
    assert [ln for ln in shown if shape(ln) not in printed] == []


def test_the_tshark_command_the_demo_prints_decrypts_its_capture(demo):
    line = _lines(demo["esp32-sim7020"], "tshark: to see them yourself: ")[0]
    cmd = shlex.split(line.split(": ", 2)[2])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    posts = [ln for ln in r.stdout.splitlines() if "/thing/measurepoint/post" in ln]
    assert any("POST" in ln for ln in posts) and any("2.04 Changed" in ln for ln in posts)


def test_the_readme_budget_summary_is_the_budget_page_s():
    def rows(text):
        return dict(re.findall(r"^\| `([\w.]+)` \| ([^|]+) \|", text, re.M))
    summary, page = rows(read("README.md")), rows(read("docs/budget.md"))
    assert summary and all(page[k] == v for k, v in summary.items())


def test_the_messages_the_troubleshooting_table_quotes_are_the_firmware_s():
    src = "".join(read(os.path.join("firmware/lib/enosnb", f))
                  for f in ("diag.py", "diag_fail.py", "diag_boot.py")) + read("firmware/main.py")
    table = read("README.md").split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    # README wording -> the firmware's format string it comes from.
    for shown, fmt in (("`modem ... silent: ...`", '"modem %s silent: %s"'),
                       ("`not registered (CEREG 2: searching)`", '"not registered (CEREG %d: %s)"'),
                       ("`keys refused by the server: check productKey, deviceKey and secret`",
                        '"keys refused by the server: %s'),
                       ("`configuration error: ...`", '"enosnb: configuration error: %s"')):
        assert shown in table and fmt in src, shown
    assert '"check productKey, deviceKey and secret"' in src
    assert '"searching"' in src
