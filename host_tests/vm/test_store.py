"""The flash queue (enosnb.store) on the real file system: CPython's, or the VM's in-memory one."""
import os

from enosnb.store import Store, StoreError
from vmcheck import raises

def _fresh(name):
    # The pid of now, not of the import: mutmut forks its parallel runs from one process
    # that imported the tests, and they must not share a directory.
    d = "/tmp/enosnb_store_%d_%s" % (getattr(os, "getpid", lambda: 0)(), name)
    try:
        names = os.listdir(d)
    except OSError:
        return d
    for n in names:
        os.remove(d + "/" + n)
    os.rmdir(d)
    return d


def _payloads(store, n=1000):
    return [p for _, p in store.peek(n)]


def _seg_files(d):
    return sorted(n for n in os.listdir(d) if n.startswith("s"))


def _tail_segment(d):
    return d + "/" + _seg_files(d)[-1]


def _write(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def test_records_come_back_in_the_order_they_were_queued():
    d = _fresh("order")
    s = Store(d, seg_bytes=64)
    for i in range(20):
        s.append(b"m%d" % i)
    assert len(s) == 20
    assert _payloads(s) == [b"m%d" % i for i in range(20)]
    assert [q for q, _ in s.peek(3)] == [1, 2, 3]
    assert len(_seg_files(d)) > 1


def test_unacknowledged_records_survive_a_reboot_and_acknowledged_ones_do_not():
    d = _fresh("reboot")
    s = Store(d, seg_bytes=50)
    for i in range(10):
        s.append("rec%d" % i)
    batch = s.peek(4)
    s.ack(batch[-1][0])
    s2 = Store(d, seg_bytes=50)
    assert len(s2) == 6
    assert _payloads(s2) == [b"rec%d" % i for i in range(4, 10)]


def test_ack_is_cumulative_and_ignores_an_old_seq():
    d = _fresh("cumulative")
    s = Store(d)
    seqs = [s.append(b"x%d" % i) for i in range(5)]
    s.ack(seqs[2])
    s.ack(seqs[0])
    assert _payloads(s) == [b"x3", b"x4"]
    s.ack(seqs[4] + 100)
    assert len(s) == 0 and s.peek(5) == []


def test_seq_numbers_keep_growing_after_the_queue_drains_and_the_board_reboots():
    d = _fresh("seq")
    s = Store(d)
    last = [s.append(b"a") for _ in range(3)][-1]
    s.ack(last)
    s.compact()
    s2 = Store(d)
    assert s2.append(b"b") == last + 1


def test_full_queue_drops_the_oldest_and_counts_it_across_reboots():
    d = _fresh("overflow")
    s = Store(d, max_records=5, seg_bytes=40)
    for i in range(12):
        s.append(b"p%d" % i)
    assert len(s) == 5
    assert s.dropped == 7
    assert _payloads(s) == [b"p%d" % i for i in range(7, 12)]
    s2 = Store(d, max_records=5, seg_bytes=40)
    assert s2.dropped == 7
    assert _payloads(s2) == [b"p%d" % i for i in range(7, 12)]


def test_a_torn_record_at_the_end_is_skipped_and_later_appends_survive():
    d = _fresh("torn")
    s = Store(d)
    s.append(b"kept-1")
    s.append(b"kept-2")
    _write(_tail_segment(d), b"\xa7\x40\x00\x03\x00\x00\x00garbage", "ab")
    s2 = Store(d)
    assert _payloads(s2) == [b"kept-1", b"kept-2"]
    s2.append(b"after")
    s3 = Store(d)
    assert _payloads(s3) == [b"kept-1", b"kept-2", b"after"]


def test_a_record_with_a_bad_crc_is_not_returned():
    d = _fresh("crc")
    s = Store(d)
    s.append(b"good")
    s.append(b"evil")
    tail = _tail_segment(d)
    data = bytearray(_read(tail))
    data[-1] ^= 0x01
    _write(tail, data)
    assert _payloads(Store(d)) == [b"good"]


def test_a_corrupt_head_slot_falls_back_to_the_other_one():
    d = _fresh("head")
    s = Store(d)
    for i in range(4):
        s.append(b"h%d" % i)
    s.ack(1)
    s.ack(2)
    _write(d + "/h%d" % s._slot, b"\x00" * 5)
    assert _payloads(Store(d)) == [b"h1", b"h2", b"h3"]


def test_acknowledged_segments_are_deleted():
    d = _fresh("compact")
    s = Store(d, seg_bytes=30)
    for i in range(12):
        s.append(b"c%02d" % i)
    before = len(_seg_files(d))
    s.ack(s.peek(12)[-1][0])
    assert before > 3
    assert len(_seg_files(d)) == 1
    s.compact()
    assert _seg_files(d) == []
    assert len(Store(d, seg_bytes=30)) == 0


def test_a_record_larger_than_the_limit_is_refused():
    d = _fresh("large")
    s = Store(d, max_record_bytes=16)
    e = raises(StoreError, s.append, b"x" * 17)
    assert "max_record_bytes" in str(e)
    assert len(s) == 0


class _Writes:
    """A file open for writing whose every write() first goes through before(data), which
    raises (or writes part of it and raises) as a full or failing flash does."""

    def __init__(self, f, before):
        self.f = f
        self.before = before

    def write(self, data):
        self.before(data)
        return self.f.write(data)

    def flush(self):
        self.f.flush()

    def close(self):
        self.f.close()


class _FullFs:
    """The real file system with a quota: a write past it raises ENOSPC, like a full flash."""

    def __init__(self, quota):
        from enosnb.store import OsFs
        self.fs = OsFs()
        self.quota = quota
        self.base = None

    def used(self):
        return sum(self.fs.size(self.base + "/" + n) for n in self.fs.listdir(self.base))

    def open(self, path, mode):
        f = self.fs.open(path, mode)
        if "r" in mode:
            return f

        def full(data):
            if self.used() + len(data) > self.quota:
                raise OSError(28, "ENOSPC")
        return _Writes(f, full)

    def __getattr__(self, name):
        return getattr(self.fs, name)


def test_a_full_flash_drops_the_oldest_segment_counts_it_and_keeps_queueing():
    d = _fresh("full")
    fs = _FullFs(400)
    fs.base = d
    s = Store(d, seg_bytes=100, fs=fs)
    for i in range(40):
        s.append(b"full-%02d" % i)
    assert s.dropped > 0
    assert len(s) + s.dropped == 40
    got = _payloads(s)
    assert got == [b"full-%02d" % i for i in range(40 - len(got), 40)]
    assert fs.used() <= 400
    again = Store(d, seg_bytes=100)
    assert _payloads(again) == got and again.dropped == s.dropped


class _CountingFs:
    """The real file system, counting the bytes read: how much an open() costs."""

    def __init__(self):
        from enosnb.store import OsFs
        self.fs = OsFs()
        self.read = 0

    def open(self, path, mode):
        f = self.fs.open(path, mode)
        if "r" not in mode:
            return f
        fs = self

        class _R:
            def read(self, n=-1):
                data = f.read(n)
                fs.read += len(data or b"")
                return data

            def readinto(self, buf):
                n = f.readinto(buf)
                fs.read += n or 0
                return n

            def seek(self, pos):
                f.seek(pos)

            def close(self):
                f.close()
        return _R()

    def __getattr__(self, name):
        return getattr(self.fs, name)


def test_opening_a_long_queue_reads_the_head_and_the_tail_not_every_record():
    d = _fresh("o1")
    s = Store(d, seg_bytes=512)
    for i in range(600):
        s.append(b"reading-%04d" % i)
    s.ack(s.peek(5)[-1][0])
    for i in range(3):
        s.append(b"late-%d" % i)
    fs = _CountingFs()
    again = Store(d, seg_bytes=512, fs=fs)
    assert len(again) == 598
    # Two head slots and at most one segment: not the 600 records (about 14 KB).
    assert fs.read <= 2 * 62 + 512 + 23, fs.read
    assert _payloads(again, 2) == [b"reading-0005", b"reading-0006"]
    assert _payloads(again)[-1] == b"late-2"


def test_a_queue_written_by_the_older_format_is_rebuilt_once_and_keeps_its_records():
    import binascii
    import struct
    d = _fresh("legacy")
    s = Store(d, seg_bytes=64)
    for i in range(8):
        s.append(b"old-%d" % i)
    for slot in (0, 1):
        try:
            os.remove(d + "/h%d" % slot)
        except OSError:
            pass
    body = struct.pack("<4sIII", b"ENQH", 7, 3, 2)  # gen 7, acked 3, dropped 2
    _write(d + "/h0", body + struct.pack("<I", binascii.crc32(body) & 0xFFFFFFFF))
    again = Store(d, seg_bytes=64)
    assert _payloads(again) == [b"old-%d" % i for i in range(3, 8)]
    assert again.dropped == 2 and len(again) == 5
    again.append(b"new")
    assert _payloads(Store(d, seg_bytes=64))[-1] == b"new"


def test_the_byte_cap_drops_the_oldest_segment_and_counts_it():
    d = _fresh("capdrop")
    s = Store(d, seg_bytes=100, max_bytes=400)
    for i in range(60):
        s.append(b"cap-%02d" % i)
        assert s.used_bytes() <= 400 + 100
    assert s.dropped > 0 and len(s) + s.dropped == 60
    got = _payloads(s)
    assert got == [b"cap-%02d" % i for i in range(60 - len(got), 60)]
    assert ("dropped oldest", 9) in s.events or s.events[0][0] == "dropped oldest"
    again = Store(d, seg_bytes=100, max_bytes=400)
    assert _payloads(again) == got and again.dropped == s.dropped


def test_thinning_keeps_the_whole_span_at_half_resolution_and_counts_what_went():
    d = _fresh("thin")
    s = Store(d, max_records=16, seg_bytes=64, full="thin")
    for i in range(1, 17):
        s.append(b"t%02d" % i)
    assert s.dropped == 0
    s.append(b"t17")
    # The first 16 readings thinned to every other one, then the new reading.
    assert _payloads(s) == [b"t%02d" % i for i in range(2, 17, 2)] + [b"t17"]
    assert s.dropped == 8 and s.events == [("thinned to 1 in 2", 8)]
    for i in range(18, 40):
        s.append(b"t%02d" % i)
    got = _payloads(s)
    assert len(got) <= 16 and got[0] in (b"t04", b"t08") and got[-1] == b"t39"
    assert len(got) + s.dropped == 39
    again = Store(d, max_records=16, seg_bytes=64, full="thin")
    assert _payloads(again) == got and again.dropped == s.dropped
    assert again.thin_level == s.thin_level


def test_thinning_under_the_byte_cap_frees_flash():
    d = _fresh("thinbytes")
    s = Store(d, seg_bytes=128, max_bytes=1024, full="thin")
    for i in range(300):
        s.append(b"reading %03d" % i)
        assert s.used_bytes() <= 1024 + 128
    got = _payloads(s)
    assert got[-1] == b"reading 299" and len(got) + s.dropped == 300
    assert int(got[0][8:]) < 50  # the start of the outage is still there
    files = sum(1 for n in os.listdir(d) if n.startswith("s"))
    assert files <= 1024 // 128 + 1
