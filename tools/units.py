"""People's units for what a plug reports: money in its currency, energy in Wh, plug time
as dates.

The plug counts money in base units (wei, or a token's smallest unit) and energy in
integers (uWh; invoices in mWh = milli-watt-hours), and keeps time in seconds since
2000-01-01 UTC (the ESP32's epoch). These helpers turn them into `9.996115 ETH`,
`12.40 USDC`, `1234.567 Wh` and dates; `raw=True` gives the base units instead
(`9996115151577067360 wei`). Displayed amounts are rounded (6 decimals, or 4 significant
digits below 1); `exact()` is for files and keeps every digit.
"""

import time
from decimal import ROUND_HALF_EVEN, Decimal

PLUG_EPOCH = 946684800  # 2000-01-01T00:00:00Z as Unix time
NATIVE_DECIMALS = 18  # every EVM chain's native coin (wei)


class Currency:
    """What an amount is counted in: symbol, decimals and the name of its base unit."""

    def __init__(self, symbol, decimals, base_unit):
        self.symbol = symbol
        self.decimals = decimals
        self.base_unit = base_unit

    def __repr__(self):
        return "Currency(%r, %r)" % (self.symbol, self.decimals)


def native(symbol="ETH"):
    return Currency(symbol, NATIVE_DECIMALS, "wei")


def currency_of(token, provider=None, native_symbol="ETH"):
    """The currency of `token` (None: the chain's native coin); a token is known by the
    provider in force (/status `provider`: token, currency, decimals), else None."""
    if token is None:
        return native(native_symbol)
    prov = provider if isinstance(provider, dict) else {}
    ptok, sym, dec = prov.get("token"), prov.get("currency"), prov.get("decimals")
    if (isinstance(ptok, str) and isinstance(token, str) and ptok.lower() == token.lower()
            and isinstance(sym, str) and type(dec) is int):
        return Currency(sym, dec, "%s base units" % sym)
    return None


def provider_currency(provider, native_symbol="ETH"):
    """The currency the provider in force bills in, or None if there is none yet."""
    if not isinstance(provider, dict) or provider.get("decimals") is None:
        return None
    return currency_of(provider.get("token"), provider, native_symbol)


def exact(base, decimals):
    """Base units as an exact decimal in whole units: (1500, 3) -> "1.5", (-2, 0) -> "-2"."""
    text = format(Decimal(base).scaleb(-decimals), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def rounded(base, decimals):
    """Whole units for display: 6 decimals (4 significant digits below 1), trailing
    zeros dropped down to 2 decimals: 9996115151577067360 wei -> "9.996115",
    12400000 (6 decimals) -> "12.40", 445691426000000 wei -> "0.0004457"."""
    if base == 0:
        return "0"
    d = Decimal(base).scaleb(-decimals)
    places = 6 if abs(d) >= 1 else max(6, 3 - d.adjusted())
    places = min(places, decimals)
    text = format(d.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN), "f")
    if "." in text:
        keep = min(2, decimals)
        whole, frac = text.split(".")
        frac = frac.rstrip("0")
        frac += "0" * (keep - len(frac))
        text = whole + ("." + frac if frac else "")
    return text


_rounded = rounded


def amount(base, cur, raw=False):
    """`base` units of `cur` for people: "9.996115 ETH"; raw: "9996115151577067360 wei";
    an unknown currency (None) always in base units."""
    if base is None:
        return "unknown"
    if cur is None:
        return "%d base units" % base
    if raw:
        return "%d %s" % (base, cur.base_unit)
    return "%s %s" % (rounded(base, cur.decimals), cur.symbol)


def rate(base_per_kwh, cur, raw=False, rounded=False):
    """A price per kWh: "0.001 ETH/kWh" (exact, or rounded as amounts are); raw:
    "1000000000000000 wei/kWh"."""
    if base_per_kwh is None:
        return "none yet"
    if cur is None or raw:
        return "%d %s/kWh" % (base_per_kwh, cur.base_unit if cur else "base units")
    text = (_rounded if rounded else exact)(base_per_kwh, cur.decimals)
    return "%s %s/kWh" % (text, cur.symbol)


def wh_from_mwh(mwh):
    """Milli-watt-hours (integer) as Wh with 3 decimals, exact: 1234567 -> "1234.567"."""
    sign = "-" if mwh < 0 else ""
    return "%s%d.%03d" % ((sign,) + divmod(abs(mwh), 1000))


def wh_from_uwh(uwh):
    """Micro-watt-hours as Wh rounded to 3 decimals (mWh)."""
    return wh_from_mwh((uwh + 500) // 1000 if uwh >= 0 else -((-uwh + 500) // 1000))


def unix(plug_t):
    return plug_t + PLUG_EPOCH


def iso_utc(plug_t):
    """Plug time as ISO-8601 UTC: 850000000 -> "2026-12-08T21:46:40Z"."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix(plug_t)))


def local(plug_t, fmt="%Y-%m-%d %H:%M"):
    """Plug time in this computer's time zone."""
    return time.strftime(fmt, time.localtime(unix(plug_t)))


def local_period(t0, t1):
    """"2026-12-06 00:00 - 06:00" (same day) or "2026-12-06 22:00 - 2026-12-07 04:00";
    seconds are shown when either end has them."""
    fmt = "%Y-%m-%d %H:%M:%S" if (unix(t0) % 60 or unix(t1) % 60) else "%Y-%m-%d %H:%M"
    a, b = local(t0, fmt), local(t1, fmt)
    if a[:10] == b[:10]:
        b = b[11:]
    return "%s - %s" % (a, b)


def tz_name():
    """This computer's time zone as people read it: "CET (UTC+01:00)"."""
    off = -time.altzone if time.localtime().tm_isdst > 0 else -time.timezone
    name = time.strftime("%Z")
    if name == "UTC" and off == 0:
        return name
    return "%s (UTC%s%02d:%02d)" % (name, "+" if off >= 0 else "-", abs(off) // 3600,
                                    abs(off) // 60 % 60)
