"""The configuration a cycle runs with: Secrets and Board, validated once per change of
secrets.json or board.json and kept on the flash in between (docs/device-config.md).

load() reads both files and hashes them with the firmware version. When CACHE_FILE holds
what validation produced for exactly those bytes, the objects are rebuilt from it and the
validator (enosnb.config, the largest module a boot would otherwise load for nothing) stays
out of RAM; when either file changed, the validator runs, the cache is rewritten and the
validator's module is released again. The cache holds every validated field except the
secrets: deviceSecret and productSecret are read from secrets.json itself each time, so the
secrets exist on the flash only where the device maker put them. Validation warnings are
kept in the cache and logged on every boot.
"""
import json

SECRETS_FILE = "secrets.json"
BOARD_FILE = "board.json"
CACHE_FILE = "config.cache"
_FORMAT = "1"  # of the cache: part of its key, with the package version
_SECRET_ATTRS = ["device_secret", "product_secret"]


class ConfigError(Exception):
    """secrets.json or board.json is missing or wrong; the message says which field and how
    to fix it, and never contains a secret."""


class Secrets:
    """Validated secrets.json. repr() shows field names and lengths, never values."""

    def __init__(self):
        self.warnings = []
        self.key_from_imei = False

    @property
    def port(self):
        return self.port_dtls if self.dtls else self.port_plain

    @property
    def uses_imei(self):
        return self.device_key == "imei"

    @property
    def secret(self):
        """The secret the handshake or /auth uses now: deviceSecret when known, else
        productSecret (secureMode 3 activation)."""
        return self.device_secret if self.device_secret else self.product_secret

    @property
    def effective_secure_mode(self):
        return 2 if self.device_secret else 3

    def set_device_key(self, imei):
        """Fills in the IMEI when deviceKey is "imei" (after the modem answered AT+CGSN)."""
        if not imei or not str(imei).isdigit():
            raise ConfigError("modem IMEI is not a number string; check the modem wiring "
                              "or set deviceKey in secrets.json")
        self.device_key = str(imei)
        self.key_from_imei = True

    def enos_config(self):
        """The dict enosnb.enos.client.EnosClient takes (its camelCase keys)."""
        if self.uses_imei:
            raise ConfigError("secrets.json: deviceKey is \"imei\" but the IMEI is not known "
                              "yet; call set_device_key(modem.imei()) first")
        return {"productKey": self.product_key, "deviceKey": self.device_key,
                "deviceSecret": self.device_secret, "productSecret": self.product_secret,
                "lifetime": self.lifetime, "pskOffset": self.psk_slice[0],
                "signUppercase": self.sign_uppercase, "dtlsAuth": self.auth_fallback,
                "contentFormat": self.content_format}

    def __repr__(self):
        def ln(v):
            return "-" if v is None else "len %d" % len(v)
        return ("<Secrets productKey %s deviceKey %s deviceSecret %s productSecret %s "
                "secureMode %d dtls %s port %d>" % (
                    ln(self.product_key), ln(self.device_key), ln(self.device_secret),
                    ln(self.product_secret), self.secure_mode, self.dtls, self.port))


class Board:
    """Validated board.json: name, modem, uart/pwrkey/reset/power_enable/status/led dicts
    (None when absent), bands (list or None), boot_wait_ms, attach_timeout_ms,
    first_attach_timeout_ms and modem_clock (None when absent), wdt_timeout_ms, battery (dict
    or None), sleep_floor_ua (int or None), mem_report, warnings."""

    def __init__(self):
        self.warnings = []

    def uart_kwargs(self):
        """Keyword arguments for machine.UART(id, **kwargs)."""
        return uart_kwargs(self.uart)

    def modem_kwargs(self):
        """Keyword arguments for the modem driver: Sim7020(uart, clock, **kwargs) / Bc95."""
        kw = {}
        if self.pwrkey:
            kw["pwrkey"] = self.pwrkey["pin"]
            kw["pwrkey_active_high"] = self.pwrkey["active_high"]
            kw["pwrkey_ms"] = self.pwrkey["pulse_ms"]
        if self.boot_wait_ms:
            kw["boot_timeout_ms"] = self.boot_wait_ms
        if self.modem_clock:
            kw["cclk_utc"] = self.modem_clock == "utc"
        kw["baudrate"] = self.uart["baudrate"]
        return kw

    def __repr__(self):
        return "<Board %s modem %s uart %d @ %d>" % (self.name, self.modem, self.uart["id"],
                                                     self.uart["baudrate"])


def uart_kwargs(u):
    """Keyword arguments for machine.UART(u["id"], **kwargs) from board.json's uart object."""
    return {"baudrate": u["baudrate"], "tx": u["tx"], "rx": u["rx"],
            "rxbuf": u.get("rxbuf", 4096), "timeout": 0}


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _key(secrets, board):
    import binascii
    import hashlib
    from enosnb import VERSION
    h = hashlib.sha256((_FORMAT + "|" + VERSION + "|").encode())
    h.update(secrets)
    h.update(b"\0")
    h.update(board)
    return binascii.hexlify(h.digest()[:16]).decode()


def _fields(obj):
    return dict((k, v) for k, v in obj.__dict__.items()
                if k != "warnings" and k not in _SECRET_ATTRS)


def _rebuild(cls, fields, warnings):
    obj = cls()
    for k in fields:
        setattr(obj, k, fields[k])
    obj.warnings = warnings
    return obj


def _from_cache(path, key, secrets_bytes):
    raw = _read(path)
    if raw is None:
        return None
    try:
        c = json.loads(raw)
        if c["key"] != key:
            return None
        s = _rebuild(Secrets, c["s"], c["sw"])
        b = _rebuild(Board, c["b"], c["bw"])
        given = json.loads(secrets_bytes)
        s.device_secret = given.get("deviceSecret")
        s.product_secret = given.get("productSecret")
        s.psk_slice = tuple(s.psk_slice)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # damaged or from another version: validate again
    return s, b


def _validate(secrets_path, board_path):
    """The validator's verdict; its module is released afterwards (its code and tables are
    only needed when a file changed)."""
    import sys
    from enosnb import config
    try:
        return config.load_secrets(secrets_path), config.load_board(board_path)
    finally:
        del config
        sys.modules.pop("enosnb.config", None)
        import enosnb
        try:
            delattr(enosnb, "config")
        except AttributeError:
            pass


def _save(path, key, s, b):
    text = json.dumps({"key": key, "s": _fields(s), "sw": s.warnings, "b": _fields(b),
                       "bw": b.warnings})
    try:
        with open(path + ".tmp", "w") as f:
            f.write(text)
        import os
        try:
            os.remove(path)
        except OSError:
            pass
        os.rename(path + ".tmp", path)
    except OSError:
        pass  # a full flash: validation simply runs again next boot


def load(secrets_path=SECRETS_FILE, board_path=BOARD_FILE, cache_path=CACHE_FILE):
    """(Secrets, Board); ConfigError when a file is missing or wrong."""
    sb, bb = _read(secrets_path), _read(board_path)
    key = None
    if sb is not None and bb is not None:
        key = _key(sb, bb)
        got = _from_cache(cache_path, key, sb)
        if got is not None:
            return got
    s, b = _validate(secrets_path, board_path)
    if key is not None:
        _save(cache_path, key, s, b)
    return s, b
