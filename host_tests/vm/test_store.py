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
        fs = self

        class _W:
            def write(self, data):
                if fs.used() + len(data) > fs.quota:
                    raise OSError(28, "ENOSPC")
                return f.write(data)

            def flush(self):
                f.flush()

            def close(self):
                f.close()
        return _W()

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
