"""dtls_client: our DTLS 1.2 PSK client by hand, in the manner of `openssl s_client -dtls1_2`.

  python tools/dtls_client.py HOST PORT --identity ID (--psk KEY | --psk-file FILE)
      [--suite ccm8|cbc|both] [--timers loopback|nbiot] [--cid] [--resume] [-v]

The PSK follows the same rule as tools/coap_client.py (tools/psk_option.py): hex when it starts
with 0x or hex: or is an even number of hex digits, text when it starts with text: or is anything
else; from --psk, --psk-file or $ENOSNB_PSK_KEY. -v names how it was read, never the key. Each line typed on stdin is
sent as one application record; every record received is printed. --resume saves the session
after the first handshake, reconnects from a new port and resumes it (RFC 5246 §7.3).
End with Ctrl-D (sends close_notify).
"""
import argparse
import os
import select
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (os.path.join(_ROOT, "firmware", "lib"), os.path.join(_ROOT, "tools", "host"), _ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from enosnb.dtls.errors import DtlsError  # noqa: E402
from enosnb.dtls.session import DtlsSession  # noqa: E402
from enosnb.dtls.timers import LOOPBACK, NBIOT  # noqa: E402
from enosnb.udp import UdpEndpoint  # noqa: E402
from tools import psk_option  # noqa: E402

SUITES = {"ccm8": (0xC0A8,), "cbc": (0x00AE,), "both": (0xC0A8, 0x00AE)}


def describe(s):
    return "suite %04X, EMS %s, hint %r, session id %d bytes, CID %s, resumed %s" % (
        s.suite, s.extended_master_secret, s.psk_identity_hint, len(s.session_id),
        s.cid.hex() if s.cid else "-", s.resumed)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--identity", required=True)
    psk_option.add_arguments(ap, key_flags=("--psk", "--psk-key"),
                             file_flags=("--psk-file", "--psk-key-file"))
    ap.add_argument("--suite", choices=sorted(SUITES), default="both")
    ap.add_argument("--timers", choices=("loopback", "nbiot"), default="loopback")
    ap.add_argument("--cid", action="store_true", help="offer a Connection ID (RFC 9146)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="say how the PSK was read (never the key)")
    a = ap.parse_args(argv)
    timers = LOOPBACK if a.timers == "loopback" else NBIOT
    try:
        key, how = psk_option.read_key(a)
    except psk_option.PskError as e:
        print("dtls_client: PSK: %s" % e, file=sys.stderr)
        return 2
    if key is None:
        print("dtls_client: give the PSK: --psk-file FILE, $%s or --psk KEY"
              % psk_option.ENV_VAR, file=sys.stderr)
        return 2
    if a.verbose:
        print("# PSK: %s" % how, file=sys.stderr)
    try:
        s = DtlsSession(UdpEndpoint(a.host, a.port), a.identity.encode(), key, timers=timers,
                        suites=SUITES[a.suite], cid=a.cid)
        s.handshake()
        print("# handshake done: " + describe(s), file=sys.stderr)
        if a.resume:
            blob = s.save()
            s.close()
            s = DtlsSession.restore(UdpEndpoint(a.host, a.port), a.identity.encode(), key, blob,
                                    timers=timers)
            s.resume(piggyback=False)
            print("# resumed: " + describe(s), file=sys.stderr)
        while True:
            ready, _, _ = select.select([sys.stdin], [], [], 0.1)
            if ready:
                line = sys.stdin.buffer.readline()
                if not line:
                    break
                s.send(line)
            data = s.recv(100)
            while data is not None:
                sys.stdout.buffer.write(data)
                sys.stdout.flush()
                data = s.recv(0)
        s.close()
    except DtlsError as e:
        print("dtls_client: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
