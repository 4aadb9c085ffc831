"""Shared machinery of the peer launchers: free loopback ports and a supervised subprocess.

A peer counts as started once every UDP port it should own is bound (read from /proc/net by
tools.netutil.udp_bound, never probed by binding it, which could steal it from the starting
peer) and, where the peer prints one, its readiness line has appeared. A peer is always
stopped on exit (tools.netutil.Process: terminate, kill after a grace period, reap).
"""
import os
import re
import subprocess
import threading
import time

from tools.netutil import HOST, Process, free_port_pair, free_udp_port, udp_bound


class PeerError(RuntimeError):
    """A peer did not start, died early, or never printed what a test waited for."""


def free_port(span=1, tcp=False):
    """A port p on 127.0.0.1 with p .. p+span-1 all free for UDP (and TCP when tcp is true);
    span is 1 or 2 (tools.netutil.free_udp_port / free_port_pair)."""
    if span == 1 and not tcp:
        return free_udp_port()
    if span in (1, 2):
        return free_port_pair()
    raise ValueError("free_port: span %d not supported (1 or 2)" % span)


class ProcessPeer:
    """A peer process with its merged stdout/stderr collected by a reader thread.

    Subclasses implement configure() to set self.argv and self.udp_ports (the ports that must
    be bound before the peer is ready), call it from __init__, and optionally set self.ready
    (a bytes regex its output must show first) and self.failure (a bytes regex meaning that it
    could not bind: the start is retried on new ports, as when it exits early).
    """

    startup_timeout = 10.0
    argv = ()
    udp_ports = ()
    ready = None
    failure = None
    cwd = None
    env = None
    stdin = subprocess.DEVNULL

    def __init__(self):
        self.proc = None
        self._process = None
        self._out = bytearray()
        self._lock = threading.Condition()
        self._reader = None

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def configure(self):
        """Picks free ports and builds argv/udp_ports; called again before a retry."""

    def start(self):
        # A free port can be taken by someone else between the probe and the peer's bind:
        # a peer that exits during startup gets new ports and another try.
        for attempt in range(3):
            if attempt:
                self.configure()
            self._out = bytearray()
            self._process = Process(list(self.argv), grace=3.0, stdin=self.stdin,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    cwd=self.cwd, env=self.env)
            self.proc = self._process.proc
            self._reader = threading.Thread(target=self._read, name="peer-output", daemon=True)
            self._reader.start()
            try:
                self._wait_started()
                return
            except PeerError:
                retry = self.proc.poll() is not None or (
                    self.failure is not None and re.search(self.failure, self.output()))
                self.stop()
                if not retry or attempt == 2:
                    raise
            except BaseException:
                self.stop()
                raise

    def _wait_started(self):
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise PeerError("%s exited with %s before it listened; output:\n%s"
                                % (self.name(), self.proc.returncode, self.text()))
            if self.failure is not None and re.search(self.failure, self.output()):
                raise PeerError("%s could not start; output:\n%s" % (self.name(), self.text()))
            if all(udp_bound(p) for p in self.udp_ports) and (
                    self.ready is None or re.search(self.ready, self.output())):
                return
            if time.monotonic() > deadline:
                raise PeerError("%s did not listen on %s within %.0f s; output:\n%s"
                                % (self.name(), self.udp_ports, self.startup_timeout,
                                   self.text()))
            time.sleep(0.02)

    def stop(self):
        proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        self._process.stop()
        if self._reader is not None:
            self._reader.join(3)
        proc.stdout.close()

    def name(self):
        return os.path.basename(self.argv[0]) if self.argv else type(self).__name__

    # -- output -----------------------------------------------------------------------------
    def _read(self):
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            with self._lock:
                if chunk:
                    self._out += chunk
                self._lock.notify_all()
            if not chunk:
                return

    def output(self):
        with self._lock:
            return bytes(self._out)

    def text(self):
        return self.output().decode("utf-8", "replace")

    def wait_for(self, pattern, timeout=5.0, start=0):
        """The first re match of the bytes regex pattern in the output from offset start on,
        waiting up to timeout seconds; PeerError (with the output) when it never appears."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                m = rx.search(self._out, start)
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise PeerError("%s never printed %r; output:\n%s"
                                    % (self.name(), pattern, self.text()))
                self._lock.wait(min(left, 0.2))

    def mark(self):
        """Current output length, to wait_for only what is printed after this point."""
        with self._lock:
            return len(self._out)
