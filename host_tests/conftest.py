"""Puts the firmware package, the CPython stand-ins and the VM-compatible tests on sys.path."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (os.path.join(ROOT, "firmware", "lib"), os.path.join(ROOT, "tools", "host"),
          os.path.join(ROOT, "host_tests", "vm"), ROOT):
    if p not in sys.path:
        sys.path.insert(0, p)
