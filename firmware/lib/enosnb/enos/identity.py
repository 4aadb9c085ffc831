"""EnOS device identity, DTLS PSK and the non-DTLS sign (enos-coap.md §4, §5.2, §6.1, §6.2).

DTLS mode: the PSK identity is `{pk},{dk},{secureMode},{lifetime}` and the key is 16 raw bytes
of SHA-256(secret). The docs say "bytes 9 to 24"; we read that as digest[8:24] [inferred, Q5],
with digest[9:25] behind the `psk_offset` switch for diagnosis only.
Plain mode: POST /auth/{pk}/{dk} with {"secureMode":2,"lifetime":N,"sign":"<HEX>"}, where sign
is the uppercase hex SHA-256 of deviceKey{dk}lifetime{N}productKey{pk}secureMode2{secret}.
"""
import binascii
import hashlib

from enosnb.enos.errors import EnosConfigError

MODE_DEVICE = 2
MODE_PRODUCT = 3
LIFETIME_MIN = 30
LIFETIME_MAX = 86400
PSK_OFFSET_DEFAULT = 8
PSK_OFFSET_ALT = 9
PSK_LEN = 16


def _text(name, value):
    if isinstance(value, bytes):
        value = value.decode()
    if not isinstance(value, str) or not value:
        raise EnosConfigError("%s is missing: set it in secrets.json" % name)
    if "," in value or " " in value:
        raise EnosConfigError("%s must not contain commas or spaces" % name)
    return value


def check_lifetime(lifetime):
    """The lifetime as int; EnosConfigError unless it is a whole number in 30..86400 s."""
    if isinstance(lifetime, bool) or not isinstance(lifetime, int):
        raise EnosConfigError("lifetime must be a whole number of seconds (30..86400)")
    if lifetime < LIFETIME_MIN or lifetime > LIFETIME_MAX:
        raise EnosConfigError("lifetime %d s is outside EnOS's range 30..86400 s" % lifetime)
    return lifetime


def check_mode(mode):
    if mode != MODE_DEVICE and mode != MODE_PRODUCT:
        raise EnosConfigError("secureMode must be 2 (per device) or 3 (per product)")
    return mode


def psk_identity(product_key, device_key, mode, lifetime):
    """The DTLS PSK identity bytes, e.g. b"MuGsF6W4,15bBZlRknc,2,3600"."""
    return ("%s,%s,%d,%d" % (_text("productKey", product_key), _text("deviceKey", device_key),
                            check_mode(mode), check_lifetime(lifetime))).encode()


def _secret_bytes(secret):
    if isinstance(secret, str):
        secret = secret.encode()
    if not isinstance(secret, bytes) or not secret:
        raise EnosConfigError("the device or product secret is missing: set it in secrets.json")
    return secret


def psk_key(secret, offset=PSK_OFFSET_DEFAULT):
    """16 raw key bytes: sha256(secret)[offset:offset+16]; offset 8 (default) or 9 (Q5)."""
    if offset != PSK_OFFSET_DEFAULT and offset != PSK_OFFSET_ALT:
        raise EnosConfigError("pskOffset must be 8 (default) or 9 (diagnostic)")
    return hashlib.sha256(_secret_bytes(secret)).digest()[offset:offset + PSK_LEN]


def sign(product_key, device_key, lifetime, device_secret, upper=True):
    """The /auth sign: 64 hex characters, uppercase unless upper=False (diagnostic, Q11)."""
    h = hashlib.sha256()
    h.update(("deviceKey%slifetime%dproductKey%ssecureMode%d" % (
        _text("deviceKey", device_key), check_lifetime(lifetime),
        _text("productKey", product_key), MODE_DEVICE)).encode())
    h.update(_secret_bytes(device_secret))
    hexd = binascii.hexlify(h.digest()).decode()
    return hexd.upper() if upper else hexd


def auth_body(product_key, device_key, lifetime, device_secret, upper=True):
    """The compact JSON body of POST /auth/{pk}/{dk} (§6.1), as bytes."""
    return ('{"secureMode":2,"lifetime":%d,"sign":"%s"}' % (
        check_lifetime(lifetime),
        sign(product_key, device_key, lifetime, device_secret, upper))).encode()


def auth_path(product_key, device_key):
    return "/auth/%s/%s" % (_text("productKey", product_key), _text("deviceKey", device_key))
