"""Start one DTLS peer by hand and print how to reach it with our client.

    .venv/bin/python -m tools.dtls_peers openssl  [--hint H] [--cbc] [--seconds N]
    .venv/bin/python -m tools.dtls_peers libcoap-openssl | libcoap-gnutls [--hint H] [--loss L]
    .venv/bin/python -m tools.dtls_peers mbedtls  [--cbc]
    .venv/bin/python -m tools.dtls_peers tinydtls

The peer runs until Ctrl-C (or --seconds); its output is echoed when it stops.
"""
import argparse
import binascii
import sys
import time

from tools.dtls_peers import LibcoapServer, MbedServer, OpensslServer, TinydtlsServer

KEY16 = bytes(range(16))
TEXT_KEY = b"secretPSK"


def build(args):
    suites = (0x00AE,) if args.cbc else (0xC0A8,)
    if args.peer == "openssl":
        return OpensslServer(KEY16, hint=args.hint, suites=suites), None
    if args.peer.startswith("libcoap-"):
        hint = "CoAP" if args.hint is None else args.hint
        return LibcoapServer(args.peer[8:], TEXT_KEY, hint=hint, loss=args.loss), "/"
    if args.peer == "mbedtls":
        return MbedServer(KEY16, suites=suites), None
    return TinydtlsServer(TEXT_KEY), "/hello"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.dtls_peers", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("peer", choices=("openssl", "libcoap-openssl", "libcoap-gnutls", "mbedtls",
                                     "tinydtls"))
    ap.add_argument("--hint", help="PSK identity hint (openssl, libcoap)")
    ap.add_argument("--cbc", action="store_true", help="allow only PSK-AES128-CBC-SHA256 "
                    "(openssl, mbedtls); default CCM-8 only")
    ap.add_argument("--loss", help="libcoap -l: e.g. 1,2 or 20%%")
    ap.add_argument("--seconds", type=float, default=3600)
    args = ap.parse_args(argv)
    peer, path = build(args)
    with peer:
        key = binascii.hexlify(peer.key).decode()
        print("%s listening on 127.0.0.1:%d (DTLS), identity Client_identity, key hex:%s"
              % (peer.name(), peer.port, key))
        if path:
            print("try: .venv/bin/python tools/coap_client.py -v --psk-identity Client_identity "
                  "--psk-key hex:%s coaps://127.0.0.1:%d%s" % (key, peer.port, path))
        else:
            print("try: .venv/bin/python -c \"import sys; sys.path[:0] = ['firmware/lib', "
                  "'tools/host']; from enosnb.udp import UdpEndpoint; from enosnb.dtls.session import "
                  "DtlsSession; from enosnb.dtls.timers import LOOPBACK; s = DtlsSession(UdpEndpoint('127.0.0.1', %d), "
                  "b'Client_identity', bytes(range(16)), timers=LOOPBACK); s.handshake(); "
                  "s.send(b'hello'); print(s.recv(3000)); s.close()\"" % peer.port)
        sys.stdout.flush()
        try:
            time.sleep(args.seconds)
        except KeyboardInterrupt:
            pass
    sys.stdout.write(peer.text())


if __name__ == "__main__":
    main()
