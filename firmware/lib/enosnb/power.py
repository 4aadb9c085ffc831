"""Board power: the modem's control lines held through deep sleep, and the battery voltage.

Imported only when board.json names a power_enable, pwrkey or reset pin, or a battery ADC.

Held lines (docs/power.md): an ESP32 in deep sleep lets its GPIOs float unless they are
held, so a power-enable line drifting low would cut the modem's supply and a PWRKEY or
RESET line drifting to its active level would switch the modem off or reset it; every wake
would then be a cold attach. Before deep sleep each named line is driven to its resting
level (power_enable on, PWRKEY and RESET inactive) and held (Pin(..., hold=True); ESP-IDF
gpio_hold_en). RTC GPIOs keep a hold through deep sleep by themselves; other pins need
esp32.gpio_deep_sleep_hold(True) as well (MicroPython 1.21 and later). At wake the holds
are released before the modem driver pulses PWRKEY, since a held pad ignores writes.

Battery: an ADC pin behind a resistor divider (ADC1 pins 32..39: ADC2 cannot be read while
the radio of the ESP32 runs). Pin.read_uv() is the calibrated reading in microvolts
(MicroPython 1.19 and later, 11 dB attenuation covers up to about 2.5 V at the pin), times
the divider ratio; a few samples are averaged.
"""
from micropython import const

_SAMPLES = const(4)
_ROLES = ["power_enable", "pwrkey", "reset"]


def _lines(board):
    """(pin, resting level) for each control line board.json names."""
    out = []
    for role in _ROLES:
        blk = getattr(board, role, None)
        if blk:
            on = 1 if blk["active_high"] else 0
            out.append((blk["pin"], on if role == "power_enable" else 1 - on))
    return out


def release(machine, board):
    """At wake: each line at its resting level, no longer held, so the driver can use it."""
    for pin, level in _lines(board):
        machine.Pin(pin, machine.Pin.OUT, value=level, hold=False)


def hold(machine, board, modem_on=True):
    """Before deep sleep: each line at its resting level (power_enable off when modem_on
    is False) and held there until the next wake."""
    lines = _lines(board)
    if not lines:
        return 0
    pe = board.power_enable
    for pin, level in lines:
        if not modem_on and pe and pin == pe["pin"]:
            level = 1 - level
        # A held pad ignores new levels: release it first (it keeps the old one meanwhile).
        machine.Pin(pin, machine.Pin.OUT, hold=False)
        machine.Pin(pin, machine.Pin.OUT, value=level, hold=True)
    try:
        import esp32
        esp32.gpio_deep_sleep_hold(True)
    except (ImportError, AttributeError):
        pass  # older firmware: only RTC GPIOs keep the hold in deep sleep
    return len(lines)


def battery_mv(machine, battery):
    """The battery voltage in millivolts from board.json's battery block."""
    adc = machine.ADC(machine.Pin(battery["adc_pin"]), atten=machine.ADC.ATTN_11DB)
    total = 0
    for _ in range(_SAMPLES):
        total += adc.read_uv()
    return total * battery["divider_x1000"] // (_SAMPLES * 1000000)


def battery_interval(app, interval_ms):
    """The cycle's interval under the low-battery policy: low_factor times longer below
    low_mv; below critical_mv also no radio and the modem unpowered (app._critical)."""
    b = app.board.battery
    try:
        mv = battery_mv(app._mach(), b)
    except (OSError, ValueError) as e:
        print("[enosnb] battery not read: %s" % e)
        return interval_ms
    app.report["battery_mv"] = mv
    if mv >= b["low_mv"]:
        return interval_ms
    if mv < b["critical_mv"]:
        app._radio_off = app._critical = True
    print("[enosnb] battery %d mV: interval x%d%s" % (
        mv, b["low_factor"], ", radio off" if app._critical else ""))
    return interval_ms * b["low_factor"]
