"""Deep-sleep state (enosnb.state): RTC memory first, flash file fallback, CRC-checked."""
import os

from enosnb.state import State, StateError, decode, encode
from vmcheck import raises

# Called for each path: mutmut forks its parallel runs from one process that imported the
# tests, and they must not share files.
_pid = getattr(os, "getpid", lambda: 0)


class FakeRtc:
    """machine.RTC().memory() as on the ESP32: keeps up to `size` bytes across deep sleep."""

    def __init__(self, size=2048):
        self.size = size
        self.data = b""

    def memory(self, data=None):
        if data is None:
            return self.data
        if len(data) > self.size:
            raise ValueError("buffer too long")
        self.data = bytes(data)


def _path(name):
    p = "/tmp/enosnb_state_%d_%s.bin" % (_pid(), name)
    for q in (p, p + ".tmp"):
        try:
            os.remove(q)
        except OSError:
            pass
    return p


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def test_values_survive_a_deep_sleep_in_rtc_memory():
    rtc = FakeRtc()
    p = _path("rtc")
    s = State(rtc=rtc, path=p)
    assert s.loaded_from is None
    s.set("coap", b"\x12\x34")
    s.set("dtls", b"\x00" * 300)
    assert s.save() == "rtc"
    assert not _exists(p)
    woken = State(rtc=rtc, path=p)
    assert woken.loaded_from == "rtc"
    assert woken.get("coap") == b"\x12\x34"
    assert woken.get("dtls") == b"\x00" * 300
    assert woken.get("missing", b"d") == b"d"


def test_state_too_big_for_rtc_memory_goes_to_flash_and_rtc_is_cleared():
    rtc = FakeRtc(size=64)
    p = _path("big")
    s = State(rtc=rtc, path=p)
    s.set("a", b"1")
    assert s.save() == "rtc"
    s.set("blob", b"x" * 200)
    assert s.save() == "flash"
    assert rtc.data == b""
    woken = State(rtc=rtc, path=p)
    assert woken.loaded_from == "flash"
    assert woken.get("blob") == b"x" * 200 and woken.get("a") == b"1"


def test_without_an_rtc_the_flash_file_is_used():
    p = _path("nortc")
    s = State(rtc=None, path=p)
    s.set("enos", "auth-ok")
    assert s.save() == "flash"
    assert State(rtc=None, path=p).get("enos") == b"auth-ok"


def test_a_stale_flash_copy_is_removed_once_rtc_memory_holds_the_state():
    rtc = FakeRtc(size=64)
    p = _path("stale")
    s = State(rtc=rtc, path=p)
    s.set("seq", b"x" * 100)
    assert s.save() == "flash"
    s.set("seq", b"new")
    assert s.save() == "rtc"
    assert not _exists(p)
    rtc.data = b""  # power cut: RTC memory is gone
    after_cut = State(rtc=rtc, path=p)
    assert after_cut.loaded_from is None and after_cut.get("seq") is None


def test_a_corrupted_blob_is_ignored():
    rtc = FakeRtc()
    p = _path("corrupt")
    s = State(rtc=rtc, path=p)
    s.set("k", b"value")
    s.save()
    bad = bytearray(rtc.data)
    bad[10] ^= 0xFF
    rtc.data = bytes(bad)
    woken = State(rtc=rtc, path=p)
    assert woken.loaded_from is None and woken.keys() == []


def test_every_truncation_of_a_blob_is_rejected():
    blob = encode({"a": b"123", "bb": b""}, 7)
    assert decode(blob) == (7, {"a": b"123", "bb": b""})
    for n in range(len(blob)):
        assert decode(blob[:n]) is None


def test_delete_and_clear_remove_keys():
    s = State(rtc=FakeRtc(), path=_path("del"))
    s.set("a", b"1")
    s.set("b", b"2")
    s.delete("a")
    assert s.keys() == ["b"]
    s.clear()
    assert s.keys() == []


def test_a_value_that_is_not_bytes_is_refused():
    s = State(rtc=FakeRtc(), path=_path("type"))
    raises(StateError, s.set, "n", 5)
    raises(StateError, s.set, "", b"x")
