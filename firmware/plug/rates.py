# Rate schedules: exact decimal arithmetic, time parsing and the checks every
# rate source passes through (the format parsers live in rates_native.py and
# rates_fiat.py).
#
# A schedule is a list of [start, end, rate_per_kwh] with start/end in plug time
# (seconds since 2000-01-01 UTC, see plug/clock.py) and rate_per_kwh an int in the
# settlement currency's base units (wei, or the ERC-20 token's smallest unit) per
# kWh. Intervals are half-open [start, end), sorted, and never overlap; gaps are
# allowed (no rate is known there).
#
# Fiat prices: the plug's JSON parser hands out floats, single precision on the
# ESP32 (about 7 significant digits). A float is never scaled directly: it is first
# rounded to the source's stated precision (Octopus: 4 decimals of pence/kWh,
# aWATTar and Energy-Charts: 2 decimals of EUR/MWh) as an integer count of that
# decimal unit, then scaled to base units with integer arithmetic. The integer and
# fractional parts are rounded separately, so float32 noise (half an ulp) never
# reaches the rounding boundary for any price a market can quote.
# Scaling to a token with fewer decimals than the source's precision rounds half
# away from zero to a whole base unit (documented; 6- and 18-decimal stablecoins are
# always exact).

UNIX_2000 = 946684800  # plug epoch in Unix seconds (as plug/clock.py)
MAX_BODY = 16384  # bytes of one rates or descriptor reply the plug accepts
MAX_INTERVALS = 400  # per schedule after merging pages
_MAX_ABS_PRICE = 10**7  # in the source unit; no market quotes beyond this


class RateError(ValueError):
    """A rate source reply that the plug refuses; the message says why."""


def from_unix(unix_seconds):
    if type(unix_seconds) is not int:
        raise RateError("time %r is not a whole number of seconds" % (unix_seconds,))
    t = unix_seconds - UNIX_2000
    if t < 0:
        raise RateError("time %d is before 2000-01-01" % unix_seconds)
    return t


# ---- decimals -------------------------------------------------------------------


def is_number(x):
    return type(x) in (int, float)


def decimal_units(value, places, what="price"):
    """`value` (int, float or decimal string) as an exact int count of 10**-places.

    Strings must be plain decimals ("-12.3400") with at most `places` decimals;
    floats are rounded half away from zero to `places` decimals.
    """
    if type(value) is bool or value is None:
        raise RateError("%s: expected a number, got %r" % (what, value))
    if isinstance(value, str):
        return _parse_decimal(value, places, what)
    if type(value) is int:
        if abs(value) > _MAX_ABS_PRICE:
            raise RateError("%s: %d is out of range" % (what, value))
        return value * 10**places
    if type(value) is not float:
        raise RateError("%s: expected a number, got %s" % (what, type(value).__name__))
    if value != value or value in (float("inf"), float("-inf")):
        raise RateError("%s: not a finite number" % what)
    neg = value < 0
    a = -value if neg else value
    if a > _MAX_ABS_PRICE:
        raise RateError("%s: %s is out of range" % (what, value))
    ip = int(a)
    frac = a - ip  # exact: ip and a share the exponent range
    n = ip * 10**places + int(frac * 10**places + 0.5)
    return -n if neg else n


def _parse_decimal(s, places, what):
    body = s[1:] if s[:1] == "-" else s
    ip, dot, fp = body.partition(".")
    if (not ip or not ip.isdigit() or (dot and (not fp or not fp.isdigit()))
            or len(body) > 40):
        raise RateError("%s: %r is not a plain decimal number" % (what, s))
    if len(fp) > places:
        raise RateError("%s: %r has more than %d decimals (the currency's precision)"
                        % (what, s, places))
    n = int(ip) * 10**places + (int(fp) * 10**(places - len(fp)) if fp else 0)
    return -n if s[:1] == "-" else n


def scale(units, unit_exp, decimals):
    """units x 10**-unit_exp currency units -> base units of a `decimals` token.

    Exact when decimals >= unit_exp; otherwise rounded half away from zero."""
    if decimals >= unit_exp:
        return units * 10**(decimals - unit_exp)
    d = 10**(unit_exp - decimals)
    q = (abs(units) * 2 + d) // (2 * d)
    return -q if units < 0 else q


# ---- time -------------------------------------------------------------------------


def _days_from_civil(y, m, d):
    # Howard Hinnant's algorithm: days since 1970-01-01 of a proleptic Gregorian date
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _digits(s, i, n, what):
    part = s[i:i + n]
    if len(part) != n or not part.isdigit():
        raise RateError("%s: %r is not an ISO-8601 time" % (what, s))
    return int(part)


def parse_iso8601(s, what="time"):
    """Unix seconds of "YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM)"; a zone is required."""
    if not isinstance(s, str) or len(s) < 20 or len(s) > 40:
        raise RateError("%s: %r is not an ISO-8601 time with a zone" % (what, s))
    y = _digits(s, 0, 4, what)
    mo = _digits(s, 5, 2, what)
    d = _digits(s, 8, 2, what)
    hh = _digits(s, 11, 2, what)
    mi = _digits(s, 14, 2, what)
    ss = _digits(s, 17, 2, what)
    if (s[4] != "-" or s[7] != "-" or s[10] not in "Tt " or s[13] != ":" or s[16] != ":"
            or not (1 <= mo <= 12 and 1 <= d <= 31 and hh < 24 and mi < 60 and ss < 60)):
        raise RateError("%s: %r is not an ISO-8601 time" % (what, s))
    i = 19
    if i < len(s) and s[i] == ".":
        i += 1
        while i < len(s) and s[i].isdigit():
            i += 1
    zone = s[i:]
    if zone in ("Z", "z"):
        off = 0
    elif len(zone) == 6 and zone[0] in "+-" and zone[3] == ":":
        off = (_digits(zone, 1, 2, what) * 60 + _digits(zone, 4, 2, what)) * 60
        if zone[0] == "-":
            off = -off
    else:
        raise RateError("%s: %r has no UTC offset (Z or +HH:MM)" % (what, s))
    return _days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss - off


# ---- schedules ----------------------------------------------------------------------


def check_schedule(sched, cap=None, what="rates"):
    """Refuse unsorted, overlapping, empty or over-cap intervals; returns sched."""
    if not sched:
        raise RateError("%s: no intervals" % what)
    if len(sched) > MAX_INTERVALS:
        raise RateError("%s: %d intervals, more than %d" % (what, len(sched), MAX_INTERVALS))
    prev_end = -1
    for s, e, r in sched:
        if type(s) is not int or type(e) is not int or type(r) is not int:
            raise RateError("%s: interval fields must be integers" % what)
        if e <= s:
            raise RateError("%s: interval %d..%d ends before it starts" % (what, s, e))
        if s < prev_end:
            raise RateError("%s: interval starting %d overlaps the previous one or is out of "
                            "order" % (what, s))
        if cap is not None and r > cap:
            raise RateError("%s: rate %d per kWh at %d is above the owner's cap of %d"
                            % (what, r, s, cap))
        prev_end = e
    return sched


def merge(old, new):
    """Schedule `old` updated by the (checked) schedule `new`: where they overlap the
    new quote wins; old intervals are cut at new ones' edges."""
    if not new:
        return list(old)
    out = []
    ni = 0
    for s, e, r in old:
        # cut [s, e) by every new interval that overlaps it
        while ni < len(new) and new[ni][1] <= s:
            ni += 1
        j = ni
        cur = s
        while cur < e and j < len(new) and new[j][0] < e:
            ns, ne = new[j][0], new[j][1]
            if ns > cur:
                out.append([cur, ns, r])
            cur = max(cur, ne)
            j += 1
        if cur < e:
            out.append([cur, e, r])
    out.extend([list(x) for x in new])
    out.sort(key=lambda x: x[0])
    return out


def lookup(sched, t):
    """Index of the interval containing plug time t, or -1."""
    lo, hi = 0, len(sched)
    while lo < hi:
        mid = (lo + hi) // 2
        if sched[mid][1] <= t:
            lo = mid + 1
        else:
            hi = mid
    if lo < len(sched) and sched[lo][0] <= t:
        return lo
    return -1
