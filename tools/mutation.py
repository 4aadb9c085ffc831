"""Mutation testing of the device code: `make mutation`.

mutmut (pinned in requirements.txt) plants one small bug at a time (a flipped comparison, an
off-by-one constant, a dropped argument, a changed string) into the packages whose rules
decide what the device accepts and sends: coap, dtls, enos, store.py and state.py. For each
mutant it runs the tests that reach the mutated function, taken from the fast suite
(host_tests/vm under CPython, the same test modules that run on MicroPython). A mutant that no
test notices "survived": either a test is missing, or the mutant is equivalent (it cannot
change behaviour), and then it is listed with the reason in tools/mutation_equivalent.txt.

The run happens in a scratch tree under build/mutation (mutmut rewrites every module it mutates
and runs the tests from its own copy), so the repository is never touched.

Prints one figure per line:

    mutation.<package>.mutants: N
    mutation.<package>.killed: N            (a test failed or the run timed out)
    mutation.<package>.survived: N          (no test noticed, not declared equivalent)
    mutation.<package>.equivalent: N
    mutation.<package>.score_pct: P         killed / (mutants - equivalent - not checked)
    mutation.<package>.not_checked: N       (only after an interrupted run)
    mutation.seconds: S

and then every surviving mutant as its name plus the changed lines. Exits 1 when a package
scores below --min-score (95 % unless told), when a package declares more than 3 % of its
mutants equivalent, or when the equivalents file names a mutant that no longer exists or that
a test kills (after an edit mutmut numbers a function's mutants anew).
"""
import argparse
import ast
import difflib
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "build", "mutation")
EQUIVALENT = os.path.join(ROOT, "tools", "mutation_equivalent.txt")
MUTMUT = os.path.join(os.path.dirname(sys.executable), "mutmut")

# package name -> the modules (under firmware/lib, as globs) it covers; the queue's rare paths
# (repair, thinning, recovery) live in storefix.py and count as part of store.
PACKAGES = {
    "coap": ("enosnb/coap/*",),
    "dtls": ("enosnb/dtls/*",),
    "enos": ("enosnb/enos/*",),
    "store": ("enosnb/store.py", "enosnb/storefix.py"),
    "state": ("enosnb/state.py",),
}
MAX_EQUIVALENT_PCT = 3.0
# Every package keeps at least this share of its non-equivalent mutants killed.
MIN_SCORE_PCT = 95.0

# mutmut's exit code of a mutant's test run -> verdict; a timeout is a detection (the mutant
# made the code loop or stall), "no tests" is a survivor (no test even reaches the code).
KILLED_CODES = (1, 3, 36, 24, -24, 152, 255, -11, -9)

_CONFTEST = '''"""Written by tools/mutation.py: the VM suite's helpers and the CPython stand-ins."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "vm"))
sys.path.append(%r)
'''


def prepare(fresh):
    """Lays out build/mutation: src/enosnb (the firmware package), tests/ (the VM suite,
    vectors, corpus) and the mutmut configuration."""
    if fresh and os.path.isdir(WORK):
        shutil.rmtree(WORK)
    src = os.path.join(WORK, "src", "enosnb")
    tests = os.path.join(WORK, "tests")
    for d in (src, tests):
        if os.path.isdir(d):
            shutil.rmtree(d)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(os.path.join(ROOT, "firmware", "lib", "enosnb"), src, ignore=ignore)
    for name in ("vm", "vectors", "corpus"):
        shutil.copytree(os.path.join(ROOT, "host_tests", name), os.path.join(tests, name),
                        ignore=ignore)
    with open(os.path.join(tests, "conftest.py"), "w") as f:
        f.write(_CONFTEST % os.path.join(ROOT, "tools", "host"))
    only = "".join("\n    src/" + p for globs in PACKAGES.values() for p in globs)
    with open(os.path.join(WORK, "setup.cfg"), "w") as f:
        f.write("[mutmut]\nsource_paths=src\nonly_mutate=%s\n"
                "pytest_add_cli_args=\n    -p\n    no:cacheprovider\n"
                "pytest_add_cli_args_test_selection=\n    tests\n"
                "use_git_change_detection=false\n" % only)


def package_of(module):
    """'enosnb.dtls.session' -> 'dtls'; 'enosnb.store' and 'enosnb.storefix' -> 'store'."""
    parts = module.split(".")
    if len(parts) < 2:
        return parts[0]
    for pkg, globs in PACKAGES.items():
        if any(g.split("/")[1] == parts[1] + ".py" for g in globs):
            return pkg
    return parts[1]


def results():
    """{mutant name: exit code} from mutmut's per-file metadata."""
    out = {}
    base = os.path.join(WORK, "mutants", "src")
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            if name.endswith(".py.meta"):
                with open(os.path.join(dirpath, name)) as f:
                    out.update(json.load(f)["exit_code_by_key"])
    return out


def load_equivalent(path=EQUIVALENT):
    """{mutant name: reason} from the equivalents file: `name  reason`, # comments."""
    eq = {}
    if not os.path.exists(path):
        return eq
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, reason = line.partition(" ")
            eq[name] = reason.strip()
    return eq


_FUNCS = {}


def _functions(path):
    """{function name: body lines} of one of mutmut's rewritten modules, parsed once."""
    if path not in _FUNCS:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        lines = text.splitlines()
        funcs = {}
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and "__mutmut_" in node.name:
                # From the def line (mutmut also changes default values), under one name.
                body = lines[node.lineno - 1:node.end_lineno]
                body[0] = body[0].replace(node.name, node.name.rpartition("__mutmut_")[0])
                funcs[node.name] = body
        _FUNCS[path] = funcs
    return _FUNCS[path]


def mutant_diff(name):
    """The lines a mutant changes, as '-old' / '+new' strings, read from mutmut's rewritten
    module (each mutant is a copy of its function under a mangled name)."""
    module, _, func = name.rpartition(".")
    path = os.path.join(WORK, "mutants", "src", *module.split(".")) + ".py"
    if not os.path.exists(path):
        path = path[:-3] + "/__init__.py"
    funcs = _functions(path)
    orig = funcs.get(func.rpartition("__mutmut_")[0] + "__mutmut_orig")
    mutant = funcs.get(func)
    if orig is None or mutant is None:
        return ["(source not found)"]
    return [line.rstrip() for line in difflib.unified_diff(orig, mutant, n=0, lineterm="")
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def summarise(codes, equivalent):
    """Per package: counts, score and the surviving mutant names."""
    summary = {}
    for pkg in PACKAGES:
        summary[pkg] = {"mutants": 0, "killed": 0, "survived": 0, "equivalent": 0,
                        "not_checked": 0, "survivors": []}
    for name, code in sorted(codes.items()):
        module = name.rpartition(".")[0]
        pkg = package_of(module)
        if pkg not in summary:
            continue
        s = summary[pkg]
        s["mutants"] += 1
        if code is None:
            s["not_checked"] += 1  # an interrupted run: neither killed nor survived
        elif code in KILLED_CODES:
            s["killed"] += 1
        elif name in equivalent:
            s["equivalent"] += 1
        else:
            s["survived"] += 1
            s["survivors"].append(name)
    for s in summary.values():
        live = s["mutants"] - s["equivalent"] - s["not_checked"]
        s["score_pct"] = round(100.0 * s["killed"] / live, 1) if live else 100.0
        s["equivalent_pct"] = 100.0 * s["equivalent"] / s["mutants"] if s["mutants"] else 0.0
    return summary


def _pattern(glob):
    """'enosnb/coap/*' -> 'enosnb.coap.*'; 'enosnb/store.py' -> 'enosnb.store.*' (mutmut's
    mutant names are the module's dotted name, then the function)."""
    return glob.rpartition(".py")[0].replace("/", ".") + ".*" if glob.endswith(".py") \
        else glob.replace("/", ".")


def run_mutmut(jobs, log, names=()):
    """mutmut run: every mutant without a result, or (names given) exactly those mutants."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    with open(log, "a") as out:
        return subprocess.call([MUTMUT, "run", "--max-children", str(jobs)] + list(names),
                               cwd=WORK, stdout=out, stderr=subprocess.STDOUT, env=env)


def rerun_names(codes, packages):
    """The mutants of the packages that a kept run must test again: every one not killed
    (a test added since may kill it), in mutmut's name form."""
    return sorted(n for n, c in codes.items()
                  if package_of(n.rpartition(".")[0]) in packages and c not in KILLED_CODES)


def misdeclared(codes, equivalent, packages):
    """Declared equivalent but killed by a test: after an edit mutmut numbers a function's
    mutants anew, so the name most likely points at another mutant now."""
    return sorted(n for n in equivalent if codes.get(n) in KILLED_CODES
                  and package_of(n.rpartition(".")[0]) in packages)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2,
                    help="mutants tested in parallel (default: the number of cores)")
    ap.add_argument("--keep", action="store_true",
                    help="reuse the previous run's results for functions that did not change; "
                         "mutants that survived it are tested again")
    ap.add_argument("--report-only", action="store_true",
                    help="print the figures of the last run without running mutmut")
    ap.add_argument("--min-score", type=float, default=MIN_SCORE_PCT,
                    help="exit 1 when a package scores below this percentage (default %(default)s)")
    ap.add_argument("--package", action="append", choices=sorted(PACKAGES),
                    help="test every mutant of this package (repeatable) and report it alone; "
                         "the other packages keep their last results")
    args = ap.parse_args(argv)
    packages = args.package or list(PACKAGES)

    t0 = time.time()
    if not args.report_only:
        # A run of some packages keeps the others' results.
        prepare(fresh=not args.keep and not args.package)
        log = os.path.join(WORK, "mutmut.log")
        open(log, "w").close()
        if args.package:
            rc = run_mutmut(args.jobs, log, [_pattern(g) for p in packages for g in PACKAGES[p]])
        else:
            rc = run_mutmut(args.jobs, log)
            if args.keep and rc == 0:
                # Mutants of changed functions had no result and ran above; the survivors
                # of the last run meet the tests added since.
                names = rerun_names(results(), packages)
                if names:
                    rc = run_mutmut(args.jobs, log, names)
        if rc != 0:
            with open(log, errors="replace") as f:
                sys.stdout.write(f.read()[-3000:])
            print("mutation: mutmut failed (exit %d); its log is %s" % (rc, log))
            return 1
    codes = results()
    equivalent = load_equivalent()
    summary = summarise(codes, equivalent)
    failed = False
    summary = {p: summary[p] for p in packages}
    for pkg, s in summary.items():
        for key in ("mutants", "killed", "survived", "equivalent", "score_pct"):
            print("mutation.%s.%s: %s" % (pkg, key, s[key]))
        if s["not_checked"]:
            print("mutation.%s.not_checked: %d" % (pkg, s["not_checked"]))
        if s["equivalent_pct"] > MAX_EQUIVALENT_PCT:
            print("mutation: %s declares %.1f %% of its mutants equivalent (at most %.0f %%)" % (
                pkg, s["equivalent_pct"], MAX_EQUIVALENT_PCT))
            failed = True
        if s["score_pct"] < args.min_score:
            failed = True
    if not args.report_only:
        print("mutation.seconds: %.0f" % (time.time() - t0))
    stale = sorted(n for n in equivalent if n not in codes
                   and package_of(n.rpartition(".")[0]) in packages)
    for name in stale:
        print("mutation: %s is declared equivalent but no longer exists; update %s" % (
            name, os.path.relpath(EQUIVALENT, ROOT)))
    killed = misdeclared(codes, equivalent, packages)
    for name in killed:
        print("mutation: %s is declared equivalent but a test kills it; update %s" % (
            name, os.path.relpath(EQUIVALENT, ROOT)))
    failed = failed or bool(stale) or bool(killed)
    for pkg, s in summary.items():
        for name in s["survivors"]:
            print("survived %s (exit %s)" % (name, codes[name]))
            for line in mutant_diff(name):
                print("    " + line.strip()[:1] + " " + line[1:].strip())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
