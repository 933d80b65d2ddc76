"""`plugctl ledger URL`: a plug's invoices and payments as tables, CSV or JSON.

    plugctl ledger URL            tables: invoices (period in local time, energy, rate,
                                  amount, state, transaction), what is billed but not yet
                                  invoiced, payments
    plugctl ledger URL --raw      the same with amounts in base units (wei)
    plugctl ledger URL --csv      one row per invoice and channel (columns: CSV_COLUMNS)
    plugctl ledger URL --json     the plug's /ledger as it sends it

CSV columns: invoice; start_utc, end_utc (ISO-8601 UTC); channel (device/channel code);
energy_wh (watt-hours, 3 decimals, exact); rate_per_kwh and amount in whole currency
units (exact decimals) with currency (its symbol, empty if unknown);
rate_per_kwh_base_units and amount_base_units (integers: wei or token base units);
payee; state (prepared, sent, confirmed, failed; empty: not paid yet); tx_hash.
"""

import csv
import io
import json

from . import units

CSV_COLUMNS = ("invoice", "start_utc", "end_utc", "channel", "energy_wh", "rate_per_kwh",
               "amount", "currency", "rate_per_kwh_base_units", "amount_base_units", "payee",
               "state", "tx_hash")


def fetch(get):
    """The whole ledger as one /ledger object: `get(path)` returns a body. A plug that
    pages its ledger (`?offset=N`, each page telling the next offset, null on the last,
    which alone carries the open invoices and unsettled lines) is read page by page."""
    led = json.loads(get("/ledger"))
    pages = 1
    while isinstance(led, dict) and led.get("next_offset") is not None and pages < 10000:
        more = json.loads(get("/ledger?offset=%d" % led["next_offset"]))
        for key in ("invoices", "payments", "unsettled"):
            if isinstance(more.get(key), list):
                led.setdefault(key, []).extend(more[key])
        led["next_offset"] = more.get("next_offset")
        pages += 1
    return led


def _cur(token, prov, native):
    return units.currency_of(token, prov, native)


def csv_text(led, prov=None, native="ETH"):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for inv in led.get("invoices", []):
        cur = _cur(inv.get("token"), prov, native)
        pay = inv.get("payment") or {}
        for it in inv["items"]:
            dec = cur.decimals if cur else None
            w.writerow((inv["id"], units.iso_utc(inv["t_start"]), units.iso_utc(inv["t_end"]),
                        it["channel"], units.wh_from_mwh(it["energy_mwh"]),
                        units.exact(it["rate_per_kwh"], dec) if cur else "",
                        units.exact(it["amount"], dec) if cur else "",
                        cur.symbol if cur else "", it["rate_per_kwh"], it["amount"],
                        inv.get("payee"), pay.get("state") or "", pay.get("hash") or ""))
    return out.getvalue()


def _table(header, rows):
    """Columns padded to their widest cell; a column whose header starts with ">" is
    right-aligned."""
    right = [h.startswith(">") for h in header]
    header = [h.lstrip(">") for h in header]
    widths = [max([len(header[i])] + [len(r[i]) for r in rows]) for i in range(len(header))]
    lines = []
    for r in [header] + rows:
        cells = [(c.rjust(w) if rt else c.ljust(w)) for c, w, rt in zip(r, widths, right)]
        lines.append("  ".join(cells).rstrip())
    return lines


def text(led, prov=None, native="ETH", raw=False):
    """Readable tables of a /ledger object: each invoice as a line (period in local time,
    amount, state, transaction) over its channels' energy, rate and amount."""
    out = []
    invs = led.get("invoices", [])
    out.append("Invoices (times in %s)" % units.tz_name() if invs else "Invoices: none yet")
    for inv in invs:
        cur = _cur(inv.get("token"), prov, native)
        pay = inv.get("payment") or {}
        out.append("")
        out.append("invoice %s  %s  %s to %s  %s%s" % (
            inv["id"], units.local_period(inv["t_start"], inv["t_end"]),
            units.amount(inv["amount"], cur, raw), inv.get("payee"),
            pay.get("state") or "not paid yet",
            "  " + pay["hash"] if pay.get("hash") else ""))
        rows = [["  " + it["channel"], units.wh_from_mwh(it["energy_mwh"]),
                 units.rate(it["rate_per_kwh"], cur, raw, rounded=True),
                 units.amount(it["amount"], cur, raw)] for it in inv["items"]]
        out += _table(["  channel", ">energy Wh", ">rate", ">amount"], rows)
    lines = led.get("unsettled", [])
    if lines:
        out.append("")
        out.append("Billed, not yet invoiced (times in %s)" % units.tz_name())
        cur = units.provider_currency(prov, native)
        per = {}
        for ln in lines:
            s = per.setdefault(ln["channel"], [ln["t_start"], ln["t_end"], 0, 0])
            s[0], s[1] = min(s[0], ln["t_start"]), max(s[1], ln["t_end"])
            s[2] += ln["energy_uwh"]
            s[3] += ln["amount"]
        out += _table(["channel", "period", ">energy Wh", ">amount"], [
            [k, units.local_period(s[0], s[1]), units.wh_from_uwh(s[2]),
             units.amount(s[3], cur, raw)] for k, s in sorted(per.items())])
    pays = led.get("payments", [])
    out.append("")
    out.append("Payments" if pays else "Payments: none yet")
    rows = []
    for p in sorted(pays, key=lambda p: (p.get("n") is None, p.get("n") or 0, p["id"])):
        cur = _cur(p.get("tok"), prov, native)
        rows.append([p["id"], p.get("st") or "", units.amount(p.get("amt"), cur, raw),
                     p.get("to") or "", "" if p.get("n") is None else str(p["n"]),
                     "" if p.get("blk") is None else str(p["blk"]),
                     p.get("mined") or p.get("hash") or "", p.get("err") or ""])
    if rows:
        out += _table(["payment", "state", ">amount", "to", ">nonce", ">block", "transaction",
                       "error"], rows)
    old = led.get("carried") or {}
    if old.get("n"):
        paid = ", ".join(units.amount(v, _cur(None if a == "native" else a, prov, native), raw)
                         for a, v in sorted((old.get("paid") or {}).items()))
        out.append("Older payments no longer kept on the plug: %d (%d confirmed, paid %s)"
                   % (old["n"], old.get("confirmed", 0), paid or "nothing"))
    return "\n".join(out)
