"""`plugctl plot URL out.png`: a plug's day as a picture an owner would keep.

    fig = figure(status, ledger)      # /status and the whole /ledger (ledger_view.fetch)
    fig.savefig("day.png")

Three panels over the time of day (local clock times, plug time converted):
- power per channel (W): the mean import power of every billed interval (an invoice's
  item or a billed minute not yet invoiced), and each channel's live power from /status
  as a dot at the plug's time, labelled when below 0 (exporting, e.g. a PV inverter);
- energy per channel (kWh): billed import, cumulative over the period; the legend gives
  every channel's import and export totals to date (/status). Export is metered but never
  billed, so the ledger holds no export intervals: an exporting channel's export to date
  is a marker below 0 at the plug's time, and its legend says so;
- cost per channel in the currency's unit (ETH, USDC...), cumulative.
Payments are dotted vertical lines on every panel, labelled with their amount on the cost
panel; payments closer together than a label's width share one label ("3 payments,
0.0045 ETH"), so labels never overprint. The title names the plug (board, wallet) and the
period.
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
        exported = ch.get("export_uwh") if isinstance(ch.get("export_uwh"), int) else 0
        if pts:
            axp.plot(tt, watts, color=color, label=label + (
                ": import billed; export not billed, live only (dot)" if exported > 0 else ""))
            axe.plot(tt, kwh, color=color, label="%s: import %s kWh, export %s kWh to date%s" % (
                label, _kwh(ch.get("import_uwh")), _kwh(ch.get("export_uwh")),
                " (below 0 at the plug's time: export is not billed, so not over time)"
                if exported > 0 and now is not None else ""))
            axc.plot(tt, cost, color=color, label=label)
        if now is not None and exported > 0:
            axe.plot([_when(now)], [-exported / 1e9], "v", color=color)
            axe.annotate("%s export %s kWh" % (key, _kwh(exported)), (_when(now), -exported / 1e9),
                         xytext=(-4, 0), textcoords="offset points", ha="right", va="center",
                         fontsize=7, color=color, bbox=_BACK)
        if now is not None and isinstance(ch.get("W"), (int, float)):
            axp.plot([_when(now)], [ch["W"]], "o", color=color)
            if ch["W"] < 0:
                axp.annotate("%s %.0f W" % (key, ch["W"]), (_when(now), ch["W"]),
                             xytext=(-4, 0), textcoords="offset points", ha="right",
                             va="center", fontsize=7, color=color, bbox=_BACK)
    if now is not None:
        axe.axhline(0, color="0.6", linewidth=0.8)
    _payments(led, status, cur, (axp, axe, axc), fig)
    axp.axhline(0, color="0.6", linewidth=0.8)
    axp.set_ylabel("power (W)\nbilled mean; dot: live")
    axe.set_ylabel("energy billed (kWh)\nbelow 0: export to date")
    axc.set_ylabel("cost (%s)" % unit)
    loc = mdates.AutoDateLocator(minticks=6, maxticks=14)
    axc.xaxis.set_major_locator(loc)
    axc.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))  # 09:00 ... Dec-07
    axc.set_xlabel("time of day, %s; dotted lines: payments" % units.tz_name())
    for ax in (axp, axe, axc):
        ax.grid(True, alpha=0.3)
        # the cost panel's upper left holds the payments' labels; its lower right is free
        ax.legend(fontsize=7, loc="lower right" if ax is axc else "upper left")
    wallets = status.get("wallets") or []
    who = dev.get("board") or "plug"
    if wallets and wallets[0].get("address"):
        a = wallets[0]["address"]
        who += " " + a[:6] + "..." + a[-4:]
    paid = [p for p in led.get("payments") or [] if p.get("st") == "confirmed"]
    total = sum(p.get("amt") or 0 for p in paid)
    fig.suptitle("Plug %s: %s\n%d payment%s confirmed, %s" % (
        who, units.local_period(t0, t1), len(paid), "" if len(paid) == 1 else "s",
        units.amount(total, cur)))
    fig.tight_layout()
    return fig


_BACK = {"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8}


def _payments(led, status, cur, axes, fig):
    """A dotted line per payment sent or confirmed; on the cost panel (the last axes) its
    amount, or for payments closer together than a label's width one label for them all
    ("3 payments, 0.0045 ETH"), so the labels never overprint."""
    import matplotlib.dates as mdates

    pays = sorted((p for p in led.get("payments") or [] if p.get("st") in ("sent", "confirmed")
                   and isinstance(p.get("t"), int)), key=lambda p: p["t"])
    if not pays:
        return
    axc = axes[-1]
    dense = len(pays) > 40  # a wall of lines hides the data: fainter
    for p in pays:
        for ax in axes:
            ax.axvline(_when(p["t"]), color="0.4", linestyle=":", linewidth=0.6 if dense else 1,
                       alpha=0.5 if dense else 1)
    lo, hi = axc.get_xlim()  # in days (matplotlib dates), lines and data included
    width_pt = axc.get_position().width * fig.get_figwidth() * 72  # before tight_layout: less
    gap = (hi - lo) * _LABEL_PT / width_pt if width_pt > 0 else 0  # a label's width, in days
    groups = []
    for p in pays:
        x = mdates.date2num(_when(p["t"]))
        if groups and x - groups[-1][0] < gap:
            groups[-1][1].append(p)
        else:
            groups.append((x, [p]))
    prov = status.get("provider")
    for x, ps in groups:
        curs = {(c.symbol, c.decimals) if c else None for c in
                (units.currency_of(p.get("tok"), prov) or cur for p in ps)}
        pc = units.currency_of(ps[0].get("tok"), prov) or cur
        total = units.amount(sum(p.get("amt") or 0 for p in ps), pc) if len(curs) == 1 else ""
        text = total if len(ps) == 1 else "%d payments%s" % (len(ps), total and ", " + total)
        axc.annotate(text, (x, 1), xycoords=("data", "axes fraction"), xytext=(2, -4),
                     textcoords="offset points", rotation=90, va="top", fontsize=7,
                     color="0.25", bbox=_BACK)


_LABEL_PT = 13  # a rotated 7-point label's width with a little room, in points


def _kwh(uwh):
    return "%.3f" % (uwh / 1e9) if isinstance(uwh, int) else "?"
