"""Runs inside the MicroPython VM (node tools/mpvm/run.mjs --script): times the codec on the
enos-coap.md §17 reference report and counts heap bytes allocated, gc paused, after a
warm-up. Prints `name: value unit` lines that tools/benches/bench_codec.py passes on.

Figures: the device's side of the §17 exchange (encode the 188-byte request, decode the
40-byte 2.04 response) and, as request_roundtrip, encode+decode of the request itself.

The reference exchange is defined here once; bench_codec.py imports it for the CPython side.
"""
import binascii
import gc
import sys
import time

from enosnb.coap import allcodes as codes, options
from enosnb.coap.message import CON, Message, decode

PATH = "/topic/sys/MuGsF6W4/15bBZlRknc/thing/measurepoint/post"
BODY = (b'{"id":"1","version":"1.0","method":"thing.measurepoint.post",'
        b'"params":{"measurepoints":{"temp":21.5},"time":1764115200000}}')
TOKEN = b"\xa1\xb2\xc3\xd4"
RESPONSE = binascii.unhexlify(
    "64441234a1b2c3d4ff7b226964223a2231222c22636f6465223a3230302c2264617461223a7b7d7d")


def reference_request():
    """The §17 request: CON POST, message ID 0x1234, the token, Uri-Path, Content-Format JSON."""
    msg = Message(CON, codes.POST, 0x1234, TOKEN, BODY)
    msg.set_path(PATH)
    msg.add_option(options.CONTENT_FORMAT, codes.JSON)
    return msg


def per_op_us(fn, arg, rounds):
    best = None
    for _ in range(5):
        t0 = time.ticks_us()
        for _ in range(rounds):
            fn(arg)
        dt = time.ticks_diff(time.ticks_us(), t0)
        if best is None or dt < best:
            best = dt
    return best / rounds


def allocated(fn):
    fn()
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    fn()
    after = gc.mem_alloc()
    gc.enable()
    return after - before


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    msg = reference_request()
    request = msg.encode()
    assert len(request) == 188 and decode(RESPONSE).code == codes.CHANGED

    enc = per_op_us(Message.encode, msg, rounds)
    dec = per_op_us(decode, RESPONSE, rounds)
    dec_req = per_op_us(decode, request, rounds)
    alloc = allocated(lambda: decode(RESPONSE) and msg.encode())
    alloc_req = allocated(lambda: decode(msg.encode()))

    print("codec.mpvm.encode_us: %.1f us" % enc)
    print("codec.mpvm.decode_us: %.1f us" % dec)
    print("codec.mpvm.alloc_bytes: %d B" % alloc)
    print("codec.mpvm.request_roundtrip_decode_us: %.1f us" % dec_req)
    print("codec.mpvm.request_roundtrip_alloc_bytes: %d B" % alloc_req)


if __name__ == "__main__":
    main()
