"""The diagnostics report (secrets.json "diagnostics"; docs/diagnostics.md): firmware and modem
versions, reset cause, signal, granted PSM timers, battery voltage, queue depth and dead
letters go to EnOS as attributes (thing.attribute.update, enos-coap.md §8.3) in a request of
their own, never inside a measurement post: a thing model without these attributes refuses
the request (EnOS code 1204), and that refusal must not cost a reading. Imported only when a
report is due.
"""
from enosnb.coap.errors import CoapError
from enosnb.diag import log
from enosnb.diag_boot import radio_stats, read_facts
from enosnb.dtls.errors import DtlsError
from enosnb.enos.errors import EnosError
from enosnb.modem.errors import ModemError


def attributes(app):
    """The attribute values known this cycle (names of firmware/thing-model.json)."""
    attrs = read_facts(app)
    r, m = app.report, app.modem
    if m is not None:
        attrs.update(radio_stats(m))
        g = getattr(m, "psm_granted", None)
        if g:
            if g[0] is not None:
                attrs["psm_t3412_s"] = g[0]
            attrs["psm_t3324_s"] = g[1]
    for key in ("rsrp_dbm", "sinr_db"):
        if key in attrs:
            attrs[key] = int(round(attrs[key]))
    if r.get("csq") is not None:
        attrs["csq"] = r["csq"]
    if r.get("battery_mv") is not None:
        attrs["battery_mv"] = r["battery_mv"]
    if app.store is not None:
        attrs["queue_depth"] = len(app.store)
    if r.get("dead_letters") is not None:
        attrs["dead_letters"] = r["dead_letters"]
    return attrs


def send(app):
    """One thing.attribute.update; True when EnOS took it. A refusal or a lost answer is
    logged and otherwise ignored."""
    try:
        app.enos.update_attributes(attributes(app))
        return True
    except (EnosError, CoapError, DtlsError, ModemError, OSError) as e:
        log("diagnostics not reported (%s: %s); the thing model needs the attributes of "
            "firmware/thing-model.json (docs/thing-model.md)" % (type(e).__name__, e))
        return False
