"""Read a plug over HTTP: plugctl status URL | ledger URL [--csv|--json] | plot URL out.png.

Amounts are shown in the currency's unit (`9.996115 ETH`, `12.40 USDC`; `--raw`: base
units), energy in Wh, plug time as local dates (tools/units.py). A URL that is not a
plug's, or a plug that does not answer, is one line on stderr and exit status 1.
"""

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

from . import units

NONE_YET = "none yet"


class PlugUnreachable(Exception):
    """The plug's URL is wrong or it does not answer: the message says what to check."""


def check_url(url):
    """`url` if it is an http(s)://host[:port] URL, else PlugUnreachable saying why."""
    p = urllib.parse.urlsplit(url)
    if p.scheme not in ("http", "https") or not p.hostname:
        host = url.split("/")[0]
        if "://" not in url and ("." in host or ":" in host or host == "localhost"):
            hint = "did you mean http://%s ?" % url
        else:
            hint = "give the plug's address, e.g. http://192.168.1.50 or http://127.0.0.1:8081"
        raise PlugUnreachable("%r is not an http:// URL: %s" % (url, hint))
    try:
        p.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise PlugUnreachable("%r: the port must be a number from 1 to 65535" % url)
    return url


PAGES = ("/status", "/ledger")  # a plug's pages that people copy from a browser


def base_url(url):
    """The plug's address from `url`, also when it names one of its pages: a URL copied
    from the browser (http://plug:8081/status, .../ledger/) gives http://plug:8081."""
    p = urllib.parse.urlsplit(url)
    path = p.path.rstrip("/")
    for page in PAGES:
        if path.endswith(page):
            path = path[:-len(page)]
            break
    return urllib.parse.urlunsplit((p.scheme, p.netloc, path, "", ""))


def get(url, path, timeout=10):
    full = base_url(check_url(url)).rstrip("/") + path
    try:
        with urllib.request.urlopen(full, timeout=timeout) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:
        hint = ("is this a plug's address?" if e.code == 404 else
                "the plug is in safe mode (plugctl status shows why)" if e.code == 503 else
                "the plug refused the request")
        raise PlugUnreachable("%s answered HTTP %d %s: %s" % (full, e.code, e.reason, hint))
    except OSError as e:  # URLError, a timeout, a connection reset
        raise unreachable(url, e)


def unreachable(url, e):
    """PlugUnreachable for the OSError (URLError) `e` met while asking `url`."""
    why = getattr(e, "reason", None) or e
    if isinstance(why, ConnectionRefusedError):
        why = "connection refused (is the plug running, and is the port right?)"
    elif isinstance(why, TimeoutError) or "timed out" in str(why):
        why = "no answer (timed out)"
    elif isinstance(why, OSError) and why.strerror:
        why = why.strerror
    return PlugUnreachable("cannot reach %s: %s" % (url, why))


def get_json(url, path, timeout=10):
    body = get(url, path, timeout)
    try:
        return json.loads(body)
    except ValueError:
        raise PlugUnreachable("%s%s did not answer JSON: is this a plug's address?"
                              % (base_url(url).rstrip("/"), path))


def _or(value, missing=NONE_YET):
    return missing if value is None else value


def _units(amount, decimals):
    """Base units as an exact decimal in whole units: (1500, 3) -> "1.5"."""
    return units.exact(amount, decimals)


def provider_text(prov, raw=False, native="ETH"):
    """The tariff in force as one line; a field the plug does not know (yet) reads
    "none yet", with the plug's last report on why when it has no provider."""
    name = prov.get("name") or prov.get("provider")
    cur = units.provider_currency(prov, native)
    line = "provider %s  payee %s  rate %s" % (_or(name), _or(prov.get("payee")),
                                               units.rate(prov.get("rate_per_kwh"), cur, raw))
    reports = prov.get("reports") or []
    if name is None and reports:
        line += "\n  last report: %s" % reports[-1]
    return line


def _balance(bal, prov, native, raw):
    """{"native": wei, "token": units} -> "9.996115 ETH, 12.40 USDC"."""
    if not isinstance(bal, dict):
        return "unknown (not read from the chain yet)"
    parts = []
    for k, v in sorted(bal.items()):
        cur = units.native(native) if k == "native" else units.currency_of(
            prov.get("token") if isinstance(prov, dict) else None, prov, native)
        parts.append(units.amount(v, cur, raw) if v is not None else "unknown")
    return ", ".join(parts) or "unknown"


_FUNDS = re.compile(r"\bis (\d+) wei, needs (\d+) \(amount \+ gas \+ floor (\d+)\)")
_TOKEN_FUNDS = re.compile(r"\btoken balance of (\S+) is (\d+), payment needs (\d+)")
_FEE_CAP = re.compile(r"\b(\d+) wei/gas is over the configured cap (\d+)")
_PER_GAS = re.compile(r"\b(\d+) wei/gas\b")
_WEI = re.compile(r"\b(\d+) wei\b(?!/)")


def money_text(text, prov=None, native="ETH", raw=False):
    """A plug's error text (firmware/plug/payments.py SpendRefused...) with its amounts in
    the currency's unit: "is 100000000000000 wei, needs 1538757013324000 (amount + gas +
    floor 0)" -> "is 0.0001 ETH, needs 0.001539 ETH (...floor 0 ETH)"; fees per gas in
    gwei. raw, or text that is not a str: unchanged."""
    if raw or not isinstance(text, str):
        return text
    eth = units.native(native)

    def amt(n, cur=eth):
        return units.amount(int(n), cur)

    def gwei(n):
        return "%s gwei/gas" % units.exact(int(n), 9)

    text = _FUNDS.sub(lambda m: "is %s, needs %s (amount + gas + floor %s)" % (
        amt(m.group(1)), amt(m.group(2)), amt(m.group(3))), text)
    tok = units.provider_currency(prov, native)
    if tok is not None and tok.base_unit != "wei":
        text = _TOKEN_FUNDS.sub(lambda m: "token balance of %s is %s, payment needs %s" % (
            m.group(1), amt(m.group(2), tok), amt(m.group(3), tok)), text)
    text = _FEE_CAP.sub(lambda m: "%s is over the configured cap %s" % (
        gwei(m.group(1)), gwei(m.group(2))), text)
    text = _PER_GAS.sub(lambda m: gwei(m.group(1)), text)
    return _WEI.sub(lambda m: amt(m.group(1)), text)


def _duration(s):
    if not isinstance(s, int):
        return "?"
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d >= 2:
        return "%d days" % d
    return ("%dd %dh %dm" % (d, h, m) if d else "%dh %dm %ds" % (h, m, s) if h else
            "%dm %ds" % (m, s) if m else "%ds" % s)


_UPDATE_STATES = {"staged": "staged", "installed": "installed, rebooting into it",
                  "trial": "on trial", "good": "running, kept after its trial",
                  "rolled_back": "ROLLED BACK", "refused": "refused"}


def update_lines(u):
    """The last release's fate (/status `update`) and the last bundle refused since boot."""
    if not isinstance(u, dict):
        return []
    out = []
    if u.get("state"):
        out.append("update %s %s%s" % (
            _or(u.get("version"), "?"), _UPDATE_STATES.get(u["state"], u["state"]),
            ": %s" % u["reason"] if u.get("reason") else ""))
    r = u.get("refused")
    if isinstance(r, dict):
        out.append("update refused%s: %s" % (" " + r["version"] if r.get("version") else "",
                                             _or(r.get("reason"), "?")))
    return out


def status_text(st, raw=False, native="ETH"):
    dev = st.get("device", {})
    prov = st.get("provider") if isinstance(st.get("provider"), dict) else None
    t = dev.get("time")
    fw = dev.get("firmware") if isinstance(dev.get("firmware"), dict) else {}
    lines = ["plug %s%s  config v%s  plug time %s  uptime %s  free heap %s bytes%s" % (
        _or(dev.get("board"), "?"),
        " firmware %s (%s)" % (_or(fw.get("version"), "?"), _or(fw.get("build"), "?"))
        if fw else "", _or(dev.get("config_version"), "?"),
        units.local(t, "%Y-%m-%d %H:%M:%S %Z") if isinstance(t, int) else "?",
        _duration(dev.get("uptime_s")), _or(dev.get("free_heap"), "?"),
        "  SAFE MODE" if dev.get("safe_mode") else "")]
    if dev.get("owner"):
        lines.append("owner %s" % dev["owner"])
    if dev.get("hostname") or dev.get("ip"):
        lines.append("network name %s  address %s%s" % (
            _or(dev.get("hostname"), "?"), _or(dev.get("ip"), "?"),
            "  Wi-Fi %s dBm" % dev["rssi"] if isinstance(dev.get("rssi"), int) else ""))
    if isinstance(dev.get("temperature_c"), (int, float)):
        lines.append("board temperature %.1f C" % dev["temperature_c"])
    for key, label in (("config_error", "config error"), ("ledger_error", "ledger error"),
                       ("last_error", "last error")):
        if dev.get(key):
            lines.append("%s: %s" % (label, dev[key]))
    lines += update_lines(st.get("update"))
    net = dev.get("network")
    if isinstance(net, dict) and net.get("link") not in (None, "up", "off"):
        lines.append("network %s (ssid %s, down %ss)%s" % (
            net.get("link"), _or(net.get("ssid"), "?"), _or(net.get("down_s"), "?"),
            ": %s" % net["error"] if net.get("error") else ""))
    if prov is not None:
        lines.append(provider_text(prov, raw, native))
    lines.append("%-8s %8s %8s %9s %6s %12s %12s %12s" % (
        "channel", "volts", "amps", "watts", "PF", "import Wh", "export Wh", "unbilled Wh"))
    for key, ch in sorted(st.get("channels", {}).items()):
        lines.append("%-8s %8.1f %8.3f %9.1f %6.2f %12s %12s %12s%s" % (
            key, ch["V"], ch["A"], ch["W"], ch["PF"], units.wh_from_uwh(ch["import_uwh"]),
            units.wh_from_uwh(ch["export_uwh"]), units.wh_from_uwh(ch.get("unbilled_uwh") or 0),
            "  FAULT" if ch.get("fault") else ""))
    relays = [(k, o) for k, o in sorted((st.get("outputs") or {}).items())
              if isinstance(o, dict) and o.get("relay")]
    if relays:
        lines.append("outputs: " + ", ".join("%s %s%s" % (
            k, "on" if o.get("on") else "off", "" if o.get("reason") in ("on", "off") else
            " (%s)" % o.get("reason")) for k, o in relays))
    cur = units.provider_currency(prov, native)
    runway = {r.get("account"): r for r in st.get("runway") or [] if isinstance(r, dict)}
    for w in st.get("wallets", []):
        r = runway.get(w.get("account")) or {}
        lines.append("wallet %s %s  balance %s  pays for %s%s" % (
            w.get("account", "?"), w["address"], _balance(w.get("balance"), prov, native, raw),
            ", ".join(w.get("channels", [])) or "no channel",
            "  lasts %s at the last 24 h's spend (%s)" % (
                _duration(r["runway_s"]), units.amount(r.get("spent_24h"), cur, raw))
            if isinstance(r.get("runway_s"), int) else ""))
    for a in st.get("alerts") or []:
        if not isinstance(a, dict):
            continue
        since = a.get("since")
        when = " since %s" % units.local(since) if isinstance(since, int) else ""
        if a.get("kind") == "node_unreachable":
            what = "the chain's node does not answer%s: %s" % (
                when, money_text(a.get("error"), prov, native, raw))
        else:
            what = "wallet %s cannot pay invoice %s (%s)%s: %s; supply %s" % (
                a.get("account"), a.get("invoice"), units.amount(a.get("amount_due"), cur, raw),
                when, money_text(a.get("error"), prov, native, raw), a.get("supply"))
        lines.append("ALERT %s" % what)
    pays = st.get("payments")
    if pays is not None:
        lines.append("payments: %d confirmed, %d pending, %d failed" % (
            len(pays.get("confirmed", [])), len(pays.get("pending", [])),
            len(pays.get("failed", []))))
        accrued = pays.get("accrued") or {}
        lines.append("billed, not yet invoiced: %s" % (", ".join(
            "%s (wallet %s)" % (units.amount(v, cur, raw), k.split("/")[0])
            for k, v in sorted(accrued.items())) or "nothing"))
        for state in ("pending", "failed"):
            for p in pays.get(state, []):
                pc = units.currency_of(p.get("token"), prov, native)
                lines.append("  %s payment %s  %s to %s  %s%s" % (
                    state, p.get("id"), units.amount(p.get("amount"), pc, raw), p.get("to"),
                    p.get("hash") or "not sent yet",
                    "  error: %s" % money_text(p["error"], prov, native, raw)
                    if p.get("error") else ""))
    return "\n".join(lines)


def plot(url, out):
    """Draw the plug's billed power, energy and cost per channel over the time of day,
    with its payments, to the PNG `out` (tools/plot.py)."""
    from . import ledger_view
    from . import plot as draw

    status = get_json(url, "/status")
    led = ledger_view.fetch(lambda path: get(url, path))
    try:
        fig = draw.figure(status, led)
    except ValueError as e:
        raise SystemExit("plugctl plot: %s at %s: let it meter and bill a while" % (e, url))
    fig.savefig(out, dpi=100)


def _writable_dir(path):
    """Refuse at once (before fetching and drawing) a file that cannot be written."""
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise SystemExit("plugctl plot: %s: no such directory" % d)
    if not os.access(d, os.W_OK):
        raise SystemExit("plugctl plot: %s: not writable" % d)


def cli(cmd, argv):
    desc = {"status": "Show a plug's meters, tariff, wallets and payments (GET /status).",
            "ledger": "Print a plug's invoices and payments (GET /ledger).",
            "plot": "Plot a plug's energy per channel and cost over time to a PNG."}[cmd]
    ap = argparse.ArgumentParser(prog="plugctl " + cmd, description=desc)
    ap.add_argument("url", help="the plug's HTTP address, e.g. http://127.0.0.1:8081")
    if cmd in ("status", "ledger"):
        ap.add_argument("--raw", action="store_true",
                        help="amounts in base units (wei, token base units) instead of "
                             "ETH, USDC, ...")
        ap.add_argument("--native", default="ETH", metavar="SYMBOL",
                        help="symbol of the chain's native coin (default ETH)")
    if cmd == "ledger":
        g = ap.add_mutually_exclusive_group()
        g.add_argument("--csv", action="store_true",
                       help="CSV, one row per invoice and channel, ISO-8601 UTC times")
        g.add_argument("--json", action="store_true", help="the plug's /ledger as JSON")
    if cmd == "plot":
        ap.add_argument("out", help="PNG file to write")
    a = ap.parse_args(argv)
    try:
        a.url = base_url(check_url(a.url))  # also http://plug/status, .../ledger
        if cmd == "status":
            print(status_text(get_json(a.url, "/status"), a.raw, a.native))
        elif cmd == "ledger":
            from . import ledger_view

            led = ledger_view.fetch(lambda path: get(a.url, path))
            if a.json:
                print(json.dumps(led, indent=1))
                return 0
            prov = get_json(a.url, "/status").get("provider")
            if a.csv:
                sys.stdout.write(ledger_view.csv_text(led, prov, a.native))
            else:
                print(ledger_view.text(led, prov, a.native, a.raw))
        else:
            _writable_dir(a.out)
            plot(a.url, a.out)
            print("wrote", a.out)
    except PlugUnreachable as e:
        raise SystemExit("plugctl %s: %s" % (cmd, e))
    return 0
