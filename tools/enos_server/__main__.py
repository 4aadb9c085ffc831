"""Command line of the local EnOS server.

  python -m tools.enos_server serve [--registry F] [--db F] [--port 5683] [--dtls-port 5684]
                                    [--web-port 8684]
  python -m tools.enos_server devices [--db F]
  python -m tools.enos_server points [--device dk] [--db F]
  python -m tools.enos_server command <dk> set-point name=value ...
  python -m tools.enos_server command <dk> get-point name ...
  python -m tools.enos_server command <dk> service <serviceId> [name=value ...]
  python -m tools.enos_server command <dk> raw <hex>
  python -m tools.enos_server commands [--device dk]
"""
import argparse
import asyncio
import binascii
import datetime
import os
import sys

from tools.enos_server import commands as cmds
from tools.enos_server.db import Db
from tools.enos_server.registry import Registry, RegistryError
from tools.enos_server.server import EnosServer

DEFAULT_DB = os.path.join("build", "enos_server.sqlite")


def _when(t):
    if not t:
        return "-"
    return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def cmd_serve(a):
    try:
        reg = Registry.load(a.registry, a.psk_offset)
    except (OSError, ValueError, RegistryError) as e:
        sys.exit("cannot load the registry %s: %s" % (a.registry, e))
    if a.registry is None:
        print("no --registry given: using the demo registry")
        for (pk, dk), d in sorted(reg.devices.items()):
            print("  device %s/%s %s" % (pk, dk, "deviceSecret set" if d.get("deviceSecret")
                                          else "per-product (dynamic activation)"))
    srv = EnosServer(reg, a.db, a.host, a.port, None if a.dtls_port < 0 else a.dtls_port,
                     log=lambda m: print(m, flush=True), dtls_commands=a.dtls_commands,
                     plain_commands=a.plain_commands, hello_verify=not a.no_hello_verify,
                     web_port=None if a.web_port < 0 else a.web_port,
                     dtls_variant=a.dtls_variant)
    try:
        asyncio.run(srv.run())
    except KeyboardInterrupt:
        pass


def cmd_devices(a):
    db = Db(a.db)
    rows = db.devices()
    if not rows:
        print("no device has connected yet")
    for d in rows:
        print("%-10s %-16s %-7s %-8s lifetime %5s s  last seen %s%s" % (
            d["pk"], d["dk"], "online" if d["online"] else "offline", d["mode"] or "-",
            d["lifetime"] or "-", _when(d["last_seen"]), "  activated" if d["activated"] else ""))


def cmd_points(a):
    db = Db(a.db)
    for p in db.points(a.device, a.limit):
        q = "" if p["quality"] is None else " (quality %s)" % p["quality"]
        print("%s %s/%s %s = %s%s  time %s" % (_when(p["received"]), p["pk"], p["dk"], p["name"],
                                               p["value"], q, p["time_ms"] or "-"))


def _product_of(db, reg_path, dk):
    for d in db.devices():
        if d["dk"] == dk:
            return d["pk"]
    reg = Registry.load(reg_path)
    for pk, k in reg.devices:
        if k == dk:
            return pk
    sys.exit("unknown device %s: it has not connected and is not in the registry" % dk)


def cmd_command(a):
    db = Db(a.db)
    pk = _product_of(db, a.registry, a.device)
    try:
        if a.kind == "set-point":
            row = cmds.enqueue_set(db, pk, a.device, cmds.parse_pairs(a.args))
        elif a.kind == "get-point":
            row = cmds.enqueue_get(db, pk, a.device, a.args)
        elif a.kind == "service":
            if not a.args:
                sys.exit("service needs a serviceId")
            row = cmds.enqueue_service(db, pk, a.device, a.args[0], cmds.parse_pairs(a.args[1:]))
        else:
            if len(a.args) != 1:
                sys.exit("raw needs one hex argument")
            try:
                data = binascii.unhexlify(a.args[0])
            except (ValueError, binascii.Error):
                sys.exit("raw takes the command bytes in hex, e.g. 0a0b10")
            row = cmds.enqueue_raw(db, pk, a.device, data)
    except ValueError as e:
        sys.exit(str(e))
    print("queued command #%d for %s/%s; it goes out with the response to the device's next "
          "request" % (row, pk, a.device))


def cmd_commands(a):
    db = Db(a.db)
    for c in db.commands(a.device):
        print("#%d %s %s %s reply=%r" % (c["id"], c["state"], c["topic"],
                                         bytes(c["payload"])[:60], c["reply"]))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.enos_server",
                                description="local EnOS-compatible CoAP server")
    p.add_argument("--db", default=DEFAULT_DB, help="SQLite file (default %(default)s)")
    p.add_argument("--registry", help="device registry JSON (default: the demo registry)")
    # --db and --registry also work after the subcommand (serve --db F).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS)
    common.add_argument("--registry", default=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the server", parents=[common])
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=5683, help="plain CoAP port")
    s.add_argument("--dtls-port", type=int, default=5684, help="DTLS port (-1: off)")
    s.add_argument("--psk-offset", type=int, default=8, choices=(8, 9),
                   help="PSK = sha256(secret)[o:o+16] (enos-coap.md §15 Q5)")
    s.add_argument("--dtls-commands", choices=("get", "option"), default="get",
                   help="DTLS command delivery: 2100 then GET (default) or 2100+2102")
    s.add_argument("--plain-commands", choices=("get", "option"), default="option")
    s.add_argument("--no-hello-verify", action="store_true",
                   help="DTLS without the HelloVerifyRequest cookie round trip")
    s.add_argument("--web-port", type=int, default=8684,
                   help="the web page on 127.0.0.1 (0: a free port, -1: off)")
    s.add_argument("--dtls-variant", choices=("resume", "hvr", "full", "cid"), default="resume",
                   help="session resumption without a cookie (default), with one, none, or "
                        "RFC 9146 Connection ID")
    s.set_defaults(fn=cmd_serve)
    s = sub.add_parser("devices", help="devices, online state and mode", parents=[common])
    s.set_defaults(fn=cmd_devices)
    s = sub.add_parser("points", help="latest measurement points", parents=[common])
    s.add_argument("--device")
    s.add_argument("--limit", type=int, default=50)
    s.set_defaults(fn=cmd_points)
    s = sub.add_parser("command", help="queue a command for a device", parents=[common])
    s.add_argument("device")
    s.add_argument("kind", choices=("set-point", "get-point", "service", "raw"))
    s.add_argument("args", nargs="*")
    s.set_defaults(fn=cmd_command)
    s = sub.add_parser("commands", help="the command queue and replies", parents=[common])
    s.add_argument("--device")
    s.set_defaults(fn=cmd_commands)
    a = p.parse_args(argv)
    if os.path.dirname(a.db):
        os.makedirs(os.path.dirname(a.db), exist_ok=True)
    a.fn(a)


if __name__ == "__main__":
    main()
