"""An SHT3x on a simulated I2C bus (the machine.I2C methods the example sensor uses), for
host and MicroPython tests of docs/examples/sht3x_sensors.py. It answers as the datasheet
says: 6 bytes per measurement, each 16-bit word followed by its CRC-8. The CRC is written
here again from the datasheet, not imported from the example, so that a mistake in one
shows against the other."""


def _crc8(data):
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _with_crc(word):
    b = bytes(((word >> 8) & 0xFF, word & 0xFF))
    return b + bytes((_crc8(b),))


class SimSht3x:
    """temperature_c / humidity: what the next measurement reports; present=False: nothing
    answers (OSError ENODEV, as machine.I2C raises); corrupt=True: a bad CRC."""

    def __init__(self, temperature_c=21.5, humidity=41.5, address=0x44):
        self.address = address
        self.temperature_c = temperature_c
        self.humidity = humidity
        self.present = True
        self.corrupt = False
        self.written = []
        self.heater = False
        self.status = 0x8010
        self._pending = None

    def scan(self):
        return [self.address] if self.present else []

    def writeto(self, addr, buf):
        if not self.present or addr != self.address:
            raise OSError(19)
        cmd = bytes(buf)
        self.written.append(cmd)
        if cmd == b"\x24\x00":
            t = int(round((self.temperature_c + 45) * 65535 / 175))
            rh = int(round(self.humidity * 65535 / 100))
            data = _with_crc(t) + _with_crc(rh)
            if self.corrupt:
                data = data[:2] + bytes((data[2] ^ 0xFF,)) + data[3:]
            self._pending = data
        elif cmd == b"\xf3\x2d":
            self._pending = _with_crc(self.status)
        elif cmd in (b"\x30\x6d", b"\x30\x66"):
            self.heater = cmd == b"\x30\x6d"
        return len(cmd)

    def readfrom(self, addr, n):
        if not self.present or addr != self.address or self._pending is None:
            raise OSError(19)
        data, self._pending = self._pending[:n], None
        return data
