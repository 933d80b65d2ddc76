# Fiat market price sources, converted 1:1 into a fiat-backed stablecoin's base units
# by its decimals (see rates.py for the exact-decimal rules).
#
# Octopus Energy standard-unit-rates (GBP):
#   {"count": n, "next": url|null, "previous": url|null,
#    "results": [{"value_exc_vat": 13.4286, "value_inc_vat": 14.1,
#                 "valid_from": "2026-05-25T22:30:00Z", "valid_to": "...Z"|null,
#                 "payment_method": null}, ...]}                  newest first
#   value_inc_vat in pence/kWh, 4 decimals -> units of 1e-6 GBP per kWh.
# aWATTar marketdata (EUR):
#   {"object": "list", "data": [{"start_timestamp": ms, "end_timestamp": ms,
#                                "marketprice": 28.98, "unit": "Eur/MWh"}, ...]}
#   EUR/MWh, 2 decimals -> units of 1e-5 EUR per kWh.
# Energy-Charts price (EUR):
#   {"license_info": "...", "unix_seconds": [...], "price": [.. | null],
#    "unit": "EUR / MWh", "deprecated": false}
#   slot i runs from unix_seconds[i] to unix_seconds[i + 1]; the last slot is as long
#   as the one before it (an hour if there is only one); a null price is a gap.
#
# Negative prices are kept as quoted (billing decides what they mean).
from plug.rates import (MAX_INTERVALS, RateError, check_schedule, decimal_units, from_unix,
                        parse_iso8601, scale)

OCTOPUS_PLACES = 4  # pence/kWh decimals Octopus publishes (VAT-inclusive values)
MWH_PLACES = 2  # EUR/MWh decimals of EPEX day-ahead prices (aWATTar, Energy-Charts)


def _list(obj, name, what):
    if not isinstance(obj, dict):
        raise RateError("%s: reply is not a JSON object" % what)
    v = obj.get(name)
    if not isinstance(v, list):
        raise RateError("%s: %s must be a list" % (what, name))
    if len(v) > MAX_INTERVALS:
        raise RateError("%s: %d entries, more than %d" % (what, len(v), MAX_INTERVALS))
    return v


def _num(v, what):
    if type(v) not in (int, float):
        raise RateError("%s must be a number, got %r" % (what, v))
    return v


def _unit(u, want, what):
    if not isinstance(u, str) or u.replace(" ", "").lower() != want:
        raise RateError("%s: unit %r, expected %s" % (what, u, want))


def parse_octopus(obj, decimals, open_end, cap=None):
    """(schedule, next_url) of one page. `open_end` (plug time) closes a rate whose
    valid_to is null; such a rate starting at or after open_end is left for later."""
    what = "octopus rates"
    res = _list(obj, "results", what)
    nxt = obj.get("next")
    if nxt is not None and not isinstance(nxt, str):
        raise RateError("%s: next must be a URL or null" % what)
    sched = []
    for r in res:
        if not isinstance(r, dict):
            raise RateError("%s: each result must be an object" % what)
        v = _num(r.get("value_inc_vat"), what + ": value_inc_vat")
        vf, vt = r.get("valid_from"), r.get("valid_to")
        start = 0 if vf is None else from_unix(parse_iso8601(vf, what + ": valid_from"))
        if vt is None:
            if start >= open_end:
                continue
            end = open_end
        else:
            end = from_unix(parse_iso8601(vt, what + ": valid_to"))
        units = decimal_units(v, OCTOPUS_PLACES, what + ": value_inc_vat")
        sched.append([start, end, scale(units, OCTOPUS_PLACES + 2, decimals)])
    sched.reverse()  # the API lists newest first
    if sched:
        check_schedule(sched, cap, what)
    return sched, nxt


def parse_awattar(obj, decimals, cap=None):
    what = "awattar rates"
    sched = []
    for r in _list(obj, "data", what):
        if not isinstance(r, dict):
            raise RateError("%s: each entry must be an object" % what)
        _unit(r.get("unit"), "eur/mwh", what)
        a, b = r.get("start_timestamp"), r.get("end_timestamp")
        if type(a) is not int or type(b) is not int or a % 1000 or b % 1000:
            raise RateError("%s: timestamps must be whole seconds in milliseconds" % what)
        units = decimal_units(_num(r.get("marketprice"), what + ": marketprice"), MWH_PLACES,
                              what + ": marketprice")
        sched.append([from_unix(a // 1000), from_unix(b // 1000),
                      scale(units, MWH_PLACES + 3, decimals)])
    return check_schedule(sched, cap, what), None


def parse_energy_charts(obj, decimals, cap=None):
    what = "energy-charts rates"
    ts = _list(obj, "unix_seconds", what)
    ps = _list(obj, "price", what)
    _unit(obj.get("unit"), "eur/mwh", what)
    if len(ts) != len(ps):
        raise RateError("%s: %d times but %d prices" % (what, len(ts), len(ps)))
    sched = []
    for i in range(len(ts)):
        t = ts[i]
        if type(t) is not int:
            raise RateError("%s: unix_seconds must be integers" % what)
        if i + 1 < len(ts):
            end = ts[i + 1]
            if type(end) is not int or end <= t:
                raise RateError("%s: unix_seconds must be increasing" % what)
        else:
            end = t + ((t - ts[i - 1]) if i else 3600)
        p = ps[i]
        if p is None:
            continue  # no price published for this slot: a gap
        units = decimal_units(_num(p, what + ": price"), MWH_PLACES, what + ": price")
        sched.append([from_unix(t), from_unix(end), scale(units, MWH_PLACES + 3, decimals)])
    return check_schedule(sched, cap, what), None

