"""`make secrets`: create secrets.json from the template, or check one.

    python tools/secrets_tool.py create [--out firmware/secrets.json] [--force]
            [--productKey PK] [--deviceKey DK|imei] [--deviceSecret S | --productSecret S]
            [--secureMode 2|3] [--host H] [--apn APN] [--lifetime N] [--report-interval N]
            [--no-dtls]
        Starts from firmware/secrets.example.json; asks for every required value that is
        neither given nor filled in (secrets without echo), validates the result with
        enosnb.config and writes it with mode 0600.
    python tools/secrets_tool.py check [FILE] [--board BOARD_JSON]
        Validates FILE (default firmware/secrets.json) and optionally a board.json; prints
        field names and lengths only. Exit status 1 with the config error otherwise.

Secrets are never printed. secrets.json is in .gitignore: keep it out of git.
"""
import argparse
import getpass
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (os.path.join(ROOT, "firmware", "lib"), os.path.join(ROOT, "tools", "host")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from enosnb.config import ConfigError, load_board, load_secrets, parse_secrets  # noqa: E402

TEMPLATE = os.path.join(ROOT, "firmware", "secrets.example.json")
DEFAULT_OUT = os.path.join(ROOT, "firmware", "secrets.json")
SECRET_FIELDS = ("deviceSecret", "productSecret")
_ARG_FIELDS = (("productKey", str), ("deviceKey", str), ("deviceSecret", str),
               ("productSecret", str), ("secureMode", int), ("host", str), ("apn", str),
               ("lifetime", int))


def _placeholder(v):
    return isinstance(v, str) and ("YOUR_" in v or "YOUR-" in v)


def _ask(field, secret, ask):
    prompt = "%s: " % field
    while True:
        v = ask(prompt, secret)
        if v:
            return v
        print("%s cannot be empty" % field)


def _default_ask(prompt, secret):
    if secret:
        return getpass.getpass(prompt).strip()
    return input(prompt).strip()


def build(values, template=TEMPLATE, interactive=False, ask=_default_ask):
    """Template + given values (+ answers); returns the validated dict or raises ConfigError."""
    with open(template) as f:
        obj = json.load(f)
    obj.pop("_comment", None)
    for k, v in values.items():
        if v is not None:
            obj[k] = v
    mode = obj.get("secureMode", 2)
    secret_field = "deviceSecret" if mode == 2 else "productSecret"
    if mode == 3 and values.get("deviceSecret") is None:
        obj.pop("deviceSecret", None)
    other = "productSecret" if mode == 2 else "deviceSecret"
    if _placeholder(obj.get(other)):
        obj.pop(other)
    needed = ["productKey", "deviceKey", "host", secret_field]
    for field in needed:
        if obj.get(field) is None or _placeholder(obj.get(field)):
            if not interactive:
                raise ConfigError("secrets.json: %s is missing; pass --%s or run without "
                                  "arguments on a terminal to be asked" % (field, field))
            obj[field] = _ask(field, field in SECRET_FIELDS, ask)
    parse_secrets(obj)
    return obj


def write(obj, path, force=False):
    if os.path.exists(path) and not force:
        raise ConfigError("%s exists; pass --force to overwrite it" % path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def describe(s):
    def ln(v):
        return "-" if not v else "%d chars" % len(v)
    return ("productKey %s, deviceKey %s, deviceSecret %s, productSecret %s, secureMode %d, "
            "dtls %s, port %d, lifetime %d s, report every %d s"
            % (ln(s.product_key), "imei (from the modem)" if s.uses_imei else ln(s.device_key),
               ln(s.device_secret), ln(s.product_secret), s.secure_mode, s.dtls, s.port,
               s.lifetime, s.report_interval_s))


def main(argv=None):
    ap = argparse.ArgumentParser(description="create or check secrets.json")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("--out", default=DEFAULT_OUT)
    c.add_argument("--force", action="store_true")
    for name, typ in _ARG_FIELDS:
        c.add_argument("--" + name, type=typ)
    c.add_argument("--report-interval", type=int, dest="report_interval_s")
    c.add_argument("--no-dtls", action="store_true")
    k = sub.add_parser("check")
    k.add_argument("file", nargs="?", default=DEFAULT_OUT)
    k.add_argument("--board")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "create":
            values = {name: getattr(args, name) for name, _ in _ARG_FIELDS}
            values["report_interval_s"] = args.report_interval_s
            if args.no_dtls:
                values["dtls"] = False
            if os.path.exists(args.out) and not args.force:
                raise ConfigError("%s exists; pass --force to overwrite it" % args.out)
            obj = build(values, interactive=sys.stdin.isatty())
            write(obj, args.out, args.force)
            print("wrote %s (mode 0600): %s" % (args.out, describe(parse_secrets(obj))))
            print("copy it to the board with: make deploy PORT=<port> SECRETS=1")
        else:
            s = load_secrets(args.file)
            print("%s OK: %s" % (args.file, describe(s)))
            for w in s.warnings:
                print("warning: " + w)
            if args.board:
                b = load_board(args.board)
                print("%s OK: %r" % (args.board, b))
                for w in b.warnings:
                    print("warning: " + w)
    except ConfigError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
