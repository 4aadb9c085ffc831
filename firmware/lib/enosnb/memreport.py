"""The memory report, for the first makers with a board (board.json "mem_report": true;
docs/ram.md asks for its output). Lines start with "[mem]".

point(tag) prints gc.mem_free() and mem_alloc() without collecting (the heap as the
allocator sees it, garbage included) and after a collection, micropython.mem_info() (total
heap, largest free block) and, on an ESP32, esp32.idf_heap_info(esp32.HEAP_DATA): the IDF's
own heap regions (total, free, largest free block, lowest free). main.py calls it at boot,
after the UART is made and after the imports; the app after the report phase, where the
cycle's objects, its session and clients and the last reply are live: the cycle's peak;
phase(name) prints one line at the end of every phase.

headroom() then probes what is left for the device maker's own code: one contiguous
HEADROOM_BLOCK, then HEADROOM_PIECES blocks of HEADROOM_PIECE bytes, all held at once, then
freed.
A board that fails it has less than the firmware's RAM promise leaves.
"""
import gc

HEADROOM_PIECE = 4096
HEADROOM_PIECES = 6
HEADROOM_BLOCK = 8192
# Host runs scale the probe to their word size (tools/host/mpboot.py); 1 on a board.
SCALE = 1


def point(tag):
    import micropython
    before = gc.mem_alloc()
    gc.collect()
    print("[mem] %s: alloc %d (%d before collecting), free %d" % (
        tag, gc.mem_alloc(), before, gc.mem_free()))
    micropython.mem_info()
    try:
        import esp32
        print("[mem] %s: idf HEAP_DATA %s" % (tag, esp32.idf_heap_info(esp32.HEAP_DATA)))
    except (ImportError, AttributeError):
        pass


def phase(name):
    """One line at the end of each phase of the cycle: the heap in use, garbage included."""
    print("[mem] after %s: alloc %d, free %d" % (name, gc.mem_alloc(), gc.mem_free()))


def headroom():
    """True when the probe's blocks could all be allocated; prints one line either way."""
    piece = int(HEADROOM_PIECE * SCALE)
    block = int(HEADROOM_BLOCK * SCALE)
    held = []
    gc.collect()
    try:
        held.append(bytearray(block))  # the contiguous block first, while the heap has one
        for _ in range(HEADROOM_PIECES):
            held.append(bytearray(piece))
        ok = True
    except MemoryError:
        ok = False
    got = sum(len(b) for b in held)
    held = None
    gc.collect()
    print("[mem] headroom: %s (%d of %d bytes: %d contiguous + %d x %d)" % (
        "ok" if ok else "FAILED", got, HEADROOM_PIECES * piece + block, block,
        HEADROOM_PIECES, piece))
    return ok
