"""What main.py does before it imports the firmware: the modem's UART, and the first figures
of the memory report (docs/ram.md).

machine.UART() makes the ESP-IDF allocate its driver and an RX ring of board.json's rxbuf
bytes in the IDF's own heap. On a board without PSRAM the MicroPython heap grows into that
same memory as the imports need it, so the UART is made first, while the IDF still has room;
the app then drives the UART made here. Nothing is validated yet at this point (the settings
are loaded after the imports): a board.json that does not hold a plain UART 1 or 2 gets no
UART here, and validation then reports what is wrong with it.
"""
import json


class Early:
    """uart: the modem's machine.UART or None; mem: the memory report (enosnb.memreport)
    when board.json asks for it, else None."""

    def __init__(self, uart=None, mem=None):
        self.uart = uart
        self.mem = mem

    def point(self, tag):
        if self.mem is not None:
            self.mem.point(tag)


def start(board_path="board.json"):
    try:
        with open(board_path) as f:
            board = json.loads(f.read())
        u = board["uart"]
        mem = board.get("mem_report") is True
    except (OSError, ValueError, KeyError, TypeError):
        return Early()
    early = Early()
    if mem:
        from enosnb import memreport
        early.mem = memreport
        memreport.point("boot")
    try:
        if u["id"] not in (1, 2):
            return early  # UART0 is the REPL: never take it over
        from machine import UART
        from enosnb.settings import uart_kwargs
        early.uart = UART(u["id"], **uart_kwargs(u))
    except (KeyError, TypeError, ValueError, OSError):
        return early
    early.point("uart")
    return early
