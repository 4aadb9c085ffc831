"""libcoap 4.3.1 example servers as DTLS peers: coap-server-openssl and coap-server-gnutls
(dtls.md §18.3).

The server listens for plain CoAP on port P and for DTLS on P+1 (it also takes TCP P and
P+1 for CoAP over TCP/TLS, so all four must be free). A GET of `/` returns libcoap's banner.
`-k` takes the key as text, so keys here must be printable. `-l` drops datagrams the server
sends: "1,2" drops its 1st and 2nd, "20%" a fifth at random.
"""
import shutil

from tools.dtls_peers.base import HOST, ProcessPeer, free_port

BANNER = b"This is a test server made with libcoap"


class LibcoapServer(ProcessPeer):
    """coap-server-<backend> -A 127.0.0.1 -p P -k KEY [-h HINT] [-l LOSS] -v 9.

    backend: "openssl" or "gnutls"; key: printable bytes; hint: text sent as PSK identity
    hint (the server's default is "CoAP"; "" sends none); loss: the -l argument or None.
    .port is the DTLS port, .coap_port the plain one. The output shows "Using cipher: NAME"
    (OpenSSL back end) and "got psk_identity" lines at -v 9.
    """

    def __init__(self, backend, key, hint="CoAP", loss=None, verbosity=9):
        ProcessPeer.__init__(self)
        self.backend = backend
        self.host = HOST
        self.key = key
        self.hint = hint
        self.loss = loss
        self.verbosity = verbosity
        # It keeps running when a port is taken; it only says so (at -v 7 and up).
        self.failure = rb"cannot create|Address already in use"
        self.configure()

    def configure(self):
        self.coap_port = free_port(span=2, tcp=True)
        self.port = self.coap_port + 1
        exe = "coap-server-" + self.backend
        argv = [shutil.which(exe) or exe, "-A", HOST, "-p", str(self.coap_port),
                "-k", self.key.decode(), "-h", self.hint, "-v", str(self.verbosity)]
        if self.loss:
            argv += ["-l", self.loss]
        self.argv = argv
        self.udp_ports = (self.coap_port, self.port)
        if self.verbosity >= 7:
            self.ready = b"created DTLS endpoint %s:%d" % (HOST.encode(), self.port)

    def name(self):
        return "coap-server-" + self.backend
