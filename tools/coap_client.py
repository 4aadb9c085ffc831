"""coap_client: a command-line CoAP client on the device's own stack (enosnb.coap.client).

In the manner of libcoap's coap-client:

  python tools/coap_client.py [-m get|post|put|delete] [-e TEXT | -f FILE] [-t FORMAT]
      [-A FORMAT] [-b SIZE] [--timing rfc|nbiot] [--ack-timeout MS] [--retransmit N]
      [-o FILE] [-v] [--psk-identity ID (--psk-key KEY | --psk-key-file FILE)]
      [--session FILE] [--auth PK/DK --device-secret-file FILE] URI

  URI   coap://host[:port]/path?query  (port 5683), coaps://... (port 5684, DTLS 1.2 PSK)

The response payload goes to stdout (or -o FILE); -v prints every datagram, decoded, and the
cost of the exchange to stderr (never a key). The block size defaults to 1024 bytes, as libcoap's
and aiocoap's clients use on a host; the device keeps its own (256, its modem's limit).
--session FILE keeps the DTLS session between runs (abbreviated handshake, RFC 5246 §7.3);
--auth signs in to an EnOS server in plain mode (POST /auth, enos-coap.md §6.1) on the same
socket as the request. Exit status: 0 for a 2.xx response, 1 for a 4.xx/5.xx
response, 2 for a usage error, 3 when the server did not answer (timeout), 4 for a reset or
any other CoAP or transport error.
"""
import argparse
import binascii
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (os.path.join(_ROOT, "firmware", "lib"), os.path.join(_ROOT, "tools", "host"), _ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from enosnb.coap import allcodes as codes  # noqa: E402
from enosnb.coap.client import NBIOT_TIMING, RFC_TIMING, Client, Timing  # noqa: E402
from enosnb.coap.errors import CoapError, CoapReset, CoapTimeout  # noqa: E402
from enosnb.coap.message import TYPE_NAMES, decode  # noqa: E402
from enosnb.enos import identity  # noqa: E402
from enosnb.enos.errors import EnosConfigError  # noqa: E402
from enosnb.udp import UdpEndpoint  # noqa: E402
from tools import psk_option, session_file  # noqa: E402

try:
    from enosnb.dtls.errors import DtlsError, DtlsTimeout
except ImportError:  # a build without the DTLS layer: coaps:// is refused in make_endpoint
    DtlsError = DtlsTimeout = None

SECRET_ENV = "ENOSNB_DEVICE_SECRET"
DEFAULT_BLOCK_SIZE = "1024"
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
_FAILURES = [(UsageError, "", EXIT_USAGE), (psk_option.PskError, "PSK: ", EXIT_USAGE),
             (EnosConfigError, "--auth: ", EXIT_USAGE), (CoapTimeout, "timeout: ", EXIT_TIMEOUT),
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


def make_endpoint(uri, args, notes=None):
    """The datagram endpoint for a URI: UDP for coap://, a DTLS 1.2 PSK session over UDP for
    coaps:// (--psk-identity and a key), resumed from --session FILE when it holds one for this
    server and identity. Appends what -v shows to `notes`. Raises UsageError for what the user
    must fix."""
    notes = [] if notes is None else notes
    scheme, host, port, _ = parse_uri(uri)
    if scheme == "coap":
        if args.session:
            raise UsageError("--session keeps a DTLS session: it needs a coaps:// URI")
        return UdpEndpoint(host, port)
    key, how = psk_option.read_key(args)
    if not args.psk_identity or key is None:
        raise UsageError("coaps:// needs --psk-identity and a PSK (--psk-key-file FILE, $%s "
                         "or --psk-key KEY)" % psk_option.ENV_VAR)
    notes.append("PSK: %s" % how)
    try:
        from enosnb.dtls import timers
        from enosnb.dtls.session import DtlsSession
    except ImportError:
        raise UsageError("coaps:// needs the DTLS layer (enosnb.dtls.session), which this "
                         "build does not have") from None
    # The handshake's retransmission profile follows --timing, like CoAP's.
    dtls_timers = timers.NBIOT if args.timing == "nbiot" else timers.LOOPBACK
    ident = args.psk_identity.encode()
    blob = None
    if args.session:
        try:
            blob = session_file.load(args.session, "%s:%d" % (host, port), args.psk_identity)
            if blob is None:
                notes.append("no saved session in %s yet: full handshake" % args.session)
        except session_file.SessionFileError as e:
            notes.append("%s: full handshake" % e)
    udp = UdpEndpoint(host, port)
    try:
        if blob is not None:
            try:
                session = DtlsSession.restore(udp, ident, key, blob, timers=dtls_timers)
            except DtlsError as e:
                notes.append("%s: full handshake" % e)
                blob = None
        if blob is None:
            session = DtlsSession(udp, ident, key, timers=dtls_timers)
            session.handshake()
        else:
            # The final flight goes out on its own: libcoap with OpenSSL holds back its answer
            # to data in the datagram that completes its handshake.
            session.resume(piggyback=False)
            notes.append("session resumed (abbreviated handshake)" if session.resumed else
                         "the server did not resume the saved session: full handshake")
    except Exception:
        udp.close()
        raise
    return session


def save_session(endpoint, args, notes):
    """Writes the established DTLS session to --session FILE (mode 0600)."""
    if not args.session or not getattr(endpoint, "established", False):
        return
    _, host, port, _ = parse_uri(args.uri)
    session_file.save(args.session, "%s:%d" % (host, port), args.psk_identity, endpoint.save())
    notes.append("session saved to %s (mode 0600: it holds the session keys)" % args.session)


def read_device_secret(args, environ=None):
    """The EnOS deviceSecret for --auth, from --device-secret-file or $ENOSNB_DEVICE_SECRET."""
    environ = os.environ if environ is None else environ
    if args.device_secret_file:
        try:
            with open(args.device_secret_file, encoding="utf-8") as f:
                secret = f.read().strip()
        except (OSError, UnicodeError) as e:
            raise UsageError("cannot read %s: %s" % (
                args.device_secret_file, getattr(e, "strerror", None) or e)) from None
    else:
        secret = environ.get(SECRET_ENV, "")
    if not secret:
        raise UsageError("--auth needs the device secret: --device-secret-file FILE or $%s"
                         % SECRET_ENV)
    return secret


def authenticate(client, args):
    """POST /auth/{pk}/{dk} with the sign (enos-coap.md §6.1) on the client's socket; the EnOS
    server binds the sender's address to the device for `lifetime` seconds. Returns the error
    line for a refusal, or None."""
    pk, sep, dk = args.auth.partition("/")
    if not sep or not pk or not dk or "/" in dk:
        raise UsageError("--auth %r: give PRODUCT_KEY/DEVICE_KEY" % args.auth)
    body = identity.auth_body(pk, dk, args.lifetime, read_device_secret(args))
    res = client.post(identity.auth_path(pk, dk), body, content_format=codes.JSON)
    if res.ok():
        return None
    return "/auth answered %s: check the product key, device key and device secret" % (
        codes.code_name(res.code))


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
    p.add_argument("-b", "--block-size", default=DEFAULT_BLOCK_SIZE, help="block size in bytes "
                   "for Block1 uploads and Block2 downloads: 16..1024, power of two (libcoap's "
                   "[num,]size also accepted); default %s, as host CoAP tools use (the device "
                   "uses 256)" % DEFAULT_BLOCK_SIZE)
    p.add_argument("--timing", choices=("rfc", "nbiot"), default="rfc",
                   help="retransmission profile: rfc (ACK_TIMEOUT 2 s) or nbiot (15 s)")
    p.add_argument("--ack-timeout", type=int, metavar="MS", help="override ACK_TIMEOUT (ms)")
    p.add_argument("--retransmit", type=int, metavar="N", help="override MAX_RETRANSMIT")
    p.add_argument("-o", "--output", help="write the response payload to FILE")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every datagram, decoded, and the exchange's cost to stderr")
    p.add_argument("--psk-identity", help="DTLS PSK identity (coaps://)")
    psk_option.add_arguments(p, what=" (coaps://)")
    p.add_argument("--session", metavar="FILE", help="coaps://: resume the DTLS session saved "
                   "in FILE (abbreviated handshake; a full one when the server declines) and "
                   "save the session there after the run. FILE holds the session keys: it is "
                   "written with mode 0600, keep it like the PSK")
    p.add_argument("--auth", metavar="PK/DK", help="sign in to an EnOS server first: POST "
                   "/auth/PK/DK with the sign, on the same socket as the request (plain "
                   "coap://, where the server binds the sender's address and port)")
    p.add_argument("--device-secret-file", metavar="FILE", help="--auth: read the EnOS "
                   "deviceSecret from FILE (else $%s)" % SECRET_ENV)
    p.add_argument("--lifetime", type=int, default=3600, metavar="S",
                   help="--auth: session lifetime in seconds (default 3600)")
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
    notes = []
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
            endpoint = make_endpoint(args.uri, args, notes)
        except OSError as e:
            stderr.write("coap_client: cannot reach %s: %s\n" % (args.uri, e))
            return EXIT_ERROR
        finally:
            if args.verbose:
                for note in notes:
                    stderr.write("# %s\n" % note)
            del notes[:]
        if args.session and psk_option.loose_permissions(args.session):
            stderr.write("coap_client: warning: %s can be read by other users; it holds "
                         "session keys (chmod 600 it)\n" % args.session)

        def trace(direction, data):
            stderr.write("%s %s\n" % ("->" if direction == "send" else "<-", describe(data)))

        client = Client(endpoint, timing=timing, block_szx=szx,
                        trace=trace if args.verbose else None)
        if args.verbose:
            stderr.write("# %s %s, %s\n" % (args.method.upper(), args.uri, timing))
        if args.auth:
            refused = authenticate(client, args)
            if refused:
                stderr.write("coap_client: %s\n" % refused)
                return EXIT_RESPONSE
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
            try:
                save_session(endpoint, args, notes)
            except OSError as e:
                stderr.write("coap_client: cannot save the session to %s: %s\n" % (
                    args.session, e.strerror))
            if args.verbose:
                for note in notes:
                    stderr.write("# %s\n" % note)
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
