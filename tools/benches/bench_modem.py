"""Modem driver figures against the emulator: AT commands per bring-up, per dialect and firmware.

modem.<module>.bringup_commands: AT commands from power_on() to the first datagram sent on a
    deep-sleep wake: the module is configured and registered, the driver knows it from the
    last cycle (target: <= 12 SIM7020, <= 10 BC95).
modem.<module>.cold_bringup_commands: the same after a cold boot of the ESP32 that lost RTC
    memory, with the module still powered, configured and registered, as the app does it
    (revision asked, stale sockets closed, network time read, PSM asked and read back).
modem.<module>.first_bringup_commands: a module fresh from the factory, whose bands must be set
    (band 20 where the factory setting is another), through registration to the first datagram.
modem.<module>.uart_bytes_per_100B: bytes written to the UART to send one 100-byte datagram
    (the hex encoding doubles the payload; the command head and CR make the rest).

<module> is sim7020, bc95 (firmware B657SP3) and bc95_old (B650: no ATE, NSOSTF, CPSMS, NPSMR).
"""
import time

import machine
from enosnb.modem.bc95 import Bc95
from enosnb.modem.errors import ModemError
from enosnb.modem.sim7020 import Sim7020
from tools.modem_emulator import ModemEmulator
from tools.netutil import UdpEcho

OLD_BC95 = "V100R100C10B650"
MODULES = (("sim7020", "sim7020", Sim7020, {}),
           ("bc95", "bc95", Bc95, {"early_error": 0.05}),
           ("bc95_old", "bc95", Bc95, {"early_error": 0.05, "revision": OLD_BC95}))
_UART = [900]


def _driver(emu, cls, **kw):
    _UART[0] += 1
    machine.UART.attach(_UART[0], emu.port)
    return cls(machine.UART(_UART[0]), reg_poll_ms=100, **kw)


def _bring_up(m, bands, cold):
    """The app's bring_up_modem() and first datagram; returns (driver, socket)."""
    m.power_on()
    m.init()
    if cold and hasattr(m, "cold_start"):
        m.cold_start()
    m.attach("iot.example", bands, 20000)
    if cold:
        for step in (m.network_time, lambda: m.psm(86400, 2)):
            try:
                step()
            except ModemError:
                pass  # the app logs it and goes on
    return m


def _memory(m):
    return {"memory": m.memory()} if hasattr(m, "memory") else {}


def _run(dialect, cls, opts, port, cold, first):
    bands = (20,) if first else None
    with ModemEmulator(dialect, boot_time=0.02, registration_delay=0.05, **opts) as emu:
        if not emu.wait_registered(5) and not first:
            raise RuntimeError("emulator did not register")
        kw = {}
        if not first:
            # Configured by an earlier boot: the APN is set, a socket is left open.
            m = _bring_up(_driver(emu, cls), None, False)
            m.socket("127.0.0.1", port)
            kw = {} if cold else _memory(m)
        time.sleep(0.1)
        m = _bring_up(_driver(emu, cls, **kw), bands, cold)
        s = m.socket("127.0.0.1", port)
        s.send(b"\x00" * 100)
        count = m.at.commands
        if s.recv(3000) is None:
            raise RuntimeError("%s: no echo of the first datagram" % dialect)
        before = m.at.bytes_written
        s.send(bytes(range(100)))
        per_100 = m.at.bytes_written - before
        s.recv(3000)
        s.close()
    return count, per_100


def main():
    with UdpEcho() as echo:
        for name, dialect, cls, opts in MODULES:
            warm, per_100 = _run(dialect, cls, opts, echo.port, False, False)
            cold, _ = _run(dialect, cls, opts, echo.port, True, False)
            first_opts = dict(opts, network_band=20)
            if dialect == "sim7020":
                first_opts["bands"] = (3, 8)
            first, _ = _run(dialect, cls, first_opts, echo.port, True, True)
            print("modem.%s.bringup_commands: %d" % (name, warm))
            print("modem.%s.cold_bringup_commands: %d" % (name, cold))
            print("modem.%s.first_bringup_commands: %d" % (name, first))
            print("modem.%s.uart_bytes_per_100B: %d B" % (name, per_100))


if __name__ == "__main__":
    main()
