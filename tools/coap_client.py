"""coap_client: a command-line CoAP client on the device's own stack (enosnb.coap.client).

In the manner of libcoap's coap-client:

  python tools/coap_client.py [-m get|post|put|delete] [-e TEXT | -f FILE] [-t FORMAT]
      [-A FORMAT] [-b SIZE] [--timing rfc|nbiot] [--ack-timeout MS] [--retransmit N]
      [-o FILE] [-v] [--psk-identity ID --psk-key KEY] URI

  URI   coap://host[:port]/path?query  (port 5683), coaps://... (port 5684, DTLS 1.2 PSK)

The response payload goes to stdout (or -o FILE); -v prints every datagram, decoded, and the
cost of the exchange to stderr. Exit status: 0 for a 2.xx response, 1 for a 4.xx/5.xx
response, 2 for a usage error, 3 when the server did not answer (timeout), 4 for a reset or
any other CoAP or transport error.
"""
import argparse
import binascii
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (os.path.join(_ROOT, "firmware", "lib"), os.path.join(_ROOT, "tools", "host")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from enosnb.coap import codes  # noqa: E402
from enosnb.coap.client import NBIOT_TIMING, RFC_TIMING, Client, Timing  # noqa: E402
from enosnb.coap.errors import CoapError, CoapReset, CoapTimeout  # noqa: E402
from enosnb.coap.message import TYPE_NAMES, decode  # noqa: E402
from enosnb.udp import UdpEndpoint  # noqa: E402

try:
    from enosnb.dtls.errors import DtlsError, DtlsTimeout
except ImportError:  # a build without the DTLS layer: coaps:// is refused in make_endpoint
    DtlsError = DtlsTimeout = None

EXIT_OK, EXIT_RESPONSE, EXIT_USAGE, EXIT_TIMEOUT, EXIT_ERROR = 0, 1, 2, 3, 4

METHODS = {"get": codes.GET, "post": codes.POST, "put": codes.PUT, "delete": codes.DELETE}
FORMATS = {
    "text": codes.TEXT_PLAIN, "text/plain": codes.TEXT_PLAIN,
    "link": codes.LINK_FORMAT, "application/link-format": codes.LINK_FORMAT,
    "xml": codes.XML, "application/xml": codes.XML,
    "octet": codes.OCTET_STREAM, "application/octet-stream": codes.OCTET_STREAM,
    "exi": codes.EXI, "application/exi": codes.EXI,
    "json": codes.JSON, "application/json": codes.JSON,
    "cbor": codes.CBOR, "application/cbor": codes.CBOR,
}
OPTION_NAMES = {1: "If-Match", 3: "Uri-Host", 4: "ETag", 5: "If-None-Match", 6: "Observe",
                7: "Uri-Port", 8: "Location-Path", 11: "Uri-Path", 12: "Content-Format",
                14: "Max-Age", 15: "Uri-Query", 17: "Accept", 20: "Location-Query",
                23: "Block2", 27: "Block1", 28: "Size2", 35: "Proxy-Uri", 39: "Proxy-Scheme",
                60: "Size1", 258: "No-Response", 2100: "EnOS-Topic", 2102: "EnOS-Payload"}
_UINT_OPTIONS = (6, 7, 12, 14, 17, 28, 60, 258)
_BLOCK_OPTIONS = (23, 27)
_TEXT_OPTIONS = (3, 8, 11, 15, 20, 35, 39, 2100)


class UsageError(Exception):
    pass


# How each expected failure is reported: (exception class, message prefix, exit status), the
# first match wins.
_FAILURES = [(UsageError, "", EXIT_USAGE), (CoapTimeout, "timeout: ", EXIT_TIMEOUT),
             (CoapReset, "reset: ", EXIT_ERROR), (CoapError, "", EXIT_ERROR)]
if DtlsError is not None:
    _FAILURES += [(DtlsTimeout, "timeout: ", EXIT_TIMEOUT), (DtlsError, "DTLS: ", EXIT_ERROR)]


def parse_uri(uri):
    """coap[s]://host[:port]/path?query -> (scheme, host, port, "/path?query")."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in ("coap", "coaps"):
        raise UsageError("URI %r must start with coap:// or coaps://" % uri)
    hostport, slash, path = rest.partition("/")
    path = "/" + path if slash else "/"
    if "?" in hostport:
        hostport, _, q = hostport.partition("?")
        path = "/?" + q
    if hostport.startswith("["):
        host, _, tail = hostport[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    if not host:
        raise UsageError("URI %r has no host" % uri)
    try:
        port = int(port) if port else (5684 if scheme == "coaps" else 5683)
    except ValueError:
        raise UsageError("port %r in %r is not a number" % (port, uri)) from None
    if not 0 < port < 65536:
        raise UsageError("port %d is out of range" % port)
    return scheme, host, port, path


def parse_key(text):
    """--psk-key: "0x..." or "hex:..." is hex, anything else is the key's text, as libcoap's
    coap-client -k takes it (a bare "cafe" is four text bytes, never guessed to be hex)."""
    low = text.lower()
    prefix = 2 if low.startswith("0x") else (4 if low.startswith("hex:") else 0)
    if not prefix:
        return text.encode()
    t = text[prefix:]
    if t and len(t) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in t):
        return binascii.unhexlify(t)
    raise UsageError("--psk-key %s... must be an even number of hex digits" % text[:prefix])


def make_endpoint(uri, args, clock=None):
    """The datagram endpoint for a URI: UDP for coap://, a DTLS 1.2 PSK session over UDP for
    coaps:// (--psk-identity and --psk-key). Raises UsageError for what the user must fix."""
    scheme, host, port, _ = parse_uri(uri)
    if scheme == "coap":
        return UdpEndpoint(host, port)
    if not args.psk_identity or args.psk_key is None:
        raise UsageError("coaps:// needs --psk-identity and --psk-key")
    try:
        from enosnb.dtls import timers
        from enosnb.dtls.session import DtlsSession
    except ImportError:
        raise UsageError("coaps:// needs the DTLS layer (enosnb.dtls.session), which this "
                         "build does not have") from None
    # The handshake's retransmission profile follows --timing, like CoAP's.
    dtls_timers = timers.NBIOT if args.timing == "nbiot" else timers.LOOPBACK
    key = parse_key(args.psk_key)
    udp = UdpEndpoint(host, port)
    session = DtlsSession(udp, args.psk_identity.encode(), key, timers=dtls_timers)
    try:
        session.handshake()
    except Exception:
        udp.close()
        raise
    return session


def describe(data):
    """One line for a datagram: type, code, MID, token, options, payload."""
    try:
        m = decode(data)
    except CoapError as e:
        return "undecodable %d bytes (%s): %s" % (len(data), e,
                                                   binascii.hexlify(bytes(data)).decode())
    opts = []
    for num, val in m.options:
        name = OPTION_NAMES.get(num, "Option%d" % num)
        if num in _BLOCK_OPTIONS:
            v = int.from_bytes(val, "big") if val else 0
            shown = "%d/%d/%d" % (v >> 4, (v >> 3) & 1, 16 << (v & 7))
        elif num in _UINT_OPTIONS:
            shown = str(int.from_bytes(val, "big") if val else 0)
        elif num in _TEXT_OPTIONS:
            shown = val.decode("utf-8", "replace")
        else:
            shown = "0x" + binascii.hexlify(val).decode()
        opts.append("%s:%s" % (name, shown))
    text = "%s %s mid=%d token=%s [%s]" % (
        TYPE_NAMES[m.mtype], codes.code_name(m.code) if m.code else "0.00", m.mid,
        binascii.hexlify(m.token).decode() or "-", ", ".join(opts))
    if m.payload:
        p = bytes(m.payload)
        text += " payload %d bytes: %r" % (len(p), p[:64] + (b"..." if len(p) > 64 else b""))
    return text


def build_parser():
    p = argparse.ArgumentParser(
        prog="coap_client", description="CoAP client on the enosnb firmware stack.",
        epilog="exit status: 0 2.xx response, 1 4.xx/5.xx response, 2 usage error, "
               "3 no answer (timeout), 4 reset or other CoAP/transport error")
    p.add_argument("uri", help="coap://host[:port]/path?query or coaps://...")
    p.add_argument("-m", "--method", default="get", type=str.lower, choices=sorted(METHODS))
    src = p.add_mutually_exclusive_group()
    src.add_argument("-e", "--payload", help="request payload (text)")
    src.add_argument("-f", "--file", help="read the request payload from FILE ('-' = stdin)")
    p.add_argument("-t", "--content-format", help="Content-Format: number or name (json, text, "
                   "octet, cbor, link, xml)")
    p.add_argument("-A", "--accept", help="Accept: number or name")
    p.add_argument("-b", "--block-size", default="256", help="block size in bytes for Block1 "
                   "uploads and Block2 downloads: 16..1024, power of two (libcoap's "
                   "[num,]size also accepted); default 256")
    p.add_argument("--timing", choices=("rfc", "nbiot"), default="rfc",
                   help="retransmission profile: rfc (ACK_TIMEOUT 2 s) or nbiot (15 s)")
    p.add_argument("--ack-timeout", type=int, metavar="MS", help="override ACK_TIMEOUT (ms)")
    p.add_argument("--retransmit", type=int, metavar="N", help="override MAX_RETRANSMIT")
    p.add_argument("-o", "--output", help="write the response payload to FILE")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every datagram, decoded, and the exchange's cost to stderr")
    p.add_argument("--psk-identity", help="DTLS PSK identity (coaps://)")
    p.add_argument("--psk-key", help="DTLS PSK: hex with a 0x or hex: prefix, otherwise "
                   "the key's text as libcoap's -k takes it (coaps://)")
    return p


def _format(value, what):
    if value is None:
        return None
    if value.isdigit():
        n = int(value)
        if n > 0xFFFF:
            raise UsageError("%s %d does not fit 16 bits" % (what, n))
        return n
    try:
        return FORMATS[value.lower()]
    except KeyError:
        raise UsageError("unknown %s %r; use a number or one of %s"
                         % (what, value, ", ".join(sorted(set(FORMATS))))) from None


def _szx(text):
    size = text.rpartition(",")[2]
    if not size.isdigit() or int(size) not in [16 << i for i in range(7)]:
        raise UsageError("block size %r: use 16, 32, 64, 128, 256, 512 or 1024" % text)
    return [16 << i for i in range(7)].index(int(size))


def _timing(args):
    base = NBIOT_TIMING if args.timing == "nbiot" else RFC_TIMING
    if args.ack_timeout is None and args.retransmit is None:
        return base
    if (args.ack_timeout is not None and args.ack_timeout <= 0) or \
            (args.retransmit is not None and args.retransmit < 0):
        raise UsageError("--ack-timeout must be > 0 and --retransmit >= 0")
    return Timing(ack_timeout_ms=args.ack_timeout or base.ack_timeout_ms,
                  ack_random_factor=base.ack_random_factor,
                  max_retransmit=base.max_retransmit if args.retransmit is None
                  else args.retransmit)


def run(argv, stdout=None, stderr=None):
    stdout = stdout or sys.stdout.buffer
    stderr = stderr or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return EXIT_USAGE if e.code else EXIT_OK
    endpoint = None
    try:
        _, _, _, path = parse_uri(args.uri)
        if args.file is not None:
            try:
                if args.file == "-":
                    payload = sys.stdin.buffer.read()
                else:
                    with open(args.file, "rb") as f:
                        payload = f.read()
            except OSError as e:
                raise UsageError("cannot read %s: %s" % (args.file, e.strerror)) from None
        else:
            payload = (args.payload or "").encode()
        content_format = _format(args.content_format, "Content-Format")
        accept = _format(args.accept, "Accept")
        szx = _szx(args.block_size)
        timing = _timing(args)
        try:
            endpoint = make_endpoint(args.uri, args)
        except OSError as e:
            stderr.write("coap_client: cannot reach %s: %s\n" % (args.uri, e))
            return EXIT_ERROR

        def trace(direction, data):
            stderr.write("%s %s\n" % ("->" if direction == "send" else "<-", describe(data)))

        client = Client(endpoint, timing=timing, block_szx=szx,
                        trace=trace if args.verbose else None)
        if args.verbose:
            stderr.write("# %s %s, %s\n" % (args.method.upper(), args.uri, timing))
        res = client.request(METHODS[args.method], path, payload,
                             content_format=content_format, accept=accept)
    except Exception as e:
        for kind, what, code in _FAILURES:
            if isinstance(e, kind):
                stderr.write("coap_client: %s%s\n" % (what, e))
                return code
        raise
    finally:
        if endpoint is not None:
            endpoint.close()
    if args.verbose:
        stderr.write("# %s: sent %d datagrams (%d bytes), received %d (%d bytes), "
                     "%d retransmissions, %d round trips\n"
                     % (codes.code_name(res.code), res.datagrams_sent, res.bytes_sent,
                        res.datagrams_received, res.bytes_received, res.retransmissions,
                        res.round_trips))
    if args.output:
        with open(args.output, "wb") as f:
            f.write(res.payload)
    else:
        stdout.write(bytes(res.payload))
        stdout.flush()
    if not res.ok():
        stderr.write("coap_client: %s\n" % codes.code_name(res.code))
        return EXIT_RESPONSE
    return EXIT_OK


def main():
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
