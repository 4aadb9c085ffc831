"""The input generator of `make fuzz`: seeded mutations of a seed corpus, the same on
MicroPython and CPython (no random module: a xorshift generator, so that input number i of a
parser is the same bytes on both runtimes and can be made again from (seed, i) alone).

Mutations: bit flips, byte sets, interesting values (0, 0x7F, 0x80, 0xFF, lengths), inserted
random bytes or dictionary tokens, deleted, duplicated or truncated ranges, and splices of two
seeds; one input in sixteen is random bytes.
"""

_INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x0D, 0x0E, 0x10, 0x20, 0x3F, 0x40)


class Rng:
    def __init__(self, seed):
        self.s = (seed & 0xFFFFFFFF) or 0x9E3779B9
        for _ in range(3):
            self.next()

    def next(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def below(self, n):
        return self.next() % n if n > 0 else 0


def input_for(seed, index, seeds, tokens, max_len):
    """Input number `index` of a run with `seed`: bytes, at most max_len long."""
    r = Rng(seed * 1000003 + index * 2654435761)
    if r.below(16) == 0:
        return bytes(r.below(256) for _ in range(r.below(64)))
    data = bytearray(seeds[r.below(len(seeds))])
    for _ in range(1 + r.below(5)):
        op = r.below(10)
        n = len(data)
        if op == 0 and n:
            p = r.below(n)
            data[p] ^= 1 << r.below(8)
        elif op == 1 and n:
            data[r.below(n)] = r.below(256)
        elif op == 2 and n:
            data[r.below(n)] = _INTERESTING[r.below(len(_INTERESTING))]
        elif op == 3:
            p = r.below(n + 1)
            data[p:p] = bytes(r.below(256) for _ in range(1 + r.below(8)))
        elif op == 4 and tokens:
            p = r.below(n + 1)
            data[p:p] = tokens[r.below(len(tokens))]
        elif op == 5 and n:
            p = r.below(n)
            data[p:p + 1 + r.below(8)] = b""
        elif op == 6 and n:
            p = r.below(n)
            q = p + 1 + r.below(16)
            data[q:q] = data[p:q]
        elif op == 7 and n:
            data[r.below(n + 1):] = b""
        elif op == 8:
            other = seeds[r.below(len(seeds))]
            if other:
                p = r.below(n + 1)
                data[p:] = other[r.below(len(other)):]
        elif n >= 2:
            # A length or count field set to a border value.
            p = r.below(n - 1)
            v = (0, 1, 0xFF, 0xFFFF, n, n + 1, n - 1)[r.below(7)] & 0xFFFF
            data[p] = v >> 8
            data[p + 1] = v & 0xFF
    return bytes(data[:max_len])
