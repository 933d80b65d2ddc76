# The plug's /status view (plug.status(), /status, /metrics, plug.channels()): per channel
# readings, totals and energy by period, the device (firmware, clock, network), outputs,
# wallets and balances, provider, payments, invoices, alerts. Imported at the first status
# asked for, not at boot. Documented field by field in tools/status.schema.json.
#
#   status(plug) -> the dict (plug.status() at the REPL, /metrics, MQTT)
#   status_chunks(plug) -> its JSON text, exactly json.dumps(status(plug)), in small pieces
#       made section by section (GET /status): never the whole dict at once
#
# Times: device.time is plug time (seconds since 2000, the ESP32's epoch), device.time_unix
# the same instant in Unix seconds. Money: every amount (base units, an int that may pass
# 2**53) has a decimal-string twin named <field>_str, so a client whose numbers are
# doubles (JavaScript, Node-RED) reads it exactly.
import gc
import json
import time

from plug.clock import UNIX_2000
from plug.http_response import json_chunks


def _s(v):
    """The decimal string of an amount (None stays None)."""
    return None if v is None else str(v)


def _s_dict(d):
    """{k: amount} -> {k: "amount"}; None stays None."""
    return None if d is None else dict((k, _s(v)) for k, v in d.items())


def status(plug):
    """What `plug.status()` returns (a dict, JSON as /status sends it)."""
    return _build(_top(plug))


def status_chunks(plug):
    """The JSON text of status(plug), exactly as json.dumps gives it, as a generator of
    small strings: each section, channel, wallet and payment record is made when its turn
    comes and dropped once written (GET /status; the whole dict is never held)."""
    return _chunks(_top(plug))


# ---- one description, two writers -------------------------------------------------------
# A _Map is a JSON object whose values are made one at a time (value(key), when its turn
# comes), a _List an array of items from an iterator. _build makes plain dicts and lists of
# them (status()), _chunks the JSON text piece by piece (status_chunks()). MicroPython
# iterates a dict in the order of its hash table, not of insertion; both writers fill a
# dict with the same keys in the same order (_chunks a stand-in with None values), so the
# keys come out in the same order and the texts are the same.


class _Map:
    def __init__(self, keys, value):
        self.keys = keys
        self.value = value


class _List:
    def __init__(self, items):
        self.items = items


def _build(v):
    if isinstance(v, _Map):
        d = {}
        for k in v.keys:
            d[k] = _build(v.value(k))
        return d
    if isinstance(v, _List):
        return [_build(x) for x in v.items]
    return v


def _chunks(v):
    if isinstance(v, _Map):
        order = {}
        for k in v.keys:
            order[k] = None
        sep = "{"
        for k in order:
            yield sep + json.dumps(k) + ": "
            yield from _chunks(v.value(k))
            sep = ", "
        yield "{}" if sep == "{" else "}"
    elif isinstance(v, _List):
        sep = "["
        for x in v.items:
            yield sep
            yield from _chunks(x)
            sep = ", "
        yield "[]" if sep == "[" else "]"
    else:
        yield from json_chunks(v)


# ---- the sections -----------------------------------------------------------------------
# Each takes (plug, c): c caches what several sections share, made at the first that asks.


def _top(plug):
    names = ["device", "channels", "outputs", "faulty", "update"]
    if plug.wallet:
        names.append("wallets")
    if plug.payments:
        names += ("provider", "payments", "invoices", "alerts", "runway")
    c = {}
    return _Map(names, lambda name: _SECTIONS[name](plug, c))


def _faulty(plug, c):
    f = c.get("faulty")
    if f is None:
        f = c["faulty"] = plug.meter.faulty()
    return f


def _device(plug, c):
    from plug.version import BUILD, VERSION

    net = plug.net
    mac, ip, rssi = net.identity() if hasattr(net, "identity") else (None, None, None)
    t = plug.clock.time()
    return {
        "board": plug.board.NAME, "time": t, "time_unix": t + UNIX_2000,
        "firmware": {"version": VERSION, "build": BUILD},
        "hostname": getattr(net, "hostname", None), "mac": mac, "ip": ip, "rssi": rssi,
        "uptime_s": time.ticks_diff(time.ticks_ms(), plug.boot_ms) // 1000,
        "free_heap": gc.mem_free(), "config_version": plug.cfgm.version,
        "config_error": plug.cfgm.fallback, "ledger_error": plug.ledger_error,
        "owner": plug.cfgm.owner, "safe_mode": plug.safe_mode,
        "last_error": plug.last_error, "late_reads": plug.meter.late_reads,
        "network": net.status(),
        "temperature_c": plug.out.temperature(),
        "mqtt": _mqtt(plug),
    }


def _mqtt(plug):
    """plug/mqtt.py's connection (the module is imported once a config names a broker)."""
    if getattr(plug, "mqtt_task", None) is None:
        return {"state": "off", "error": None, "since": None}
    from plug import mqtt

    return mqtt.state()


def _channels(plug, c):
    return _Map(plug.ledger.keys(), lambda key: _channel(plug, c, key))


_NO_READING = (0.0, 0.0, 0.0, 0.0, 0.0)


def _channel(plug, c, key):
    # the meter's latest reading of key: (V, A, W, PF, Hz, t, ok) (meter.py's _latest,
    # read directly: meter.status() would make a dict for every channel at once)
    r = plug.meter._latest.get(key) or _NO_READING
    imp, exp = plug.ledger.totals(key)
    ch = {
        "name": plug.cfgm.config["channels"].get(key, {}).get("name", ""),
        "V": r[0], "A": r[1], "W": r[2], "PF": r[3], "Hz": r[4],
        "import_uwh": imp, "export_uwh": exp,
        "import_wh": imp // 1000000, "export_wh": exp // 1000000,
        "unbilled_uwh": plug.ledger.pending(key)[0],
        "fault": key.split("/")[0] in _faulty(plug, c),
    }
    periods = getattr(plug, "periods", None)  # plug/periods.py: energy by period
    if periods is not None:
        ch["energy"] = _energy(periods.flat(key))
    return ch


def _energy(f):
    # periods.flat() -> {period: {"import_uwh", "export_uwh"}}
    from plug.periods import PERIODS

    e = {}
    for i in range(4):
        e[PERIODS[i]] = {"import_uwh": f[2 * i], "export_uwh": f[2 * i + 1]}
    return e


def _wallets(plug, c):
    return _List(_wallet_items(plug))


def _wallet_items(plug):
    w = plug.wallet
    keys = plug.ledger.keys()
    accts = []
    for key in keys:
        a = w.account_of(key)
        if a not in accts:
            accts.append(a)
    for a in accts:
        addr = w.address(a)
        b = plug.balances.get(addr)
        yield {"account": a, "address": addr,
               "channels": [k for k in keys if w.account_of(k) == a],
               "balance": b, "balance_str": _s_dict(b)}


def _provider(plug, c):
    prov = plug.tariff.status()
    prov["rate_per_kwh_str"] = _s(prov.get("rate_per_kwh"))
    return prov


def _asset(plug, c):
    """The provider's currency: what the amounts of payments and invoices count in."""
    a = c.get("asset")
    if a is None:
        a = c["asset"] = plug.tariff.status().get("token") or "native"
    return a


def _recs(plug, c):
    r = c.get("recs")
    if r is None:
        r = c["recs"] = plug.payments.records()
    return r


_PAYS = ("accrued", "accrued_str", "pending", "confirmed", "failed", "paid_total",
         "paid_total_str")


def _payments(plug, c):
    return _Map(_PAYS, lambda k: _pay_part(plug, c, k))


def _pay_part(plug, c, k):
    if k[:7] == "accrued":
        a = c.get("accrued")
        if a is None:
            a = c["accrued"] = dict(("%d/%s" % kv[0], kv[1])
                                    for kv in plug.settlement.accrued().items())
        return _s_dict(a) if k == "accrued_str" else a
    if k[:10] == "paid_total":
        p = c.get("paid")
        if p is None:
            p = c["paid"] = _paid_total(plug.payments, _recs(plug, c), _asset(plug, c))
        return str(p) if k == "paid_total_str" else p
    return _List(_pay_view(r) for r in _recs(plug, c)
                 if _PAY_STATE.get(r["st"], "pending") == k)


def _invoices_part(plug, c):
    return _invoices(plug, _recs(plug, c), _asset(plug, c))


def _money_alerts(plug, c):
    m = c.get("alerts")
    if m is None:
        from plug.supply import money_alerts

        alerts, runway = m = c["alerts"] = money_alerts(plug)
        for a in alerts:
            for k in ("amount_due", "balance"):
                if k in a:
                    a[k + "_str"] = _s(a[k])
        for w in runway:
            for k in ("balance", "spendable", "spent_24h"):
                w[k + "_str"] = _s(w[k])
    return m


_upd = [None, -1, None]  # store, generation, record: re-read only after a save


def _update(plug):
    """The last release's fate (update.py), read from flash once per generation, and the
    last bundle refused since boot (kept in RAM only)."""
    store = plug.store
    gen = store.generation("update")
    if _upd[0] is not store or _upd[1] != gen:
        _upd[:] = [store, gen, store.load("update")]
    refused = getattr(plug, "update_refused", None)
    if refused:
        return dict(_upd[2] or {}, refused=refused)
    return _upd[2]


_SECTIONS = {
    "device": _device,
    "channels": _channels,
    "outputs": lambda plug, c: plug.out.status(),
    "faulty": _faulty,
    "update": lambda plug, c: _update(plug),
    "wallets": _wallets,
    "provider": _provider,
    "payments": _payments,
    "invoices": _invoices_part,
    "alerts": lambda plug, c: _money_alerts(plug, c)[0],
    "runway": lambda plug, c: _money_alerts(plug, c)[1],
}


_PAY_STATE = {"confirmed": "confirmed", "failed": "failed"}  # prepared, sent: pending


def _pay_view(r):
    return {"id": r["id"], "state": r["st"], "to": r["to"], "amount": r["amt"],
            "amount_str": str(r["amt"]), "token": r["tok"], "hash": r["mined"] or r["hash"],
            "nonce": r["n"], "error": r["err"]}


def _invoices(plug, recs, asset):
    """Invoices billed and not yet confirmed paid: open (not handed to a payment yet) and
    those whose payment is prepared or sent (cancellations are not invoices). The unpaid
    amount counts those in `asset`, the provider's currency."""
    n = amt = 0
    for inv in plug.settlement.open_invoices():
        n += 1
        if (inv.get("token") or "native") == asset:
            amt += inv["amount"]
    for r in recs:
        if r["st"] in ("prepared", "sent") and "of" not in r:
            n += 1
            if (r["tok"] or "native") == asset:
                amt += r["amt"]
    return {"open": n, "unpaid_amount": amt, "unpaid_amount_str": str(amt)}


def _paid_total(pays, recs, asset):
    """Everything confirmed in `asset`: the history's index (carried and held: no segment
    is read) and the live records it does not hold yet."""
    hist = pays.history if pays._arch else None  # nothing archived: not loaded for this
    total = 0
    for r in recs:
        if r["st"] == "confirmed" and (r["tok"] or "native") == asset and not (
                hist is not None and hist.has(r)):
            total += r["amt"]
    return total if hist is None else total + hist.paid(asset)
