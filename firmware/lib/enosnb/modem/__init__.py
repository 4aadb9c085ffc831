"""NB-IoT modem layer: AT engine (at.py), SIM7020 and BC95 drivers, 3GPP timer encoders.

Drivers are imported on demand so a board carries only its own dialect in RAM:
    from enosnb.modem.sim7020 import Sim7020
    from enosnb.modem.bc95 import Bc95
"""


def driver(kind):
    """The driver class for board.json's modem kind ("sim7020" or "bc95")."""
    if kind == "sim7020":
        from enosnb.modem.sim7020 import Sim7020
        return Sim7020
    if kind == "bc95":
        from enosnb.modem.bc95 import Bc95
        return Bc95
    from enosnb.modem.errors import ModemError
    raise ModemError("unknown modem kind %r; board.json must say \"sim7020\" or \"bc95\"" % kind)


def from_board(board, clock=None, uart=None, **kw):
    """A driver wired as boards/<board>/board.json says: UART, power enable, power key (or,
    on boards without one, the reset line, pulsed the same way when the module is silent),
    boot wait and what the modem's clock shows. Keyword arguments go to the driver and win
    over the board file.
    """
    import machine
    from enosnb.clock import SYSTEM
    if uart is None:
        u = board["uart"]
        uart = machine.UART(u["id"], u["baudrate"], tx=u["tx"], rx=u["rx"],
                            rxbuf=u.get("rxbuf", 4096), timeout=0)
    enable = board.get("power_enable")
    if enable:
        machine.Pin(enable["pin"], machine.Pin.OUT, value=1 if enable.get("active_high", True)
                    else 0)
    key = board.get("pwrkey") or board.get("reset")
    if key and "pwrkey" not in kw:
        high = key.get("active_high", False)
        kw["pwrkey"] = machine.Pin(key["pin"], machine.Pin.OUT, value=0 if high else 1)
        kw.setdefault("pwrkey_active_high", high)
        kw.setdefault("pwrkey_ms", key.get("pulse_ms", 800))
    if "boot_wait_ms" in board:
        kw.setdefault("boot_timeout_ms", board["boot_wait_ms"])
    kw.setdefault("baudrate", board["uart"]["baudrate"])
    if "modem_clock" in board:
        kw.setdefault("cclk_utc", board["modem_clock"] == "utc")
    return driver(board["modem"])(uart, SYSTEM if clock is None else clock, **kw)
