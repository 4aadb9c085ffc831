""".mpy (version 6) contents, and what loading a module puts in RAM in each deployment mode.

The .mpy v6 layout (MicroPython docs, "MicroPython .mpy files"; py/persistentcode.c): a 4-byte
header, the qstr table, the constant-object table, then the tree of raw code (bytecode of the
module body and of every function and class body, each with its children).

What the loader allocates on the GC heap (32-bit port, 16-byte GC blocks):
- `.mpy` copied to the file system: the qstr + object tables, every constant object, one
  raw-code record and one children array per function, the bytecode itself, and the text of
  every new qstr.
- ROMFS (the file is memory-mapped): bytecode and strings stay in flash; the tables, the
  raw-code records, children arrays and a small str/bytes object per constant that is not
  already a qstr are still made in RAM, and every new qstr takes an entry in a qstr pool.
- frozen into the image: all of the above is static data in flash.
So `frozen_savings()` below is what a frozen module saves over the same module in a ROMFS:
the RAM figure of a frozen build is estimated as the measured ROMFS figure less these bytes
(and less the growth of the qstr pools, which the VM measures). Everything a module's body
creates when it runs (module dict, function and class objects, tables built at import) is
RAM in every mode and stays in the estimate.
"""
import os

GC_BLOCK = 16
WORD = 4
# py/persistentcode.h, MP_PERSISTENT_OBJ_*.
OBJ_NONE, OBJ_FALSE, OBJ_TRUE, OBJ_ELLIPSIS = 1, 2, 3, 4
OBJ_STR, OBJ_BYTES, OBJ_INT, OBJ_FLOAT, OBJ_COMPLEX, OBJ_TUPLE = 5, 6, 7, 8, 9, 10
RAW_CODE_BYTES = 16   # mp_raw_code_t on a 32-bit port: header, fun_data, children, type_sig
STR_OBJ_BYTES = 16    # mp_obj_str_t: base, hash, len, data pointer
FLOAT_OBJ_BYTES = 16  # boxed float (object representation A, as on the ESP32)


class MpyError(ValueError):
    pass


def blocks(n):
    """Bytes the GC hands out for an n-byte allocation (whole 16-byte blocks)."""
    return 0 if n <= 0 else (n + GC_BLOCK - 1) // GC_BLOCK * GC_BLOCK


class _Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def byte(self):
        if self.pos >= len(self.data):
            raise MpyError("truncated .mpy")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uint(self):
        n = 0
        while True:
            b = self.byte()
            n = (n << 7) | (b & 0x7F)
            if not b & 0x80:
                return n

    def take(self, n):
        if self.pos + n > len(self.data):
            raise MpyError("truncated .mpy")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out


def parse(data):
    """Counts of one .mpy file: {qstrs: [text], objs: [(type, payload)], raw_codes,
    children_arrays: [n], bytecode_bytes: [len]}. MpyError on anything but bytecode-only v6."""
    r = _Reader(data)
    head = r.take(4)
    if head[0:1] != b"M" or head[1] != 6:
        raise MpyError("not a version 6 .mpy file")
    n_qstr, n_obj = r.uint(), r.uint()
    qstrs = []
    for _ in range(n_qstr):
        n = r.uint()
        if n & 1:
            continue  # a static qstr of the firmware: no RAM
        qstrs.append(r.take(n >> 1).decode())
        r.byte()
    objs = [_obj(r) for _ in range(n_obj)]
    out = {"qstrs": qstrs, "n_qstr": n_qstr, "n_obj": n_obj, "objs": objs, "raw_codes": 0,
           "children_arrays": [], "bytecode_bytes": []}
    _raw_code(r, out)
    if r.pos != len(data):
        raise MpyError("%d bytes after the raw code tree" % (len(data) - r.pos))
    return out


def _obj(r):
    t = r.byte()
    if t in (OBJ_NONE, OBJ_FALSE, OBJ_TRUE, OBJ_ELLIPSIS):
        return (t, None)
    n = r.uint()
    if t == OBJ_TUPLE:
        return (t, [_obj(r) for _ in range(n)])
    payload = r.take(n)
    if t in (OBJ_STR, OBJ_BYTES):
        r.byte()
    elif t not in (OBJ_INT, OBJ_FLOAT, OBJ_COMPLEX):
        raise MpyError("unknown constant type %d (native code is not expected here)" % t)
    return (t, payload)


def _raw_code(r, out):
    kind_len = r.uint()
    if kind_len & 3:
        raise MpyError("native code in the .mpy: the package is bytecode only")
    n = kind_len >> 3
    r.take(n)
    out["raw_codes"] += 1
    out["bytecode_bytes"].append(n)
    if kind_len & 4:
        k = r.uint()
        out["children_arrays"].append(k)
        for _ in range(k):
            _raw_code(r, out)


def _obj_ram(obj, known_qstrs, romfs):
    t, payload = obj
    if t == OBJ_STR and payload.decode("utf-8", "replace") in known_qstrs:
        return 0  # loaded as the existing qstr
    if t in (OBJ_STR, OBJ_BYTES):
        if not payload:
            return 0
        return STR_OBJ_BYTES if romfs else STR_OBJ_BYTES + blocks(len(payload) + 1)
    if t == OBJ_FLOAT:
        return FLOAT_OBJ_BYTES
    if t in (OBJ_INT, OBJ_COMPLEX):
        return blocks(12 + len(payload) // 2)  # a big int or complex: object plus digits
    if t == OBJ_TUPLE:
        return blocks(2 * WORD + WORD * len(payload)) + sum(
            _obj_ram(o, known_qstrs, romfs) for o in payload)
    return 0


def load_structures(info, known_qstrs=()):
    """Bytes of the tables, constant objects, raw-code records and children arrays the loader
    makes in RAM from a memory-mapped .mpy (ROMFS); a frozen module has them all in flash."""
    tables = blocks((info["n_qstr"] * 2 + WORD - 1) // WORD * WORD + info["n_obj"] * WORD)
    objs = sum(_obj_ram(o, known_qstrs, True) for o in info["objs"])
    raw = info["raw_codes"] * RAW_CODE_BYTES + sum(blocks(WORD * k)
                                                   for k in info["children_arrays"])
    return tables + objs + raw


def copied_extra(info, known_qstrs=()):
    """What a copied .mpy costs beyond the same module memory-mapped from ROMFS: the bytecode
    and the text of constants in RAM (qstr text excluded: the VM measures qstr memory)."""
    code = sum(blocks(n) for n in info["bytecode_bytes"])
    objs = sum(_obj_ram(o, known_qstrs, False) - _obj_ram(o, known_qstrs, True)
               for o in info["objs"])
    return code + objs


def frozen_savings(info, known_qstrs=()):
    return load_structures(info, known_qstrs)


def parse_tree(root):
    """{module name: parse()} for every .mpy under root (root/enosnb/x.mpy -> enosnb.x)."""
    out = {}
    for d, _, files in os.walk(root):
        for f in sorted(files):
            if not f.endswith(".mpy"):
                continue
            rel = os.path.relpath(os.path.join(d, f), root)[:-4].replace(os.sep, ".")
            if rel.endswith(".__init__"):
                rel = rel[:-len(".__init__")]
            with open(os.path.join(d, f), "rb") as fh:
                out[rel] = parse(fh.read())
    return out
