"""CLI: `python -m tools.modem_emulator --dialect sim7020 [--pcap out.pcap]`.

Prints the pty path on the first line of stdout (then `ready`), runs until Ctrl-C or
SIGTERM. --faults takes a JSON file with a list of {"at": seconds, "fault": method, ...}.
"""
import argparse
import json
import signal
import sys
import threading

from . import ModemEmulator


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.modem_emulator", description=__doc__.splitlines()[0])
    ap.add_argument("--dialect", choices=("sim7020", "bc95"), default="sim7020")
    ap.add_argument("--pcap", help="write forwarded datagrams to this pcap file")
    ap.add_argument("--boot-time", type=float, default=0.05)
    ap.add_argument("--registration-delay", type=float, default=0.2)
    ap.add_argument("--cmd-delay", type=float, default=0.0)
    ap.add_argument("--urc-inside-prob", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--remote-host", default="127.0.0.1")
    ap.add_argument("--early-error", type=float, default=None, help="BC95: ERROR period after boot")
    ap.add_argument("--revision", help='firmware revision; BC95: "new" (B657SP3), "old" (B650), '
                    '"bc95g" or a full string')
    ap.add_argument("--psm-grant", choices=("request", "refuse"), default="request",
                    help="what the network grants for AT+CPSMS")
    ap.add_argument("--tz", type=int, default=32, help="network time zone, quarter hours")
    ap.add_argument("--faults", help="JSON file: list of scripted faults")
    ap.add_argument("--transcript", help="write the UART transcript (repr lines) here at exit")
    ap.add_argument("--nat", default="45",
                    help="carrier NAT binding lifetime in seconds, or none (default 45)")
    args = ap.parse_args(argv)

    kw = dict(boot_time=args.boot_time, registration_delay=args.registration_delay,
              cmd_delay=args.cmd_delay, urc_inside_prob=args.urc_inside_prob, seed=args.seed,
              remote_host=args.remote_host, pcap=args.pcap, nat=args.nat,
              psm_grant=args.psm_grant, tz=args.tz)
    if args.revision:
        kw["revision"] = args.revision
    if args.early_error is not None and args.dialect == "bc95":
        kw["early_error"] = args.early_error
    if args.faults:
        with open(args.faults) as f:
            kw["faults"] = json.load(f)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    emu = ModemEmulator(args.dialect, **kw)
    print(emu.port, flush=True)
    print("ready", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
        if args.transcript:
            with open(args.transcript, "w") as f:
                for direction, data in emu.transcript:
                    f.write("%s %r\n" % (direction, data))
        print(" ".join("%s=%s" % kv for kv in sorted(emu.counters().items())), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
