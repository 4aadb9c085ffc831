"""`make secrets`: create secrets.json from the template, or check a secrets.json or board.json.

    python tools/secrets_tool.py create [--out firmware/secrets.json] [--force] [--board B]
            [--productKey PK] [--deviceKey DK|imei] [--deviceSecret S | --productSecret S]
            [--secureMode 2|3] [--host H] [--apn APN] [--lifetime N] [--report-interval N]
            [--no-dtls]
        Starts from firmware/secrets.example.json. On a terminal it asks for every value that
        is neither given nor filled in, checks each answer as it is typed and asks again
        until it is right (secrets without echo; deviceKey defaults to "imei", the modem's
        IMEI). Writes the file with mode 0600 and prints the `make deploy` line that copies
        it to the board.
    python tools/secrets_tool.py check [FILE] [--board BOARD_JSON]
        Validates FILE (default firmware/secrets.json), recognising a board.json by its
        content; prints field names and lengths only. Exit status 1 with the error otherwise.

Besides enosnb.config's rules (the device checks those at boot), the tools refuse a secret
that cannot be one copied from the EnOS console: spaces at its start or end, or a length
outside SECRET_MIN..SECRET_MAX. Secrets are never printed. secrets.json is in .gitignore.
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
DEFAULT_BOARD = "esp32-sim7020"
SECRET_FIELDS = ("deviceSecret", "productSecret")
# EnOS hands out secrets of 20 letters and digits (EnvisionIot's SDK samples); the bounds
# only catch a truncated or doubled paste, they are not EnOS's own limits.
SECRET_MIN = 8
SECRET_MAX = 64
SECRET_RULE = ("EnOS secrets are %d to %d characters without spaces, copied from the EnOS "
               "console" % (SECRET_MIN, SECRET_MAX))
_ARG_FIELDS = (("productKey", str), ("deviceKey", str), ("deviceSecret", str),
               ("productSecret", str), ("secureMode", int), ("host", str), ("apn", str),
               ("lifetime", int))
# Stand-ins for the fields not answered yet, so that one answer is checked on its own by
# the same parse_secrets() the device runs at boot.
_VALID = {"productKey": "PK", "deviceKey": "imei", "deviceSecret": "S" * SECRET_MIN,
          "productSecret": "S" * SECRET_MIN, "host": "coap-host.example"}
_PROMPTS = {
    "productKey": ("productKey", None, "the product's key in the EnOS console"),
    "deviceKey": ("deviceKey", "imei", 'Enter = "imei": the firmware asks the modem for its '
                  "IMEI, which must then be the device's key in EnOS"),
    "secureMode": ("secureMode", "2", "2 = a deviceSecret per device, 3 = one productSecret "
                   "for the product (Dynamic Activation)"),
    "deviceSecret": ("deviceSecret", None, "not shown while you type or paste"),
    "productSecret": ("productSecret", None, "not shown while you type or paste"),
    "host": ("host", None, "coap- followed by your EnOS environment's host name"),
    "apn": ("apn", "", "Enter = the network's default"),
}


def _placeholder(v):
    return isinstance(v, str) and ("YOUR_" in v or "YOUR-" in v)


def secret_problem(field, value):
    """Why value cannot be an EnOS secret (None when it can); never quotes the value."""
    if not isinstance(value, str):
        return None  # parse_secrets says what is wrong with the type
    if value != value.strip():
        return "%s has a space or tab at its start or end; %s" % (field, SECRET_RULE)
    if not SECRET_MIN <= len(value) <= SECRET_MAX:
        return "%s is %d characters long; %s" % (field, len(value), SECRET_RULE)
    return None


def check_secrets(obj, where="secrets.json"):
    """parse_secrets(obj) plus the secret plausibility rules; returns Secrets."""
    s = parse_secrets(obj, where)
    for field in SECRET_FIELDS:
        problem = secret_problem(field, obj.get(field))
        if problem:
            raise ConfigError("%s: %s" % (where, problem))
    return s


def check_answer(obj, field, value):
    """ConfigError when value is wrong for field, judged with the fields answered so far."""
    trial = dict(obj)
    for k, v in _VALID.items():
        if trial.get(k) is None or _placeholder(trial.get(k)):
            trial[k] = v
    trial[field] = value
    check_secrets(trial)


def _default_ask(prompt, secret):
    if secret:
        return getpass.getpass(prompt)
    return input(prompt)


def _ask_field(obj, field, ask, out):
    """Asks until the answer passes check_answer; returns the value to store."""
    name, default, hint = _PROMPTS[field]
    secret = field in SECRET_FIELDS
    prompt = "%s%s: " % (name, " [%s]" % (default or "network default") if default is not None
                         else "")
    out("  %s: %s" % (name, hint))
    while True:
        raw = ask(prompt, secret)
        if raw is None:
            raise ConfigError("input ended before %s was given; nothing written" % field)
        text = raw if secret else raw.strip()
        if not text and default is not None:
            text = default
        if field == "secureMode":
            if text not in ("2", "3"):
                out("  secureMode must be 2 or 3; try again")
                continue
            value = int(text)
        else:
            value = text
        if not value and field != "apn":
            out("  %s cannot be empty; try again" % name)
            continue
        try:
            check_answer(obj, field, value)
        except ConfigError as e:
            out("  %s; try again" % str(e).split(": ", 1)[-1])
            continue
        return value


def build(values, template=TEMPLATE, interactive=False, ask=_default_ask, out=print):
    """Template + given values (+ answers); returns the validated dict or raises ConfigError."""
    with open(template) as f:
        obj = json.load(f)
    obj.pop("_comment", None)
    for k, v in values.items():
        if v is not None:
            obj[k] = v
    if interactive and values.get("secureMode") is None:
        obj["secureMode"] = _ask_field(obj, "secureMode", ask, out)
    mode = obj.get("secureMode", 2)
    secret_field = "deviceSecret" if mode == 2 else "productSecret"
    if mode == 3 and values.get("deviceSecret") is None:
        obj.pop("deviceSecret", None)
    other = "productSecret" if mode == 2 else "deviceSecret"
    if _placeholder(obj.get(other)):
        obj.pop(other)
    # deviceKey is asked even though the template holds "imei": it is the maker's choice.
    ask_anyway = {"deviceKey": values.get("deviceKey") is None,
                  "apn": values.get("apn") is None}
    for field in ("productKey", "deviceKey", secret_field, "host", "apn"):
        missing = obj.get(field) is None or _placeholder(obj.get(field))
        if not missing and not (interactive and ask_anyway.get(field)):
            continue
        if not interactive:
            if field == "apn":
                continue
            raise ConfigError("secrets.json: %s is missing; pass --%s or run without "
                              "arguments on a terminal to be asked" % (field, field))
        obj[field] = _ask_field(obj, field, ask, out)
    check_secrets(obj)
    return obj


def choose_board(given, interactive, ask=_default_ask, out=print, root=ROOT):
    """The board the deploy line names: given, asked (checked against boards/), or default."""
    boards = list_boards(root)
    if given:
        if given not in boards:
            raise ConfigError("unknown board %s; choose one of: %s" % (given, ", ".join(boards)))
        return given
    if not interactive:
        return DEFAULT_BOARD
    out("  board: the wiring in boards/<board>/ (%s)" % ", ".join(boards))
    while True:
        raw = ask("board [%s]: " % DEFAULT_BOARD, False)
        if raw is None:
            raise ConfigError("input ended before the board was given; nothing written")
        name = raw.strip() or DEFAULT_BOARD
        if name in boards:
            return name
        out("  no board %s; choose one of: %s; try again" % (name, ", ".join(boards)))


def list_boards(root=ROOT):
    d = os.path.join(root, "boards")
    return sorted(b for b in os.listdir(d) if os.path.isfile(os.path.join(d, b, "board.json")))


def write(obj, path, force=False):
    if os.path.exists(path) and not force:
        raise ConfigError("%s exists; pass --force (make secrets FORCE=1) to overwrite it"
                          % path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.chmod(path, 0o600)


def describe(s):
    def ln(v):
        return "-" if not v else "%d chars" % len(v)
    return ("productKey %s, deviceKey %s, deviceSecret %s, productSecret %s, secureMode %d, "
            "dtls %s, port %d, lifetime %d s, report every %d s"
            % (ln(s.product_key), "imei (from the modem)" if s.uses_imei else ln(s.device_key),
               ln(s.device_secret), ln(s.product_secret), s.secure_mode, s.dtls, s.port,
               s.lifetime, s.report_interval_s))


def deploy_lines(board, out_path):
    """The commands that copy out_path to the board, with make and without."""
    default = os.path.abspath(out_path) == os.path.abspath(DEFAULT_OUT)
    rel = os.path.relpath(out_path)
    make = "make deploy PORT=<port> BOARD=%s SECRETS=%s" % (board, "1" if default else rel)
    plain = "python tools/deploy.py deploy --port <port> --board %s --secrets%s" % (
        board, "" if default else " --secrets-file " + rel)
    return [make, "  without make: " + plain,
            "  <port>: /dev/ttyUSB0 (Linux), /dev/cu.usbserial-... (macOS), COM3 (Windows); "
            "`make ports` lists them"]


def _looks_like_board(obj):
    return isinstance(obj, dict) and "productKey" not in obj and ("modem" in obj or "uart" in obj)


def check_file(path, board=None, out=print):
    """`check`: validates a secrets.json or a board.json (recognised by its content)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise ConfigError("%s not found" % path)
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if _looks_like_board(obj) or (obj is None and os.path.basename(path) == "board.json"):
        b = load_board(path)
        out("%s is a board.json: OK: %r" % (path, b))
        warnings = b.warnings
    else:
        if obj is None:
            load_secrets(path)  # raises the device's own JSON error message
        s = check_secrets(obj, path)
        out("%s OK: %s" % (path, describe(s)))
        warnings = s.warnings
    for w in warnings:
        out("warning: " + w)
    if board:
        b = load_board(board)
        out("%s OK: %r" % (board, b))
        for w in b.warnings:
            out("warning: " + w)


def main(argv=None):
    ap = argparse.ArgumentParser(description="create or check secrets.json")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("--out", default=DEFAULT_OUT)
    c.add_argument("--force", action="store_true")
    c.add_argument("--board", help="board name for the deploy line (asked when not given)")
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
                raise ConfigError("%s exists; pass --force (make secrets FORCE=1) to "
                                  "overwrite it" % args.out)
            interactive = sys.stdin.isatty()
            if interactive:
                print("Writing %s. Each answer is checked as you type it." % args.out)
            obj = build(values, interactive=interactive)
            board = choose_board(args.board, interactive)
            write(obj, args.out, args.force)
            print("wrote %s (mode 0600): %s" % (args.out, describe(parse_secrets(obj))))
            if obj.get("deviceKey") == "imei":
                print('deviceKey "imei": create the device in EnOS with the modem\'s IMEI as '
                      "its deviceKey (on the modem's label; the board prints it at boot)")
            print("copy it to the board with:")
            for line in deploy_lines(board, args.out):
                print("  " + line)
        else:
            check_file(args.file, args.board)
    except ConfigError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    except (KeyboardInterrupt, EOFError):
        print("\naborted: nothing written", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
