"""`plugctl plot URL out.png`: a plug's day as a picture an owner would keep.

    fig = figure(status, ledger)      # /status and the whole /ledger (ledger_view.fetch)
    fig.savefig("day.png")

Three panels over the time of day (local clock times, plug time converted):
- power per channel (W): the mean import power of every billed interval (an invoice's
  item or a billed minute not yet invoiced), and each channel's live power from /status
  as a dot at the plug's time (below 0: exporting, e.g. a PV inverter);
- energy per channel (kWh): billed import, cumulative over the period; the legend gives
  every channel's import and export totals to date (/status), since export is metered but
  never billed, so the ledger holds no export intervals;
- cost per channel in the currency's unit (ETH, USDC...), cumulative.
Payments are dotted vertical lines on every panel, labelled with their amount on the cost
panel. The title names the plug (board, wallet) and the period.
"""

import datetime

from . import units


def _when(plug_t):
    return datetime.datetime.fromtimestamp(units.unix(plug_t))


def _intervals(led):
    """{channel: [(t_start, t_end, import Wh, amount), ...]} in time order."""
    out = {}
    for inv in led.get("invoices") or []:
        for it in inv.get("items") or []:
            out.setdefault(it["channel"], []).append(
                (inv["t_start"], inv["t_end"], it["energy_mwh"] / 1e3, it["amount"]))
    for ln in led.get("unsettled") or []:
        out.setdefault(ln["channel"], []).append(
            (ln["t_start"], ln["t_end"], ln["energy_uwh"] / 1e6, ln["amount"]))
    return {k: sorted(v) for k, v in out.items()}


def _currency(status, led):
    prov = status.get("provider") if isinstance(status.get("provider"), dict) else None
    cur = units.provider_currency(prov)
    if cur is None:
        toks = [inv.get("token") for inv in led.get("invoices") or []]
        cur = units.currency_of(toks[-1] if toks else None, prov)
    return cur


def figure(status, led):
    """The matplotlib Figure for one plug; ValueError if nothing is billed yet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    series = _intervals(led)
    if not series:
        raise ValueError("nothing billed yet")
    cur = _currency(status, led)
    scale = 10 ** cur.decimals if cur else 1
    unit = cur.symbol if cur else "base units"
    t0 = min(p[0][0] for p in series.values())
    t1 = max(p[-1][1] for p in series.values())
    dev = status.get("device") or {}
    now = dev.get("time") if isinstance(dev.get("time"), int) else None
    chans = status.get("channels") or {}
    fig, (axp, axe, axc) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    for i, key in enumerate(sorted(set(series) | set(chans))):
        color = "C%d" % (i % 10)
        pts = series.get(key, [])
        ch = chans.get(key) or {}
        label = key + (" (%s)" % ch["name"] if ch.get("name") and ch["name"] != key else "")
        tt, watts, kwh, cost = [], [], [], []
        e = c = 0
        for a, b, wh, amount in pts:
            tt += [_when(a), _when(b)]
            w = wh * 3600 / (b - a) if b > a else 0.0
            watts += [w, w]
            e += wh
            c += amount
            kwh += [kwh[-1] if kwh else 0.0, e / 1e3]
            cost += [cost[-1] if cost else 0.0, c / scale]
        if pts:
            axp.plot(tt, watts, color=color, label=label)
            axe.plot(tt, kwh, color=color, label="%s: import %s kWh, export %s kWh to date" % (
                label, _kwh(ch.get("import_uwh")), _kwh(ch.get("export_uwh"))))
            axc.plot(tt, cost, color=color, label=label)
        if now is not None and isinstance(ch.get("W"), (int, float)):
            axp.plot([_when(now)], [ch["W"]], "o", color=color)
    for p in led.get("payments") or []:
        if p.get("st") not in ("sent", "confirmed") or not isinstance(p.get("t"), int):
            continue
        x = _when(p["t"])
        for ax in (axp, axe, axc):
            ax.axvline(x, color="0.4", linestyle=":", linewidth=1)
        pc = units.currency_of(p.get("tok"), status.get("provider")) or cur
        axc.annotate(units.amount(p.get("amt"), pc), (x, 1), xycoords=("data", "axes fraction"),
                     xytext=(2, -4), textcoords="offset points", rotation=90, va="top",
                     fontsize=7, color="0.25")
    axp.axhline(0, color="0.6", linewidth=0.8)
    axp.set_ylabel("power (W)\nbilled mean; dot: live")
    axe.set_ylabel("energy billed (kWh)")
    axc.set_ylabel("cost (%s)" % unit)
    loc = mdates.AutoDateLocator(minticks=6, maxticks=14)
    axc.xaxis.set_major_locator(loc)
    axc.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))  # 09:00 ... Dec-07
    axc.set_xlabel("time of day, %s; dotted lines: payments" % units.tz_name())
    for ax in (axp, axe, axc):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    wallets = status.get("wallets") or []
    who = dev.get("board") or "plug"
    if wallets and wallets[0].get("address"):
        a = wallets[0]["address"]
        who += " " + a[:6] + "..." + a[-4:]
    paid = [p for p in led.get("payments") or [] if p.get("st") == "confirmed"]
    total = sum(p.get("amt") or 0 for p in paid)
    fig.suptitle("Plug %s: %s\n%d payments confirmed, %s" % (
        who, units.local_period(t0, t1), len(paid), units.amount(total, cur)))
    fig.tight_layout()
    return fig


def _kwh(uwh):
    return "%.3f" % (uwh / 1e9) if isinstance(uwh, int) else "?"
