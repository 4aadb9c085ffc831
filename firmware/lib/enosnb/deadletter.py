"""Dead letters: queued readings EnOS refused for good, kept on flash until they are replayed.

A record whose refusal resending cannot fix (the thing model lacks a point: 1204; a format
EnOS rejects), or that was refused dead_after times in a row, or whose time cannot be
recovered (secrets.json time_unknown "dead_letter"), leaves the queue for this bounded
store so that newer readings go out in the same cycle. Each entry is the reason, a newline,
then the queued record as it was (with its resolved time added when there was one).

replay() puts every dead letter back at the end of the queue: a cloud command
(thing.service.<replay_service>) or a new value of secrets.json replay_dead_letters triggers
it, typically after the maker fixed the thing model. A record is appended to the queue
before it leaves the dead letters, so a cut in between sends it twice, never loses it.

The store is an enosnb.store.Store in <root>dead/ (max_records, the oldest dropped and counted
beyond), opened only when a dead letter is written, replayed or counted.
"""
from enosnb.store import Store

_RECORD_MAX = 1024
_REASON_MAX = 64


class DeadLetters:
    def __init__(self, path, max_records=200):
        self.store = Store(path, max_records=max_records,
                           max_record_bytes=_RECORD_MAX + _REASON_MAX + 1)

    def __len__(self):
        return len(self.store)

    @property
    def dropped(self):
        """Dead letters lost because max_records were already held."""
        return self.store.dropped

    def add(self, record, reason):
        """Keeps record (bytes) with its reason (short text); durable when it returns."""
        why = reason.encode()[:_REASON_MAX].replace(b"\n", b" ")
        self.store.append(why + b"\n" + bytes(record))

    def peek(self, n=10):
        """[(reason, record bytes)] of the n oldest dead letters."""
        out = []
        for _, data in self.store.peek(n):
            i = data.find(b"\n")
            out.append((data[:i].decode(), data[i + 1:]))
        return out

    def replay(self, queue):
        """Moves every dead letter to the end of queue (a Store), oldest first; returns how
        many went back."""
        n = 0
        while True:
            got = self.store.peek(1)
            if not got:
                return n
            seq, data = got[0]
            queue.append(data[data.find(b"\n") + 1:])
            self.store.ack(seq)
            n += 1
