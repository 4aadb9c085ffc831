"""`make bench`: runs every tools/benches/bench_*.py in turn.

Each bench module has main() and prints one figure per line as `name: value unit`, with
stable names, so runs can be compared over time. A bench that fails prints its error and
makes the whole run exit non-zero after the others have run.
"""
import importlib
import os
import sys
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (os.path.join(ROOT, "firmware", "lib"), os.path.join(ROOT, "tools", "host"), ROOT):
    if p not in sys.path:
        sys.path.insert(0, p)


def main(argv):
    names = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "tools", "benches"))
                   if f.startswith("bench_") and f.endswith(".py"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    failed = 0
    for name in names:
        print("# " + name, flush=True)
        try:
            importlib.import_module("tools.benches." + name).main()
        except Exception:
            failed += 1
            traceback.print_exc()
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
