"""Runs inside the MicroPython VM (node tools/mpvm/run.mjs --script): heap use of the flash
queue on the VM's in-memory file system. Prints `name: value unit` lines for bench_store.py.

Figures: bytes allocated by opening a queue that holds 100 pending 120-byte records
(recovery scan), by one append, and by peek(10) (which copies the ten payloads).
"""
import gc
import os

from enosnb.store import Store

D = "/bench_store"
RECORD = b'{"t":1764115200000,"p":{"temperature":21.5,"humidity":40.2}}'
RECORD = RECORD + b" " * (120 - len(RECORD))


def allocated(fn):
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    fn()
    used = gc.mem_alloc() - before
    gc.enable()
    return used


try:
    os.mkdir(D)
except OSError:
    pass
s = Store(D)
for _ in range(100):
    s.append(RECORD)
s = None
holder = []
print("store.vm_open_100_pending_heap: %d bytes" % allocated(lambda: holder.append(Store(D))))
q = holder[0]
print("store.vm_append_heap: %d bytes" % allocated(lambda: q.append(RECORD)))
print("store.vm_peek10_heap: %d bytes" % allocated(lambda: q.peek(10)))
