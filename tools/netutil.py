"""Host-side helpers for tests, tools and benches (never on the device): free ports on
127.0.0.1, bounded waits until a server listens, child processes that are always stopped,
and a UDP echo server.

Free ports come from binding port 0, so parallel runs do not collide. Whether a UDP port is
bound is read from /proc/net (Linux) rather than probed by binding it, which could steal the
port from the server that is just starting.
"""
import socket
import subprocess
import threading
import time

HOST = "127.0.0.1"


def _free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def free_udp_port():
    return _free_port(socket.SOCK_DGRAM)


def free_tcp_port():
    return _free_port(socket.SOCK_STREAM)


def free_port_pair():
    """P such that UDP and TCP P and P+1 are free (coap-server-openssl takes all four)."""
    for _ in range(50):
        p = free_udp_port()
        if p >= 65535:
            continue
        socks = []
        try:
            for port in (p, p + 1):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    s = socket.socket(socket.AF_INET, kind)
                    socks.append(s)
                    s.bind((HOST, port))
            return p
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free pair of ports")


def udp_socket(timeout):
    """A UDP socket bound to a free port on 127.0.0.1 whose receives give up after `timeout`
    seconds: the far end of a test. Use it in a with-block so that it is closed."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, 0))
    s.settimeout(timeout)
    return s


def udp_bound(port):
    """True when some socket on this host owns UDP port (any local address)."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            if int(row.split()[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def tcp_listening(port, host=HOST):
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def wait_until(ready, timeout, what, proc=None):
    """Poll ready() every 20 ms until it is true; RuntimeError naming `what` if proc (a Popen)
    exits first or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with %d before it was ready" % (what, proc.returncode))
        if time.monotonic() > deadline:
            raise RuntimeError("%s not ready within %.0f s" % (what, timeout))
        time.sleep(0.02)


def wait_udp(port, timeout=10.0, proc=None):
    wait_until(lambda: udp_bound(port), timeout, "UDP port %d" % port, proc)


def wait_tcp(port, timeout=10.0, proc=None):
    wait_until(lambda: tcp_listening(port), timeout, "TCP port %d" % port, proc)


class Process:
    """A child process (subprocess.Popen arguments) that stop() or the end of a with-block
    always terminates and reaps, killing it after `grace` seconds.

    lines=True collects its stdout (stderr merged) line by line in .lines from a reader thread,
    so wait_for(text) can wait for a readiness line without blocking on a silent child.
    """

    def __init__(self, argv, lines=False, grace=5.0, **popen_kw):
        self.grace = grace
        self.lines = []
        if lines:
            popen_kw.update(stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.proc = subprocess.Popen(argv, **popen_kw)
        self._reader = None
        if lines:
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, text, timeout=5.0):
        """Wait until an output line contains text (bytes); AssertionError with the output if
        the time runs out or the output ends without it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError("never printed %r; output: %r" % (text, self.lines[-10:]))

    def running(self):
        return self.proc.poll() is None

    def stop(self):
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(self.grace)
                return
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait(self.grace)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class UdpEcho:
    """UDP echo server on 127.0.0.1 in a thread: .port, .received (datagrams in order),
    .sources (their source addresses), stop(). reply(data) -> bytes answers something else,
    None nothing."""

    def __init__(self, reply=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.sources = []
        self.reply = reply
        self._run = True
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while self._run:
            try:
                data, src = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            self.received.append(data)
            self.sources.append(src)
            answer = data if self.reply is None else self.reply(data)
            if answer is not None:
                try:
                    self.sock.sendto(answer, src)
                except OSError:
                    pass

    def stop(self):
        self._run = False
        self._thread.join(2)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
