"""Energy per report cycle and battery life: a model, not a measurement (docs/power.md).

What a cycle does comes from the project's own runs: its round trips and IP bytes from the
wire figures (the real firmware code against the local server), its AT commands from the host
twin. What each state costs comes from the current model below, every value with its source;
"assumed" marks values no datasheet at hand gives. Time in each state:

  ESP32 active   boot + imports + AT commands + every radio wait + save
  modem          attach (cold only) at connected current, RRC setup, then the round trips at
                 connected current with TX and RX time (bytes at the model's data rates) at
                 their own currents, the release tail, then the active timer T3324 in idle
                 (DRX), then PSM for the rest of the interval
  sleep          ESP32 deep sleep + modem PSM, or the board's sleep_floor_ua from board.json

Cycles: cold (power-on: attach, full handshake), wake (the session restored: one round
trip), wake_nat (behind an expired NAT binding, server with resumption: two round trips),
drain (a cycle that fails at the budget: the radio searching for cycle_budget_ms).
"""

# name: (value, unit, source)
CURRENTS = {
    "esp32_active": (44.0, "mA", "ESP32 Series Datasheet v4.x, 'Power consumption by power modes': "
                                 "modem-sleep (radio off, CPU on) at 160 MHz, 27-44 mA; upper value "
                                 "(MicroPython's default clock is 160 MHz)"),
    "esp32_deep_sleep": (10.0, "uA", "same table: deep sleep, RTC timer + RTC memory, 10 uA"),
    "modem_psm": (3.4, "uA", "SIMCom SIM7020 Hardware Design V1.02, §5.4 Table 30: PSM typical 3.4 uA"),
    "modem_idle": (5.6, "mA", "same table: idle mode (registered, DRX) typical 5.6 mA"),
    "modem_tx": (250.0, "mA", "assumed: NB-IoT power class 3 (23 dBm) transmit; check the TX "
                              "current table of your module's hardware design"),
    "modem_rx": (50.0, "mA", "assumed: NB-IoT receive"),
    "modem_connected": (20.0, "mA", "assumed: RRC connected between transfers, and network search "
                                    "during attach"),
}

TIMES = {
    "rtt": (2.0, "s", "assumed: NB-IoT round trip of a small datagram in good coverage (CE level 0), "
                      "RRC connected"),
    "rrc_setup": (1.0, "s", "assumed: random access and RRC connection setup after PSM/idle"),
    "release_tail": (1.0, "s", "assumed: RRC release right after the last reply (release assistance: "
                               "AT+CNMPSD / AT+NSOSTF 0x400, modems.md §3.7)"),
    "t3324": (10.0, "s", "the active time the app requests (AT+CPSMS, modems.md §5); the granted "
                         "value may differ"),
    "attach_cold": (10.0, "s", "assumed: registration after power-on (modems.md: usually 5-60 s)"),
    "boot": (0.4, "s", "assumed: ESP32 ROM + bootloader + MicroPython start after deep sleep; the "
                       "device prints the rest as 'phases (ms)'"),
    "imports": (1.0, "s", "assumed: importing the .mpy firmware at 160 MHz; measure with the "
                          "device's 'phases (ms): imports'"),
    "at_command": (0.03, "s", "assumed: one AT command and its answer at 115200 baud"),
    "save": (0.05, "s", "assumed: state to RTC memory, queue ack on flash"),
    "ul_rate": (20000.0, "bit/s", "assumed: NB-IoT uplink, single tone, good coverage"),
    "dl_rate": (25000.0, "bit/s", "assumed: NB-IoT downlink"),
}

BATTERY_MAH = (2600, "mAh", "assumed: one 18650 Li-ion cell, when board.json has no battery.capacity_mah")
INTERVAL_S = 600
BUDGET_S = 170


def value(table, name):
    return table[name][0]


def _ma(name):
    v, unit, _ = CURRENTS[name]
    return v / 1000.0 if unit == "uA" else v


def awake_s(round_trips):
    """Seconds the modem is RRC connected for a wake of that many round trips."""
    t = TIMES
    return value(t, "rrc_setup") + round_trips * value(t, "rtt") + value(t, "release_tail")


def cycle(figures, at_commands, cold=False, drain=False):
    """{"esp32_s", "modem_connected_s", "mAh"} of one cycle, without the sleep after it.

    figures: round_trips, ip_bytes up/down (wire.Wire.figures()); at_commands: how many.
    """
    t = TIMES
    if drain:
        radio = float(BUDGET_S)
        tx = rx = 0.0
        connected = radio
    else:
        tx = figures.get("ip_bytes_up", figures["ip_bytes"] // 2) * 8 / value(t, "ul_rate")
        rx = figures.get("ip_bytes_down", figures["ip_bytes"] // 2) * 8 / value(t, "dl_rate")
        radio = awake_s(figures["round_trips"]) + (value(t, "attach_cold") if cold else 0.0)
        connected = max(0.0, radio - tx - rx)
    esp = value(t, "boot") + value(t, "imports") + at_commands * value(t, "at_command") + \
        radio + value(t, "save")
    mas = esp * _ma("esp32_active") + tx * _ma("modem_tx") + rx * _ma("modem_rx") + \
        connected * _ma("modem_connected") + value(t, "t3324") * _ma("modem_idle")
    return {"esp32_s": esp, "modem_connected_s": radio, "mAh": mas / 3600.0}


def sleep_floor_ma(board):
    """(mA, where from) in deep sleep with the modem in PSM."""
    ua = board.get("sleep_floor_ua") if board else None
    if ua:
        return ua / 1000.0, "board.json sleep_floor_ua %d uA" % ua
    return _ma("esp32_deep_sleep") + _ma("modem_psm"), \
        "ESP32 deep sleep + modem PSM only (board.json has no sleep_floor_ua: regulator, " \
        "USB-serial chip, dividers and LEDs not counted)"


def battery_mah(board):
    b = (board or {}).get("battery") or {}
    if b.get("capacity_mah"):
        return b["capacity_mah"], "board.json battery.capacity_mah"
    return BATTERY_MAH[0], BATTERY_MAH[2]


def life_days(cycle_mah, floor_ma, capacity_mah, interval_s=INTERVAL_S, awake_s=0.0):
    """Days until capacity_mah is spent by one such cycle per interval plus the sleep floor."""
    sleep_mah = floor_ma * max(0.0, interval_s - awake_s) / 3600.0
    per_day = (cycle_mah + sleep_mah) * 86400.0 / interval_s
    return capacity_mah / per_day
