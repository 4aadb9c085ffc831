"""How the EnOS client reaches the server: a CoAP client over plain UDP or over DTLS-PSK.

The EnOS client never builds sockets or sessions itself. It asks a transport for a CoAP
client with open(identity, psk) and drops it with close(); `secure` says which mode the
transport speaks. Opening a DTLS transport runs the handshake, which is the authentication
in DTLS mode (enos-coap.md §5.3), so a fatal alert there is an EnosAuthError; the plain transport ignores identity and psk, and the EnOS
client then sends POST /auth itself (§6.1). Tests pass their own transport.
"""
from enosnb.clock import SYSTEM
from enosnb.enos.errors import EnosAuthError, EnosConfigError


class PlainTransport:
    """CoAP over a datagram endpoint made by endpoint_factory() (e.g. UdpEndpoint or modem socket)."""

    secure = False

    def __init__(self, endpoint_factory, client_factory):
        self._endpoint_factory = endpoint_factory
        self._client_factory = client_factory
        self._endpoint = None

    def open(self, identity, psk):
        self.close()
        self._endpoint = self._endpoint_factory()
        return self._client_factory(self._endpoint)

    def close(self):
        if self._endpoint is not None:
            ep, self._endpoint = self._endpoint, None
            ep.close()


class DtlsTransport:
    """CoAP over a DtlsSession on a fresh datagram endpoint; open() runs the handshake."""

    secure = True

    def __init__(self, endpoint_factory, client_factory, session_factory=None, clock=SYSTEM,
                 timers=None):
        self._endpoint_factory = endpoint_factory
        self._client_factory = client_factory
        self._session_factory = session_factory
        self._clock = clock
        self._timers = timers
        self.session = None
        self._endpoint = None

    def open(self, identity, psk):
        self.close()
        factory = self._session_factory
        if factory is None:
            from enosnb.dtls.session import DtlsSession
            factory = DtlsSession
        self._endpoint = self._endpoint_factory()
        return self._start(identity, lambda: factory(self._endpoint, identity, psk,
                                                     clock=self._clock, timers=self._timers))

    def save(self):
        """The DTLS session state to keep across deep sleep (holds keys: store it like the PSK)."""
        return self.session.save() if self.session is not None else None

    def resume(self, identity, psk, blob):
        """After a wake: the saved session on a new endpoint, resumed with an abbreviated
        handshake (2 round trips with the first request; full handshake if the server
        refuses)."""
        from enosnb.dtls.session import DtlsSession
        self.close()
        self._endpoint = self._endpoint_factory()
        return self._start(identity, lambda: DtlsSession.restore(
            self._endpoint, identity, psk, blob, clock=self._clock, timers=self._timers))

    def _start(self, identity, make):
        from enosnb.dtls.errors import DtlsAlert
        try:
            self.session = make()
            # Abbreviated when the session holds a master secret (restored), else full.
            self.session.handshake()
        except DtlsAlert as e:
            self.close()
            # The handshake is EnOS's authentication (§5.3): a refused one means wrong keys.
            raise EnosAuthError("DTLS handshake as %s refused (%s): check productKey, "
                                "deviceKey, the secret and pskOffset" % (identity.decode(), e))
        except Exception:
            self.close()
            raise
        return self._client_factory(self.session)

    def close(self):
        s, self.session = self.session, None
        ep, self._endpoint = self._endpoint, None
        if s is not None:
            try:
                s.close()
            except Exception:
                pass
        if ep is not None:
            ep.close()


PLAIN_PORT = 5683
DTLS_PORT = 5684


def from_config(config, endpoint_for, client_factory, session_factory=None, clock=SYSTEM,
                timers=None):
    """The transport secrets.json asks for: "dtls" (default true), "host", "port_plain" (5683),
    "port_dtls" (5684), both ports configurable (enos-coap.md §3.1, Q1).

    endpoint_for(host, port) makes a datagram endpoint (UdpEndpoint, modem socket, ...).
    """
    host = config.get("host")
    if not host:
        raise EnosConfigError("host is missing: set it to coap-<your EnOS host name>")
    if config.get("dtls", True):
        port = config.get("port_dtls") or DTLS_PORT
        return DtlsTransport(lambda: endpoint_for(host, port), client_factory, session_factory,
                             clock, timers)
    port = config.get("port_plain") or PLAIN_PORT
    return PlainTransport(lambda: endpoint_for(host, port), client_factory)
