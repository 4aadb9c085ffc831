"""The rare paths of enosnb.store, loaded only when one is taken: rebuilding the head of a
queue without a valid one (an older firmware's queue, a damaged head), thinning the queue
at its cap (full="thin"), and dropping the oldest segment (cap in bytes, full flash). Each
function works on the Store it is given (its fields and helpers); see enosnb.store for
the layout and the power-cut rules."""
from micropython import const

_HDR_LEN = const(11)  # enosnb.store's record header


def rebuild(q):
    """A queue without a valid head: read every segment once and write a head."""
    segs = []
    for name in q.fs.listdir(q.path):
        if len(name) > 1 and name[0] == "s" and name[1:].isdigit():
            segs.append(int(name[1:]))
    if not segs:
        return
    segs.sort()
    state = [q.acked, None, None]  # last seq, first pending pos, first pending seg

    last_seq = 0
    for seg in segs:
        def visit(seq, off, length, seg=seg):
            if seq > q.acked:
                q._count += 1
                if state[1] is None:
                    state[1] = (seg, off)
            return False
        last_seq, end = q._scan(seg, 0, last_seq, visit)
        if seg == segs[-1]:
            q._tail_size = end
            q._tail_ok = end == max(q.fs.size(q._file(seg)), 0)
    q.next_seq = max(last_seq, q.acked) + 1
    q.tail_id = segs[-1]
    q._pos = state[1]
    old_first = segs[0]
    if q._pos is not None:
        q.first_id = q._pos[0]
    else:
        q.first_id = q.tail_id if q._tail_ok else q.tail_id + 1
    if q.first_id > old_first:
        q._gc = (old_first, q.first_id - 1)
    q._write_head()
    q._collect()


def thin(q):
    """Keeps every other reading of the whole queue (uniformly, by seq): the kept ones
    are copied into new segments, then the head switches to them. False when the copy
    could not be written (full flash): the caller drops the oldest instead."""
    upto = q.next_seq - 1
    # The lowest level (1 in 2**level, never finer than before) that keeps at most half
    # of the pending records, estimated from the seq range (seqs burned by failed
    # appends make it a little high, never too low).
    level = max(q.thin_level, 1)
    while level < 30 and (upto >> level) - (q.acked >> level) > q._count // 2:
        level += 1
    step = 1 << level
    new_first = q.tail_id + 1
    out = [None, new_first, 0, 0]  # open file, its segment, its size, records kept

    def visit(seq, off, length):
        if seq <= q.acked or seq % step:
            return False
        f = out[0]
        if f is None or out[2] >= q.seg_bytes:
            if f is not None:
                f.close()
                out[1] += 1
            f = out[0] = q.fs.open(q._file(out[1]), "wb")
            out[2] = 0
        f.write(q._hdr)
        f.write(q._mv[:length])
        out[2] += _HDR_LEN + length
        out[3] += 1
        return False
    seg, pos = q._pos
    prev = q.acked
    try:
        while seg <= q.tail_id:
            prev, _ = q._scan(seg, pos, prev, visit)
            seg += 1
            pos = 0
        if out[0] is not None:
            out[0].close()
            out[0] = None
        q.fs.sync()
    except OSError:
        if out[0] is not None:
            out[0].close()
        for s in range(new_first, out[1] + 1):
            try:
                q.fs.remove(q._file(s))
            except OSError:
                pass
        return False
    q._gc = (q.first_id, q.tail_id)
    q.dropped += q._count - out[3]
    q._count = out[3]
    q.thin_upto, q.thin_level = upto, level
    if out[3]:
        q.first_id, q.tail_id = new_first, out[1]
        q._pos = (new_first, 0)
        q._tail_size = out[2]
    else:
        q.first_id, q.tail_id = new_first, new_first - 1
        q._pos = None
        q._tail_size = 0
    q._tail_ok = True
    q._write_head()
    q._collect()
    return True


def drop_first_segment(q, flash_full):
    """Drops the pending records of the oldest segment holding any, freeing its file.

    On a full flash (flash_full) the file is deleted before the head is written, because
    a full flash may refuse the head write; a cut in between loses no kept record, only
    the count misses them (peek() corrects it)."""
    if q._pos is None:
        return
    seg = q._pos[0]
    seen = [q.acked, 0]  # last seq in the segment, pending records in it

    def visit(seq, off, length):
        seen[0] = seq
        if seq > q.acked and q._kept(seq):
            seen[1] += 1
        return False
    q._scan(seg, q._pos[1], q.acked, visit)
    if not flash_full or seg == q.tail_id:
        q._advance(seen[0], True)
        return
    try:
        q.fs.remove(q._file(seg))
    except OSError:
        pass
    try:
        q._advance(seen[0], True, seen[1])
    except OSError:
        pass  # the head could not be written: memory is right; the next write catches up
