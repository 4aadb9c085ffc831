"""A scripted UART that plays back recorded modem transcripts (for host_tests/vm/test_modem_at.py).

The script is a list of (command, answer): when the driver writes a command line that matches
the next entry, its answer bytes become readable, exactly as the modem sent them (echo, CR/LF
framing, URCs). An answer is bytes, or a list of (delay_ms, bytes) released by the virtual
clock. A command entry ending in "*" matches by prefix. Anything unexpected fails the test.
"""


class FakeUart:
    def __init__(self, script=(), clock=None, chunk=0):
        self.script = list(script)
        self.clock = clock
        self.chunk = chunk
        self.rx = bytearray()
        self.timed = []
        self.written = []
        self.bytes_written = 0
        self._w = bytearray()

    def _now(self):
        return self.clock.ticks_ms() if self.clock is not None else 0

    def feed(self, data, delay_ms=0):
        """Make data readable now, or delay_ms later on the virtual clock."""
        if delay_ms <= 0:
            self.rx.extend(data)
        else:
            self.timed.append((self._now() + delay_ms, data))

    def _release(self):
        if not self.timed:
            return
        now = self._now()
        keep = []
        for due, data in self.timed:
            if due <= now:
                self.rx.extend(data)
            else:
                keep.append((due, data))
        self.timed = keep

    def any(self):
        self._release()
        return len(self.rx)

    def read(self, n=-1):
        self._release()
        if not self.rx:
            return None
        if n < 0 or n > len(self.rx):
            n = len(self.rx)
        if self.chunk and n > self.chunk:
            n = self.chunk
        data = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return data

    def write(self, data):
        self.bytes_written += len(data)
        for b in data:
            if b == 13:
                self._command(bytes(self._w).decode())
                self._w = bytearray()
            else:
                self._w.append(b)
        return len(data)

    def _command(self, cmd):
        self.written.append(cmd)
        if not self.script:
            raise AssertionError("unexpected command %r (script finished)" % cmd)
        want, answer = self.script.pop(0)
        ok = cmd.startswith(want[:-1]) if want.endswith("*") else cmd == want
        if not ok:
            raise AssertionError("expected %r, driver sent %r" % (want, cmd))
        if isinstance(answer, (bytes, bytearray)):
            self.feed(answer)
        else:
            for delay, data in answer:
                self.feed(data, delay)

    def done(self):
        return not self.script


def ok(*lines):
    """Frame information lines and a final OK the way the modems do: <CR><LF>text<CR><LF>."""
    out = b""
    for line in lines:
        out += b"\r\n" + line + b"\r\n"
    return out + b"\r\nOK\r\n"
