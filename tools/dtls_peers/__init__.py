"""Launchers of real DTLS 1.2 PSK peers on free 127.0.0.1 ports, for interop tests and by hand
(dtls.md §18). Each is a context manager: entering starts the peer and waits until it
listens; leaving always stops it.

    OpensslServer(key, hint=None, suites=(0xC0A8,))      openssl s_server -dtls1_2 -nocert -psk
    LibcoapServer("openssl"|"gnutls", key, hint, loss)   coap-server-*, DTLS on .port
    MbedServer(key, identity, suites)                    python-mbedtls echo server
    TinydtlsServer(key, identity)                        aiocoap tinydtls_server, /hello, /echo
    BlackHole(), UdpRelay(server_port, drop=...)         silence; loss and wire logging
"""
from tools.dtls_peers.base import HOST, PeerError, free_port
from tools.dtls_peers.libcoap_server import BANNER, LibcoapServer
from tools.dtls_peers.mbed_server import MbedServer
from tools.dtls_peers.openssl_server import OpensslServer
from tools.dtls_peers.relay import C2S, S2C, BlackHole, UdpRelay, drop_nth
from tools.dtls_peers.tinydtls_server import HELLO, TinydtlsServer

__all__ = ["HOST", "PeerError", "free_port", "BANNER", "LibcoapServer", "MbedServer",
           "OpensslServer", "C2S", "S2C", "BlackHole", "UdpRelay", "drop_nth", "HELLO",
           "TinydtlsServer"]
