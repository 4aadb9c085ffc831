"""Device registry: products, devices and their secrets, identity/PSK and sign checks.

Registry file (JSON):
    {"products": [{"productKey": "p", "productSecret": "s", "dynamicActivation": true}],
     "devices":  [{"productKey": "p", "deviceKey": "d", "deviceSecret": "s"}]}
A device of a product with dynamicActivation may omit deviceSecret; one is generated when
it activates. The PSK and sign derivations (enos-coap.md §5.2, §6.2) are written here again
from docs/enos-coap.md rather than imported from the firmware, so that a mistake in one side shows.
"""
import hashlib
import hmac
import json
import secrets

PSK_OFFSET = 8
LIFETIME_MIN = 30
LIFETIME_MAX = 86400

DEMO = {
    "products": [
        {"productKey": "MuGsF6W4", "productSecret": "DemoProductSecret0123456789abcd",
         "dynamicActivation": True},
    ],
    "devices": [
        {"productKey": "MuGsF6W4", "deviceKey": "15bBZlRknc",
         "deviceSecret": "ExampleDeviceSecret0123456789abc"},
        {"productKey": "MuGsF6W4", "deviceKey": "demoDynamic01"},
        # Its PSK, sha256(secret)[8:24], is printable ASCII ("W1IRooQo_H;d<KRw"), so that
        # clients taking the key as text (libcoap's coap-client -k) can connect over DTLS.
        {"productKey": "MuGsF6W4", "deviceKey": "printablePsk01",
         "deviceSecret": "PrintablePskSecret004310921"},
    ],
}


class RegistryError(Exception):
    pass


def psk_key(secret, offset=PSK_OFFSET):
    return hashlib.sha256(secret.encode()).digest()[offset:offset + 16]


def expected_sign(pk, dk, lifetime, secret):
    text = "deviceKey%slifetime%dproductKey%ssecureMode2%s" % (dk, lifetime, pk, secret)
    return hashlib.sha256(text.encode()).hexdigest().upper()


def parse_identity(identity):
    """(pk, dk, mode, lifetime) of a PSK identity, or None when it is malformed."""
    if isinstance(identity, bytes):
        try:
            identity = identity.decode("ascii")
        except UnicodeDecodeError:
            return None
    parts = identity.split(",")
    if len(parts) != 4 or not parts[0] or not parts[1]:
        return None
    if parts[2] not in ("2", "3") or not parts[3].isdigit():
        return None
    lifetime = int(parts[3])
    if not LIFETIME_MIN <= lifetime <= LIFETIME_MAX:
        return None
    return parts[0], parts[1], int(parts[2]), lifetime


class Registry:
    def __init__(self, data, psk_offset=PSK_OFFSET):
        self.psk_offset = psk_offset
        self.products = {}
        self.devices = {}
        for p in data.get("products", []):
            if not p.get("productKey"):
                raise RegistryError("every product needs a productKey")
            self.products[p["productKey"]] = dict(p)
        for d in data.get("devices", []):
            pk, dk = d.get("productKey"), d.get("deviceKey")
            if not pk or not dk:
                raise RegistryError("every device needs productKey and deviceKey")
            self.products.setdefault(pk, {"productKey": pk})
            self.devices[(pk, dk)] = dict(d)

    @classmethod
    def load(cls, path=None, psk_offset=PSK_OFFSET):
        if path is None:
            return cls(json.loads(json.dumps(DEMO)), psk_offset)
        with open(path) as f:
            return cls(json.load(f), psk_offset)

    def device(self, pk, dk):
        return self.devices.get((pk, dk))

    def product(self, pk):
        return self.products.get(pk)

    def psk_for(self, identity):
        """(psk, (pk, dk, mode, lifetime)) for a PSK identity, or None when it is not allowed."""
        ident = parse_identity(identity)
        if ident is None:
            return None
        pk, dk, mode, _ = ident
        dev = self.device(pk, dk)
        if dev is None:
            return None
        if mode == 2:
            secret = dev.get("deviceSecret")
        else:
            prod = self.product(pk) or {}
            if not prod.get("dynamicActivation"):
                return None
            secret = prod.get("productSecret")
        if not secret:
            return None
        return psk_key(secret, self.psk_offset), ident

    def check_sign(self, pk, dk, lifetime, sign):
        dev = self.device(pk, dk)
        if dev is None or not dev.get("deviceSecret") or not isinstance(sign, str):
            return False
        return hmac.compare_digest(expected_sign(pk, dk, lifetime, dev["deviceSecret"]), sign)

    def adopt_secrets(self, secrets_by_device):
        """deviceSecrets handed out by an earlier run, for devices the registry still has."""
        for key, secret in secrets_by_device.items():
            dev = self.devices.get(key)
            if dev is not None and not dev.get("deviceSecret"):
                dev["deviceSecret"] = secret

    def activate(self, pk, dk):
        """The deviceSecret to hand out on activation, generating one if the device has none."""
        dev = self.devices[(pk, dk)]
        if not dev.get("deviceSecret"):
            dev["deviceSecret"] = secrets.token_hex(16)
        dev["activated"] = True
        return dev["deviceSecret"]
