"""The runner's end of the board's GPIO lines: the boot process's `machine.Pin` stand-in sends
every level change as a datagram "<id> <level>" to this socket (ENOSNB_PIN_PORT), and the
watchers registered here see it, with the same watch(pin_id, callback) call as Pin.watch. So
ModemEmulator.follow_pwrkey(wire, pin, active) connects the board's PWRKEY line to the
emulated modem across processes, as the copper does on a board.
"""
import socket
import threading


class PinWire:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._watchers = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pinwire", daemon=True)
        self._thread.start()

    def watch(self, pin_id, callback):
        """callback(pin_id, level) on every level the board writes to that pin."""
        self._watchers.setdefault(str(pin_id), []).append(callback)

    def _run(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(64)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                pin, level = data.decode().split()
                level = int(level)
            except ValueError:
                continue
            for cb in self._watchers.get(pin, ()):
                cb(pin, level)

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
