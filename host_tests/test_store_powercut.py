"""Power loss at every byte of the flash queue's writes ("Power loss", store level).

An in-memory file system stands in for flash. Each durable change is a sequence of steps
(one per byte written, one per file created, truncated or removed); a power cut after step K
keeps the first K steps, optionally leaves junk after a torn write (erased-but-not-programmed
flash), and aborts the operation in progress. The store is then opened again, as after a
reboot, and its pending records are compared with a model of what the caller was told:

- lost: a record append() returned for, not acknowledged by the caller, not counted as
  dropped by the overflow policy, and missing after the reboot;
- duplicated: a record returned twice, or back after ack() returned.

The operation cut in the middle may land either way (its append present or not, its ack
applied or not), never half-way. Prints store.powercut.kills / .lost / .duplicated.
"""
import random

from enosnb.store import Store


class PowerCut(BaseException):
    """Raised inside the store when the power goes; BaseException so no except OSError eats it."""


class _File:
    def __init__(self, fs, path, mode):
        self.fs, self.path, self.mode, self.pos = fs, path, mode, 0

    def read(self, n=-1):
        data = self.fs.files[self.path]
        end = len(data) if n < 0 else min(len(data), self.pos + n)
        out = bytes(data[self.pos:end])
        self.pos = end
        return out

    def readinto(self, buf):
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def seek(self, pos):
        self.pos = pos

    def write(self, data):
        target = self.fs.files[self.path]
        for i in range(len(data)):
            self.fs.step(self.path)
            target.append(data[i])
        return len(data)

    def flush(self):
        pass

    def close(self):
        pass


class CutFs:
    """Flash as a dict of bytearrays; power fails after `budget` steps (None: never)."""

    def __init__(self, rng):
        self.files = {}
        self.dirs = set()
        self.rng = rng
        self.budget = None
        self.steps = 0

    def step(self, torn_path=None):
        if self.budget is not None and self.steps >= self.budget:
            if torn_path is not None and self.rng.random() < 0.3:
                junk = bytes(self.rng.getrandbits(8) for _ in range(self.rng.randrange(1, 24)))
                self.files[torn_path].extend(junk)
            raise PowerCut()
        self.steps += 1

    def open(self, path, mode):
        if "r" in mode:
            if path not in self.files:
                raise OSError(2, "ENOENT")
        elif mode == "wb":
            self.step()
            self.files[path] = bytearray()
        elif path not in self.files:
            self.step()
            self.files[path] = bytearray()
        return _File(self, path, mode)

    def remove(self, path):
        if path not in self.files:
            raise OSError(2, "ENOENT")
        self.step()
        del self.files[path]

    def listdir(self, path):
        pre = path + "/"
        return [p[len(pre):] for p in self.files if p.startswith(pre)]

    def mkdir(self, path):
        self.dirs.add(path)

    def size(self, path):
        if path in self.files:
            return len(self.files[path])
        return 0 if path in self.dirs else -1

    def sync(self):
        pass


class Model:
    """What the caller was told: pending records (ids in order) and the dropped count."""

    def __init__(self, max_records):
        self.max_records = max_records
        self.pending = []
        self.dropped = 0
        self.ids = {}

    def state(self):
        return (tuple(self.pending), self.dropped)


def _check(store, acceptable, acked_ids):
    """(lost, duplicated) of the reopened store against the acceptable model states."""
    got = [int(p.split(b":")[0]) for _, p in store.peek(10 ** 6)]
    state = (tuple(got), store.dropped)
    if state in acceptable:
        return 0, 0
    must = set(acceptable[0][0])
    for pend, _ in acceptable[1:]:
        must &= set(pend)
    lost = len(must - set(got))
    dup = len(got) - len(set(got)) + len(set(got) & acked_ids)
    if lost == 0 and dup == 0:
        # Right records, wrong order or dropped count: count it as a loss so it fails loudly.
        lost = 1
    return lost, dup


def _run_seed(seed, cuts, max_records, seg_bytes, fixed_budget=None, ops=60):
    """Random appends/acks with `cuts` power cuts at random steps, or exactly one cut
    `fixed_budget` steps into the workload. Returns [kills, lost, duplicated]."""
    rng = random.Random(seed)
    fs = CutFs(rng)
    model = Model(max_records)
    next_id = [0]
    acked_ids = set()
    totals = [0, 0, 0]

    def open_store():
        return Store("/q", max_records=max_records, max_record_bytes=64, seg_bytes=seg_bytes,
                     fs=fs)

    store = open_store()
    while True:
        if fixed_budget is not None:
            if totals[0]:
                break
            fs.budget = fixed_budget
        else:
            if totals[0] >= cuts:
                break
            fs.budget = fs.steps + rng.randrange(0, 400)
        acceptable = None
        try:
            for _ in range(ops):
                before = model.state()
                if rng.random() < 0.6 or not model.pending:
                    rid = next_id[0]
                    next_id[0] += 1
                    payload = b"%d:" % rid + b"v" * rng.randrange(0, 40)
                    after_pending = list(model.pending)
                    dropped = model.dropped
                    mid = None
                    if len(after_pending) >= max_records:
                        after_pending.pop(0)
                        dropped += 1
                        mid = (tuple(after_pending), dropped)
                    after = (tuple(after_pending + [rid]), dropped)
                    acceptable = [before, after] + ([mid] if mid else [])
                    store.append(payload)
                    model.pending = list(after[0])
                    model.dropped = dropped
                else:
                    batch = store.peek(rng.randrange(1, 6))
                    ids = [int(p.split(b":")[0]) for _, p in batch]
                    assert ids == model.pending[:len(ids)]
                    after = (tuple(model.pending[len(ids):]), model.dropped)
                    acceptable = [before, after]
                    store.ack(batch[-1][0])
                    acked_ids.update(ids)
                    model.pending = list(after[0])
                acceptable = None
            fs.budget = None
            if fixed_budget is not None:
                break
            continue
        except PowerCut:
            pass
        fs.budget = None
        totals[0] += 1
        if acceptable is None:
            acceptable = [model.state()]
        store = open_store()
        lost, dup = _check(store, acceptable, acked_ids)
        totals[1] += lost
        totals[2] += dup
        got = [int(p.split(b":")[0]) for _, p in store.peek(10 ** 6)]
        model.pending = got
        model.dropped = store.dropped
        acked_ids.update(i for i in range(next_id[0]) if i not in got)
    return totals


def _report(totals):
    print("store.powercut.kills: %d" % totals[0])
    print("store.powercut.lost: %d" % totals[1])
    print("store.powercut.duplicated: %d" % totals[2])


def run(seeds=12, cuts_per_seed=25, exhaustive=True):
    totals = [0, 0, 0]
    for seed in range(seeds):
        small = seed % 3 == 0
        t = _run_seed(seed, cuts_per_seed, 4 if small else 200, 48 if seed % 2 else 256)
        for i in range(3):
            totals[i] += t[i]
    if exhaustive:
        # The same seeded workload replayed once per step, cut at step 0, 1, 2, ... until
        # it completes uncut: every byte of every append, head write and delete is hit.
        for seed, max_records in ((1000, 200), (1001, 3)):
            k = 0
            while True:
                t = _run_seed(seed, 0, max_records, 64, fixed_budget=k, ops=20)
                if t[0] == 0:
                    break
                for i in range(3):
                    totals[i] += t[i]
                k += 1
    return totals


def _state(store):
    return ([p for _, p in store.peek(10 ** 6)], store.dropped)


def cut_through_cap(**caps):
    """Fills a queue to its cap, then cuts the power at every step of the append that applies
    the `full` policy. Returns (cuts, states that were not one of: before the append, after
    the policy, after the append)."""
    import copy

    def filled():
        fs = CutFs(random.Random(5))
        s = Store("/q", max_record_bytes=64, seg_bytes=48, fs=fs, **caps)
        i = 0
        while not s.events:
            i += 1
            before = (copy.deepcopy(fs.files), _state(s))
            s.append(b"r%03d" % i)
        return before, b"r%03d" % i

    (files, before), new = filled()
    ref = CutFs(random.Random(5))
    ref.files = copy.deepcopy(files)
    s = Store("/q", max_record_bytes=64, seg_bytes=48, fs=ref, **caps)
    s.append(new)
    after = _state(s)
    acceptable = [before, (after[0][:-1], after[1]), after]
    cuts = bad = 0
    k = 0
    while True:
        fs = CutFs(random.Random(k))
        fs.files = copy.deepcopy(files)
        s = Store("/q", max_record_bytes=64, seg_bytes=48, fs=fs, **caps)
        fs.budget = fs.steps + k
        try:
            s.append(new)
        except PowerCut:
            fs.budget = None
            cuts += 1
            got = _state(Store("/q", max_record_bytes=64, seg_bytes=48, fs=fs, **caps))
            bad += got not in acceptable
            k += 1
            continue
        return cuts, bad


def test_a_power_cut_while_the_queue_is_thinned_or_trimmed_leaves_the_old_or_the_new_queue():
    for caps in ({"max_records": 12, "full": "thin"}, {"max_bytes": 240, "full": "thin"},
                 {"max_bytes": 240}):
        cuts, bad = cut_through_cap(**caps)
        assert cuts >= 20, caps
        assert bad == 0, caps


def test_no_queued_record_is_lost_or_duplicated_by_power_cuts_at_any_byte():
    totals = run()
    _report(totals)
    assert totals[0] >= 200
    assert totals[1] == 0, "lost records"
    assert totals[2] == 0, "duplicated records"


if __name__ == "__main__":
    _report(run())
