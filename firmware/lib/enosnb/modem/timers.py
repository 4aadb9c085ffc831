"""3GPP timer encodings for AT+CPSMS and AT+CEDRXS (modems.md §5).

T3412 extended (GPRS Timer 3, TS 24.008 §10.5.7.4a) and T3324 (GPRS Timer 2, §10.5.7.3) are
8-character bit strings "UUUVVVVV": a 3-bit unit and a 5-bit value. The encoder takes the finest
unit that represents the seconds exactly with a value <= 31, never rounds, and never produces the
"deactivated" unit 111. eDRX cycles in NB-S1 mode are 4-bit strings (TS 24.008 Table 10.5.5.32).
"""
from enosnb.modem.errors import ModemError

# (unit seconds, 3-bit code), finest first.
T3412_UNITS = ((2, "011"), (30, "100"), (60, "101"), (600, "000"), (3600, "001"),
               (36000, "010"), (1152000, "110"))
T3324_UNITS = ((2, "000"), (60, "001"), (360, "010"))

# NB-S1 eDRX cycle in hundredths of a second -> 4-bit code.
EDRX_CYCLES = ((2048, "0010"), (4096, "0011"), (8192, "0101"), (16384, "1001"),
               (32768, "1010"), (65536, "1011"), (131072, "1100"), (262144, "1101"),
               (524288, "1110"), (1048576, "1111"))


def _encode(seconds, units, name):
    if not isinstance(seconds, int) or seconds < 0:
        raise ModemError("%s must be a whole, non-negative number of seconds, got %r"
                         % (name, seconds))
    for unit, code in units:
        v = seconds // unit
        if v <= 31 and v * unit == seconds:
            return code + "".join("1" if v & (16 >> i) else "0" for i in range(5))
    raise ModemError("%s of %d s cannot be encoded exactly; pick a multiple of one of the units "
                     "%s s with at most 31 of them" % (name, seconds,
                                                     "/".join(str(u) for u, _ in units)))


def encode_t3412(seconds):
    """Periodic TAU (T3412 extended) in seconds -> "UUUVVVVV"; 21600 -> "00100110"."""
    return _encode(seconds, T3412_UNITS, "T3412 (periodic TAU)")


def encode_t3324(seconds):
    """Active time (T3324) in seconds -> "UUUVVVVV"; 10 -> "00000101"."""
    return _encode(seconds, T3324_UNITS, "T3324 (active time)")


def decode_timer(bits, units):
    """Inverse for logging what the network granted; None when deactivated (unit 111)."""
    if len(bits) != 8 or bits[:3] == "111":
        return None
    value = int(bits[3:], 2)
    for unit, code in units:
        if code == bits[:3]:
            return value * unit
    return None


def encode_edrx(seconds):
    """eDRX cycle (20.48 ... 10485.76 s, exactly one of the table's values) -> 4-bit string."""
    cs = int(seconds * 100 + 0.5)
    for c, code in EDRX_CYCLES:
        if c == cs:
            return code
    table = ", ".join("%d.%02d" % (c // 100, c % 100) for c, _ in EDRX_CYCLES)
    raise ModemError("eDRX cycle %r s is not an NB-S1 value; use one of %s" % (seconds, table))
