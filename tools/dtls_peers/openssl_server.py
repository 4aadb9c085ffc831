"""`openssl s_server` as a DTLS 1.2 PSK peer (dtls.md §18.2).

It answers any identity with the one key (-psk_identity would only warn), prints what the
client sends on its stdout and sends each line written to its stdin to the client. It keeps
accepting connections one after the other and keeps a session cache, so a second connection
can resume the first one's session ("Reused session-id" in its output).
"""
import binascii
import shutil
import subprocess

from tools.dtls_peers.base import HOST, ProcessPeer, free_port

CIPHERS = {0xC0A8: "PSK-AES128-CCM8", 0x00AE: "PSK-AES128-CBC-SHA256"}


class OpensslServer(ProcessPeer):
    """openssl s_server -dtls1_2 -nocert -psk HEX [-psk_hint H] -cipher ... on a free port.

    key: PSK bytes; hint: None for no ServerKeyExchange; suites: suite numbers to allow
    (default CCM-8 only); mtu: forwarded to -mtu when given.
    """

    stdin = subprocess.PIPE

    def __init__(self, key, hint=None, suites=(0xC0A8,), mtu=None, extra=()):
        ProcessPeer.__init__(self)
        self.host = HOST
        self.key = key
        self.hint = hint
        self.suites = suites
        self.mtu = mtu
        self.extra = tuple(extra)
        self.ready = rb"ACCEPT"
        self.configure()

    def configure(self):
        self.port = free_port()
        argv = [shutil.which("openssl") or "openssl", "s_server", "-dtls1_2",
                "-accept", "%s:%d" % (HOST, self.port), "-nocert",
                "-psk", binascii.hexlify(self.key).decode(),
                "-cipher", ":".join(CIPHERS[s] for s in self.suites)]
        if self.hint is not None:
            argv += ["-psk_hint", self.hint]
        if self.mtu:
            argv += ["-mtu", str(self.mtu)]
        self.argv = argv + list(self.extra)
        self.udp_ports = (self.port,)

    def name(self):
        return "openssl s_server"

    def send_line(self, text):
        """Have the server send text (plus a newline) to the client as one record.

        Lines of one or two characters starting with a letter are s_server commands (Q quits,
        R renegotiates), so keep payloads longer than that."""
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()
