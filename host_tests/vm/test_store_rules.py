"""The flash queue's rules at their edges (enosnb.store): the limits of its settings, the record
format it accepts back from flash, where segments roll over, acks past the end, and what it
says when the flash refuses a write. Runs under pytest and on MicroPython."""
import struct

from test_store import _Writes, _fresh, _payloads, _read, _seg_files, _write
from vmcheck import raises

from enosnb.store import OsFs, Store, StoreError


def _record(seq, payload, magic=0xA7, length=None):
    """A record as the format defines it; its CRC covers the 7 header bytes and the payload."""
    import binascii
    hdr = struct.pack("<BHI", magic, len(payload) if length is None else length, seq)
    return hdr + struct.pack("<I", binascii.crc32(hdr + payload) & 0xFFFFFFFF) + payload


def test_queue_settings_are_checked_with_the_ranges_to_use():
    d = _fresh("settings")
    for kw in ({"max_records": 0}, {"max_record_bytes": 0}, {"max_record_bytes": 0x10000}):
        e = raises(ValueError, Store, d, **kw)
        assert str(e) == "max_records >= 1 and 1 <= max_record_bytes <= 65535"
    s = Store(d, max_records=1, max_record_bytes=1)
    s.append(b"a")
    s.append(b"b")
    assert _payloads(s) == [b"b"] and s.dropped == 1
    Store(_fresh("settings2"), max_record_bytes=0xFFFF).append(bytes(0xFFFF))


def test_a_queue_opened_without_settings_has_no_record_cap_and_takes_1_kb_records_in_4_kb_segments():
    # The app gives the cap (a fraction of the filesystem, docs/device-config.md).
    s = Store(_fresh("defaults"))
    assert (s.max_records, s.max_bytes, s.max_record_bytes, s.seg_bytes) == \
        (None, None, 1024, 4096)


def test_a_record_of_exactly_the_limit_is_queued_and_one_byte_more_is_refused():
    d = _fresh("limit")
    s = Store(d, max_record_bytes=16)
    s.append(b"x" * 16)
    e = raises(StoreError, s.append, b"x" * 17)
    assert str(e) == "record of 17 bytes exceeds max_record_bytes 16: send less per record"
    s = Store(_fresh("limit2"))
    s.append(bytes(1024))
    assert str(raises(StoreError, s.append, bytes(1025))) == \
        "record of 1025 bytes exceeds max_record_bytes 1024: send less per record"
    assert len(s) == 1


class _EmptyFs:
    """A file system with nothing on it that takes nothing: enough to open a queue."""

    def size(self, path):
        return -1

    def mkdir(self, path):
        pass

    def listdir(self, path):
        return []

    def open(self, path, mode):
        raise OSError(2)


def test_a_directory_given_with_a_trailing_slash_is_the_same_queue():
    d = _fresh("slashX")
    Store(d + "/").append(b"one")
    assert _payloads(Store(d)) == [b"one"]
    assert Store(d + "//").path == d
    assert Store("/", fs=_EmptyFs()).path == Store("", fs=_EmptyFs()).path == "/"


def test_a_segment_takes_records_until_it_holds_seg_bytes_4096_by_default():
    d = _fresh("roll")
    s = Store(d)
    for _ in range(5):
        s.append(bytes(1013))              # 1024 bytes with its header: 4 fill 4096 exactly
    assert [len(_read(d + "/" + n)) for n in _seg_files(d)] == [4096, 1024]


def test_peek_gives_one_record_unless_asked_for_more_and_none_for_zero():
    d = _fresh("peek")
    s = Store(d)
    for i in range(3):
        s.append(b"r%d" % i)
    assert s.peek() == [(1, b"r0")] and s.peek(0) == [] and s.peek(-1) == []
    assert s.peek(2) == [(1, b"r0"), (2, b"r1")]


def test_records_are_read_back_only_while_magic_length_crc_and_sequence_are_sound():
    cases = [
        (_record(1, b"a") + _record(2, b"b", magic=0xA8) + _record(3, b"c"), [b"a"]),
        (_record(1, b"a") + _record(2, b"b" * 17, length=17) + _record(3, b"c"), [b"a"]),
        (_record(1, b"a") + _record(3, b"b") + _record(2, b"c"), [b"a", b"b"]),
        (_record(1, b"a") + _record(1, b"b"), [b"a"]),
        (_record(1, b"a") + _record(2, b"") + _record(3, b"c"), [b"a", b"", b"c"]),
    ]
    for i, (data, want) in enumerate(cases):
        d = _fresh("format%d" % i)
        Store(d)
        _write(d + "/s1", data)
        s = Store(d, max_record_bytes=16)
        assert _payloads(s) == want, i
        assert len(s) == len(want) and s.next_seq == len(want) + 1 + (i == 2)


def test_an_ack_past_the_newest_record_leaves_later_records_pending():
    d = _fresh("ackpast")
    s = Store(d)
    s.append(b"a")
    s.ack(500)
    n = s.append(b"b")
    assert n == 2 and _payloads(s) == [b"b"] and len(s) == 1
    assert _payloads(Store(d)) == [b"b"]


class _FakeOs:
    def __init__(self, sync, fsync):
        self.synced = 0
        if sync:
            self.sync = self._sync
        if fsync:
            self.fsync = lambda fd: None

    def _sync(self):
        self.synced += 1


def test_on_micropython_every_write_is_followed_by_os_sync_on_cpython_it_is_not():
    for sync, fsync, want in ((True, False, 1), (True, True, 0), (False, False, 0)):
        fs = OsFs()
        fs._os = _FakeOs(sync, fsync)
        fs.sync()
        assert fs._os.synced == want


class _FailingFs:
    """The real file system, with writes to some files failing."""

    def __init__(self, fail):
        self.fs = OsFs()
        self.fail = fail              # fail(path, attempt) -> OSError or None

    def open(self, path, mode):
        if "r" not in mode:
            err = self.fail(path)
            if err is not None:
                raise err
        return self.fs.open(path, mode)

    def __getattr__(self, name):
        return getattr(self.fs, name)


def test_a_head_that_cannot_be_written_keeps_the_records_queued_and_says_so():
    d = _fresh("headfail")
    s = Store(d)
    for i in range(3):
        s.append(b"k%d" % i)
    s.fs = _FailingFs(lambda path: OSError("EIO") if "/h" in path else None)
    e = raises(StoreError, s.ack, 2)
    assert str(e) == "flash write of the queue head failed (EIO): the records stay queued " \
                     "and go out again"
    assert _payloads(Store(d)) == [b"k0", b"k1", b"k2"]


def test_a_flash_that_stays_full_fails_the_append_naming_the_last_error():
    d = _fresh("staysfull")
    s = Store(d)
    s.append(b"old")
    errors = [OSError(28, "first"), OSError(28, "second")]
    s.fs = _FailingFs(lambda path: errors.pop(0) if "/s" in path and errors else None)
    e = raises(StoreError, s.append, b"new")
    assert str(e).startswith("flash write failed (") and "second" in str(e)
    assert str(e).endswith("): check free space on the file system")
    assert s.dropped == 1 and len(s) == 0


def test_a_write_error_other_than_a_full_flash_drops_nothing():
    d = _fresh("eio")
    s = Store(d)
    s.append(b"old")
    s.fs = _FailingFs(lambda path: OSError(5, "io") if "/s" in path else None)
    raises(StoreError, s.append, b"new")
    assert s.dropped == 0 and _payloads(s) == [b"old"]


def _heads(d):
    out = []
    for slot in (0, 1):
        try:
            out.append(_read(d + "/h%d" % slot))
        except OSError:
            out.append(None)
    return out


def test_an_ack_that_acknowledges_nothing_new_writes_nothing_to_flash():
    d = _fresh("noop")
    s = Store(d)
    for i in range(3):
        s.append(b"n%d" % i)
    s.ack(2)
    before = _heads(d)
    s.ack(2)
    s.ack(1)
    assert _heads(d) == before
    s.ack(3)
    after = _heads(d)
    s.ack(7)                                   # nothing pending any more
    assert _heads(d) == after != before and s.dropped == 0


def test_after_a_reboot_acks_remove_exactly_the_records_they_name():
    d = _fresh("reopen")
    s = Store(d, seg_bytes=60)
    for i in range(12):
        s.append(b"v%02d" % i)                 # 14 bytes a record: 5 to a segment
    s.ack(3)
    s2 = Store(d, seg_bytes=60)
    assert len(s2) == 9 and s2.peek(2) == [(4, b"v03"), (5, b"v04")]
    s2.ack(7)
    assert len(s2) == 5 and s2.peek() == [(8, b"v07")] and s2.dropped == 0
    s3 = Store(d, seg_bytes=60)
    s3.ack(12)
    assert len(s3) == 0 and s3.peek() == []
    assert len(Store(d, seg_bytes=60)) == 0


class _KeepingFs:
    """The real file system whose remove() fails, like a flash that will not erase."""

    def __init__(self):
        self.fs = OsFs()

    def remove(self, path):
        raise OSError(5, "EIO")

    def __getattr__(self, name):
        return getattr(self.fs, name)


def test_an_acknowledged_segment_the_flash_would_not_delete_does_not_hide_later_records():
    d = _fresh("undeletable")
    s = Store(d, seg_bytes=30, fs=_KeepingFs())
    for i in range(8):
        s.append(b"u%02d" % i)
    s.ack(4)
    assert s.peek(3) == [(5, b"u04"), (6, b"u05"), (7, b"u06")] and len(s) == 4
    s2 = Store(d, seg_bytes=30, fs=_KeepingFs())
    assert s2.peek(3) == [(5, b"u04"), (6, b"u05"), (7, b"u06")] and len(s2) == 4


def test_acks_keep_counting_right_while_acknowledged_segments_stay_on_flash():
    d = _fresh("undeletable2")
    s = Store(d, seg_bytes=30, fs=_KeepingFs())
    for i in range(8):
        s.append(b"u%02d" % i)             # 14 bytes a record: 3 to a segment
    s.ack(2)
    s.ack(4)
    s.ack(7)
    assert len(s) == 1 and s.peek(2) == [(8, b"u07")]
    s2 = Store(d, seg_bytes=30, fs=_KeepingFs())
    assert len(s2) == 1 and s2.peek(2) == [(8, b"u07")]
    s2.ack(8)
    assert len(s2) == 0 and s2.peek() == []


def test_a_segment_left_without_a_whole_record_is_skipped_by_acks_and_reads():
    d = _fresh("emptyseg")
    s = Store(d, seg_bytes=30, fs=_KeepingFs())
    for i in range(3):
        s.append(b"e%02d" % i)
    _write(d + "/s2", b"\xa7\x03")         # a new segment torn inside its first record
    s = Store(d, seg_bytes=30, fs=_KeepingFs())
    s.append(b"e03")                       # goes to a new segment after the torn one
    s = Store(d, seg_bytes=30, fs=_KeepingFs())
    assert _payloads(s) == [b"e00", b"e01", b"e02", b"e03"] and len(s) == 4
    s.ack(4)
    assert len(s) == 0 and s.peek() == []
    assert len(Store(d, seg_bytes=30, fs=_KeepingFs())) == 0


class _QuotaFs:
    """The real file system with a byte quota over segment writes, and head writes that can
    be made to fail."""

    def __init__(self, quota, d):
        self.fs = OsFs()
        self.quota = quota
        self.d = d
        self.heads_fail = False

    def used(self):
        return sum(self.fs.size(self.d + "/" + n) for n in self.fs.listdir(self.d)
                   if n.startswith("s"))

    def open(self, path, mode):
        if "r" in mode:
            return self.fs.open(path, mode)
        if "/h" in path and self.heads_fail:
            raise OSError(28, "ENOSPC")
        f = self.fs.open(path, mode)

        def over_quota(data):
            if "/s" in path and self.used() + len(data) > self.quota:
                raise OSError(28, "ENOSPC")
        return _Writes(f, over_quota)

    def __getattr__(self, name):
        return getattr(self.fs, name)


def test_a_full_flash_holding_one_segment_gives_it_up_for_the_new_record():
    d = _fresh("onefull")
    fs = _QuotaFs(60, d)
    s = Store(d, seg_bytes=100, fs=fs)
    for i in range(4):
        s.append(b"o%02d" % i)                 # 56 bytes in segment 1
    n = s.append(b"new")
    assert s.dropped == 4 and len(s) == 1 and s.peek(2) == [(n, b"new")]
    again = Store(d, seg_bytes=100)
    assert again.peek(2) == [(n, b"new")] and again.dropped == 4


def test_a_full_flash_with_two_segments_gives_up_the_older_one():
    d = _fresh("twofull")
    fs = _QuotaFs(69, d)
    s = Store(d, seg_bytes=28, fs=fs)
    for i in range(4):
        s.append(b"t%02d" % i)                 # two records a segment: segments 1 and 2
    s.append(b"t04")
    assert s.dropped == 2 and _payloads(s) == [b"t02", b"t03", b"t04"]
    assert _payloads(Store(d, seg_bytes=28)) == [b"t02", b"t03", b"t04"]


def test_when_a_full_flash_also_refuses_the_head_the_drop_is_still_counted():
    d = _fresh("headfull")
    fs = _QuotaFs(69, d)
    s = Store(d, seg_bytes=28, fs=fs)
    for i in range(4):
        s.append(b"h%02d" % i)
    fs.heads_fail = True
    s.append(b"h04")
    assert (s.dropped, s.acked, len(s)) == (2, 2, 3)
    assert _payloads(s) == [b"h02", b"h03", b"h04"]


def test_after_a_clean_reboot_the_next_record_continues_the_last_segment():
    d = _fresh("continue")
    s = Store(d, seg_bytes=60)
    for i in range(7):
        s.append(b"c%02d" % i)                 # 14 bytes a record: 5 in s1, 2 in s2
    for _ in range(2):
        s = Store(d, seg_bytes=60)
        s.append(b"more")
    assert _seg_files(d) == ["s1", "s2"]
    assert len(_read(d + "/s2")) == 2 * 14 + 2 * 15
    s = Store(d, seg_bytes=60)
    s.append(b"last")                          # s2 holds 58 bytes: one more record fits
    s.append(b"next")
    assert _seg_files(d) == ["s1", "s2", "s3"]


class _StickyFs(_QuotaFs):
    """A full flash on which segments 1 and 3 will not erase."""

    def remove(self, path):
        if path.endswith(("/s1", "/s3")):
            raise OSError(5, "EIO")
        self.fs.remove(path)


def test_a_full_flash_gives_up_pending_records_past_stuck_and_torn_segments():
    d = _fresh("sticky")
    s = Store(d, seg_bytes=28, fs=_StickyFs(170, d))
    for i in range(4):
        s.append(b"x%02d" % i)                 # s1, s2
    s.ack(2)                                   # s1 acknowledged but stuck on flash
    _write(d + "/s3", b"\xa7")                # s3: torn in its first record, stuck too
    s = Store(d, seg_bytes=28, fs=_StickyFs(170, d))
    for i in range(4, 14):
        s.append(b"x%02d" % i)
    got = _payloads(s)
    assert got == [b"x%02d" % i for i in range(14 - len(got), 14)]
    assert len(got) + s.dropped + 2 == 14 and s.dropped > 0
    again = Store(d, seg_bytes=28, fs=_StickyFs(170, d))
    assert _payloads(again) == got and again.dropped == s.dropped


def test_a_full_flash_gives_up_the_older_segment_even_when_one_is_left():
    d = _fresh("oneleft")
    s = Store(d, seg_bytes=28, fs=_QuotaFs(55, d))
    for i in range(3):
        s.append(b"l%02d" % i)                 # s1 holds two records, s2 one
    s.append(b"l03")                           # fits s2, but the flash is full
    assert s.dropped == 2 and _payloads(s) == [b"l02", b"l03"]
    assert _payloads(Store(d, seg_bytes=28)) == [b"l02", b"l03"]


class _TearingFs:
    """The real file system; the next segment write stops halfway and raises, like a cut."""

    def __init__(self):
        self.fs = OsFs()
        self.tear = False

    def open(self, path, mode):
        f = self.fs.open(path, mode)
        if "r" in mode or "/s" not in path:
            return f

        def tear(data):
            if self.tear:
                self.tear = False
                f.write(data[:len(data) // 2])
                raise OSError(5, "EIO")
        return _Writes(f, tear)

    def __getattr__(self, name):
        return getattr(self.fs, name)


def test_a_record_after_a_torn_write_goes_where_it_can_be_read_back():
    d = _fresh("torewrite")
    fs = _TearingFs()
    s = Store(d, fs=fs)
    s.append(b"before")
    fs.tear = True
    raises(StoreError, s.append, b"torn")
    n = s.append(b"after")
    assert _payloads(Store(d)) == [b"before", b"after"] and n == 3


def test_when_everything_is_acknowledged_the_newest_segment_is_kept_for_the_next_records():
    d = _fresh("keeptail")
    s = Store(d, seg_bytes=30)
    for i in range(7):
        s.append(b"k%02d" % i)                 # 14 bytes a record: 3 in s1, 3 in s2, 1 in s3
    s.ack(7)
    assert _seg_files(d) == ["s3"]
    s.append(b"k07")
    assert _seg_files(d) == ["s3"] and _payloads(Store(d, seg_bytes=30)) == [b"k07"]


def test_a_head_slot_is_read_by_its_magic_and_crc_and_extra_bytes_after_it_do_not_matter():
    import binascii
    d = _fresh("heads")
    s = Store(d)
    for i in range(3):
        s.append(b"q%d" % i)
    s.ack(2)
    slot = d + "/h%d" % s._slot
    head = _read(slot)
    _write(slot, head + b"junk")
    assert _payloads(Store(d)) == [b"q2"]
    body = b"XNQH" + head[4:16]
    _write(slot, body + struct.pack("<I", binascii.crc32(body) & 0xFFFFFFFF))
    assert _payloads(Store(d)) == [b"q0", b"q1", b"q2"]      # that head is not a head


def test_records_lost_from_flash_behind_the_queues_back_do_not_make_a_full_queue_hang():
    import os
    d = _fresh("lost")
    s = Store(d, max_records=1)
    s.append(b"gone")
    for name in _seg_files(d):
        os.remove(d + "/" + name)
    n = s.append(b"kept")
    assert len(s) == 1 and s.peek(2) == [(n, b"kept")]


def test_a_leading_segment_without_a_whole_record_is_cleared_at_open():
    d = _fresh("leading")
    Store(d)
    _write(d + "/s1", b"\xa7\x05")
    _write(d + "/s2", _record(1, b"r1"))
    s = Store(d)
    assert _seg_files(d) == ["s2"] and _payloads(s) == [b"r1"]


def test_a_full_flash_skips_a_stuck_leading_segment_without_records():
    d = _fresh("stuckfirst")
    Store(d)
    _write(d + "/s1", b"\xa7")                 # torn, and the flash will not erase it
    s = Store(d, seg_bytes=28, fs=_StickyFs(60, d))
    for i in range(5):
        s.append(b"f%02d" % i)
    got = _payloads(s)
    assert got == [b"f%02d" % i for i in range(5 - len(got), 5)] and s.dropped + len(got) == 5
    assert s.dropped > 0 and "s1" in _seg_files(d)


def test_records_added_to_a_segment_whose_last_record_was_acknowledged_count_right():
    d = _fresh("tailagain")
    s = Store(d)
    s.append(b"a")
    s.append(b"b")
    s.ack(2)                                   # the tail's last record: the tail stays
    s.append(b"c")
    s.append(b"d")
    s.ack(4)
    assert len(s) == 0 and s.peek() == []
    s.append(b"e")
    assert len(s) == 1 and _payloads(Store(d)) == [b"e"]
