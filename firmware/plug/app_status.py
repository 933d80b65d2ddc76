# The plug's /status view (plug.status(), /status, /metrics, plug.channels()): per channel
# readings, totals and energy by period, the device (firmware, clock, network), outputs,
# wallets and balances, provider, payments, invoices, alerts. Imported at the first status
# asked for, not at boot. Documented field by field in tools/status.schema.json.
#
# Times: device.time is plug time (seconds since 2000, the ESP32's epoch), device.time_unix
# the same instant in Unix seconds. Money: every amount (base units, an int that may pass
# 2**53) has a decimal-string twin named <field>_str, so a client whose numbers are
# doubles (JavaScript, Node-RED) reads it exactly.
import gc
import time

from plug.clock import UNIX_2000


def _s(v):
    """The decimal string of an amount (None stays None)."""
    return None if v is None else str(v)


def _s_dict(d):
    """{k: amount} -> {k: "amount"}; None stays None."""
    return None if d is None else dict((k, _s(v)) for k, v in d.items())


def status(plug):
    """What `plug.status()` returns (a dict, JSON as /status sends it)."""
    ms = plug.meter.status()
    periods = getattr(plug, "periods", None)  # plug/periods.py: energy by period
    names = plug.cfgm.config["channels"]
    chans = {}
    for key in plug.ledger.keys():
        r = ms["channels"].get(key, {})
        imp, exp = plug.ledger.totals(key)
        dev = key.split("/")[0]
        c = chans[key] = {
            "name": names.get(key, {}).get("name", ""),
            "V": r.get("v", 0.0), "A": r.get("a", 0.0), "W": r.get("w", 0.0),
            "PF": r.get("pf", 0.0), "Hz": r.get("hz", 0.0),
            "import_uwh": imp, "export_uwh": exp,
            "import_wh": imp // 1000000, "export_wh": exp // 1000000,
            "unbilled_uwh": plug.ledger.pending(key)[0],
            "fault": dev in ms["faulty"],
        }
        if periods is not None:
            c["energy"] = _energy(periods.energy(key))
    from plug.version import BUILD, VERSION

    net = plug.net
    mac, ip, rssi = net.identity() if hasattr(net, "identity") else (None, None, None)
    t = plug.clock.time()
    st = {
        "device": {
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
        },
        "channels": chans,
        "outputs": plug.out.status(),
        "faulty": ms["faulty"],
        "update": plug.store.load("update"),  # the last release's fate (plug/update.py)
    }
    if plug.wallet:
        wallets = {}  # account -> what status shows of it
        for key in plug.ledger.keys():
            acct = plug.wallet.account_of(key)
            w = wallets.get(acct)
            if w is None:
                addr = plug.wallet.address(acct)
                b = plug.balances.get(addr)
                w = wallets[acct] = {"account": acct, "address": addr, "channels": [],
                                     "balance": b, "balance_str": _s_dict(b)}
            w["channels"].append(key)
        st["wallets"] = list(wallets.values())
    if plug.payments:
        prov = st["provider"] = plug.tariff.status()
        prov["rate_per_kwh_str"] = _s(prov.get("rate_per_kwh"))
        asset = prov.get("token") or "native"  # the currency amounts below are in
        accrued = dict(("%d/%s" % k, v) for k, v in plug.settlement.accrued().items())
        pays = {"accrued": accrued, "accrued_str": _s_dict(accrued),
                "pending": [], "confirmed": [], "failed": []}
        recs = plug.payments.records()
        for r in recs:
            pays[_PAY_STATE.get(r["st"], "pending")].append(_pay_view(r))
        paid = _paid_total(plug.payments, recs, asset)
        pays["paid_total"], pays["paid_total_str"] = paid, str(paid)
        st["payments"] = pays
        st["invoices"] = _invoices(plug, recs, asset)
        from plug.supply import money_alerts

        alerts, runway = money_alerts(plug)
        for a in alerts:
            for k in ("amount_due", "balance"):
                if k in a:
                    a[k + "_str"] = _s(a[k])
        for w in runway:
            for k in ("balance", "spendable", "spent_24h"):
                w[k + "_str"] = _s(w[k])
        st["alerts"], st["runway"] = alerts, runway
    return st


def _energy(e):
    # {period: (import, export)} -> {period: {"import_uwh", "export_uwh"}}, as literals:
    # each dict allocated once at its size (no generator, no items() tuples)
    t, y, m, lm = e["today"], e["yesterday"], e["month"], e["last_month"]
    return {"today": {"import_uwh": t[0], "export_uwh": t[1]},
            "yesterday": {"import_uwh": y[0], "export_uwh": y[1]},
            "month": {"import_uwh": m[0], "export_uwh": m[1]},
            "last_month": {"import_uwh": lm[0], "export_uwh": lm[1]}}


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


# What the payment history on the flash holds of confirmed payments, per asset: [records
# seen in all (carried + held), their sum]. History only grows at its end (its oldest
# segments rotate into the carried totals), so after the first scan (once per boot) only
# the records appended since are read.
_hist = {}


def _paid_total(pays, recs, asset):
    """Everything confirmed in `asset`: the history (carried totals and records held) and
    the live records it does not hold yet."""
    hist = pays.history if pays._arch else None  # nothing archived: not loaded for this
    total = 0
    for r in recs:
        if r["st"] == "confirmed" and (r["tok"] or "native") == asset and not (
                hist is not None and hist.has(r)):
            total += r["amt"]
    if hist is None:
        return total
    held = hist.count()
    carried = hist.carried()
    seen = carried["n"] + held
    c = _hist.get(asset)
    new = seen - c[0] if c else -1
    if new < 0 or new > held:  # first time, or lost track: read it all
        c = _hist[asset] = [seen, carried["paid"].get(asset, 0) + _sum(hist.read(), asset)]
    elif new:
        c[0] = seen
        c[1] += _sum(hist.read(held - new), asset)
    return total + c[1]


def _sum(records, asset):
    s = 0
    for rec in records:
        if rec.get("st") == "confirmed" and (rec.get("tok") or "native") == asset:
            s += rec.get("amt") or 0
    return s
