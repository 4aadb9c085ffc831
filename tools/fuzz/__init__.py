"""`make fuzz`: every parser of the device code, driven with mutated inputs on the MicroPython
unix port and on CPython (tools/fuzz/__main__.py runs it; engine.py and targets.py run on both)."""
