"""The boot line: what this board is, printed once after a power-on or a reset, right after
the modem's bring-up, and the LED of a configuration error (docs/diagnostics.md). Imported
only then.

It reuses what the bring-up learnt (the IMEI when deviceKey is "imei", the modem's firmware
revision the driver keeps) and what the last boot found for that revision (the model), and
asks the modem only the rest: ATI (model) for a module it has not seen, the IMEI otherwise,
the ICCID, and on a BC95 AT+NUESTATS (RSRP, SNR, coverage class; modems.md §3.4). What it found is kept in diag.json on the flash for the
diagnostics report (diag_report.py), so later wakes do not ask again.
"""
import json

from enosnb import VERSION
from enosnb.diag import BLINKS, CEREG, CONFIG, _modem_answers, blink, log
from enosnb.modem.errors import ModemError

DIAG_FILE = "diag.json"
RESET_CAUSES = {1: "power-on", 2: "hard reset", 3: "watchdog", 4: "deep sleep",
                5: "soft reset"}


def reset_cause(app):
    try:
        return RESET_CAUSES.get(app._mach().reset_cause(), "unknown")
    except (ImportError, AttributeError, OSError):  # no machine module: a test harness
        return "unknown"


def _try(fn, *args):
    try:
        return fn(*args)
    except (ModemError, ValueError, IndexError):
        return None


def model_and_revision(modem, before):
    """(model, revision): the revision the driver keeps, the model the last boot found for that
    revision (diag.json), else ATI: the line before "Revision:", and that line's value."""
    rev = getattr(modem, "revision", None)
    if rev and before.get("modem_fw") == rev and before.get("modem_model"):
        return before["modem_model"], rev
    lines = _try(modem.cmd, "ATI") or []
    model = rev = None
    for i, line in enumerate(lines):
        if line.startswith("Revision:"):
            rev = line[9:].strip()
            model = lines[i - 1].strip() if i else None
    return model, getattr(modem, "revision", None) or rev


def radio_stats(modem):
    """{rsrp_dbm, sinr_db, coverage_class} from a BC95's AT+NUESTATS (0.1 dBm / dB units);
    {} for a modem without it."""
    if modem.NAME != "BC95":
        return {}
    out = {}
    for line in _try(modem.cmd, "AT+NUESTATS") or []:
        name, _, value = line.partition(":")
        try:
            v = int(value)
        except ValueError:
            continue
        if name == "Signal power":
            out["rsrp_dbm"] = v / 10
        elif name == "SNR":
            out["sinr_db"] = v / 10
        elif name == "ECL":
            out["coverage_class"] = v
    return out


def boot_line(app):
    """Logs the boot line and keeps its facts in diag.json; a diagnostic never fails the
    cycle (only the end of the cycle's time passes through)."""
    try:
        _boot_line(app)
    except Exception as e:
        if type(e).__name__ == "BudgetSpent":
            raise
        log("boot line incomplete: %s: %s" % (type(e).__name__, e))


def _boot_line(app):
    s, b, m = app.secrets, app.board, app.modem
    info = {"fw_version": VERSION, "reset_cause": reset_cause(app)}
    parts = ["enosnb " + VERSION, "reset " + info["reset_cause"],
             "device %s/%s" % (s.product_key, s.device_key)]
    if not _modem_answers(app):
        parts.append("modem %s silent: %s" % (b.modem, _silent_hint(app)))
    else:
        model, rev = model_and_revision(m, read_facts(app))
        info["modem_model"] = model or b.modem
        if rev:
            info["modem_fw"] = rev
        parts.append("modem %s %s" % (info["modem_model"], rev or "(revision unknown)"))
        # "imei" in secrets.json: the bring-up asked it already and it is the deviceKey now.
        imei = s.device_key if s.key_from_imei else _try(m.imei)
        if imei:
            info["imei"] = imei
            parts.append("IMEI %s%s" % (imei, " (the deviceKey, from \"imei\")"
                                        if s.key_from_imei else ""))
        iccid = _try(m.iccid)
        if iccid:
            info["iccid"] = iccid
            parts.append("ICCID " + iccid)
        stats = radio_stats(m)
        info.update(stats)
        if "rsrp_dbm" in stats:
            parts.append("RSRP %.1f dBm, SNR %.1f dB, coverage class %d" % (
                stats["rsrp_dbm"], stats.get("sinr_db", 0), stats.get("coverage_class", -1)))
        if m.registered:
            parts.append("registered (%s)" % CEREG[m.stat] if m.stat in (1, 5)
                         else "registered")
        elif m.stat is not None and 0 <= m.stat < len(CEREG):
            parts.append("not registered (CEREG %d: %s)" % (m.stat, CEREG[m.stat]))
    log("boot: " + ", ".join(parts))
    try:
        with open(app._path(DIAG_FILE), "w") as f:
            f.write(json.dumps(info))
    except OSError:
        pass


def read_facts(app):
    try:
        with open(app._path(DIAG_FILE)) as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return {}


def _silent_hint(app):
    """What the board's STATUS input says about a modem that does not answer AT."""
    st = app.board.status
    if st:
        try:
            m = app._mach()
            level = m.Pin(st["pin"], m.Pin.IN).value()
            return ("STATUS high: powered but not answering (check TX/RX crossed, the baud "
                    "rate, the I/O level)" if level else
                    "STATUS low: the modem is off (check its supply and the power key)")
        except Exception:
            pass
    return "check its supply, the power key, TX/RX crossed and the baud rate"


def config_error(board_path="board.json"):
    """main.py, after a configuration error: the LED pattern, then the LED stays on while the
    board waits at the REPL (when board.json itself is readable and names an LED)."""
    try:
        import machine

        from enosnb.clock import SYSTEM
        from enosnb.config import load_board
        led = load_board(board_path).led
        if led:
            blink(machine, led, BLINKS[CONFIG], SYSTEM.sleep_ms).value(
                1 if led["active_high"] else 0)
    except Exception:  # a board.json that does not load has no LED to show
        pass
