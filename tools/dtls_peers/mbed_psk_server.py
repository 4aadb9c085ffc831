"""DTLS 1.2 PSK echo server on python-mbedtls 2.10.x (Mbed TLS 2.28) for loopback interop tests.

dtls.md §18.4. Run it as a script with `python -P` from outside the mbedtls package
directory: that package ships hashlib.py, hmac.py and secrets.py, which would shadow the
standard library if its directory came first on sys.path.

    python -P mbed_psk_server.py PORT [--identity ID] [--key HEX] [--ciphers ccm8,cbc]
                                      [--connections N] [--lifetime S]

It serves N connections one after the other (0: until the lifetime ends). For each one it does
the cookie exchange (the first ClientHello always ends in HelloVerifyRequest), the handshake,
then echoes every datagram until close_notify, an error, or 10 s of silence; after echoing a
datagram that is exactly `bye` it ends the connection itself with close_notify.

Output lines: `listening PORT`, `cipher: NAME`, `echo: N bytes`, `closed`, `sent close_notify`,
`error: TEXT`. The server has no session cache: python-mbedtls 2.10.1 never calls
mbedtls_ssl_conf_session_cache, so it sends a 32-byte session ID but answers every resumption
attempt with a full handshake.
"""
import argparse
import binascii
import signal
import socket
import sys

from mbedtls.exceptions import TLSError
from mbedtls.tls import (DTLSConfiguration, DTLSVersion, HelloVerifyRequest, ServerContext,
                         WantReadError, WantWriteError)

# MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY: the client ended the session properly.
PEER_CLOSE_NOTIFY = 0x7880
# A datagram with exactly this payload is echoed, then the server closes with close_notify.
BYE = b"bye"
SUITES = {"ccm8": "TLS-PSK-WITH-AES-128-CCM-8", "cbc": "TLS-PSK-WITH-AES-128-CBC-SHA256"}


def say(*words):
    print(*words, flush=True)


def blocking(call, *args):
    while True:
        try:
            return call(*args)
        except (WantReadError, WantWriteError):
            pass


def flush(conn):
    """Sends what Mbed TLS queued outside send(): python-mbedtls's recv() never does, so a
    repeated server flight (RFC 6347 §4.2.4: the client's Finished came again because our
    CCS + Finished was lost) would otherwise stay in the wrapper's buffer."""
    pending = conn._buffer.peek_outgoing(4096)
    while pending:
        conn._socket.send(pending)
        conn._buffer.consume_outgoing(len(pending))
        pending = conn._buffer.peek_outgoing(4096)


def receive(conn):
    while True:
        try:
            return conn.recv(4096)
        except (WantReadError, WantWriteError):
            flush(conn)


def accept(listener):
    conn, addr = listener.accept()
    conn.setcookieparam(addr[0].encode())
    return conn


def serve_one(listener, idle_s):
    conn = accept(listener)
    try:
        blocking(conn.do_handshake)
    except HelloVerifyRequest:
        conn.close()
        conn = accept(listener)
        blocking(conn.do_handshake)
    try:
        say("cipher:", conn.cipher()[0] if isinstance(conn.cipher(), tuple) else conn.cipher())
        conn.settimeout(idle_s)
        while True:
            try:
                data = receive(conn)
            except TLSError as e:
                if e.err != PEER_CLOSE_NOTIFY:
                    raise
                data = b""
            if not data:
                say("closed")
                return
            say("echo:", len(data), "bytes")
            blocking(conn.send, data)
            if data == BYE:
                conn._buffer.shutdown()      # queues close_notify; flush() puts it on the wire
                flush(conn)
                say("sent close_notify")
                return
    finally:
        conn.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port", type=int, nargs="?", default=44340)
    ap.add_argument("--identity", default="Client_identity")
    ap.add_argument("--key", default="000102030405060708090a0b0c0d0e0f", help="PSK in hex")
    ap.add_argument("--ciphers", default="ccm8,cbc")
    ap.add_argument("--connections", type=int, default=1)
    ap.add_argument("--lifetime", type=float, default=120.0)
    ap.add_argument("--idle", type=float, default=10.0)
    args = ap.parse_args(argv)

    signal.signal(signal.SIGALRM, lambda *_: sys.exit(0))
    signal.setitimer(signal.ITIMER_REAL, args.lifetime)

    conf = DTLSConfiguration(
        pre_shared_key_store={args.identity: binascii.unhexlify(args.key)},
        ciphers=[SUITES[c] for c in args.ciphers.split(",")],
        validate_certificates=False,
        lowest_supported_version=DTLSVersion.DTLSv1_2,
        highest_supported_version=DTLSVersion.DTLSv1_2,
        handshake_timeout_min=0.5, handshake_timeout_max=4.0)
    listener = ServerContext(conf).wrap_socket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    # accept() re-binds a fresh socket to the listening address after handing the old one over.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    say("listening", args.port)
    served = 0
    while args.connections == 0 or served < args.connections:
        try:
            serve_one(listener, args.idle)
        except Exception as e:  # one bad client must not end the server
            say("error:", type(e).__name__, getattr(e, "msg", "") or e)
        served += 1
    listener.close()


if __name__ == "__main__":
    main()
