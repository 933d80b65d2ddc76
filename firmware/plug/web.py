# The plug's HTTP endpoints: GET / (the owner's page, page.py), /status, /metrics, /ledger,
# /switch and POST /config, /switch. Reads are open on the LAN and show nothing that lets
# anyone spend; POST /config takes an envelope signed by the owner (config.py), POST
# /switch the owner's local control token (control.py); POST /update a release bundle
# signed by the owner, streamed to the flash as it arrives (update.py).
from plug.clock import iso_utc
from plug.http_response import json_chunks
from plug.server import CSV, JSON, HTTPError, Response, Server, csv_lines
from plug.supervise import unload


def build(plug):
    cfg = plug.cfgm.config["server"]
    srv = Server(max_request_bytes=cfg["max_request_bytes"],
                 max_connections=cfg["max_connections"])
    srv.route("GET", "/status", lambda req: _status(plug))
    srv.route("GET", "/metrics", lambda req: metrics(plug, srv))
    srv.route("GET", "/ledger", lambda req: ledger(plug, req))
    srv.route("POST", "/config", lambda req: post_config(plug, req))
    srv.route("GET", "/switch", lambda req: _control().get_switch(plug, req))
    srv.route("POST", "/switch", lambda req: _control().post_switch(plug, req))
    srv.route("POST", "/update", lambda req: _update().post(plug, req), stream=True)
    srv.route("GET", "/", _page)
    return srv


def _status(plug):
    from plug.app_status import status_chunks  # streamed section by section

    unload("plug.app_status")  # as /metrics does (below)
    return Response(status_chunks(plug), 200, JSON)


def _page(req):
    from plug.page import page  # the owner's page (plug/page.py), loaded when asked for

    return page(req)


def _update():
    from plug import update  # a signed release bundle, streamed (loaded when one comes)

    return update


def _control():
    from plug import control  # the outputs' HTTP side (token check), loaded when used

    return control


def post_config(plug, req):
    from plug.config import ConfigError

    try:
        return {"version": plug.apply_config(req.body)}
    except ConfigError as e:
        raise HTTPError(400 if "rolled back" not in str(e) else 409, str(e))


def _invoice_of(p):
    """The invoice a payment record pays, from its memo, or None (a cancellation)."""
    from plug.settle import decode_memo
    import binascii

    try:
        memo = p.get("memo") or ""
        _seq, t0, t1, items = decode_memo(binascii.unhexlify(memo[2:] if memo[:2] == "0x"
                                                             else memo))
    except ValueError:
        return None
    return _invoice(p["id"], t0, t1, p["to"], p.get("tok"), items, p)


def _invoice(iid, t0, t1, payee, token, items, pay):
    return {"id": iid, "t_start": t0, "t_end": t1, "payee": payee, "token": token,
            "amount": sum(x[3] for x in items),
            "items": [{"channel": c, "energy_mwh": e, "rate_per_kwh": r, "amount": a}
                      for c, e, r, a in items],
            "payment": pay and {"state": pay["st"],
                                "hash": pay.get("mined") or pay.get("hash")}}


_PAY_COLS = ("id", "st", "att", "from", "to", "amt", "tok", "n", "hash", "mined", "blk", "err",
             "t")
_ROW_COLS = ("invoice", "start_utc", "end_utc", "channel", "energy_wh",
             "rate_per_kwh_base_units", "amount_base_units", "payee", "token", "state",
             "tx_hash")
_LIMIT = 50  # payments per /ledger page unless ?limit= says otherwise
_MAX_LIMIT = 200


def _pay_view(p):
    v = {c: p.get(c) for c in _PAY_COLS}
    if v["hash"] is None:
        v["hash"] = v["mined"]  # the history keeps a mined payment's hash once
    return v


def _arg(req, name, default, lo, hi):
    v = req.query.get(name)
    if v is None:
        return default
    if not v or len(v) > 9 or not v.isdigit() or not lo <= int(v) <= hi:
        raise HTTPError(400, "%s must be an integer %d..%d, got %r" % (name, lo, hi, v[:20]))
    return int(v)


class Page:
    """One page of the payment records, oldest first: the history, then the live records
    it does not hold yet. Read lazily (the history is streamed from the flash)."""

    def __init__(self, plug, offset, limit):
        pays = plug.payments
        self.plug = plug
        self.hist = pays.history
        self.live = sorted([r for r in pays.records() if not self.hist.has(r)],
                           key=lambda r: r.get("t", 0))
        self.held = self.hist.count()
        self.total = self.held + len(self.live)
        self.offset = offset
        end = self.total if limit is None else min(self.total, offset + limit)
        self.end = max(end, offset)
        self.last = self.end >= self.total  # open invoices and unsettled lines come last

    def records(self):
        if self.offset < self.held:
            for r in self.hist.read(self.offset, min(self.end, self.held) - self.offset):
                yield r
        for r in self.live[max(0, self.offset - self.held):max(0, self.end - self.held)]:
            yield r

    def invoices(self):
        for r in self.records():
            inv = _invoice_of(r)
            if inv is not None:
                yield inv
        if self.last:
            live = [r["id"] for r in self.live]
            for inv in self.plug.settlement.open_invoices():
                if inv["id"] not in live:  # paid a moment ago: listed with its payment
                    yield _invoice(inv["id"], inv["t0"], inv["t1"], inv["payee"],
                                   inv["token"], [(c, e // 1000, r, a)
                                                  for c, e, r, a in inv["items"]], None)

    def unsettled(self):
        if self.last:
            for key, ls in self.plug.billing.lines().items():
                for ln in ls:
                    yield {"channel": key, "t_start": ln[0], "t_end": ln[1],
                           "energy_uwh": ln[2], "rate_per_kwh": ln[3], "amount": ln[4]}


def _array(name, items):
    yield ', "%s": [' % name
    sep = ""
    for x in items:  # an invoice or payment in pieces too: ~700 B whole
        yield sep
        yield from json_chunks(x)
        sep = ", "
    yield "]"


def ledger_chunks(page):
    """The JSON of one /ledger page as a generator of small strings."""
    import json

    yield '{"total": %d, "offset": %d, "next_offset": %s, "order": "oldest first", ' \
        '"carried": %s' % (page.total, page.offset, "null" if page.last else str(page.end),
                           json.dumps(page.hist.carried()))
    for chunk in _array("payments", (_pay_view(p) for p in page.records())):
        yield chunk
    for chunk in _array("invoices", page.invoices()):
        yield chunk
    for chunk in _array("unsettled", page.unsettled()):
        yield chunk
    yield "}"


def ledger(plug, req):
    """GET /ledger[?offset=N&limit=N][&format=csv]: payments oldest first (the history on
    the flash, then the live ones), the invoices they pay; the last page adds the open
    invoices and the billed lines not yet invoiced. CSV: every invoice item, all pages
    unless offset/limit say otherwise. Streamed in small chunks."""
    if not plug.payments:
        raise HTTPError(503, "safe mode: no billing")
    fmt = req.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise HTTPError(400, "format must be json or csv")
    csv = fmt == "csv"
    offset = _arg(req, "offset", 0, 0, 10**9)
    limit = _arg(req, "limit", None if csv else _LIMIT, 1, _MAX_LIMIT)
    page = Page(plug, offset, limit)
    if csv:
        def rows():
            for inv in page.invoices():
                p = inv["payment"] or {}
                for it in inv["items"]:
                    e = it["energy_mwh"]
                    yield (inv["id"], iso_utc(inv["t_start"]), iso_utc(inv["t_end"]),
                           it["channel"], "%d.%03d" % (e // 1000, e % 1000),  # e >= 0
                           it["rate_per_kwh"], it["amount"], inv["payee"], inv["token"],
                           p.get("state"), p.get("hash"))
        return Response(csv_lines(_ROW_COLS, rows()), content_type=CSV)
    return Response(ledger_chunks(page), content_type=JSON)


def metrics(plug, srv):
    """GET /metrics: Prometheus text, streamed line by line (plug/metrics.py). Its modules
    leave sys.modules at once: the generator holds what it needs, and the heap is freed
    once it has run (they are not kept between scrapes)."""
    from plug.metrics import lines
    from plug.prometheus import CONTENT_TYPE

    unload("plug.metrics", "plug.prometheus")
    return Response(lines(plug, srv), content_type=CONTENT_TYPE)
