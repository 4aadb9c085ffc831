"""A failed cycle (docs/diagnostics.md): its status for the LED and the cycle line, "keys
refused" with what to check, and forgetting a refused activated secret (reactivate,
enos-coap.md §7 step 8). Imported by the app only when a cycle fails.
"""
import struct

from enosnb.coap.errors import CoapTimeout
from enosnb.config import ConfigError
from enosnb.diag import CONFIG, ERROR, KEYS, NETWORK, log
from enosnb.enos.errors import EnosAuthError, EnosCoapError, EnosConfigError
from enosnb.modem.errors import ModemError

KEYS_HINT = "check productKey, deviceKey and secret"


def classify(e):
    """The status a failure shows (LED, cycle line)."""
    if isinstance(e, (ConfigError, EnosConfigError)):
        return CONFIG
    if isinstance(e, EnosAuthError) or getattr(e, "refused", False):
        return KEYS
    if isinstance(e, EnosCoapError) and e.path.startswith("/auth") and e.coap_code < 0xA0:
        return KEYS  # 4.xx to /auth: unknown device or wrong sign
    if isinstance(e, (ModemError, CoapTimeout)) or type(e).__name__ in (
            "DtlsTimeout", "BudgetSpent"):
        return NETWORK
    return ERROR


def failed(app, e):
    """Called for every failure of the cycle (App._failed)."""
    status = classify(e)
    app.report["status"] = status
    app.report["exc"] = e
    every = app.secrets.diagnostics
    if every and not app._woke:
        # The power-on's report is still owed: the next cycle that reaches EnOS sends it.
        app.state.set("dgs", struct.pack(">I", every))
    if status != KEYS:
        return
    s = app.secrets
    activated = None
    if not s.device_secret and s.product_secret:
        from enosnb import activation
        activated = activation.secret(app)
    log("keys refused by the server: %s (identity %s,%s,%d,%d)" % (
        KEYS_HINT, s.product_key, s.device_key, 2 if s.device_secret or activated else 3,
        s.lifetime))
    if s.reactivate and activated:
        _count_refusal(app, s.reactivate)


def _count_refusal(app, limit):
    """After `limit` refused handshakes in a row with the activated deviceSecret (the device
    was deleted and created again in EnOS, say), forget it: the next cycle activates again."""
    n = app._u8("krf") + 1
    if n < limit:
        app._set_u8("krf", n)
        return
    import os
    from enosnb.activation import SECRET_FILE
    path = app._path(SECRET_FILE)
    for p in (path, path + ".tmp"):
        try:
            os.remove(p)
        except OSError:
            pass
    for key in ("krf", "dtls", "dtok"):
        app.state.delete(key)
    log("activated deviceSecret refused %d times in a row: forgotten; the next cycle "
        "activates again with the productSecret (reactivate)" % n)
