"""The flash queue (enosnb.store, enosnb.storefix) at its caps and in its rare paths: the byte
cap to the byte, thinning's level and the segments it writes, a thinning the flash refuses,
rebuilding a queue without a head, what the head slots cost to read, and deleting what the
queue no longer uses. Runs under pytest and on MicroPython."""
import os
import struct

from test_store import _fresh, _payloads, _read, _seg_files, _write
from test_store_rules import _FailingFs, _QuotaFs
from vmcheck import raises

from enosnb.store import OsFs, Store, StoreError


def _r(i):
    return b"r%04d" % i                        # 16 bytes on flash with its header


class _WatchedFs:
    """The real file system, counting head-slot bytes read and directory listings, recording
    removals (which can be made to fail) and failing os.sync once when armed."""

    def __init__(self, stuck=False):
        self.fs = OsFs()
        self.head_bytes = 0
        self.listings = 0
        self.removed = []
        self.stuck = stuck
        self.sync_fails = False

    def open(self, path, mode):
        f = self.fs.open(path, mode)
        if "r" not in mode or "/h" not in path:
            return f
        fs = self

        class _R:
            def read(self, n=-1):
                data = f.read() if n is None else f.read(n)
                fs.head_bytes += len(data or b"")
                return data

            def close(self):
                f.close()
        return _R()

    def listdir(self, path):
        self.listings += 1
        return self.fs.listdir(path)

    def remove(self, path):
        self.removed.append(path)
        if self.stuck:
            raise OSError(5, "EIO")
        self.fs.remove(path)

    def sync(self):
        if self.sync_fails:
            self.sync_fails = False
            raise OSError(5, "EIO")

    def __getattr__(self, name):
        return getattr(self.fs, name)


def _drop_heads(d):
    for slot in (0, 1):
        try:
            os.remove(d + "/h%d" % slot)
        except OSError:
            pass


def _old_head(d, gen, acked, dropped):
    """A head as the older firmware wrote it ("ENQH": gen, acked, dropped)."""
    import binascii
    body = struct.pack("<4sIII", b"ENQH", gen, acked, dropped)
    _write(d + "/h0", body + struct.pack("<I", binascii.crc32(body) & 0xFFFFFFFF))


def test_the_file_system_size_is_its_block_count_times_its_fragment_size():
    from enosnb.store import fs_bytes
    d = _fresh("fsbytes")
    Store(d)
    if not hasattr(os, "statvfs"):
        assert fs_bytes(d) is None
        return
    try:
        import shutil
        want = shutil.disk_usage(d).total
    except ImportError:
        st = os.statvfs(d)
        want = st[1] * st[2]                   # f_frsize * f_blocks
    assert fs_bytes(d) == want
    assert fs_bytes(d + "/no/such/dir") is None


def test_a_byte_cap_must_hold_two_segments_and_the_full_policy_must_be_one_of_two():
    d = _fresh("capargs")
    Store(d, seg_bytes=100, max_bytes=200)
    e = raises(ValueError, Store, d, seg_bytes=100, max_bytes=199)
    assert str(e) == "max_bytes must hold at least two segments (2 * seg_bytes)"
    e = raises(ValueError, Store, d, full="newest")
    assert str(e) == 'full must be "drop_oldest" or "thin"'
    assert Store(d, full="thin").full == "thin"


def test_the_byte_cap_is_filled_to_its_last_byte_then_the_oldest_whole_segment_goes():
    d = _fresh("capfill")
    s = Store(d, seg_bytes=64, max_bytes=128)
    assert s.used_bytes() == 0
    s.append(bytes([1]) * 21)                  # 32 bytes with its header, two a segment
    assert s.used_bytes() == 32
    for i in range(2, 5):
        s.append(bytes([i]) * 21)
    assert s.used_bytes() == 128 and len(s) == 4 and s.events == []
    s.append(bytes([5]) * 21)
    assert s.events == [("dropped oldest", 2)] and s.dropped == 2
    assert [p[0] for p in _payloads(s)] == [3, 4, 5] and s.used_bytes() == 96


def test_the_byte_cap_drops_what_is_left_of_a_partly_acknowledged_segment_at_once():
    d = _fresh("cappart")
    s = Store(d, seg_bytes=64, max_bytes=128)
    for i in range(1, 9):
        s.append(_r(i))                        # four a segment: s1, s2
    s.ack(1)
    s.append(_r(9))
    assert s.events == [("dropped oldest", 3)] and s.dropped == 3
    assert _payloads(s) == [_r(i) for i in range(5, 10)]


def test_the_segment_being_written_is_never_given_up_for_the_byte_cap():
    d = _fresh("capone")
    s = Store(d, seg_bytes=64, max_bytes=128)
    s.append(b"a" * 60)
    s.append(b"b" * 60)                        # 71 bytes each: together over the cap
    assert _payloads(s) == [b"a" * 60, b"b" * 60] and s.events == []
    s.append(b"c" * 60)
    assert _payloads(s) == [b"b" * 60, b"c" * 60] and s.events == [("dropped oldest", 1)]


def test_when_the_head_cannot_be_written_while_the_byte_cap_drops_nothing_is_lost():
    d = _fresh("capheadfail")
    s = Store(d, seg_bytes=64, max_bytes=128)
    for i in range(1, 6):
        s.append(_r(i))                        # s1 full, s2 holds one record
    s.fs = _FailingFs(lambda path: OSError(5, "EIO") if "/h" in path else None)
    e = raises(StoreError, s.append, b"x" * 60)
    assert str(e).startswith("flash write failed (")
    assert _payloads(Store(d, seg_bytes=64, max_bytes=128)) == [_r(i) for i in range(1, 6)]


def test_a_lowered_record_cap_trims_at_most_64_records_per_new_reading():
    d = _fresh("trim64")
    s = Store(d)
    for i in range(100):
        s.append(b"%d" % i)
    s = Store(d, max_records=10)
    s.append(b"new")                           # an append stays short: 64 drops at most
    assert len(s) == 37 and s.dropped == 64
    assert len(s.events) == 64 and s.events[0] == ("dropped oldest", 1)
    s.append(b"newer")
    assert len(s) == 10 and s.dropped == 92
    assert _payloads(s)[-3:] == [b"99", b"new", b"newer"]


def test_a_full_queue_of_two_drops_one_record_and_says_so():
    s = Store(_fresh("drop2"), max_records=2)
    for x in (b"a", b"b", b"c"):
        s.append(x)
    assert _payloads(s) == [b"b", b"c"] and s.events == [("dropped oldest", 1)]


def test_a_thinning_queue_capped_at_one_record_drops_the_oldest_and_at_two_thins():
    s = Store(_fresh("thin1"), max_records=1, full="thin")
    s.append(b"a")
    s.append(b"b")
    assert _payloads(s) == [b"b"] and s.events == [("dropped oldest", 1)]
    s = Store(_fresh("thin2"), max_records=2, full="thin")
    for x in (b"a", b"b", b"c"):
        s.append(x)
    assert _payloads(s) == [b"b", b"c"] and s.events == [("thinned to 1 in 2", 1)]


def test_thinning_keeps_at_most_half_of_the_queue_also_after_acknowledged_readings():
    d = _fresh("thinacked")
    s = Store(d, seg_bytes=64)
    for i in range(1, 22):
        s.append(_r(i))
    s.ack(21)
    for i in range(22, 37):
        s.append(_r(i))                        # 15 pending: 22..36
    s = Store(d, seg_bytes=64, max_records=15, full="thin")
    s.append(_r(37))
    assert _payloads(s) == [_r(24), _r(28), _r(32), _r(36), _r(37)]
    assert s.events == [("thinned to 1 in 4", 11)] and s.dropped == 11


def test_thinned_readings_are_packed_into_full_segments_and_counted_after_a_reboot():
    d = _fresh("thinpack")
    s = Store(d, seg_bytes=64, max_records=12, full="thin")
    for i in range(1, 14):
        s.append(_r(i))                        # the 13th thins 1..12 to 2, 4, .., 12
    files = _seg_files(d)
    assert files == ["s4", "s5"] and [len(_read(d + "/" + n)) for n in files] == [64, 48]
    assert s.used_bytes() == 112
    again = Store(d, seg_bytes=64, max_records=12, full="thin")
    assert len(again) == 7
    assert _payloads(again) == [_r(i) for i in (2, 4, 6, 8, 10, 12, 13)]


def _thin_refused(name, fail=None, sync_fails=False):
    """15 readings in s1..s4 (the last holds three), cap 15: the 16th thins, and the copy
    fails as told. Returns the queue and its directory."""
    d = _fresh(name)
    s = Store(d, seg_bytes=64, max_records=15, full="thin")
    for i in range(1, 16):
        s.append(_r(i))
    fs = _WatchedFs()
    if fail is not None:
        fs = _FailingFs(fail)
    fs.sync_fails = sync_fails
    s.fs = fs
    s.append(_r(16))
    return s, d


def test_a_thinning_the_flash_refuses_leaves_no_partial_copy_and_drops_the_oldest_instead():
    def full_at(seg):
        return lambda path: OSError(28, "ENOSPC") if path.endswith("/s%d" % seg) else None
    for name, fail, sync_fails in (("thinfail5", full_at(5), False),   # the first copy segment
                                   ("thinfail6", full_at(6), False),   # the second
                                   ("thinsync", None, True)):          # os.sync after the copy
        s, d = _thin_refused(name, fail, sync_fails)
        assert _seg_files(d) == ["s1", "s2", "s3", "s4"], name
        assert s.events == [("dropped oldest", 1)] and s.dropped == 1 and s.thin_level == 0
        assert _payloads(s) == [_r(i) for i in range(2, 17)], name


def test_a_thinning_that_keeps_no_reading_leaves_an_empty_queue_for_the_new_one():
    d = _fresh("thinnone")
    s = Store(d)
    for i in range(1, 5):
        s.append(_r(i))
    s.ack(4)
    s.append(_r(5))
    errors = [OSError(5, "EIO")]
    s.fs = _FailingFs(lambda path: errors.pop() if "/s" in path and errors else None)
    raises(StoreError, s.append, _r(6))        # seq 6 is burned
    s.fs = OsFs()
    s.append(_r(7))                            # pending: 5 and 7, no multiple of 2
    s = Store(d, max_records=2, full="thin")
    nxt = s.tail_id + 1
    s.append(_r(8))
    assert s.events == [("thinned to 1 in 2", 2)] and s.dropped == 2
    assert _seg_files(d) == ["s%d" % nxt] and s.used_bytes() == 16
    assert len(s) == 1 and _payloads(s) == [_r(8)]
    again = Store(d)
    assert len(again) == 1 and _payloads(again) == [_r(8)] and again.dropped == 2


def test_a_queue_directory_holding_other_files_is_rebuilt_from_its_segments_alone():
    d = _fresh("rebuildfiles")
    s = Store(d, seg_bytes=32)
    for i in range(5):
        s.append(b"r%d" % i)                   # 13 bytes a record: three in s1, two in s2
    _drop_heads(d)
    for name in ("notes.txt", "x9", "s"):
        _write(d + "/" + name, b"not a segment")
    again = Store(d, seg_bytes=32)
    assert len(again) == 5 and _payloads(again) == [b"r%d" % i for i in range(5)]
    again.append(b"r5")                        # s2 is sound and has room: it goes on there
    assert _seg_files(d) == ["s", "s1", "s2"]
    assert _payloads(Store(d, seg_bytes=32)) == [b"r%d" % i for i in range(6)]


def test_a_rebuilt_queue_with_nothing_pending_keeps_a_sound_last_segment_and_clears_a_torn_one():
    for torn in (False, True):
        d = _fresh("rebuildacked%d" % torn)
        s = Store(d, seg_bytes=32)
        for i in range(5):
            s.append(b"r%d" % i)
        s.ack(5)
        assert _seg_files(d) == ["s2"]
        if torn:
            _write(d + "/s2", b"\xa7\x01", "ab")
        _drop_heads(d)
        _old_head(d, 3, 5, 0)
        again = Store(d, seg_bytes=32)
        assert len(again) == 0 and again.peek() == []
        assert _seg_files(d) == ([] if torn else ["s2"])
        again.append(b"new")
        assert _seg_files(d) == (["s3"] if torn else ["s2"])
        assert _payloads(Store(d, seg_bytes=32)) == [b"new"]


def test_a_rebuilt_queue_whose_last_segment_is_empty_writes_into_it():
    d = _fresh("rebuildempty")
    s = Store(d, seg_bytes=64)
    for i in range(3):
        s.append(b"r%d" % i)
    _write(d + "/s2", b"")                     # created, then the power went
    _drop_heads(d)
    again = Store(d, seg_bytes=64)
    again.append(b"r3")
    assert _seg_files(d) == ["s1", "s2"] and len(_read(d + "/s2")) == 13
    assert _payloads(Store(d, seg_bytes=64)) == [b"r%d" % i for i in range(4)]


def test_a_queue_rebuilt_from_the_older_format_is_opened_from_its_head_afterwards():
    d = _fresh("legacyonce")
    s = Store(d)
    for i in range(4):
        s.append(b"r%d" % i)
    _drop_heads(d)
    _old_head(d, 7, 1, 0)
    fs = _WatchedFs()
    assert len(Store(d, fs=fs)) == 3 and fs.listings == 1
    fs = _WatchedFs()
    again = Store(d, fs=fs)
    assert fs.listings == 0 and len(again) == 3 and again.acked == 1


def test_opening_reads_the_two_head_slots_and_no_byte_more_and_never_lists_the_directory():
    d = _fresh("headcost")
    s = Store(d)
    s.append(b"first")                         # a new queue writes a head at once
    fs = _WatchedFs()
    assert len(Store(d, fs=fs)) == 1 and fs.listings == 0
    s.ack(1)
    s.append(b"second")
    for slot in (0, 1):
        _write(d + "/h%d" % slot, bytes(1000), "ab")
    fs = _WatchedFs()
    again = Store(d, fs=fs)
    assert fs.head_bytes == 2 * 62 and fs.listings == 0
    assert _payloads(again) == [b"second"]


def test_a_head_slot_cut_short_by_a_power_cut_is_passed_over_for_the_other():
    d = _fresh("headcut")
    s = Store(d)
    for i in range(3):
        s.append(b"q%d" % i)
    s.ack(2)
    newest = d + "/h%d" % s._slot
    _write(newest, _read(newest)[:60])
    # The older head is from before the ack: the two records come again (at least once).
    assert _payloads(Store(d)) == [b"q0", b"q1", b"q2"]


def test_segments_the_flash_would_not_erase_are_erased_at_the_next_boot():
    d = _fresh("erase")
    fs = _WatchedFs(stuck=True)
    s = Store(d, seg_bytes=32, fs=fs)
    for i in range(5):
        s.append(b"r%d" % i)                   # s1: r0..r2, s2: r3, r4
    s.ack(3)
    assert fs.removed == [d + "/s1"]            # the segment freed, no other name
    assert _seg_files(d) == ["s1", "s2"]
    again = Store(d, seg_bytes=32)
    assert _seg_files(d) == ["s2"] and _payloads(again) == [b"r3", b"r4"]


def test_compact_frees_every_acknowledged_segment_and_never_a_pending_record():
    d = _fresh("compactall")
    s = Store(d, seg_bytes=32)
    for i in range(5):
        s.append(b"r%d" % i)
    s.compact()
    assert _seg_files(d) == ["s1", "s2"] and len(_payloads(s)) == 5
    s.ack(5)
    assert _seg_files(d) == ["s2"] and s.used_bytes() == 26
    s.compact()
    assert _seg_files(d) == [] and s.used_bytes() == 0
    s.append(b"new")
    assert s.used_bytes() == 14 and _payloads(Store(d, seg_bytes=32)) == [b"new"]


def test_records_the_head_counts_but_the_flash_lost_are_no_longer_counted_once_read():
    d = _fresh("lostcount")
    s = Store(d, seg_bytes=32)
    for i in range(4):
        s.append(b"r%d" % i)
    s.ack(1)                                   # the head now counts three
    for name in _seg_files(d):
        os.remove(d + "/" + name)
    again = Store(d, seg_bytes=32)
    assert again.peek(5) == [] and len(again) == 0


def test_readings_given_up_on_a_full_flash_count_as_acknowledged_up_to_the_last():
    d = _fresh("fullacked")
    s = Store(d, seg_bytes=28, fs=_QuotaFs(69, d))
    for i in range(4):
        s.append(b"a%02d" % i)                 # two a segment: s1, s2
    s.ack(2)                                   # s1 goes
    s.append(b"a04")
    s.append(b"a05")                           # s3
    s.append(b"a06")                           # full: s2 (seqs 3 and 4) goes
    assert s.dropped == 2 and s.acked == 4
    assert _payloads(s) == [b"a04", b"a05", b"a06"]


def test_a_full_flash_that_also_refuses_the_head_fails_the_append_with_the_queues_own_error():
    d = _fresh("fullhead1")
    fs = _QuotaFs(60, d)
    s = Store(d, seg_bytes=100, fs=fs)
    for i in range(4):
        s.append(b"o%02d" % i)                 # 56 bytes in segment 1, the only one
    fs.heads_fail = True
    e = raises(StoreError, s.append, b"new")
    assert str(e).startswith("flash write failed (") and "28" in str(e)
    assert str(e).endswith("): check free space on the file system")
    assert _payloads(Store(d, seg_bytes=100)) == [b"o%02d" % i for i in range(4)]


def test_thinning_under_the_byte_cap_goes_on_until_the_new_reading_fits():
    d = _fresh("thinagain")
    s = Store(d, seg_bytes=64, max_bytes=256, full="thin")
    for i in range(1, 9):                      # the even readings are the large ones
        s.append(bytes([i]) * (60 if i % 2 == 0 else 1))
    # Keeping 1 in 2 kept the large half: not enough room, so the same append thins again.
    assert s.events == [("thinned to 1 in 2", 4), ("thinned to 1 in 4", 2)]
    assert [p[0] for p in _payloads(s)] == [4, 8] and s.used_bytes() <= 256


def test_after_a_cut_before_the_first_record_of_a_new_segment_the_next_reading_goes_there():
    d = _fresh("cutfirst")
    s = Store(d)
    s.fs = _FailingFs(lambda path: OSError(5, "EIO") if "/s" in path else None)
    raises(StoreError, s.append, b"a")         # the head names s1; s1 was never written
    s = Store(d)
    s.append(b"b")
    assert _seg_files(d) == ["s1"] and _payloads(Store(d)) == [b"b"]
