"""Launcher of the python-mbedtls DTLS PSK echo server (mbed_psk_server.py, dtls.md §18.4).

Mbed TLS 2.28 returns 32-byte session IDs, but python-mbedtls 2.10.1 configures no session
cache, so a resumption attempt always falls back to a full handshake: the peer for fallback
tests. python-mbedtls 2.10.1 exposes no Connection ID (RFC 9146) setting, so CID cannot be
tested against it.
"""
import binascii
import os
import sys
import tempfile

from tools.dtls_peers.base import HOST, ProcessPeer, free_port

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mbed_psk_server.py")
_NAMES = {0xC0A8: "ccm8", 0x00AE: "cbc"}


class MbedServer(ProcessPeer):
    """python -P mbed_psk_server.py PORT on a free port (.port); see that script's docstring.

    key: PSK bytes; identity: bytes the server knows; suites: suite numbers it allows;
    connections: how many handshakes it serves in turn (0: any number)."""

    def __init__(self, key, identity=b"Client_identity", suites=(0xC0A8, 0x00AE),
                 connections=0, lifetime=120):
        ProcessPeer.__init__(self)
        self.host = HOST
        self.key = key
        self.identity = identity
        self.suites = suites
        self.connections = connections
        self.lifetime = lifetime
        # -P and a neutral cwd keep mbedtls's hashlib.py/hmac.py off the front of sys.path.
        self.cwd = tempfile.gettempdir()
        self.ready = rb"listening \d+"
        self.configure()

    def configure(self):
        self.port = free_port()
        self.argv = [sys.executable, "-P", "-u", SCRIPT, str(self.port),
                     "--identity", self.identity.decode(),
                     "--key", binascii.hexlify(self.key).decode(),
                     "--ciphers", ",".join(_NAMES[s] for s in self.suites),
                     "--connections", str(self.connections), "--lifetime", str(self.lifetime)]
        self.udp_ports = (self.port,)

    def name(self):
        return "python-mbedtls server"
