"""Runs the VM test suite on the MicroPython unix port, as tools/mpvm/run.mjs does in the
WebAssembly port: every test_*.py module of the suite directory, every test_* function in it.

    micropython tools/host/vmsuite.py host_tests/vm [module,module...]

Prints one line per failure (with its traceback) and "vm-unix: N passed, N failed";
exits 1 on any failure or when no test ran. The unix port has os.urandom, so nothing is
patched in: the firmware's own randomness shim is what runs.
"""
import gc
import os
import sys


def main(argv):
    suite = argv[1].rstrip("/")
    if not suite.startswith("/"):
        suite = os.getcwd() + "/" + suite
    only = argv[2].split(",") if len(argv) > 2 else None
    root = suite.rsplit("/", 2)[0]
    sys.path.insert(0, root + "/firmware/lib")
    sys.path.insert(0, suite)
    mods = sorted(f[:-3] for f in os.listdir(suite) if f.startswith("test_") and f.endswith(".py"))
    passed = failed = 0
    for name in mods:
        if only and name not in only:
            continue
        try:
            mod = __import__(name)
        except Exception as e:
            failed += 1
            print("FAIL", name, "(import)")
            sys.print_exception(e)
            continue
        for fn_name in sorted(dir(mod)):
            fn = getattr(mod, fn_name)
            if not fn_name.startswith("test_") or not callable(fn):
                continue
            try:
                fn()
                passed += 1
            except Exception as e:
                failed += 1
                print("FAIL", name + "." + fn_name)
                sys.print_exception(e)
            gc.collect()
    print("vm-unix: %d passed, %d failed" % (passed, failed))
    if failed or not passed:
        sys.exit(1)


main(sys.argv)
