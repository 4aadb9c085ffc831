"""CoAP codec benchmark on the enos-coap.md §17 reference report.

Workload ("encode+decode"): the device's side of the §17 exchange, i.e. encode the 188-byte
CON POST request and decode the 40-byte piggybacked 2.04 ACK. On CPython it runs side by side
with aiocoap's codec (aiocoap.Message.encode / aiocoap.Message.decode) in the same process;
in the MicroPython VM (tools/benches/mpvm_codec.py) it gives µs per operation and the heap
bytes one encode+decode allocates. The request_roundtrip lines encode and decode the request
itself, for comparison.
"""
import os
import re
import subprocess
import sys
import timeit
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _ns_per_call(fns, number=2000, repeat=9):
    """Best time per call of each fn; the fns take turns in every round so that load from
    other processes falls on all of them alike."""
    best = [None] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t = timeit.timeit(fn, number=number)
            if best[i] is None or t < best[i]:
                best[i] = t
    return [b / number * 1e9 for b in best]


def cpython_figures():
    import aiocoap
    from aiocoap.numbers import Code, Type
    from enosnb.coap.message import decode
    from tools.benches.mpvm_codec import BODY, PATH, RESPONSE, TOKEN, reference_request

    ours = reference_request()
    theirs = aiocoap.Message(code=Code.POST, payload=BODY, content_format=50,
                             uri_path=tuple(PATH.strip("/").split("/")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs.mtype = Type.CON
        theirs.mid = 0x1234
        theirs.token = TOKEN
    request = ours.encode()
    if theirs.encode() != request or aiocoap.Message.decode(RESPONSE).payload != \
            decode(RESPONSE).payload:
        raise RuntimeError("aiocoap and enosnb disagree on the reference report")

    a_dec = aiocoap.Message.decode
    mine, other, mine_rt, other_rt = _ns_per_call([
        lambda: (ours.encode(), decode(RESPONSE)),
        lambda: (theirs.encode(), a_dec(RESPONSE)),
        lambda: decode(ours.encode()),
        lambda: a_dec(theirs.encode()),
    ])
    return [
        "codec.cpython.encode_decode_ns: %d ns" % mine,
        "codec.cpython.aiocoap_encode_decode_ns: %d ns" % other,
        "codec.cpython.speedup_vs_aiocoap: %.1f x" % (other / mine),
        "codec.cpython.request_roundtrip_ns: %d ns" % mine_rt,
        "codec.cpython.request_roundtrip_speedup_vs_aiocoap: %.1f x" % (other_rt / mine_rt),
    ]


def mpvm_figures():
    out = subprocess.run(
        ["node", os.path.join(ROOT, "tools", "mpvm", "run.mjs"),
         "--script", os.path.join(ROOT, "tools", "benches", "mpvm_codec.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError("mpvm_codec.py failed:\n" + out.stdout + out.stderr)
    lines = [ln for ln in out.stdout.splitlines() if re.match(r"^codec\.mpvm\.\w+: \S+ \S+$", ln)]
    if len(lines) < 3:
        raise RuntimeError("mpvm_codec.py printed no figures:\n" + out.stdout)
    return lines


def main():
    for line in cpython_figures() + mpvm_figures():
        print(line)
    sys.stdout.flush()


if __name__ == "__main__":
    for p in (ROOT, os.path.join(ROOT, "firmware", "lib"), os.path.join(ROOT, "tools", "host")):
        if p not in sys.path:
            sys.path.insert(0, p)
    main()
