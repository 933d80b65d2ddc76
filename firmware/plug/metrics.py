# GET /metrics: the plug's figures as Prometheus text (plug/prometheus.py writes the
# format), following Prometheus' naming guide: base units (joules, volts, watts, hertz,
# seconds, bytes), counters end in _total, one plug_build_info. A generator of lines: the
# server streams it, no string of the whole answer is built. Loaded at the first /metrics.
#
# Money is in the settlement currency's base units (wei, token units), labelled with the
# asset ("native" or the token's address). Prometheus keeps every value as a float64, so
# an amount above 2**53 is rounded there; /status has the exact figure (*_str fields).
from plug.prometheus import prometheus_lines

_J_PER_UWH_NUM = 36  # 1 uWh = 0.0036 J: joules = uWh * 36 // 10000 (floor, so monotonic)
_J_PER_UWH_DEN = 10000
_PERIODS = ("today", "yesterday", "month", "last_month")


def lines(plug, srv=None):
    """The exposition, line by line."""
    return prometheus_lines(families(plug, srv))


def _per_channel(st, field, scale=None):
    for key, ch in st["channels"].items():
        dev, code = key.split("/")
        v = ch[field]
        if scale:
            v = v * _J_PER_UWH_NUM // _J_PER_UWH_DEN
        yield {"device": dev, "channel": code}, v


def _fam(name, kind, help_text, value):
    return name, kind, help_text, (({}, value),)


def families(plug, srv=None):
    """(name, kind, help, samples) per metric family."""
    st = plug.status()
    from plug.version import BUILD, VERSION

    yield ("plug_build_info", "gauge", "The firmware: its version and build (git hash)",
           (({"version": VERSION, "build": BUILD}, 1),))
    yield ("plug_voltage_volts", "gauge", "RMS voltage", _per_channel(st, "V"))
    yield ("plug_current_amperes", "gauge", "RMS current", _per_channel(st, "A"))
    yield ("plug_power_watts", "gauge", "Active power, negative when exporting",
           _per_channel(st, "W"))
    yield ("plug_power_factor", "gauge", "Power factor", _per_channel(st, "PF"))
    yield ("plug_frequency_hertz", "gauge", "Line frequency", _per_channel(st, "Hz"))
    yield ("plug_energy_import_joules_total", "counter",
           "Energy imported since the plug was installed (1 Wh = 3600 J)",
           _per_channel(st, "import_uwh", True))
    yield ("plug_energy_export_joules_total", "counter",
           "Energy exported since the plug was installed (1 Wh = 3600 J)",
           _per_channel(st, "export_uwh", True))
    if any("energy" in ch for ch in st["channels"].values()):
        yield ("plug_energy_period_joules", "gauge",
               "Energy by calendar period at the owner's UTC offset (today, yesterday, "
               "month, last_month)", _periods(st))
    yield ("plug_channel_fault", "gauge", "1 while the channel's measuring chip is faulty",
           (({"device": k.split("/")[0], "channel": k.split("/")[1]}, int(ch["fault"]))
            for k, ch in st["channels"].items()))
    dev = st["device"]
    yield _fam("plug_uptime_seconds", "gauge", "Seconds since boot", dev["uptime_s"])
    yield _fam("plug_free_heap_bytes", "gauge", "Free heap", dev["free_heap"])
    yield _fam("plug_config_version", "gauge", "Config version in force",
               dev["config_version"])
    yield _fam("plug_safe_mode", "gauge", "1 in safe mode (metering only, no payments)",
               int(bool(dev["safe_mode"])))
    yield _fam("plug_late_reads_total", "counter", "Meter reads later than a chip's "
               "registers can hold energy, since boot", dev["late_reads"])
    if isinstance(dev.get("temperature_c"), (int, float)):
        yield _fam("plug_temperature_celsius", "gauge", "Board temperature",
                   dev["temperature_c"])
    net = dev["network"]
    yield _fam("plug_network_up", "gauge", "1 while the network link is up",
               int(net.get("link") == "up"))
    if dev.get("rssi") is not None:
        yield _fam("plug_wifi_rssi_dbm", "gauge", "Wi-Fi signal strength", dev["rssi"])
    if "mqtt" in dev:
        yield _fam("plug_mqtt_connected", "gauge", "1 while connected to the MQTT broker "
                   "(see /status device.mqtt)", int(dev["mqtt"]["state"] == "connected"))
    if srv is not None:
        s = srv.stats
        yield _fam("plug_http_requests_total", "counter", "HTTP requests read since boot",
                   s["requests"])
        yield ("plug_http_responses_total", "counter", "HTTP answers by status class since "
               "boot", (({"code": c}, s.get("responses_" + c, 0))
                        for c in ("2xx", "4xx", "5xx")))
        yield ("plug_http_dropped_total", "counter", "HTTP connections cut off since boot: "
               "busy (503), too slow (408), evicted for a newcomer (408)",
               (({"reason": r}, s[k]) for r, k in (("busy", "rejected"), ("timeout", "timeouts"),
                                                   ("evicted", "evicted"))))
    for fam in _money(st, plug):
        yield fam


def _periods(st):
    for key, ch in st["channels"].items():
        e = ch.get("energy")
        if not e:
            continue
        dev, code = key.split("/")
        for p in _PERIODS:
            v = e.get(p)
            if not v:
                continue
            for d in ("import", "export"):
                yield ({"device": dev, "channel": code, "period": p, "direction": d},
                       v[d + "_uwh"] * _J_PER_UWH_NUM // _J_PER_UWH_DEN)


_EXACT = "; float64 here, the exact figure is /status "


def _provider(plug, pid):
    """The provider's name (the payee's address if it has none) for a provider number."""
    from plug.provider import TariffError

    try:
        d = plug.tariff.provider(int(pid))
        return d.get("name") or d["payee"]
    except (AttributeError, KeyError, ValueError, TariffError):  # no longer kept
        return pid


def _money(st, plug=None):
    prov = st.get("provider") or {}
    asset = prov.get("token") or "native"
    if "wallets" in st:
        yield ("plug_wallet_balance", "gauge", "Wallet balance in base units (wei, token "
               "units)" + _EXACT + "wallets[].balance_str",
               _balances(st["wallets"], prov.get("token")))
    if "payments" not in st:
        return
    if prov.get("rate_per_kwh") is not None:
        yield ("plug_rate_per_kwh", "gauge", "The provider's rate in force, base units per "
               "kWh" + _EXACT + "provider.rate_per_kwh_str",
               (({"asset": asset}, prov["rate_per_kwh"]),))
    p = st["payments"]
    yield ("plug_accrued", "gauge", "Billed, not yet invoiced, base units, per wallet account "
           "and provider" + _EXACT + "payments.accrued_str",
           (({"account": k.split("/")[0], "provider": _provider(plug, k.split("/", 1)[1]),
              "asset": asset}, v) for k, v in p["accrued"].items()))
    yield ("plug_paid_total", "counter", "Everything paid and confirmed, base units, "
           "history included" + _EXACT + "payments.paid_total_str",
           (({"asset": asset}, p["paid_total"]),))
    yield ("plug_payments", "gauge", "Payments shown in /status by state",
           (({"state": s}, len(p[s])) for s in ("pending", "confirmed", "failed")))
    inv = st["invoices"]
    yield _fam("plug_invoices_unpaid", "gauge", "Invoices billed and not yet confirmed paid",
               inv["open"])
    yield ("plug_invoices_unpaid_amount", "gauge", "What those invoices amount to, base units"
           + _EXACT + "invoices.unpaid_amount_str", (({"asset": asset}, inv["unpaid_amount"]),))
    yield _fam("plug_alerts", "gauge", "Alerts in force (see /status alerts)",
               len(st.get("alerts") or ()))


def _balances(wallets, token):
    for w in wallets:
        for a, v in (w.get("balance") or {}).items():
            if v is not None:  # "token": the provider's token
                yield {"account": w["account"], "address": w["address"],
                       "asset": token if a == "token" and token else a}, v
