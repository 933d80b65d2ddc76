# The plug's HTTP endpoints: GET /status, /metrics, /ledger and POST /config.
# Reads are open on the LAN and show nothing that lets anyone spend; the only write,
# POST /config, takes an envelope signed by the owner (config.py).
from plug.prometheus import CONTENT_TYPE as PROMETHEUS
from plug.prometheus import prometheus
from plug.server import CSV, HTTPError, Response, Server, csv_lines


def build(plug):
    cfg = plug.cfgm.config["server"]
    srv = Server(max_request_bytes=cfg["max_request_bytes"],
                 max_connections=cfg["max_connections"])
    srv.route("GET", "/status", lambda req: plug.status())
    srv.route("GET", "/metrics", lambda req: Response(metrics_text(plug),
                                                      content_type=PROMETHEUS))
    srv.route("GET", "/ledger", lambda req: ledger(plug, req))
    srv.route("POST", "/config", lambda req: post_config(plug, req))
    return srv


def post_config(plug, req):
    from plug.config import ConfigError

    try:
        return {"version": plug.apply_config(req.body)}
    except ConfigError as e:
        raise HTTPError(400 if "rolled back" not in str(e) else 409, str(e))


def invoices(plug, records):
    """Every invoice the plug still knows, oldest first: open ones from billing, paid or
    pending ones from the payment `records` (their memo says what they cover)."""
    from plug.settle import decode_memo
    import binascii

    out = []
    pays = {p["id"]: p for p in records}
    for inv in plug.settlement.open_invoices():
        out.append(_invoice(inv["id"], inv["t0"], inv["t1"], inv["payee"], inv["token"],
                            [(c, e // 1000, r, a) for c, e, r, a in inv["items"]],
                            pays.pop(inv["id"], None)))
    for p in pays.values():  # what is left: invoices no longer open
        try:
            memo = p["memo"]
            _seq, t0, t1, items = decode_memo(binascii.unhexlify(memo[2:] if memo[:2] == "0x"
                                                                 else memo))
        except ValueError:
            continue
        out.append(_invoice(p["id"], t0, t1, p["to"], p["tok"], items, p))
    out.sort(key=lambda x: (x["t_start"], x["id"]))
    return out


def _invoice(iid, t0, t1, payee, token, items, pay):
    return {"id": iid, "t_start": t0, "t_end": t1, "payee": payee, "token": token,
            "amount": sum(x[3] for x in items),
            "items": [{"channel": c, "energy_mwh": e, "rate_per_kwh": r, "amount": a}
                      for c, e, r, a in items],
            "payment": pay and {"state": pay["st"], "hash": pay["mined"] or pay["hash"]}}


_PAY_COLS = ("id", "st", "from", "to", "amt", "tok", "n", "hash", "mined", "blk", "err")
_ROW_COLS = ("invoice", "t_start", "t_end", "channel", "energy_mwh", "rate_per_kwh", "amount",
             "payee", "state", "hash")


def ledger(plug, req):
    if not plug.payments:
        raise HTTPError(503, "safe mode: no billing")
    recs = plug.payments.records()
    invs = invoices(plug, recs)
    lines = [{"channel": key, "t_start": ln[0], "t_end": ln[1], "energy_uwh": ln[2],
              "rate_per_kwh": ln[3], "amount": ln[4]}
             for key, ls in plug.billing.lines().items() for ln in ls]
    if req.query.get("format") == "csv":
        def rows():
            for inv in invs:
                p = inv["payment"] or {}
                for it in inv["items"]:
                    yield (inv["id"], inv["t_start"], inv["t_end"], it["channel"],
                           it["energy_mwh"], it["rate_per_kwh"], it["amount"], inv["payee"],
                           p.get("state"), p.get("hash"))
        return Response(csv_lines(_ROW_COLS, rows()), content_type=CSV)
    return {"invoices": invs, "unsettled": lines,
            "payments": [{c: p.get(c) for c in _PAY_COLS} for p in recs]}


def metrics_text(plug):
    st = plug.status()
    fams = []

    def fam(name, kind, help_text, field, scale=1):
        samples = []
        for key, ch in st["channels"].items():
            dev, code = key.split("/")
            v = ch[field]
            samples.append(({"device": dev, "channel": code},
                            v / scale if scale != 1 else v))
        fams.append((name, kind, help_text, samples))

    fam("plug_voltage_volts", "gauge", "RMS voltage", "V")
    fam("plug_current_amperes", "gauge", "RMS current", "A")
    fam("plug_power_watts", "gauge", "Active power, negative when exporting", "W")
    fam("plug_power_factor", "gauge", "Power factor", "PF")
    fam("plug_import_energy_wh_total", "counter", "Energy imported", "import_uwh", 1000000)
    fam("plug_export_energy_wh_total", "counter", "Energy exported", "export_uwh", 1000000)
    dev = st["device"]
    fams.append(("plug_uptime_seconds", "gauge", "Seconds since boot", [({}, dev["uptime_s"])]))
    fams.append(("plug_free_heap_bytes", "gauge", "Free heap", [({}, dev["free_heap"])]))
    fams.append(("plug_config_version", "gauge", "Config version in force",
                 [({}, dev["config_version"])]))
    if "payments" in st:
        p = st["payments"]
        fams.append(("plug_payments", "gauge", "Payments by state",
                     [({"state": s}, len(p[s])) for s in ("pending", "confirmed", "failed")]))
    return prometheus(fams)
