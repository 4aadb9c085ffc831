"""Flash-backed measurement queue that survives power loss.

Every measurement is written to flash before it is reported as queued, and removed only
after the caller says EnOS acknowledged it. A power cut at any byte leaves every record
that append() had returned intact, exactly once, in order.

On-flash layout, all files in one directory:

  s<N>        segment N, an append-only log of records:
                magic 0xA7 (1) | length (2, LE) | seq (4, LE) | crc32 (4, LE) | payload
              crc32 covers magic, length, seq and payload. A segment is read up to its
              first record that is short, has a bad magic/CRC or a non-increasing seq; the
              writer never appends after such a record (it starts segment N+1), so a torn
              append only ever sits at a segment's end.
  h0, h1      two head slots (A/B): magic "ENQH" | gen | acked | dropped | crc32, 20 bytes.
              The valid slot with the highest gen wins. A head is written into the slot
              that does NOT hold the current head, so a cut while writing leaves the
              current one untouched; this needs no atomic rename (FAT's rename is not).

seq numbers increase by one per append attempt and are never reused; `acked` means every
record with seq <= acked is gone. ack(seq) is cumulative, matching in-order batch sends.

Overflow policy: drop oldest. When max_records are pending, append() first removes the
oldest pending record and adds one to the persisted `dropped` counter. If the file system
is full, the oldest segment's pending records are dropped (and counted) and the append is
tried once more. Flash use stays below about
max_records * (max_record_bytes + 11) + seg_bytes + 2 * 20 bytes.

Compaction: a segment whose records are all acknowledged is deleted after the head that
acknowledges them is on flash (at ack() and at open); the segment being appended to is
kept until it is full (seg_bytes), or until compact() is called.

MicroPython os API only: open modes 'rb', 'ab', 'wb', os.remove, os.listdir, os.stat,
os.mkdir, os.sync when present. RAM: one record buffer of max_record_bytes.
"""
import binascii
import struct

from micropython import const

_MAGIC = const(0xA7)
_HDR = "<BHII"
_HDR_LEN = const(11)
_HEAD = "<4sIII"
_HEAD_LEN = const(16)
_HEAD_MAGIC = b"ENQH"
_ENOSPC = const(28)


class StoreError(Exception):
    """The queue could not do what was asked (record too large, flash write failed)."""


class OsFs:
    """The device file system through MicroPython's os module (also works on CPython)."""

    def __init__(self):
        import os
        self._os = os

    def open(self, path, mode):
        return open(path, mode)

    def remove(self, path):
        self._os.remove(path)

    def listdir(self, path):
        return self._os.listdir(path)

    def mkdir(self, path):
        self._os.mkdir(path)

    def size(self, path):
        """File size in bytes, or -1 when the file does not exist."""
        try:
            return self._os.stat(path)[6]
        except OSError:
            return -1

    def sync(self):
        # MicroPython's os.sync flushes the VFS caches. CPython's syncs every disk of the
        # host; the host twin's power cut is a process kill, which the page cache survives.
        if hasattr(self._os, "sync") and not hasattr(self._os, "fsync"):
            self._os.sync()


def _crc(hdr7, payload):
    return binascii.crc32(payload, binascii.crc32(hdr7)) & 0xFFFFFFFF


class Store:
    """Persistent FIFO of byte records.

    Store(path, max_records=500, max_record_bytes=1024, seg_bytes=4096, fs=None)
        append(data) -> seq      durable when it returns; drops the oldest when full
        peek(n) -> [(seq, bytes)] the n oldest pending records, oldest first
        ack(seq)                 removes every pending record with seq' <= seq, durably
        compact()                also deletes the current segment when fully acknowledged
        len(store), .dropped, .acked, .next_seq
    """

    def __init__(self, path, max_records=500, max_record_bytes=1024, seg_bytes=4096, fs=None):
        if max_records < 1 or max_record_bytes < 1 or max_record_bytes > 0xFFFF:
            raise ValueError("max_records >= 1 and 1 <= max_record_bytes <= 65535")
        self.path = path.rstrip("/") or "/"
        self.max_records = max_records
        self.max_record_bytes = max_record_bytes
        self.seg_bytes = seg_bytes
        self.fs = fs or OsFs()
        self._buf = bytearray(max_record_bytes)
        self._mv = memoryview(self._buf)
        self._hdr = bytearray(_HDR_LEN)
        self._hmv = memoryview(self._hdr)
        self._open()

    # -- recovery -------------------------------------------------------------------------

    def _file(self, name):
        return self.path + "/" + name

    def _open(self):
        fs = self.fs
        if fs.size(self.path) < 0:
            try:
                fs.mkdir(self.path)
            except OSError:
                pass
        self.gen, self.acked, self.dropped, self._slot = 0, 0, 0, 1
        best = None
        for slot in (0, 1):
            h = self._read_head(slot)
            if h is not None and (best is None or h[0] > best[0]):
                best = h
                self._slot = slot
        if best is not None:
            self.gen, self.acked, self.dropped = best
        segs = []
        for name in fs.listdir(self.path):
            if len(name) > 1 and name[0] == "s" and name[1:].isdigit():
                segs.append(int(name[1:]))
        segs.sort()
        self._segs = segs
        self._seg_last = {}
        self._seg_pend = {}
        self._count = 0
        self._first = None
        last_seq = end = 0
        for seg in segs:
            top, end = self._scan(seg, 0, last_seq)
            if top > last_seq:  # the segment holds a valid record
                self._seg_last[seg] = last_seq = top
        # Appends continue the last segment only when it ends in a whole record.
        self._tail_size = end
        self._tail_ok = bool(segs) and end == fs.size(self._file("s%d" % segs[-1]))
        self.next_seq = max(last_seq, self.acked) + 1
        self._compact()

    def _read_head(self, slot):
        try:
            f = self.fs.open(self._file("h%d" % slot), "rb")
        except OSError:
            return None
        try:
            data = f.read(_HEAD_LEN + 4)
        finally:
            f.close()
        if data is None or len(data) != _HEAD_LEN + 4:
            return None
        magic, gen, acked, dropped = struct.unpack(_HEAD, data[:_HEAD_LEN])
        crc = struct.unpack("<I", data[_HEAD_LEN:])[0]
        if magic != _HEAD_MAGIC or crc != binascii.crc32(data[:_HEAD_LEN]) & 0xFFFFFFFF:
            return None
        return gen, acked, dropped

    def _scan(self, seg, offset, prev_seq, limit=None, out=None):
        """Walks segment seg from offset over valid records with seq > prev_seq.

        Counts pending ones (seq > acked) into self._count and notes the first in
        self._first while recovering (no limit); with a limit appends up to limit pending
        (seq, payload) to out instead. Returns (last seq, end offset).
        """
        try:
            f = self.fs.open(self._file("s%d" % seg), "rb")
        except OSError:
            return prev_seq, 0
        pos = offset
        try:
            if offset:
                f.seek(offset)
            hdr = self._hdr
            while True:
                if f.readinto(hdr) != _HDR_LEN:
                    break
                magic, length, seq, crc = struct.unpack(_HDR, hdr)
                if magic != _MAGIC or length > self.max_record_bytes or seq <= prev_seq:
                    break
                mv = self._mv[:length]
                if length and f.readinto(mv) != length:
                    break
                if _crc(self._hmv[:7], mv) != crc:
                    break
                prev_seq = seq
                if seq > self.acked:
                    if limit is None:
                        self._count += 1
                        self._seg_pend[seg] = self._seg_pend.get(seg, 0) + 1
                        if self._first is None:
                            self._first = (seg, pos)
                    else:
                        if len(out) >= limit:
                            break
                        out.append((seq, bytes(mv)))
                pos += _HDR_LEN + length
        finally:
            f.close()
        return prev_seq, pos

    # -- public API -----------------------------------------------------------------------

    def __len__(self):
        return self._count

    def append(self, data):
        """Writes one record durably and returns its seq; the record is queued only then."""
        if isinstance(data, str):
            data = data.encode()
        if len(data) > self.max_record_bytes:
            raise StoreError("record of %d bytes exceeds max_record_bytes %d: send less per record"
                             % (len(data), self.max_record_bytes))
        try:
            while self._count >= self.max_records:
                self._drop_oldest()
            return self._append(data)
        except OSError as e:
            if e.args and e.args[0] == _ENOSPC and self._count:
                self._drop_oldest_segment()
                try:
                    return self._append(data)
                except OSError as e2:
                    e = e2
            raise StoreError("flash write failed (%s): check free space on the file system" % e)

    def _append(self, data):
        seq = self.next_seq
        # A failed attempt still burns its seq: its bytes may be on flash even if the
        # write raised, and a later record must never reuse that number.
        self.next_seq = seq + 1
        if not self._segs or not self._tail_ok or self._tail_size >= self.seg_bytes:
            seg = self._segs[-1] + 1 if self._segs else 1
            self._segs.append(seg)
            self._tail_size = 0
        seg = self._segs[-1]
        hdr = struct.pack("<BHI", _MAGIC, len(data), seq)
        rec = hdr + struct.pack("<I", _crc(hdr, data)) + data
        self._tail_ok = False
        f = self.fs.open(self._file("s%d" % seg), "ab")
        try:
            f.write(rec)
            f.flush()
        finally:
            f.close()
        self.fs.sync()
        self._tail_ok = True
        if self._first is None:
            self._first = (seg, self._tail_size)
        self._tail_size += len(rec)
        self._seg_last[seg] = seq
        self._seg_pend[seg] = self._seg_pend.get(seg, 0) + 1
        self._count += 1
        return seq

    def peek(self, n=1):
        """The n oldest pending records as [(seq, payload bytes)], oldest first."""
        out = []
        if self._first is None:
            return out
        seg, pos = self._first
        for s in self._segs:
            if s < seg:
                continue
            self._scan(s, pos if s == seg else 0, 0, n, out)
            if len(out) >= n:
                break
        return out

    def ack(self, seq):
        """EnOS acknowledged every record up to seq: removes them, durably, then compacts."""
        if seq <= self.acked or self._count == 0:
            return
        try:
            self._advance(min(seq, self.next_seq - 1))
        except OSError as e:
            raise StoreError("flash write of the queue head failed (%s): the records stay "
                             "queued and go out again" % e)

    def compact(self):
        """Deletes every fully acknowledged segment, the one being appended to included."""
        self._compact(True)

    # -- internals --------------------------------------------------------------------------

    def _write_head(self, acked, dropped):
        slot = 1 - self._slot
        gen = self.gen + 1
        body = struct.pack(_HEAD, _HEAD_MAGIC, gen, acked, dropped)
        f = self.fs.open(self._file("h%d" % slot), "wb")
        try:
            f.write(body + struct.pack("<I", binascii.crc32(body) & 0xFFFFFFFF))
            f.flush()
        finally:
            f.close()
        self.fs.sync()
        self.gen, self.acked, self.dropped, self._slot = gen, acked, dropped, slot

    def _advance(self, upto, dropping=False):
        """Removes pending records with seq <= upto; counts them as dropped if dropping."""
        removed = 0
        first = None
        split = None
        for seg in self._segs:
            last = self._seg_last.get(seg, 0)
            if last <= self.acked:
                continue
            if last <= upto:
                removed += self._seg_pend[seg]  # a segment past acked has pending records
                continue
            split = (seg,) + self._split(seg, upto)
            removed += split[1]
            first = split[2]
            break
        self._write_head(upto, self.dropped + (removed if dropping else 0))
        for seg in self._segs:
            if self._seg_last.get(seg, 0) <= upto:
                self._seg_pend.pop(seg, None)
        if split is not None:
            self._seg_pend[split[0]] -= split[1]
        self._count -= removed
        self._first = first
        self._compact()
        return removed

    def _split(self, seg, upto):
        """In seg, counts pending records with seq <= upto and finds the first one after."""
        removed = 0
        pos = self._first[1] if self._first and self._first[0] == seg else 0
        f = self.fs.open(self._file("s%d" % seg), "rb")
        try:
            if pos:
                f.seek(pos)
            while True:
                hdr = f.read(_HDR_LEN)
                if not hdr or len(hdr) < _HDR_LEN:
                    return removed, None
                _, length, seq, _ = struct.unpack(_HDR, hdr)
                if seq > upto:
                    return removed, (seg, pos)
                if seq > self.acked:
                    removed += 1
                f.seek(pos + _HDR_LEN + length)
                pos += _HDR_LEN + length
        finally:
            f.close()

    def _drop_oldest(self):
        first = self.peek(1)
        if not first:
            self._count = 0
            return
        self._advance(first[0][0], True)

    def _drop_oldest_segment(self):
        """Frees flash when the file system is full: deletes the oldest segment holding
        pending records before writing the head, because a full flash may refuse the head
        write. A cut in between loses no kept record; only the drop count misses them."""
        for seg in self._segs:
            last = self._seg_last.get(seg, 0)
            if last <= self.acked:
                continue
            n = self._seg_pend[seg]
            self.fs.remove(self._file("s%d" % seg))
            self._segs.remove(seg)
            del self._seg_last[seg]
            del self._seg_pend[seg]
            self._count -= n
            self._first = None
            for s in self._segs:
                if self._seg_last.get(s, 0) > last:
                    self._first = (s, 0)
                    break
            if not self._segs or seg > self._segs[-1]:
                self._tail_ok = False
            try:
                self._write_head(last, self.dropped + n)
            except OSError:
                self.acked, self.dropped = last, self.dropped + n
            self._compact()
            return

    def _compact(self, tail_too=False):
        keep = []
        n = len(self._segs)
        for i in range(n):
            seg = self._segs[i]
            is_tail = i == n - 1
            if self._seg_last.get(seg, 0) <= self.acked and (
                    tail_too or not is_tail or not self._tail_ok):
                try:
                    self.fs.remove(self._file("s%d" % seg))
                except OSError:
                    keep.append(seg)
                    continue
                self._seg_last.pop(seg, None)  # its pending count went when its last record did
                if is_tail:
                    self._tail_ok = False
            else:
                keep.append(seg)
        self._segs = keep
