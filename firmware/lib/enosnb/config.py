"""secrets.json and board.json: validation. enosnb.settings runs it when either file changed
since the last boot and keeps what it produced; the tools run it before they copy a file.

Every problem raises ConfigError with a message naming the file, the field and the fix.
No message ever contains the value of a string from secrets.json (only its field name and
length); numbers and booleans may be echoed. main.py catches ConfigError, prints it and
returns to the REPL, so a bad file never bricks the board. Keys starting with "_" are
comments and ignored; other unknown keys are listed in .warnings.

secrets.json (enos-coap.md §4, §5.2, §7, §15):
  productKey          str, required. 1..64 printable chars, no "," "/" or spaces.
  deviceKey           str, required. Same rules, or "imei" to use the modem's IMEI (§4).
  deviceSecret        str, required when secureMode is 2 (per-device secret).
  productSecret       str, required when secureMode is 3 (per-product activation, DTLS
                      only); a deviceSecret given as well is used directly (§7 step 1).
  secureMode          int 2 or 3, default 2.
  lifetime            int seconds 30..86400, default 3600. EnOS shows the device offline
                      after `lifetime` without traffic (a warning when < report_interval_s).
  host                str, required: "coap-" + the EnOS environment host name, or an IP.
  dtls                bool, default true.
  port_dtls           int 1..65535, default 5684.
  port_plain          int 1..65535, default 5683.
  apn                 str, default "" (network default).
  report_interval_s   int 10..604800, default 600: deep sleep between report cycles.
  psk_slice           "8:24" (default) or "9:25" (diagnostic, enos-coap.md Q5).
  ack_timeout_ms      int 1000..120000, default 15000 (CoAP ACK_TIMEOUT on NB-IoT, Q12).
  max_retransmit      int 0..10, default 4.
  batch_max           int 1..100, default 10: queued points per batch/resume request.
  queue_max_records   int 1..100000, default 500: flash queue bound (drop oldest).
  auth_fallback       bool, default false: POST /auth inside DTLS (Q6).
  reactivate          false (default), true or int 1..100: with an activated deviceSecret and a
                      productSecret, forget the activated secret after that many refused
                      handshakes in a row (true = 3), so the next cycle activates again
                      (§7 step 8; docs/diagnostics.md).
  sign_uppercase      bool, default true: plain-mode sign hex case (diagnostic, Q11).
  content_format      bool, default true: send Content-Format (diagnostic, Q8).
  diagnostics         false (default), true or int seconds 600..2592000: report the device's
                      diagnostics attributes (thing.attribute.update, a request of its own)
                      after every power-on and then at most this often (true = a day).

board.json (modems.md §9; pins are ESP32 GPIO numbers):
  name                str, required.
  modem               "sim7020" or "bc95", required.
  uart                required: {"id": 1|2, "baudrate": int, "tx": pin, "rx": pin,
                      "rxbuf": int >= 1024 (default 4096)}. UART0 is the REPL.
  pwrkey              optional: {"pin": pin, "active_high": bool (default false),
                      "pulse_ms": int (default 800)}.
  reset               optional: {"pin": pin, "active_high": bool (default false),
                      "pulse_ms": int (default 300)}.
  power_enable        optional: {"pin": pin, "active_high": bool (default true)}.
  status              optional: {"pin": pin} (input: modem status).
  led                 optional: {"pin": pin, "active_high": bool (default true)}.
  bands               optional: list of LTE band numbers 1..88, e.g. [3, 8, 20].
  boot_wait_ms        optional int: longest wait for the first "OK" after power-on.
  attach_timeout_ms   optional int 1000..600000: longest wait for network registration in
                      a report cycle (modems.md §6); absent: enosnb.app DEFAULTS (120000).
                      It counts towards the cycle's time budget (cycle_budget_ms, 170 s).
  first_attach_timeout_ms  optional int 10000..1800000: longest wait for the first
                      registration of a module that scans every band (never registered, or
                      its bands or APN just changed; modems.md §6.1); absent: 300000.
  modem_clock         optional "utc" or "local": what the BC95's AT+CCLK? time fields show
                      (modems.md §3.4, unverified: "utc" by default). SIM7020 ignores it.
  wdt_timeout_ms      int 5000..600000, default 180000: hardware watchdog period.
  battery             optional: {"adc_pin": 32..39, "divider": number 1..20 (battery volts
                      per volt at the pin, e.g. 2 for two equal resistors), "low_mv": int
                      (default 3500), "critical_mv": int (default 3300), "low_factor": int
                      1..24 (default 4), "capacity_mah": int (default 2600)}: below low_mv
                      the report interval is low_factor times longer, below critical_mv the
                      radio stays off and readings are only queued (docs/power.md).
  sleep_floor_ua      optional int 1..100000: the whole board's current in deep sleep with
                      the modem in PSM, in microamperes, as measured by the maker; the
                      energy budget (make budget) uses it.
  mem_report          bool, default false: print the heap at boot, after the UART is made,
                      after the imports and at the cycle's peak, and probe the headroom
                      (enosnb.memreport, docs/ram.md).
Output pins (uart.tx, pwrkey, reset, power_enable, led) must not be input-only GPIO 34..39;
GPIO 6..11 (flash) and non-existent GPIOs are refused; no pin may serve two roles.
"""
import json

from enosnb.settings import BOARD_FILE, SECRETS_FILE, Board, ConfigError, Secrets

# Tables are lists, not tuples: mpy-cross stores a constant tuple as serialized objects
# (its strings once more), a list as short bytecode that refers to the names in use anyway.
MODEMS = ["sim7020", "bc95"]
BAUDRATES = [4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600]
PSK_SLICES = {"8:24": (8, 24), "9:25": (9, 25)}
_GPIO_OK = [0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 23, 25, 26, 27,
            32, 33, 34, 35, 36, 37, 38, 39]
_SECRET_FIELDS = ["deviceSecret", "productSecret"]

_SECRETS_FIELDS = ["productKey", "deviceKey", "deviceSecret", "productSecret", "secureMode",
                   "lifetime", "host", "dtls", "port_dtls", "port_plain", "apn",
                   "report_interval_s", "psk_slice", "ack_timeout_ms", "max_retransmit",
                   "batch_max", "queue_max_records", "auth_fallback", "reactivate",
                   "sign_uppercase", "content_format", "diagnostics"]
_BOARD_FIELDS = ["name", "modem", "uart", "pwrkey", "reset", "power_enable", "status", "led",
                 "bands", "boot_wait_ms", "attach_timeout_ms", "first_attach_timeout_ms",
                 "modem_clock", "wdt_timeout_ms", "battery", "sleep_floor_ua", "mem_report"]


def _fail(where, field, problem, fix):
    raise ConfigError("%s: %s %s; %s" % (where, field, problem, fix))


def _read_json(path, what, fix_missing):
    try:
        f = open(path)
    except OSError:
        raise ConfigError("%s not found at %s; %s" % (what, path, fix_missing))
    try:
        text = f.read()
    except ValueError:
        raise ConfigError("%s is not UTF-8 text; save it as UTF-8 (plain JSON)" % what)
    finally:
        f.close()
    try:
        obj = json.loads(text)
    except ValueError as e:
        # Only the position, never the parser's text: it could quote the secret.
        line = getattr(e, "lineno", None)
        at = " (line %d, column %d)" % (line, e.colno) if line else ""
        raise ConfigError("%s is not valid JSON%s; fix the syntax (double quotes, commas, no "
                          "trailing comma) and check it with tools/secrets_tool.py check"
                          % (what, at))
    return obj  # parse_secrets / parse_board refuse anything but an object


def _check_keys(obj, known, where, warnings):
    lower = {}
    for k in known:
        lower[k.lower()] = k
    for k in obj:
        if not isinstance(k, str):
            # MicroPython's json takes {1: 2} and {"a" 1}, which CPython's refuses.
            _fail(where, "a field name", "is not a string", "put every name in double quotes")
        if k.startswith("_") or k in known:
            continue
        hint = lower.get(k.lower())
        if hint:
            _fail(where, '"%s"' % k, "is not a known field", 'names are case-sensitive: '
                  'write "%s"' % hint)
        warnings.append('%s: unknown field "%s" ignored' % (where, k))


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _int(obj, key, where, lo, hi, default=None, required=False):
    v = obj.get(key)
    if v is None:
        if required:
            _fail(where, key, "is missing", "add an integer %d..%d" % (lo, hi))
        return default
    if not _is_int(v):
        _fail(where, key, "must be an integer", "write a number %d..%d without quotes"
              % (lo, hi))
    if v < lo or v > hi:
        _fail(where, key, "is %d, outside %d..%d" % (v, lo, hi), "set a value in range")
    return v


def _bool(obj, key, where, default):
    v = obj.get(key)
    if v is None:
        return default
    if not isinstance(v, bool):
        _fail(where, key, "must be true or false", "write true or false without quotes")
    return v


def _bool_or_int(obj, key, where, lo, hi, if_true):
    """0 for false or absent, if_true for true, else an integer lo..hi."""
    v = obj.get(key, False)
    if v is False:
        return 0
    if v is True:
        return if_true
    if not _is_int(v) or v < lo or v > hi:
        _fail(where, key, "must be true, false or an integer %d..%d" % (lo, hi),
              "write it without quotes")
    return v


def _str(obj, key, where, required, default=None, maxlen=128):
    """A string field. No message quotes its value: it may be a secret."""
    v = obj.get(key)
    if v is None:
        if required:
            _fail(where, key, "is missing", "add it as a JSON string")
        return default
    if not isinstance(v, str):
        _fail(where, key, "must be a JSON string", 'put the value in double quotes')
    if len(v) > maxlen:
        _fail(where, key, "is %d characters long, more than %d" % (len(v), maxlen),
              "check that the right value was pasted")
    for c in v:
        if ord(c) < 0x20 or ord(c) == 0x7F:
            _fail(where, key, "(length %d) contains a control character" % len(v),
                  "remove line breaks or tabs pasted with the value")
    return v


def _key_str(obj, key, where, allow_imei=False):
    v = _str(obj, key, where, True, maxlen=64)
    if not v:
        _fail(where, key, "is empty", "copy it from the EnOS console (Device Management)")
    if allow_imei and v.lower() == "imei":
        return "imei"
    for c in v:
        if c in ",/ " or ord(c) > 0x7E:
            _fail(where, key, "(length %d) contains %s" % (len(v), "a space" if c == " " else
                  repr(c) if c in ",/" else "a non-ASCII character"),
                  "EnOS keys are ASCII without ',', '/' or spaces; check the copied value")
    return v


def parse_secrets(obj, where=SECRETS_FILE):
    """Validates a decoded secrets.json object; returns Secrets or raises ConfigError."""
    if not isinstance(obj, dict):
        raise ConfigError("%s must hold one JSON object {...}" % where)
    s = Secrets()
    _check_keys(obj, _SECRETS_FIELDS, where, s.warnings)
    s.product_key = _key_str(obj, "productKey", where)
    s.device_key = _key_str(obj, "deviceKey", where, allow_imei=True)
    s.secure_mode = obj.get("secureMode", 2)
    if not _is_int(s.secure_mode) or s.secure_mode not in (2, 3):
        _fail(where, "secureMode", "must be 2 or 3",
              "2 = per-device secret (deviceSecret), 3 = per-product (productSecret)")
    s.device_secret = _str(obj, "deviceSecret", where, False)
    s.product_secret = _str(obj, "productSecret", where, False)
    s.dtls = _bool(obj, "dtls", where, True)
    for name in _SECRET_FIELDS:
        v = obj.get(name)
        if v is not None and not v:
            _fail(where, name, "is empty", "paste the secret from the EnOS console or remove "
                  "the field")
    if s.secure_mode == 2 and not s.device_secret:
        _fail(where, "deviceSecret", "is missing (secureMode 2)",
              "add the device's secret from the EnOS console, or use secureMode 3 with "
              "productSecret")
    if s.secure_mode == 3:
        if not s.product_secret:
            _fail(where, "productSecret", "is missing (secureMode 3)",
                  "add the product secret from the EnOS console, or use secureMode 2")
        if not s.dtls:
            _fail(where, "secureMode", "3 needs DTLS",
                  'set "dtls": true (EnOS documents per-product activation only over DTLS)')
    for name in ["productKey", "deviceKey", "deviceSecret", "productSecret", "host"]:
        v = obj.get(name)
        if isinstance(v, str) and ("YOUR_" in v or "YOUR-" in v):
            _fail(where, name, "still holds the template placeholder",
                  "replace it with the value from the EnOS console")
    s.lifetime = _int(obj, "lifetime", where, 30, 86400, 3600)
    s.host = _str(obj, "host", where, True, maxlen=253)
    if not s.host or " " in s.host or "/" in s.host or ":" in s.host:
        _fail(where, "host", "must be a bare host name or IPv4 address",
              'write e.g. "coap-<EnOS environment host>" without scheme, port or path')
    s.port_dtls = _int(obj, "port_dtls", where, 1, 65535, 5684)
    s.port_plain = _int(obj, "port_plain", where, 1, 65535, 5683)
    s.apn = _str(obj, "apn", where, False, default="", maxlen=63)
    s.report_interval_s = _int(obj, "report_interval_s", where, 10, 604800, 600)
    slice_ = obj.get("psk_slice", "8:24")
    if not isinstance(slice_, str) or slice_ not in PSK_SLICES:
        _fail(where, "psk_slice", "must be \"8:24\" or \"9:25\"",
              'leave it out (default "8:24"); "9:25" is only a diagnostic')
    s.psk_slice = PSK_SLICES[slice_]
    s.ack_timeout_ms = _int(obj, "ack_timeout_ms", where, 1000, 120000, 15000)
    s.max_retransmit = _int(obj, "max_retransmit", where, 0, 10, 4)
    s.batch_max = _int(obj, "batch_max", where, 1, 100, 10)
    s.queue_max_records = _int(obj, "queue_max_records", where, 1, 100000, 500)
    s.auth_fallback = _bool(obj, "auth_fallback", where, False)
    s.reactivate = _bool_or_int(obj, "reactivate", where, 1, 100, 3)
    s.sign_uppercase = _bool(obj, "sign_uppercase", where, True)
    s.content_format = _bool(obj, "content_format", where, True)
    s.diagnostics = _bool_or_int(obj, "diagnostics", where, 600, 2592000, 86400)
    if s.lifetime < s.report_interval_s:
        s.warnings.append("%s: lifetime %d < report_interval_s %d: EnOS shows the device "
                          "offline between reports" % (where, s.lifetime, s.report_interval_s))
    return s


def load_secrets(path=SECRETS_FILE):
    obj = _read_json(path, "secrets.json", "copy secrets.example.json to secrets.json, fill "
                     "it in (make secrets) and copy it to the board (make deploy SECRETS=1)")
    return parse_secrets(obj, path)


def _pin(obj, key, where, output):
    v = obj.get(key) if isinstance(obj, dict) else None
    if v is None:
        _fail(where, key, "is missing", "add the ESP32 GPIO number from the board's pinout")
    if not _is_int(v) or v not in _GPIO_OK:
        _fail(where, key, "is %r, not a usable ESP32 GPIO" % (v,),
              "use 0-5, 12-19, 21-23, 25-27 or 32-39 (6-11 are the flash)")
    if output and v >= 34:
        _fail(where, key, "is GPIO%d, which is input-only" % v,
              "wire this signal to an output-capable GPIO (below 34)")
    return v


def _pin_block(obj, key, where, output, pins, active_high=None, pulse_ms=None):
    """{"pin", and "active_high" / "pulse_ms" when their default is given} or None."""
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        _fail(where, key, "must be an object like {\"pin\": 4}", "or remove it / set null")
    vw = "%s: %s" % (where, key)
    out = {"pin": _pin(v, "pin", vw, output)}
    if active_high is not None:
        out["active_high"] = _bool(v, "active_high", vw, active_high)
    if pulse_ms is not None:
        out["pulse_ms"] = _int(v, "pulse_ms", vw, 10, 10000, pulse_ms)
    _claim(pins, out["pin"], key + ".pin", where)
    return out


def _claim(pins, pin, role, where):
    if pin in pins:
        _fail(where, role, "uses GPIO%d, already used by %s" % (pin, pins[pin]),
              "give every signal its own pin")
    pins[pin] = role


def parse_board(obj, where=BOARD_FILE):
    """Validates a decoded board.json object; returns Board or raises ConfigError."""
    if not isinstance(obj, dict):
        raise ConfigError("%s must hold one JSON object {...}" % where)
    b = Board()
    _check_keys(obj, _BOARD_FIELDS, where, b.warnings)
    b.name = _str(obj, "name", where, True, maxlen=64)
    b.modem = obj.get("modem")
    if b.modem not in MODEMS:
        _fail(where, "modem", "is %r" % (b.modem,), 'use "sim7020" or "bc95"')
    u = obj.get("uart")
    if not isinstance(u, dict):
        _fail(where, "uart", "is missing or not an object",
              'add {"id": 2, "baudrate": 115200, "tx": 17, "rx": 16, "rxbuf": 4096}')
    uw = where + ": uart"
    pins = {}
    uid = u.get("id")
    if not _is_int(uid) or uid not in (1, 2):
        _fail(uw, "id", "is %r" % (uid,), "use 1 or 2 (UART0 is the USB REPL)")
    baud = u.get("baudrate")
    if not _is_int(baud) or baud not in BAUDRATES:
        _fail(uw, "baudrate", "is %r" % (baud,), "use one of %s (SIM7020: 115200, BC95: 9600)"
              % ", ".join(str(r) for r in BAUDRATES))
    tx = _pin(u, "tx", uw, True)
    _claim(pins, tx, "uart.tx", where)
    rx = _pin(u, "rx", uw, False)
    _claim(pins, rx, "uart.rx", where)
    rxbuf = _int(u, "rxbuf", uw, 1024, 65536, 4096)
    b.uart = {"id": uid, "baudrate": baud, "tx": tx, "rx": rx, "rxbuf": rxbuf}
    if b.modem == "bc95" and baud > 9600:
        b.warnings.append("%s: bc95 at %d baud: above 9600 the BC95 cannot deep sleep "
                          "(modems.md 3.2)" % (where, baud))
    b.pwrkey = _pin_block(obj, "pwrkey", where, True, pins, False, 800)
    b.reset = _pin_block(obj, "reset", where, True, pins, False, 300)
    b.power_enable = _pin_block(obj, "power_enable", where, True, pins, True)
    b.status = _pin_block(obj, "status", where, False, pins)
    b.led = _pin_block(obj, "led", where, True, pins, True)
    bands = obj.get("bands")
    if bands is not None:
        if not isinstance(bands, list) or not bands or not all(
                _is_int(x) and 1 <= x <= 88 for x in bands):
            _fail(where, "bands", "must be a non-empty list of LTE band numbers",
                  "write e.g. [3, 8, 20] or remove the field to let the modem scan")
    b.bands = bands
    b.boot_wait_ms = _int(obj, "boot_wait_ms", where, 1000, 120000)
    b.attach_timeout_ms = _int(obj, "attach_timeout_ms", where, 1000, 600000)
    b.first_attach_timeout_ms = _int(obj, "first_attach_timeout_ms", where, 10000, 1800000)
    b.modem_clock = obj.get("modem_clock")
    if b.modem_clock not in (None, "utc", "local"):
        _fail(where, "modem_clock", "is %r" % (b.modem_clock,),
              'use "utc" or "local" (what AT+CCLK? shows on this module), or remove it')
    b.wdt_timeout_ms = _int(obj, "wdt_timeout_ms", where, 5000, 600000, 180000)
    b.battery = _battery(obj, where, pins)
    b.sleep_floor_ua = _int(obj, "sleep_floor_ua", where, 1, 100000)
    b.mem_report = _bool(obj, "mem_report", where, False)
    return b


def _battery(obj, where, pins):
    v = obj.get("battery")
    if v is None:
        return None
    if not isinstance(v, dict):
        _fail(where, "battery", "must be an object like {\"adc_pin\": 35, \"divider\": 2}",
              "or remove it")
    bw = where + ": battery"
    pin = _pin(v, "adc_pin", bw, False)
    if pin < 32:
        _fail(bw, "adc_pin", "is GPIO%d, not an ADC1 pin" % pin,
              "wire the divider to GPIO 32..39 (ADC2 pins cannot be read with the radio on)")
    _claim(pins, pin, "battery.adc_pin", where)
    div = v.get("divider")
    if isinstance(div, bool) or not isinstance(div, (int, float)) or not 1 <= div <= 20:
        _fail(bw, "divider", "must be a number 1..20",
              "write (R1 + R2) / R2 of the divider, e.g. 2 for two equal resistors")
    out = {"adc_pin": pin, "divider_x1000": int(div * 1000 + 0.5),
           "low_mv": _int(v, "low_mv", bw, 2000, 20000, 3500),
           "critical_mv": _int(v, "critical_mv", bw, 2000, 20000, 3300),
           "low_factor": _int(v, "low_factor", bw, 1, 24, 4),
           "capacity_mah": _int(v, "capacity_mah", bw, 1, 1000000, 2600)}
    if out["critical_mv"] >= out["low_mv"]:
        _fail(bw, "critical_mv", "must be below low_mv (%d)" % out["low_mv"],
              "e.g. low_mv 3500, critical_mv 3300 for a Li-ion cell")
    return out


def load_board(path=BOARD_FILE):
    obj = _read_json(path, "board.json", "copy boards/<your board>/board.json to the board "
                     "(make deploy BOARD=<your board>)")
    return parse_board(obj, path)


def load(secrets_path=SECRETS_FILE, board_path=BOARD_FILE):
    """(Secrets, Board) from the two files; raises ConfigError on the first problem."""
    return load_secrets(secrets_path), load_board(board_path)
