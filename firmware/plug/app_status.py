# The plug's /status view (plug.status(), /status, /metrics, plug.channels()): per channel
# readings and totals, the device, outputs, wallets and balances, provider, payments,
# alerts. Imported at the first status asked for, not at boot.
import gc
import time


def status(plug):
    """What `plug.status()` returns (a dict, JSON as /status sends it)."""
    ms = plug.meter.status()
    chans = {}
    for key in plug.ledger.keys():
        r = ms["channels"].get(key, {})
        imp, exp = plug.ledger.totals(key)
        dev = key.split("/")[0]
        chans[key] = {
            "name": plug.cfgm.config["channels"].get(key, {}).get("name", ""),
            "V": r.get("v", 0.0), "A": r.get("a", 0.0), "W": r.get("w", 0.0),
            "PF": r.get("pf", 0.0), "Hz": r.get("hz", 0.0),
            "import_uwh": imp, "export_uwh": exp,
            "import_wh": imp // 1000000, "export_wh": exp // 1000000,
            "unbilled_uwh": plug.ledger.pending(key)[0],
            "fault": dev in ms["faulty"],
        }
    st = {
        "device": {
            "board": plug.board.NAME, "time": plug.clock.time(),
            "uptime_s": time.ticks_diff(time.ticks_ms(), plug.boot_ms) // 1000,
            "free_heap": gc.mem_free(), "config_version": plug.cfgm.version,
            "config_error": plug.cfgm.fallback, "ledger_error": plug.ledger_error,
            "owner": plug.cfgm.owner, "safe_mode": plug.safe_mode,
            "last_error": plug.last_error, "late_reads": plug.meter.late_reads,
            "network": plug.net.status(),
            "temperature_c": plug.out.temperature(),
        },
        "channels": chans,
        "outputs": plug.out.status(),
        "faulty": ms["faulty"],
    }
    if plug.wallet:
        wallets = {}  # account -> what status shows of it
        for key in plug.ledger.keys():
            acct = plug.wallet.account_of(key)
            w = wallets.get(acct)
            if w is None:
                addr = plug.wallet.address(acct)
                w = wallets[acct] = {"account": acct, "address": addr, "channels": [],
                                     "balance": plug.balances.get(addr)}
            w["channels"].append(key)
        st["wallets"] = list(wallets.values())
    if plug.payments:
        st["provider"] = plug.tariff.status()
        pays = {"accrued": dict(("%d/%s" % k, v)
                                for k, v in plug.settlement.accrued().items()),
                "pending": [], "confirmed": [], "failed": []}
        for r in plug.payments.records():
            pays[_PAY_STATE.get(r["st"], "pending")].append(_pay_view(r))
        st["payments"] = pays
        from plug.supply import money_alerts

        st["alerts"], st["runway"] = money_alerts(plug)
    return st


_PAY_STATE = {"confirmed": "confirmed", "failed": "failed"}  # prepared, sent: pending


def _pay_view(r):
    return {"id": r["id"], "state": r["st"], "to": r["to"], "amount": r["amt"],
            "token": r["tok"], "hash": r["mined"] or r["hash"], "nonce": r["n"],
            "error": r["err"]}
