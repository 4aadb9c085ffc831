"""Modem driver figures against the emulator.

modem.<dialect>.bringup_commands: AT commands from power_on() to the first datagram sent, on a
    warm, already-configured and registered module (target: <= 12 SIM7020, <= 10 BC95).
modem.<dialect>.uart_bytes_per_100B: bytes written to the UART to send one 100-byte datagram
    (the hex encoding doubles the payload; the command head and CR make the rest).
"""
import time

import machine
from enosnb.modem.bc95 import Bc95
from enosnb.modem.sim7020 import Sim7020
from tools.modem_emulator import ModemEmulator
from tools.netutil import UdpEcho

DRIVERS = (("sim7020", Sim7020, {}), ("bc95", Bc95, {"early_error": 0.05}))


def measure(dialect, cls, opts, port, uart_id):
    with ModemEmulator(dialect, boot_time=0.02, registration_delay=0.05, **opts) as emu:
        if not emu.wait_registered(5):
            raise RuntimeError("emulator did not register")
        time.sleep(0.1)
        machine.UART.attach(uart_id, emu.port)
        m = cls(machine.UART(uart_id), reg_poll_ms=100)
        m.power_on()
        m.init()
        m.attach("iot.example")
        s = m.socket("127.0.0.1", port)
        s.send(b"\x00" * 100)
        bringup = m.at.commands
        if s.recv(3000) is None:
            raise RuntimeError("%s: no echo of the first datagram" % dialect)
        before = m.at.bytes_written
        s.send(bytes(range(100)))
        per_100 = m.at.bytes_written - before
        s.recv(3000)
        s.close()
        machine.UART.detach(uart_id)
    return bringup, per_100


def main():
    with UdpEcho() as echo:
        for i, (dialect, cls, opts) in enumerate(DRIVERS):
            bringup, per_100 = measure(dialect, cls, opts, echo.port, 900 + i)
            print("modem.%s.bringup_commands: %d" % (dialect, bringup))
            print("modem.%s.uart_bytes_per_100B: %d B" % (dialect, per_100))


if __name__ == "__main__":
    main()
