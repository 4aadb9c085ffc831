"""The radio phase of a cycle: the modem driver on the board's UART, power and registration,
the clock from the network, the PSM request, and the UDP socket to the server (modems.md).

App.bring_up_modem() runs it after the reading is queued; finish() calls radio_off() when a
back-off begins. The driver's AT dialogues are enosnb.modem's.
"""
import struct

from enosnb import diag
from enosnb.app import _err, log, now_ms
from enosnb.modem.errors import ModemError


def driver(app):
    """The modem driver on the board's UART, its control lines released from their
    deep-sleep hold (enosnb.power)."""
    from enosnb.modem import driver
    m = app._mach()
    b = app.board
    if b.power_enable or b.pwrkey or b.reset:
        from enosnb import power
        power.release(m, b)
    if app.uart is None:
        app.uart = m.UART(b.uart["id"], **b.uart_kwargs())
    # What the driver learnt about this module in earlier cycles (revision, refusals).
    return driver(b.modem)(app.uart, app.clock, memory=app.state.get("modem"),
                           **b.modem_kwargs())


def bring_up(app):
    """Power, registration, the clock (when the RTC is unset), PSM as granted."""
    b = app.board
    app.modem = app._driver()
    app.state.delete("roff")
    app.modem.power_on()
    app.modem.init()
    if not app._woke:
        # The module may still hold sockets from before this reset (modems.md §6.2).
        app.modem.cold_start()
        app.state.delete("sock")
        app._restored_sock = None
    if app.secrets.uses_imei:
        app.secrets.set_device_key(app.modem.imei())
    t = app.tune
    app.modem.attach(app.secrets.apn or None, b.bands,
                     app.clock.clip(t["attach_timeout_ms"]),
                     t["first_attach_timeout_ms"], lambda ms: _scan_budget(app, ms))
    if now_ms() is None:
        sync_clock(app)
    _power_saving(app)


def _scan_budget(app, ms):
    """A module scanning every band may take minutes: this cycle's budget grows."""
    log("first attach: the modem scans its bands, up to %d s" % (ms // 1000))
    app.clock.extend(ms + 10000)


def _power_saving(app):
    """PSM as granted (modems.md §5): asked once per power-on with the shortest useful
    active time and eDRX off; the grant is read back (every AT+CEREG? carries it), kept
    in the state and reported."""
    st = app.state
    t = app.tune
    if not st.get("psm"):
        try:
            app.modem.psm(t["psm_tau_s"], t["psm_active_s"])
        except ModemError as e:
            log("PSM request refused: %s" % _err(e))
    g = app.modem.psm_granted
    if g is None:
        text = st.get("psm") or b"?"  # the last known grant, or unknown
    elif g is False:
        text = b"refused"
    else:
        text = ("%s,%d" % ("-" if g[0] is None else g[0], g[1])).encode()
    if text != st.get("psm"):
        log("PSM: " + ("refused by the network, the radio goes off between reports"
                       if g is False else "the module does not say what was granted"
                       if g is None else "granted TAU %s s, active time %d s" % (
                           "-" if g[0] is None else g[0], g[1])))
    st.set("psm", text)
    app.report["psm"] = text.decode()


def off_between_reports(app):
    """True when the network refused PSM or granted an active time so long the module
    would idle in DRX: then switching the radio off costs less than keeping it."""
    p = app.report.get("psm")
    if p == "refused":
        return True
    try:
        return int(p.split(",")[1]) > app.tune["psm_max_active_s"]
    except (AttributeError, IndexError, ValueError):
        return False  # unknown: keep the radio as it is


def sync_clock(app):
    """Sets the RTC from the modem's network time (NITZ) so queued readings carry
    their real time; the RTC keeps it through deep sleep. Best effort."""
    try:
        t = app.modem.network_time()
    except ModemError:
        t = None
    if t is None:
        log("no network time: readings are sent without a timestamp")
        return
    app._mach().RTC().datetime(t)


def server_ip(app):
    host = app.secrets.host
    cached = app.state.get("ip")
    if cached and cached.split(b"|")[0] == host.encode():
        return cached.split(b"|")[1].decode()
    from enosnb.modem.base import is_ipv4
    ip = host if is_ipv4(host) else app.modem.resolve(
        host, app.clock.clip(app.modem.DNS_TIMEOUT_MS))
    app.state.set("ip", host.encode() + b"|" + ip.encode())
    return ip


def endpoint(app):
    """The modem UDP socket to the server: the one kept over the sleep, else a new one."""
    if app.sock is not None and not app.sock.closed:
        return diag.metered(app, app.sock)
    ip = server_ip(app)
    port = app.secrets.port
    saved = app.state.get("sock")
    app.state.delete("sock")
    app.sock = None
    if saved and len(saved) == 3:
        sid, sport = struct.unpack(">BH", saved)
        if sport == port:
            # Kept open on the module over the deep sleep; if the module lost it, the
            # driver's first send fails once, drops it and opens a new one.
            app.sock = app.modem.adopt_socket(sid, ip, port)
            app.report["socket"] = "kept"
    if app.sock is None:
        app.sock = app.modem.socket(ip, port)
        app.report["socket"] = "new"
    return diag.metered(app, app.sock)


def radio_off(app):
    """AT+CFUN=0 for a back-off: an unregistered modem would search the whole time."""
    app.clock.limit_ms = min(app.clock.budget_ms or 1 << 30,
                              app.clock.elapsed_ms() + app.tune["reserve_ms"])
    try:
        m = app.modem or app._driver()
        m.radio_off()
        app.state.set("modem", m.memory())
    except Exception as e:
        log("radio not switched off: %s" % _err(e))
        return
    finally:
        app.clock.wind_down()
    app.modem = None  # off: nothing to release
    app.state.set("roff", b"1")
    app.state.delete("sock")  # the module closes its sockets with the radio
    app._restored_sock = None
    app.sock = None
    log("radio off until the back-off ends")
