"""Device side of the host twin: one boot of the ESP32 = one process running firmware/main.py
unchanged (tools/twin.py is the runner on the other side).

  python tools/host/twin_boot.py run <main.py>     one boot in this process
  python tools/host/twin_boot.py zygote <main.py>  imports the firmware once, then forks one
      boot per JSON line read from stdin ({"env": {...}, "cwd": dir, "log": file}) and
      answers each with {"code": exit status}; a fork is a fresh process whose modules are
      in their just-imported state, so a boot costs milliseconds instead of a CPython start

The boot's sys.path is what the ESP32 port has: the flash directory first (main.py,
sensors.py), then firmware/lib (the package, like /lib), then tools/host (the `machine` and
`micropython` stand-ins). Environment, set by the runner:
  ENOSNB_UART<id>, ENOSNB_RTC_FILE, ENOSNB_DEEPSLEEP_FILE, ENOSNB_RESET_CAUSE: tools/host/machine.py
  ENOSNB_FLASH        the flash directory; writes, renames and removes under it are flash ops
  ENOSNB_KILL_FLASH=k power cut at the k-th flash operation of this boot
  ENOSNB_KILL_AT=k    power cut at the k-th AT command line the firmware writes to the UART
  ENOSNB_KILL_SEED    decides how much of the interrupted write reaches the file (torn write)
  ENOSNB_TWIN_TUNE    JSON overrides of enosnb.app.DEFAULTS for loopback timings:
                      {"attach_timeout_ms": ms, "coap": [ack_timeout_ms, max_retransmit],
                       "dtls": [initial_ms, cap_ms, max_retransmit, deadline_ms], ...}
A power cut is os._exit(KILLED) with no cleanup at all, like pulling the battery.
"""
import json
import os
import random
import sys

KILLED = 137
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LIB = os.path.join(ROOT, "firmware", "lib")
PRELOAD = ("machine", "micropython", "enosnb.app", "enosnb.config", "enosnb.store",
           "enosnb.state", "enosnb.sensor", "enosnb.modem", "enosnb.modem.sim7020",
           "enosnb.modem.bc95", "enosnb.coap.client", "enosnb.dtls.session", "enosnb.dtls.aes",
           "enosnb.enos.client", "enosnb.enos.commands", "enosnb.enos.bodies")


def _set_path(flash):
    for p in (HERE, LIB, flash):
        while p in sys.path:
            sys.path.remove(p)
        sys.path.insert(0, p)


def _inside(root, path):
    if isinstance(path, int):
        return False
    full = os.path.realpath(os.path.join(os.getcwd(), os.fsdecode(path)))
    return full.startswith(root + os.sep)


class _Cut:
    """Counts flash operations and AT command lines; cuts the power at the chosen one."""

    def __init__(self, flash, kill_flash, kill_at, seed):
        self.root = os.path.realpath(flash)
        self.kill_flash = kill_flash
        self.kill_at = kill_at
        self.flash_ops = 0
        self.at_lines = 0
        self.rnd = random.Random(seed)

    def flash_op(self):
        self.flash_ops += 1
        return self.flash_ops == self.kill_flash

    def at_line(self):
        self.at_lines += 1
        return self.at_lines == self.kill_at


class _CutFile:
    def __init__(self, f, cut):
        self._f = f
        self._cut = cut

    def write(self, data):
        if self._cut.flash_op():
            n = self._cut.rnd.randint(0, len(data))
            self._f.write(data[:n])
            self._f.flush()
            os._exit(KILLED)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)

    def __iter__(self):
        return iter(self._f)


def _install_cuts(flash):
    """Counts flash operations and AT lines (ENOSNB_OPS_FILE gets the totals of a boot that
    ends normally) and cuts the power at the chosen one."""
    cut = _Cut(flash, int(os.environ.get("ENOSNB_KILL_FLASH") or 0),
               int(os.environ.get("ENOSNB_KILL_AT") or 0),
               int(os.environ.get("ENOSNB_KILL_SEED") or 0))
    import builtins
    real_open = builtins.open

    def open_(file, mode="r", *a, **kw):
        f = real_open(file, mode, *a, **kw)
        if ("w" in mode or "a" in mode or "+" in mode) and _inside(cut.root, file):
            return _CutFile(f, cut)
        return f
    builtins.open = open_
    for name in ("rename", "remove", "replace", "unlink"):
        real = getattr(os, name)

        def op(*a, _real=real, **kw):
            if _inside(cut.root, a[0]) and cut.flash_op():
                os._exit(KILLED)
            return _real(*a, **kw)
        setattr(os, name, op)
    import machine
    real_write = machine.UART.write

    def write(self, buf):
        if bytes(buf[:2]).upper() == b"AT" and cut.at_line():
            if cut.rnd.random() < 0.5:
                real_write(self, buf)
            os._exit(KILLED)
        return real_write(self, buf)
    machine.UART.write = write
    return cut


def _tune():
    raw = os.environ.get("ENOSNB_TWIN_TUNE")
    if not raw:
        return
    tune = json.loads(raw)
    from enosnb import app
    if "coap" in tune:
        from enosnb.coap.client import Timing
        ack, retx = tune.pop("coap")
        tune["coap_timing"] = Timing(ack_timeout_ms=ack, max_retransmit=retx)
    if "dtls" in tune:
        from enosnb.dtls.timers import Timers
        tune["dtls_timers"] = Timers(*tune.pop("dtls"))
    app.DEFAULTS.update(tune)


def boot(main_path):
    """One boot of the device in this process; returns the exit status."""
    flash = os.environ.get("ENOSNB_FLASH") or os.getcwd()
    os.chdir(flash)
    _set_path(flash)
    cut = _install_cuts(flash)
    _tune()
    import runpy
    code = 0
    try:
        runpy.run_path(main_path, run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    ops = os.environ.get("ENOSNB_OPS_FILE")
    if ops:
        with open(ops, "w") as f:
            f.write(json.dumps({"flash": cut.flash_ops, "at": cut.at_lines}))
    return code


def _child(req, main_path):
    os.environ.update(req.get("env", {}))
    log = req.get("log")
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    code = 1
    try:
        code = boot(main_path)
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def zygote(main_path):
    sys.path.insert(0, HERE)
    sys.path.insert(1, LIB)
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception as e:  # a module mid-edit must not stop the twin; the boot reports it
            print(json.dumps({"preload_error": "%s: %s" % (name, e)}), flush=True)
    for p in (HERE, LIB):
        sys.path.remove(p)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _child(req, main_path)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)


def main(argv):
    if len(argv) != 3 or argv[1] not in ("run", "zygote"):
        sys.exit("usage: twin_boot.py run|zygote <path of main.py>")
    main_path = os.path.abspath(argv[2])
    if argv[1] == "zygote":
        zygote(main_path)
        return
    sys.exit(boot(main_path))


if __name__ == "__main__":
    main(sys.argv)
