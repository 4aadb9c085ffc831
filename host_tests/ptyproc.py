"""A program on a pseudo-terminal, driven as a person at a keyboard would (pexpect's idea on
the pty module): the program's controlling terminal is the pty, so getpass turns the echo
off and input() sees a tty; expect() waits for a pattern in what the terminal shows."""
import os
import pty
import re
import select
import signal
import time


class PtyProcess:
    def __init__(self, argv, env=None, cwd=None, user=None):
        """user: (uid, gid) to run as (the caller must be root)."""
        pid, fd = pty.fork()
        if pid == 0:
            try:
                if user is not None:
                    os.setgroups([])
                    os.setgid(user[1])
                    os.setuid(user[0])
                if cwd:
                    os.chdir(cwd)
                os.execvpe(argv[0], argv, env if env is not None else os.environ)
            finally:
                os._exit(127)
        self.pid = pid
        self.fd = fd
        self.text = ""
        self._pos = 0
        self.status = None

    def _read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            data = b""
        if not data:
            raise EOFError("the program ended; it showed:\n" + self.text)
        self.text += data.decode("utf-8", "replace").replace("\r\n", "\n")
        return True

    def expect(self, pattern, timeout=20):
        """Waits until pattern shows after the last match; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.text, self._pos)
            if m:
                self._pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %r within %s s; the terminal showed:\n%s"
                                     % (pattern, timeout, self.text))
            self._read(min(left, 0.5))

    def wait_raw(self, timeout=10):
        """Waits until the program put its terminal in raw mode (no line editing): typed
        keys then go to it one by one, as in mpremote's REPL."""
        import termios
        deadline = time.monotonic() + timeout
        while termios.tcgetattr(self.fd)[3] & termios.ICANON:
            if time.monotonic() > deadline:
                raise AssertionError("the terminal stayed in line mode:\n" + self.text)
            self._read(0.05)

    def send(self, text):
        os.write(self.fd, text.encode())

    def sendline(self, text=""):
        self.send(text + "\r")

    def wait(self, timeout=20):
        """Reads until the program ends; returns its exit status."""
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
                break
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("still running after %s s:\n%s" % (timeout, self.text))
            try:
                self._read(0.2)
            except EOFError:
                pass
        try:
            while self._read(0.05):
                pass
        except EOFError:
            pass
        return self.status

    def kill(self):
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                _, st = os.waitpid(self.pid, 0)
                self.status = os.waitstatus_to_exitcode(st)
            except OSError:
                pass

    def close(self):
        self.kill()
        try:
            os.close(self.fd)
        except OSError:
            pass
