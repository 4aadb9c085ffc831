"""Where deep-sleep state goes and which copy wins after a wake-up or a power cut (enosnb.state):
RTC memory, the flash file, its temporary twin, generations, and the limits of keys and values.
Runs under pytest and on MicroPython."""
import os

from enosnb import state as state_module
from enosnb.state import State, StateError, decode, encode
from test_state import FakeRtc, _exists, _path
from vmcheck import raises


class _Os:
    """The os functions state.py uses, with rename replaced."""

    def __init__(self, rename):
        self.rename = rename
        self.remove = os.remove


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def test_the_first_save_is_generation_1_and_each_save_counts_up_to_wrap_at_32_bits():
    rtc = FakeRtc()
    s = State(rtc=rtc, path=_path("gen"))
    assert s.gen == 0
    s.save()
    s.save()
    assert decode(rtc.data)[0] == 2
    rtc.data = encode({"k": b"v"}, 0xFFFFFFFF)
    s = State(rtc=rtc, path=_path("gen"))
    s.save()
    assert decode(rtc.data) == (0, {"k": b"v"})


def test_the_newest_generation_wins_between_rtc_memory_and_the_flash_files():
    p = _path("newest")
    rtc = FakeRtc()
    rtc.data = encode({"from": b"rtc"}, 5)
    _write(p, encode({"from": b"file"}, 7))
    s = State(rtc=rtc, path=p)
    assert (s.loaded_from, s.get("from"), s.gen) == ("flash", b"file", 7)
    rtc.data = encode({"from": b"rtc"}, 8)
    s = State(rtc=rtc, path=p)
    assert (s.loaded_from, s.get("from"), s.gen) == ("rtc", b"rtc", 8)
    _write(p + ".tmp", encode({"from": b"tmp"}, 9))
    assert State(rtc=rtc, path=p).get("from") == b"tmp"


def test_on_equal_generations_rtc_memory_wins_then_the_file_then_its_temporary_twin():
    p = _path("tie")
    rtc = FakeRtc()
    rtc.data = encode({"from": b"rtc"}, 4)
    _write(p, encode({"from": b"file"}, 4))
    _write(p + ".tmp", encode({"from": b"tmp"}, 4))
    assert State(rtc=rtc, path=p).get("from") == b"rtc"
    assert State(rtc=None, path=p).get("from") == b"file"


def test_a_save_cut_after_the_temporary_file_is_found_again_at_wake_up():
    p = _path("cut")
    s = State(rtc=None, path=p)
    s.set("k", b"old")
    s.save()
    s.set("k", b"new")
    def cut(a, b):
        raise KeyboardInterrupt  # stands for the power failing before the rename
    state_module.os = _Os(cut)
    try:
        raises(KeyboardInterrupt, s.save)
    finally:
        state_module.os = os
    woken = State(rtc=None, path=p)
    assert (woken.get("k"), woken.loaded_from) == (b"new", "flash")


def test_a_file_system_whose_rename_does_not_replace_still_gets_the_new_state():
    p = _path("fat")
    s = State(rtc=None, path=p)
    s.set("k", b"one")
    s.save()
    def fat_rename(a, b):
        if _exists(b):
            raise OSError(17)
        os.rename(a, b)
    state_module.os = _Os(fat_rename)
    try:
        s.set("k", b"two")
        assert s.save() == "flash"
    finally:
        state_module.os = os
    assert State(rtc=None, path=p).get("k") == b"two" and not _exists(p + ".tmp")


def test_an_rtc_that_cannot_be_read_or_written_falls_back_to_the_flash_file():
    class BrokenRtc:
        def memory(self, data=None):
            raise OSError(5)
    p = _path("broken")
    s = State(rtc=BrokenRtc(), path=p)
    assert s.loaded_from is None
    s.set("k", b"v")
    assert s.save() == "flash"
    woken = State(rtc=BrokenRtc(), path=p)
    assert (woken.loaded_from, woken.get("k")) == ("flash", b"v")


def test_a_blob_exactly_the_size_of_rtc_memory_goes_there_and_old_files_are_removed():
    p = _path("exact")
    _write(p + ".tmp", encode({"stale": b"1"}, 1))
    size = len(encode({"k": b"v"}, 1))
    rtc = FakeRtc(size=size)
    s = State(rtc=rtc, path=p, rtc_size=size)
    s.clear()
    s.set("k", b"v")
    assert s.save() == "rtc"
    assert not _exists(p + ".tmp")
    s.set("k", b"vv")
    assert s.save() == "flash"


def test_keys_of_1_to_255_bytes_and_values_up_to_65535_bytes_are_kept():
    p = _path("limits")
    s = State(rtc=None, path=p)
    s.set("k" * 255, bytearray(b"\x01"))
    s.set("v", b"\x02" * 0xFFFF)
    s.save()
    woken = State(rtc=None, path=p)
    assert woken.get("k" * 255) == b"\x01" and woken.get("v") == b"\x02" * 0xFFFF
    for key, value in (("k" * 256, b""), ("", b""), ("v", bytes(0x10000))):
        e = raises(StateError, s.set, key, value)
        assert str(e) == "state key %r: 1..255 byte key, value up to 65535 bytes" % key
    e = raises(StateError, s.set, "n", 5)
    assert str(e) == "state value for 'n' must be bytes"


class _Machine:
    """A stand-in for the machine module: RTC() returns what make() gives or raises."""

    def __init__(self, make):
        self.RTC = make


def _with_machine(module, fn):
    import sys
    saved = sys.modules.get("machine")
    sys.modules["machine"] = module
    try:
        return fn()
    finally:
        if saved is None:
            del sys.modules["machine"]
        else:
            sys.modules["machine"] = saved


def test_rtc_true_means_the_boards_rtc_memory_when_there_is_one():
    rtc = FakeRtc()
    p = _path("board")
    s = _with_machine(_Machine(lambda: rtc), lambda: State(rtc=True, path=p))
    assert s.rtc is rtc
    s.set("k", b"v")
    assert s.save() == "rtc"

    def broken():
        raise OSError(19)
    for module in (_Machine(broken), _Machine(lambda: object()), object()):
        s = _with_machine(module, lambda: State(rtc=True, path=p))
        assert s.rtc is None and s.save() == "flash"
