"""Network time from the modem's clock: AT+CCLK? (3GPP TS 27.007 §8.15) as a UTC datetime.

The modem sets its clock from the network's NITZ message after registration. Before that it
answers a default date (70/01/01 or 80/01/06), which is not a time. What the time fields mean
depends on the module (modems.md §2.3, §3.4): 27.007 says local time with the zone after it,
while SIM7020 with AT+CURTC=0 and (unverified) BC95 write UTC and add the zone only to say
where the module is; the driver tells parse_cclk which.
"""


def parse_time(answer):
    """(seconds since 1970 of the fields as written, zone in quarter hours) from a +CCLK or
    +CLTS answer "yy/MM/dd,hh:mm:ss[+-zz]" (quoted or not), or None when the module has no
    network time; ValueError when the answer is not such a time."""
    if not answer:
        return None
    try:
        text = answer.split(":", 1)[1] if answer[0] == "+" else answer
        date, clock = text.strip().strip('"').split(",")
        yy, mo, dd = [int(x) for x in date.split("/")]
        zone = 0
        for ch in "+-":
            if ch in clock:
                clock, z = clock.split(ch)
                zone = int(z) if ch == "+" else -int(z)
        hh, mi, ss = [int(x) for x in clock.split(":")]
        if not (1 <= mo <= 12 and 1 <= dd <= 31 and hh < 24 and mi < 60 and ss < 61
                and -96 <= zone <= 96):
            raise ValueError
    except (ValueError, IndexError):
        raise ValueError("not a +CCLK time: %r" % (answer,))
    if not 24 <= yy < 70:  # 70/01/01 or 80/01/06 before the modem got NITZ
        return None
    return ((days_from_civil(2000 + yy, mo, dd) * 24 + hh) * 60 + mi) * 60 + ss, zone


def parse_cclk(answer, utc=False):
    """RTC().datetime tuple (UTC) from a +CCLK answer, or None when the modem has no network
    time; ValueError when the answer is not a +CCLK time. utc=False reads the fields as local
    time and subtracts the zone (quarter hours, 27.007 §8.15); utc=True takes them as UTC."""
    t = parse_time(answer)
    if t is None:
        return None
    secs, zone = t
    return datetime(secs if utc else secs - zone * 900)


def datetime(secs):
    """RTC().datetime tuple (year, month, day, weekday 0 = Monday, h, m, s, 0) of seconds
    since 1970 (UTC)."""
    days, secs = divmod(secs, 86400)
    y, mo, dd = civil_from_days(days)
    return (y, mo, dd, (days + 3) % 7, secs // 3600, secs // 60 % 60, secs % 60, 0)


def days_from_civil(y, m, d):
    """Days since 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def civil_from_days(z):
    """(year, month, day) of a day count since 1970-01-01."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d
