"""Our own DTLS 1.2 PSK client (dtls.md): DtlsSession wraps a datagram endpoint."""
from enosnb.dtls.errors import DtlsError, DtlsAlert, DtlsTimeout, DtlsClosed
from enosnb.dtls.session import DtlsSession, DtlsTransportError
from enosnb.dtls.timers import Timers, NBIOT, LOOPBACK

__all__ = ["DtlsError", "DtlsAlert", "DtlsTimeout", "DtlsClosed", "DtlsTransportError",
           "DtlsSession", "Timers", "NBIOT", "LOOPBACK"]
