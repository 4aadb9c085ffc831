"""`make preflight`: before the board goes out, does this EnOS take CoAP with these keys?

    python tools/preflight.py [--secrets firmware/secrets.json] [--imei IMEI]
                              [--point temperature=21.5] [--host H] [--port N]
                              [--timeout 20]

From this computer, with the device's own stack (enosnb on CPython) and the keys in
secrets.json: resolve the CoAP host, run the DTLS 1.2 PSK handshake with the device's PSK
identity (or POST /auth in plain mode), post one reading, and print how to read it back.
Each step that fails says what it means (enos-coap.md §3.1, §5, §9, §10, §18):

    exit 0  the reading was accepted
    exit 2  secrets.json is wrong, or deviceKey is "imei" and --imei is missing
    exit 3  DNS: the host name does not resolve
    exit 4  no answer on the UDP port (no CoAP service there), or the port is closed
    exit 5  the keys were refused (handshake alert, handshake abandoned, 4.01)
    exit 6  the topic was refused (4.04, 4.03, 4.05, EnOS code 1009 or 1257)
    exit 7  the reading was refused (EnOS code 1204: the thing model lacks the point, ...)
    exit 8  anything else (a server that does not speak DTLS as EnOS does, 5.00, ...)

A computer on a fixed line reaches EnOS through other NATs and firewalls than the modem:
a pass here proves the tenant, the host and the keys, not the radio path.
"""
import argparse
import json
import os
import socket
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (os.path.join(ROOT, "firmware", "lib"), os.path.join(ROOT, "tools", "host")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from enosnb.coap import codes  # noqa: E402
from enosnb.coap.client import Client, Timing  # noqa: E402
from enosnb.coap.errors import CoapError, CoapTimeout  # noqa: E402
from enosnb.config import ConfigError, load_secrets  # noqa: E402
from enosnb.dtls.errors import DtlsError, DtlsTimeout  # noqa: E402
from enosnb.dtls.timers import Timers  # noqa: E402
from enosnb.enos import identity, transport  # noqa: E402
from enosnb.enos.client import EnosClient  # noqa: E402
from enosnb.enos.errors import EnosAuthError, EnosCoapError, EnosError, EnosReplyError  # noqa
from enosnb.udp import UdpEndpoint  # noqa: E402

OK, CONFIG, DNS, NO_ANSWER, KEYS, TOPIC, DATA, OTHER = 0, 2, 3, 4, 5, 6, 7, 8
KEYS_HINT = ("check productKey, deviceKey (with \"imei\": the modem's IMEI is the key), the "
             "secret and secureMode against the EnOS console; psk_slice \"9:25\" only as a "
             "diagnostic")
NO_COAP_HINT = ("this EnOS probably offers no CoAP: EnOS 3.0.0's documentation lists only "
                "MQTT and HTTP for device connection. Ask your EnOS administrator whether "
                "the tenant runs the CoAP service and on which host and ports; a firewall "
                "that drops outgoing UDP looks the same")


class Failed(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def parse_point(text):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise Failed(CONFIG, "--point must be name=value, e.g. temperature=21.5")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def load(path, imei):
    try:
        s = load_secrets(path)
    except ConfigError as e:
        raise Failed(CONFIG, "secrets.json: %s" % e)
    if s.uses_imei:
        if not imei:
            raise Failed(CONFIG, 'deviceKey is "imei": give the board\'s IMEI with --imei '
                         "(make preflight IMEI=...; it is on the modem's label and in the "
                         "board's boot log)")
        try:
            s.set_device_key(imei)
        except ConfigError as e:
            raise Failed(CONFIG, str(e))
    return s


def resolve(host, port):
    try:
        info = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as e:
        raise Failed(DNS, "DNS: %s does not resolve (%s). The CoAP host is \"coap-\" followed "
                     "by your EnOS environment's host name (enos-coap.md §3.1); if the "
                     "environment's own host resolves and this one does not, the tenant has "
                     "no CoAP service" % (host, getattr(e, "strerror", None) or e))
    return info[0][4][0]


def port_closed(ip, port):
    """True when the host answers with ICMP port unreachable (seen as ECONNREFUSED)."""
    s = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((ip, port))
        s.send(b"\x00")
        s.settimeout(1.0)
        try:
            s.recv(16)
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
        return False
    finally:
        s.close()


class Preflight:
    def __init__(self, secrets, host=None, port=None, timeout_s=20.0, out=print):
        self.s = secrets
        self.host = host or secrets.host
        self.port = port or secrets.port
        self.timeout_ms = int(timeout_s * 1000)
        self.out = out
        self.endpoints = []

    def _endpoint(self, host, port):
        ep = UdpEndpoint(host, port)
        self.endpoints.append(ep)
        return ep

    def _client(self, endpoint):
        # A computer's round trips are short; the deadline keeps a silent host bounded.
        timing = Timing(ack_timeout_ms=2000, max_retransmit=3,
                        exchange_timeout_ms=self.timeout_ms)
        return Client(endpoint, timing=timing)

    def _received(self):
        return sum(ep.datagrams_received for ep in self.endpoints)

    def run(self, point):
        s = self.s
        mode = "DTLS 1.2 PSK" if s.dtls else "plain CoAP + /auth"
        self.out("preflight: %s/%s, secureMode %d, %s to %s port %d" % (
            s.product_key, s.device_key, s.effective_secure_mode, mode, self.host, self.port))
        ip = resolve(self.host, self.port)
        self.out("  DNS: %s -> %s" % (self.host, ip))
        timers = Timers(initial_ms=1000, cap_ms=8000, max_retransmit=3,
                        deadline_ms=self.timeout_ms)
        cfg = {"host": ip, "dtls": s.dtls, "port_dtls": self.port, "port_plain": self.port}
        tr = transport.from_config(cfg, self._endpoint, self._client, timers=timers)
        enos = EnosClient(tr, s.enos_config())
        try:
            if s.dtls and not s.device_secret:
                return self._per_product(tr, ip)
            t0 = time.monotonic()
            self._connect(enos, ip)
            self.out("  %s: accepted in %d ms (%s)" % (
                "DTLS handshake" if s.dtls else "POST /auth", (time.monotonic() - t0) * 1000,
                "identity %s,%s,2,%d" % (s.product_key, s.device_key, s.lifetime)))
            self._post(enos, point)
        finally:
            enos.close()
        return OK

    def _connect(self, enos, ip):
        try:
            enos.connect()
        except EnosAuthError as e:
            raise Failed(KEYS, "keys refused: %s; %s" % (e, KEYS_HINT))
        except EnosCoapError as e:
            raise self._coap_failure(e)
        except (DtlsTimeout, CoapTimeout):
            raise self._silence(ip)
        except DtlsError as e:
            raise Failed(OTHER, "the server on UDP %d answered but not as EnOS's DTLS does "
                         "(%s: %s); is this the CoAP host?" % (self.port, type(e).__name__, e))

    def _silence(self, ip):
        if self._received() == 0:
            if port_closed(ip, self.port):
                return Failed(NO_ANSWER, "nothing listens on UDP port %d at %s (ICMP port "
                              "unreachable): wrong port, or no CoAP service there; %s"
                              % (self.port, self.host, NO_COAP_HINT))
            return Failed(NO_ANSWER, "no answer on UDP port %d from %s (%s) in %d s: %s"
                          % (self.port, self.host, ip, self.timeout_ms // 1000, NO_COAP_HINT))
        if self.s.dtls:
            return Failed(KEYS, "the server answered the handshake, then dropped it: that "
                          "is how EnOS and most DTLS servers treat a wrong PSK (no alert); "
                          + KEYS_HINT)
        return Failed(OTHER, "the server answered, then went silent")

    def _per_product(self, tr, ip):
        s = self.s
        ident = identity.psk_identity(s.product_key, s.device_key, identity.MODE_PRODUCT,
                                      s.lifetime)
        psk = identity.psk_key(s.product_secret, s.psk_slice[0])
        try:
            tr.open(ident, psk)
        except EnosAuthError as e:
            raise Failed(KEYS, "keys refused: %s; %s" % (e, KEYS_HINT))
        except (DtlsTimeout, CoapTimeout):
            raise self._silence(ip)
        except DtlsError as e:
            raise Failed(OTHER, "the server answered but not as EnOS's DTLS does (%s)" % e)
        finally:
            tr.close()
        self.out("  DTLS handshake with the productSecret (secureMode 3): accepted")
        self.out("preflight passed as far as it goes for a per-product device: EnOS takes "
                 "CoAP and this product's secret. No reading was posted: that would activate "
                 "the device from this computer and hand its deviceSecret out here; the board "
                 "activates itself on its first connect.")
        return OK

    def _post(self, enos, point):
        name, value = point
        t_ms = int(time.time() * 1000)
        path = "/topic/sys/%s/%s/thing/measurepoint/post" % (self.s.product_key,
                                                             self.s.device_key)
        try:
            enos.post_measurepoints({name: value}, t_ms)
        except EnosReplyError as e:
            raise self._reply_failure(e, name)
        except EnosCoapError as e:
            raise self._coap_failure(e)
        except EnosAuthError as e:
            raise Failed(KEYS, "keys refused on the post: %s; %s" % (e, KEYS_HINT))
        except (CoapTimeout, DtlsTimeout):
            raise Failed(OTHER, "the %s was accepted but the post to %s got no answer: the "
                         "server drops JSON topics over CoAP, or the path is wrong"
                         % ("handshake" if self.s.dtls else "/auth", path))
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t_ms / 1000))
        self.out("  POST %s {%s: %s}: 2.04, EnOS code 200" % (path, json.dumps(name),
                                                            json.dumps(value)))
        self.out("preflight passed: EnOS stored %s = %s at %s (time %d ms)" % (
            name, json.dumps(value), when, t_ms))
        for line in read_back(self.s.product_key, self.s.device_key, name):
            self.out(line)

    def _coap_failure(self, e):
        code = e.coap_code
        text = "EnOS answered %d.%02d to %s" % (code >> 5, code & 31, e.path)
        if code == codes.NOT_FOUND:
            return Failed(TOPIC, "%s: no such resource. Either this device does not exist "
                          "under this productKey (check both keys in the console), or this "
                          "EnOS takes no JSON topics over CoAP (enos-coap.md §15 Q7)" % text)
        if code == codes.FORBIDDEN:
            return Failed(TOPIC, "%s: forbidden: the device may not use this topic (a "
                          "disabled device, or a per-product device not activated)" % text)
        if code == codes.METHOD_NOT_ALLOWED:
            return Failed(TOPIC, "%s: method not allowed on this topic" % text)
        if code == codes.UNAUTHORIZED:
            return Failed(KEYS, "%s: unauthorised; %s" % (text, KEYS_HINT))
        return Failed(OTHER, "%s: %s" % (text, "server error, try again later" if code >= 0xA0
                                         else "unexpected answer"))

    def _reply_failure(self, e, name):
        if e.code == 1204:
            return Failed(DATA, "%s. The product's thing model has no measurement point %r "
                          "of this type: add it (docs/thing-model.md imports the firmware's "
                          "points) or pick one it has with --point name=value" % (e, name))
        if e.code in (1009, 1257):
            return Failed(TOPIC, "%s: the device is not known or may not post here; check "
                          "productKey and deviceKey" % e)
        return Failed(DATA, str(e))


def read_back(pk, dk, name):
    return [
        "read it back:",
        "  EnOS console: Device Management > Device Assets, search %s, open the device: its "
        "measurement points show the latest value and time of %s" % (dk, name),
        "  EnOS API (TSDB Data Service, Get Asset Latest Data; asset ID from the device page):",
        "    GET https://{apigw-address}/tsdb-service/v2.0/latest?orgId=<orgId>&assetIds="
        "<assetId>&measurepoints=%s" % name,
        "    EnOS 2.1.3 and later: POST https://{apigw-address}/tsdb-service/v2.1/latest?"
        "orgId=<orgId> with assetIds and pointIds=%s in the body" % name,
        "  (productKey %s, deviceKey %s)" % (pk, dk),
    ]


def main(argv=None, out=print):
    ap = argparse.ArgumentParser(prog="python tools/preflight.py",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--secrets", default=os.path.join(ROOT, "firmware", "secrets.json"))
    ap.add_argument("--imei", help='the IMEI, when deviceKey is "imei"')
    ap.add_argument("--point", default="temperature=21.5",
                    help="the reading to post, name=value (default temperature=21.5)")
    ap.add_argument("--host", help="override secrets.json's host")
    ap.add_argument("--port", type=int, help="override the port")
    ap.add_argument("--timeout", type=float, default=20.0,
                    help="longest wait for the handshake and for each answer, s")
    a = ap.parse_args(argv)
    try:
        point = parse_point(a.point)
        s = load(a.secrets, a.imei)
        return Preflight(s, a.host, a.port, a.timeout, out).run(point)
    except Failed as f:
        print("preflight failed: %s" % f, file=sys.stderr)
        return f.status
    except (EnosError, CoapError, DtlsError, OSError) as e:
        print("preflight failed: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return OTHER


if __name__ == "__main__":
    sys.exit(main())
