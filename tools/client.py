"""Read a plug over HTTP: plugctl status URL | ledger URL [--csv] | plot URL out.png."""

import argparse
import json
import sys
import urllib.request


def get(url, path, timeout=10):
    with urllib.request.urlopen(url.rstrip("/") + path, timeout=timeout) as r:
        return r.read().decode()


NONE_YET = "none yet"


def _or(value, missing=NONE_YET):
    return missing if value is None else value


def _amounts(d):
    """{"native": 5, "token": 7} -> "native 5, token 7"; {} or None -> "0" or "unknown"."""
    if d is None:
        return "unknown"
    if not isinstance(d, dict):
        return str(d)
    return ", ".join("%s %s" % (k, _or(v, "unknown")) for k, v in sorted(d.items())) or "0"


def _units(amount, decimals):
    """Base units as an exact decimal in whole units: (1500, 3) -> "1.5"."""
    from decimal import Decimal

    text = format(Decimal(amount).scaleb(-decimals), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def provider_text(prov):
    """The tariff in force as one line; a field the plug does not know (yet) reads
    "none yet", with the plug's last report on why when it has no provider."""
    name = prov.get("name") or prov.get("provider")
    rate = prov.get("rate_per_kwh")
    cur = prov.get("currency")
    dec = prov.get("decimals")
    if rate is None:
        rate_s = NONE_YET
    elif isinstance(cur, str) and cur and type(rate) is int and type(dec) is int:
        rate_s = "%s %s/kWh (%d base units)" % (_units(rate, dec), cur, rate)
    else:
        rate_s = "%s base units/kWh" % rate
    line = "provider %s  payee %s  rate %s" % (_or(name), _or(prov.get("payee")), rate_s)
    reports = prov.get("reports") or []
    if name is None and reports:
        line += "\n  last report: %s" % reports[-1]
    return line


def status_text(st):
    dev = st.get("device", {})
    lines = ["plug  config v%s  uptime %ss  free heap %s B%s" % (
        _or(dev.get("config_version"), "?"), _or(dev.get("uptime_s"), "?"),
        _or(dev.get("free_heap"), "?"), "  SAFE MODE" if dev.get("safe_mode") else "")]
    prov = st.get("provider")
    if isinstance(prov, dict):
        lines.append(provider_text(prov))
    lines.append("%-8s %8s %8s %9s %6s %12s %12s" % ("channel", "V", "A", "W", "PF",
                                                     "import Wh", "export Wh"))
    for key, ch in sorted(st.get("channels", {}).items()):
        lines.append("%-8s %8.1f %8.3f %9.1f %6.2f %12.3f %12.3f%s" % (
            key, ch["V"], ch["A"], ch["W"], ch["PF"], ch["import_uwh"] / 1e6,
            ch["export_uwh"] / 1e6, "  FAULT" if ch.get("fault") else ""))
    for w in st.get("wallets", []):
        lines.append("wallet %s  balance %s  (%s)" % (w["address"], _amounts(w.get("balance")),
                                                      ", ".join(w.get("channels", []))))
    pays = st.get("payments")
    if pays is not None:
        lines.append("payments: %d confirmed, %d pending, accrued %s" % (
            len(pays.get("confirmed", [])), len(pays.get("pending", [])),
            _amounts(pays.get("accrued", {}))))
    return "\n".join(lines)


def billed_series(led):
    """{channel: [(t_end, kWh, amount), ...]} from invoices and unsettled lines, in time order."""
    pts = {}
    for inv in led.get("invoices", []):
        for it in inv["items"]:
            pts.setdefault(it["channel"], []).append(
                (inv["t_end"], it["energy_mwh"] / 1e6, it["amount"]))
    for line in led.get("unsettled", []):
        pts.setdefault(line["channel"], []).append(
            (line["t_end"], line["energy_uwh"] / 1e9, line["amount"]))
    return {k: sorted(v) for k, v in pts.items()}


def plot(url, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = billed_series(json.loads(get(url, "/ledger")))
    if not series:
        raise SystemExit("plugctl plot: nothing billed yet at %s" % url)
    t0 = min(p[0][0] for p in series.values())
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for key, pts in sorted(series.items()):
        t, e, cost, ce, cc = [], [], [], 0.0, 0
        for t_end, kwh, amount in pts:
            ce += kwh
            cc += amount
            t.append((t_end - t0) / 3600)
            e.append(ce)
            cost.append(cc)
        ax1.step(t, e, where="post", label=key)
        ax2.step(t, cost, where="post", label=key)
    ax1.set_ylabel("energy billed (kWh)")
    ax2.set_ylabel("cost (base units)")
    ax2.set_xlabel("hours")
    for ax in (ax1, ax2):
        ax.grid(True)
    ax1.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def cli(cmd, argv):
    ap = argparse.ArgumentParser(prog="plugctl " + cmd)
    ap.add_argument("url")
    if cmd == "ledger":
        ap.add_argument("--csv", action="store_true")
    if cmd == "plot":
        ap.add_argument("out")
    a = ap.parse_args(argv)
    if cmd == "status":
        print(status_text(json.loads(get(a.url, "/status"))))
    elif cmd == "ledger":
        sys.stdout.write(get(a.url, "/ledger" + ("?format=csv" if a.csv else "")))
    else:
        plot(a.url, a.out)
        print("wrote", a.out)
    return 0
