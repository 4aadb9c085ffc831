"""Flash-backed measurement queue that survives power loss.

Every measurement is written to flash before it is reported as queued, and removed only
after the caller says EnOS acknowledged it. A power cut at any byte leaves every record
that append() had returned intact, exactly once, in order (or counted as dropped by the
policy below).

On-flash layout, all files in one directory:

  s<N>        segment N, an append-only log of records:
                magic 0xA7 (1) | length (2, LE) | seq (4, LE) | crc32 (4, LE) | payload
              crc32 covers magic, length, seq and payload. A segment is read up to its
              first record that is short, has a bad magic/CRC or a non-increasing seq; the
              writer never appends after such a record (it starts segment N+1), so a torn
              append only ever sits at a segment's end. The segments in use are the range
              first..tail of the head; a new segment is created with "wb", so leftovers of an
              interrupted rewrite never mix with new records.
  h0, h1      two head slots (A/B): magic "ENQ2", the counters (gen, acked, dropped, pending
              count, next seq), the segment range, the position of the first pending record,
              the tail's size and soundness, the thinning rule and a range of segment files
              still to delete, then a crc32. The valid slot with the highest gen wins. A head
              is written into the slot that does NOT hold the current head, so a cut while
              writing leaves the current one untouched; this needs no atomic rename (FAT's
              rename is not).

Opening is O(1) in the number of records: the head holds the counts and positions, and only
the records appended to the tail segment after the last head write are read (the head is
written at every ack and every time a new segment starts, so that is at most one segment).
A queue without a valid head (made by an older version, or both slots damaged) is rebuilt
once by reading every segment.

seq numbers increase by one per append attempt and are never reused; `acked` means every
record with seq <= acked is gone. ack(seq) is cumulative, matching in-order sends.

Capacity: max_records pending records and/or max_bytes of segment files. What happens at the
cap (`full`):
- "drop_oldest": the oldest pending records go (a whole segment for the byte cap);
- "thin": about half of the queue goes, evenly: every record up to the newest keeps only
  seqs that are multiples of 2**L, L the lowest level (never below the last one) that halves
  the queue, so it keeps the full span of an outage at a uniform, coarser resolution. The
  rule (L, up to seq B) is in the head; the kept records are copied into new segments, the
  head switches to them, then the old segments are deleted, so a cut at any point leaves either the old or the new queue.
Either way the records removed are added to the persisted `dropped` counter. If the file
system is full (ENOSPC), the oldest segment's pending records are dropped (and counted) and
the append is tried once more.

MicroPython os API only: open modes 'rb', 'ab', 'wb', os.remove, os.listdir (only to rebuild
a queue without a head), os.stat, os.mkdir, os.sync when present. RAM: one record buffer of
max_record_bytes.
"""
import binascii
import struct

from micropython import const

_MAGIC = const(0xA7)
_HDR = "<BHII"
_HDR_LEN = const(11)
# magic | gen acked dropped count next_seq | first tail | pos_id pos_off | tail_off | flags |
# thin_upto thin_level | gc_lo gc_hi
_HEAD = "<4sIIIIIIIIIIBIBII"
_HEAD_LEN = const(58)
_HEAD_MAGIC = b"ENQ2"
_OLD_HEAD = "<4sIII"
_OLD_HEAD_LEN = const(16)
_OLD_MAGIC = b"ENQH"
_ENOSPC = const(28)
_F_TAIL_OK = const(1)

DROP_OLDEST = "drop_oldest"
THIN = "thin"


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


def fs_bytes(path):
    """Total size in bytes of the file system holding path (os.statvfs), or None."""
    import os
    try:
        st = os.statvfs(path)
    except (AttributeError, OSError):
        return None
    return st[1] * st[2]


def _crc(hdr7, payload):
    return binascii.crc32(payload, binascii.crc32(hdr7)) & 0xFFFFFFFF


class Store:
    """Persistent FIFO of byte records.

    Store(path, max_records=None, max_record_bytes=1024, seg_bytes=4096, fs=None,
          max_bytes=None, full="drop_oldest")
        append(data) -> seq      durable when it returns; applies `full` at the cap
        peek(n) -> [(seq, bytes)] the n oldest pending records, oldest first
        ack(seq)                 removes every pending record with seq' <= seq, durably
        compact()                also deletes the current segment when fully acknowledged
        len(store), .dropped, .acked, .next_seq, .used_bytes(), .events (what the cap did)
    """

    def __init__(self, path, max_records=None, max_record_bytes=1024, seg_bytes=4096,
                 fs=None, max_bytes=None, full=DROP_OLDEST):
        if max_records is not None and max_records < 1 or max_record_bytes < 1 or \
                max_record_bytes > 0xFFFF:
            raise ValueError("max_records >= 1 and 1 <= max_record_bytes <= 65535")
        if max_bytes is not None and max_bytes < 2 * seg_bytes:
            raise ValueError("max_bytes must hold at least two segments (2 * seg_bytes)")
        if full not in (DROP_OLDEST, THIN):
            raise ValueError('full must be "drop_oldest" or "thin"')
        self.path = path.rstrip("/") or "/"
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.full = full
        self.max_record_bytes = max_record_bytes
        self.seg_bytes = seg_bytes
        self.fs = fs or OsFs()
        self._buf = bytearray(max_record_bytes)
        self._mv = memoryview(self._buf)
        self._hdr = bytearray(_HDR_LEN)
        self._hmv = memoryview(self._hdr)
        # (what, records removed) for each time the cap applied since open: the caller logs it.
        self.events = []
        self._open()

    # -- recovery -------------------------------------------------------------------------

    def _file(self, seg):
        return "%s/s%d" % (self.path, seg)

    def _open(self):
        fs = self.fs
        if fs.size(self.path) < 0:
            try:
                fs.mkdir(self.path)
            except OSError:
                pass
        self.gen, self._slot = 0, 1
        self.acked = self.dropped = self._count = 0
        self.next_seq = 1
        self.first_id, self.tail_id = 1, 0
        self._pos = None
        self._tail_size = 0
        self._tail_ok = True
        self.thin_upto, self.thin_level = 0, 0
        self._gc = None
        best = None
        for slot in (0, 1):
            h = self._read_head(slot)
            if h is not None and (best is None or h[1] > best[1]):
                best = h
                self._slot = slot
        if best is not None and best[0] == _HEAD_MAGIC:
            (_, self.gen, self.acked, self.dropped, self._count, self.next_seq, self.first_id,
             self.tail_id, pos_id, pos_off, tail_off, flags, self.thin_upto, self.thin_level,
             gc_lo, gc_hi) = best
            if pos_id:
                self._pos = (pos_id, pos_off)
            self._tail_size = tail_off
            self._tail_ok = bool(flags & _F_TAIL_OK)
            if gc_lo <= gc_hi:
                self._gc = (gc_lo, gc_hi)
                self._collect()
            self._recover_tail()
        else:
            if best is not None:
                self.gen, self.acked, self.dropped = best[1], best[2], best[3]
            self._rebuild()

    def _read_head(self, slot):
        try:
            f = self.fs.open("%s/h%d" % (self.path, slot), "rb")
        except OSError:
            return None
        try:
            data = f.read(_HEAD_LEN + 4)
        finally:
            f.close()
        if not data or len(data) < _OLD_HEAD_LEN + 4:
            return None
        n = _HEAD_LEN if data[:4] == _HEAD_MAGIC else _OLD_HEAD_LEN
        if len(data) < n + 4 or data[:4] not in (_HEAD_MAGIC, _OLD_MAGIC):
            return None
        if struct.unpack("<I", data[n:n + 4])[0] != binascii.crc32(data[:n]) & 0xFFFFFFFF:
            return None
        return struct.unpack(_HEAD if n == _HEAD_LEN else _OLD_HEAD, data[:n])

    def _recover_tail(self):
        """Counts the records appended to the tail segment since the head was written."""
        if self.tail_id < self.first_id or not self._tail_ok:
            return
        start = self._tail_size
        found = [0, None]

        def visit(seq, off, length):
            found[0] += 1
            if found[1] is None:
                found[1] = off
            return False
        last, end = self._scan(self.tail_id, start, self.next_seq - 1, visit)
        size = self.fs.size(self._file(self.tail_id))
        self._tail_size = end
        self._tail_ok = end == max(size, 0)
        if found[0]:
            self._count += found[0]
            self.next_seq = last + 1
            if self._pos is None:
                self._pos = (self.tail_id, found[1])

    def _rebuild(self):
        from enosnb.storefix import rebuild
        rebuild(self)

    def _scan(self, seg, offset, prev_seq, visit):
        """Walks segment seg from offset over valid records with seq > prev_seq, calling
        visit(seq, offset, length) with the payload in self._mv[:length]; stops when visit
        returns True. Returns (last seq seen, offset after the last record read)."""
        try:
            f = self.fs.open(self._file(seg), "rb")
        except OSError:
            return prev_seq, offset
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
                here = pos
                pos += _HDR_LEN + length
                if visit(seq, here, length):
                    break
        finally:
            f.close()
        return prev_seq, pos

    def _kept(self, seq):
        return seq > self.thin_upto or seq % (1 << self.thin_level) == 0

    # -- public API -----------------------------------------------------------------------

    def __len__(self):
        return self._count

    def used_bytes(self):
        """Flash the segments take, about: whole segments before the tail, then the tail."""
        if self.tail_id < self.first_id:
            return 0
        return (self.tail_id - self.first_id) * self.seg_bytes + self._tail_size

    def append(self, data):
        """Writes one record durably and returns its seq; the record is queued only then."""
        if isinstance(data, str):
            data = data.encode()
        if len(data) > self.max_record_bytes:
            raise StoreError("record of %d bytes exceeds max_record_bytes %d: send less per record"
                             % (len(data), self.max_record_bytes))
        try:
            self._make_room(_HDR_LEN + len(data))
            return self._append(data)
        except OSError as e:
            if e.args and e.args[0] == _ENOSPC and self._count:
                try:
                    self._drop_first_segment(True)
                    return self._append(data)
                except OSError as e2:
                    e = e2
            raise StoreError("flash write failed (%s): check free space on the file system" % e)

    def peek(self, n=1):
        """The n oldest pending records as [(seq, payload bytes)], oldest first."""
        out = []
        if n <= 0 or self._pos is None:
            return out

        def visit(seq, off, length):
            if seq > self.acked and self._kept(seq):
                out.append((seq, bytes(self._mv[:length])))
            return len(out) >= n
        seg, pos = self._pos
        prev = self.acked
        while seg <= self.tail_id and len(out) < n:
            prev, _ = self._scan(seg, pos, prev, visit)
            seg += 1
            pos = 0
        if len(out) < n and len(out) < self._count:
            # A segment the head counted is gone (a full flash refused the head write
            # after the segment was deleted): the count follows the records.
            self._count = len(out)
        return out

    def ack(self, seq):
        """EnOS acknowledged every record up to seq: removes them, durably, then compacts."""
        if seq <= self.acked or self._count == 0:
            return
        try:
            self._advance(min(seq, self.next_seq - 1), False)
        except OSError as e:
            raise StoreError("flash write of the queue head failed (%s): the records stay "
                             "queued and go out again" % e)

    def compact(self):
        """Deletes every fully acknowledged segment, the one being appended to included."""
        if self._pos is None and self.tail_id >= self.first_id:
            self._gc = (self.first_id, self.tail_id)
            self.first_id = self.tail_id + 1
            self._tail_size = 0
            self._tail_ok = True
            self._write_head()
            self._collect()

    # -- internals --------------------------------------------------------------------------

    def _append(self, data):
        if self.tail_id < self.first_id or not self._tail_ok or \
                self._tail_size >= self.seg_bytes:
            self._roll()
        seq = self.next_seq
        # A failed attempt still burns its seq: its bytes may be on flash even if the
        # write raised, and a later record must never reuse that number.
        self.next_seq = seq + 1
        hdr = struct.pack("<BHI", _MAGIC, len(data), seq)
        rec = hdr + struct.pack("<I", _crc(hdr, data)) + data
        self._tail_ok = False
        f = self.fs.open(self._file(self.tail_id), "wb" if self._tail_size == 0 else "ab")
        try:
            f.write(rec)
            f.flush()
        finally:
            f.close()
        self.fs.sync()
        self._tail_ok = True
        if self._pos is None:
            self._pos = (self.tail_id, self._tail_size)
        self._tail_size += len(rec)
        self._count += 1
        return seq

    def _roll(self):
        """Starts a new tail segment; the head names it before anything is written to it."""
        self.tail_id += 1
        if self._pos is None:
            self.first_id = self.tail_id
        self._tail_size = 0
        self._tail_ok = True
        self._write_head()

    def _write_head(self):
        slot = 1 - self._slot
        gen = self.gen + 1
        pos_id, pos_off = self._pos if self._pos is not None else (0, 0)
        gc_lo, gc_hi = self._gc if self._gc is not None else (1, 0)
        body = struct.pack(_HEAD, _HEAD_MAGIC, gen, self.acked, self.dropped, self._count,
                           self.next_seq, self.first_id, self.tail_id, pos_id, pos_off,
                           self._tail_size, _F_TAIL_OK if self._tail_ok else 0,
                           self.thin_upto, self.thin_level, gc_lo, gc_hi)
        f = self.fs.open("%s/h%d" % (self.path, slot), "wb")
        try:
            f.write(body + struct.pack("<I", binascii.crc32(body) & 0xFFFFFFFF))
            f.flush()
        finally:
            f.close()
        self.fs.sync()
        self.gen, self._slot = gen, slot

    def _collect(self):
        """Deletes the segment files the head no longer uses."""
        if self._gc is None:
            return
        lo, hi = self._gc
        for seg in range(lo, hi + 1):
            try:
                self.fs.remove(self._file(seg))
            except OSError:
                pass
        self._gc = None

    def _advance(self, upto, dropping, extra=0):
        """Removes pending records with seq <= upto; counts them as dropped if dropping.
        extra: records already deleted with their file, which the walk cannot see."""
        walk = [0, None]  # kept records removed, position of the first record after upto

        def visit(seq, off, length):
            if seq > upto:
                walk[1] = (seg_box[0], off)
                return True
            if seq > self.acked and self._kept(seq):
                walk[0] += 1
            return False
        seg_box = [0]
        seg, pos = self._pos
        prev = self.acked
        while seg <= self.tail_id and walk[1] is None:
            seg_box[0] = seg
            prev, _ = self._scan(seg, pos, prev, visit)
            seg += 1
            pos = 0
        old_first = self.first_id
        self._pos = walk[1]
        if self._pos is not None:
            self.first_id = self._pos[0]
        elif not self._tail_ok:
            self.first_id = self.tail_id + 1
        else:
            self.first_id = self.tail_id
        self.acked = upto
        removed = walk[0] + extra
        self._count = max(0, self._count - removed)
        if dropping:
            self.dropped += removed
        if self.first_id > old_first:
            self._gc = (old_first, self.first_id - 1)
        self._write_head()
        self._collect()
        return removed

    def _make_room(self, rec_len):
        """Applies the `full` policy until one more record of rec_len bytes fits the caps."""
        for _ in range(64):
            over_records = self.max_records is not None and self._count >= self.max_records
            # One segment is never over: only whole segments can be freed.
            over_bytes = self.max_bytes is not None and self._count and \
                self.tail_id > self.first_id and \
                self.used_bytes() + rec_len > self.max_bytes
            if not (over_records or over_bytes):
                return
            before = self._count
            if self.full == THIN and self._count > 1 and self._thin():
                self.events.append(("thinned to 1 in %d" % (1 << self.thin_level),
                                    before - self._count))
                continue
            if over_bytes and self._pos is not None and self._pos[0] < self.tail_id:
                self._drop_first_segment(False)
            else:
                first = self.peek(1)
                if not first:
                    self._count = 0
                    return
                self._advance(first[0][0], True)
            self.events.append(("dropped oldest", before - self._count))

    # The rare paths (a queue without a valid head, thinning, a full flash) live in
    # enosnb.storefix, loaded only when one is taken.

    def _thin(self):
        from enosnb.storefix import thin
        return thin(self)

    def _drop_first_segment(self, flash_full):
        from enosnb.storefix import drop_first_segment
        drop_first_segment(self, flash_full)
