"""Reliability of the CoAP client over a lossy link.

1000 confirmable POSTs, each with a unique id in its payload, to an aiocoap server (a real
CoAP server with RFC 7252 §4.5 message deduplication, in its own process) through
tools/lossy.LossyRelay: 30 % loss each way, 10 % duplication, 10 % reordering, seeded.
The server counts bodies it processed twice as new. Ten simulated devices run in parallel
(each its own socket and client, NSTART = 1 each) to keep the run short, and the timing is
the RFC profile scaled down (ACK_TIMEOUT 50 ms instead of 2 s; same ACK_RANDOM_FACTOR and
MAX_RETRANSMIT), which changes how long it takes, not which messages are lost.

Prints lossy.completed_pct, lossy.timed_out, lossy.double_processed,
lossy.mean_retransmissions; '#' lines explain the set-up and the figure to expect, and
report a second pass with the MAX_RETRANSMIT that 99 % completion needs at this loss.
"""
import json
import os
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(ROOT, "firmware", "lib"), os.path.join(ROOT, "tools", "host"), ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from enosnb.coap import allcodes as codes  # noqa: E402
from enosnb.coap.client import RFC_TIMING, Client, Timing  # noqa: E402
from enosnb.coap.errors import CoapError, CoapTimeout  # noqa: E402
from enosnb.udp import UdpEndpoint  # noqa: E402
from tools.lossy import LossyRelay  # noqa: E402
from tools.netutil import Process, wait_until  # noqa: E402

REQUESTS = 1000
DEVICES = 10
LOSS = 0.30
DUP = 0.10
REORDER = 0.10
SEED = 1
ACK_TIMEOUT_MS = 50


def _start_server():
    proc = Process([sys.executable, os.path.join(ROOT, "tools", "aiocoap_server.py")],
                   lines=True)
    try:
        wait_until(lambda: any(ln.startswith(b"port ") for ln in proc.lines), 30,
                   "aiocoap server", proc.proc)
    except RuntimeError:
        proc.stop()
        raise
    line = [ln for ln in proc.lines if ln.startswith(b"port ")][0]
    return proc, int(line.split()[1])


def _device(relay_port, timing, ids, results, lock):
    ep = UdpEndpoint("127.0.0.1", relay_port)
    try:
        client = Client(ep, timing=timing)
        for i in ids:
            try:
                res = client.post("/count", b"bench-%d" % i, content_format=codes.TEXT_PLAIN)
                outcome = "ok" if res.code == codes.CHANGED else "code"
                retrans = res.retransmissions
            except CoapTimeout as e:
                outcome, retrans = "timeout", e.result.retransmissions
            except CoapError as e:
                outcome, retrans = "error", e.result.retransmissions
            with lock:
                results.append((outcome, retrans))
    finally:
        ep.close()


def _run(timing, seed):
    """One pass: REQUESTS POSTs through a fresh relay and server; returns the figures."""
    proc, port = _start_server()
    started = time.monotonic()
    try:
        results, lock = [], threading.Lock()
        relay = LossyRelay(("127.0.0.1", port), loss=LOSS, dup=DUP, reorder=REORDER,
                           delay_ms=(0, 2), reorder_ms=20, seed=seed)
        try:
            threads = [threading.Thread(target=_device, args=(
                relay.port, timing, range(d, REQUESTS, DEVICES), results, lock))
                for d in range(DEVICES)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            relay.stop()
        ep = UdpEndpoint("127.0.0.1", port)
        try:
            stats = json.loads(Client(ep).get("/stats").payload)
        finally:
            ep.close()
    finally:
        proc.stop()
    completed = sum(1 for o, _ in results if o == "ok")
    timed_out = sum(1 for o, _ in results if o == "timeout")
    return {
        "completed_pct": 100.0 * completed / REQUESTS,
        "timed_out": timed_out,
        "other": len(results) - completed - timed_out,
        "double": stats["double"],
        "processed": stats["processed"],
        "mean_retransmissions": sum(r for _, r in results) / float(len(results)),
        "seconds": time.monotonic() - started,
    }


def _scaled(max_retransmit):
    return Timing(ack_timeout_ms=ACK_TIMEOUT_MS, ack_random_factor=RFC_TIMING.ack_random_factor,
                  max_retransmit=max_retransmit)


def main():
    timing = _scaled(RFC_TIMING.max_retransmit)
    print("# lossy: %d CON POSTs from %d parallel clients via a relay with %d %% loss each way,"
          " %d %% duplication, %d %% reordering (seed %d) to aiocoap"
          % (REQUESTS, DEVICES, LOSS * 100, DUP * 100, REORDER * 100, SEED))
    print("# lossy: scaled RFC timing: ACK_TIMEOUT %d ms (RFC: %d ms), ACK_RANDOM_FACTOR %s, "
          "MAX_RETRANSMIT %d" % (ACK_TIMEOUT_MS, RFC_TIMING.ack_timeout_ms,
                                 timing.ack_random_factor, timing.max_retransmit))
    r = _run(timing, SEED)
    print("lossy.completed_pct: %.1f %%" % r["completed_pct"])
    print("lossy.timed_out: %d" % r["timed_out"])
    print("lossy.double_processed: %d" % r["double"])
    print("lossy.mean_retransmissions: %.2f" % r["mean_retransmissions"])
    print("# lossy: %d other failures; server processed %d requests; %.1f s"
          % (r["other"], r["processed"], r["seconds"]))
    # One way, a datagram arrives if it, or its duplicate, survives the loss.
    p_way = (1 - DUP) * (1 - LOSS) + DUP * (1 - LOSS * LOSS)
    p_try = p_way * p_way
    tries = timing.max_retransmit + 1
    need = tries
    while 1 - (1 - p_try) ** need < 0.99:
        need += 1
    print("# lossy: a try gets through both ways with p = %.3f, so %d tries complete %.1f %% "
          "on average; 99 %% needs MAX_RETRANSMIT >= %d at this loss"
          % (p_try, tries, 100 * (1 - (1 - p_try) ** tries), need - 1))
    r = _run(_scaled(need - 1), SEED)
    print("# lossy: with MAX_RETRANSMIT %d: completed %.1f %%, timed out %d, double processed "
          "%d, mean retransmissions %.2f (%.1f s)"
          % (need - 1, r["completed_pct"], r["timed_out"], r["double"],
             r["mean_retransmissions"], r["seconds"]))


if __name__ == "__main__":
    main()
