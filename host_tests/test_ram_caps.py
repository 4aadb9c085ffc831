"""The RAM promise of each deployment mode, kept on the MicroPython unix port under a hard heap
cap (docs/ram.md): firmware/main.py unchanged, with exactly the files the mode's deploy puts
on the board, completes every report cycle through the modem emulator to the local EnOS
server, and the memory report's headroom probe works after the cycle's peak.

A cap is the cycle's promise in 32-bit bytes (tools/budget/ram_unix.py PROMISES_32; the
target where it is met) times the mode's 64/32-bit ratio (tools/host/mpruntime.py, a little
below the measured one, so the cap is strict), plus what this port holds and an ESP32 does
not: the `machine` stand-in, its UART ring and, in mode romfs, the ROMFS image, which this
port must read into its heap. make budget finds the smallest caps by bisection."""
import pytest

from tools.budget import ram_unix
from tools.host import mpruntime

pytestmark = pytest.mark.skipif(mpruntime.why_unavailable() is not None,
                                reason=str(mpruntime.why_unavailable()))

CASES = [(m, c) for m in ram_unix.MODES for c in ram_unix.CYCLES]


@pytest.fixture(scope="module")
def host_bytes():
    """(stand_in, image) bytes of each mode's boots, measured once per mode."""
    seen = {}

    def get(mode):
        if mode not in seen:
            seen[mode] = ram_unix.probe_heap(mode, "plain")[:2]
        return seen[mode]
    return get


@pytest.mark.parametrize("mode,cycle", CASES)
def test_each_report_cycle_completes_within_the_ram_its_mode_promises(mode, cycle,
                                                                     host_bytes):
    stand_in, image = host_bytes(mode)
    promise = ram_unix.PROMISES_32[(mode, cycle)]
    target = ram_unix.target_32(mode, cycle)
    cap = ram_unix.cap_for(promise, mpruntime.UNIX_64_PER_32[mode], stand_in, image)
    with ram_unix.Scenario(mode, cycle) as sc:
        o = sc.run(cap)
    assert o.ok, "%s %s within %d B (promise %d KB, target %s): %s" % (
        mode, cycle, cap, promise // 1024, target and target // 1024, o.why)


def test_the_memory_report_shows_the_heap_and_the_headroom_left_after_the_peak(host_bytes):
    """board.json "mem_report": true prints the heap at its four points; the headroom probe
    succeeds with room to spare (the promise plus 64 KB: its 32 KB and the fragmentation of
    a heap after the peak) and, with the promise alone, says it failed without failing the
    cycle."""
    mode, cycle = "romfs", "wake"
    stand_in, image = host_bytes(mode)
    ratio = mpruntime.UNIX_64_PER_32[mode]
    promise = ram_unix.PROMISES_32[(mode, cycle)]
    with ram_unix.Scenario(mode, cycle, headroom=ratio) as sc:
        o = sc.run(ram_unix.cap_for(promise + 2 * ram_unix.HEADROOM_32, ratio, stand_in,
                                    image))
    assert o.ok, o.why
    lines = o.boot.log.splitlines()
    assert [ln for ln in lines if ln.startswith("[mem] headroom: ok")]
    # The report's points: at boot, after the UART, after the imports, at the peak.
    for tag in ("boot", "uart", "imports", "peak"):
        assert [ln for ln in lines if ln.startswith("[mem] %s: alloc " % tag)], tag
    assert any(ln.startswith("GC: total:") for ln in lines)  # micropython.mem_info()
    with ram_unix.Scenario(mode, cycle, headroom=ratio) as sc:
        o = sc.run(ram_unix.cap_for(promise, ratio, stand_in, image))
    assert o.ok, o.why
    assert o.boot.line("[mem] headroom: FAILED")
