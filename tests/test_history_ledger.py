"""100 payments in a row on a virtual plug against anvil: /ledger, paged, lists every one
of them and their sum equals what the chain shows paid; every state file stays under its
stated bound. Driven only through the plug's interfaces (HTTP, the chain).

Fast: five channels, each paid from its own wallet account, settled every 10 sim minutes
at 1440x, so each money pass (about a second) pays up to five invoices."""

import calendar
import json
import os
import re
import time
import urllib.error

import pytest
from ota_util import wait_for

from tools.faults_audit import _plug_module, chain_payments, snapshot
from tools.scenario import ETH, World, plug_config

LOAD = "M1/A=8A,M1/B=6A,M2/1=4A,M2/2=5A,M2/3=3A"
KEYS = ("M1/A", "M1/B", "M2/1", "M2/2", "M2/3")
N = 100


def page_all(plug, limit):
    """Every payment and invoice /ledger lists, page by page (oldest first)."""
    pays, invs, off = [], [], 0
    while True:
        led = json.loads(plug.get("/ledger?offset=%d&limit=%d" % (off, limit)))
        pays += led["payments"]
        invs += led["invoices"]
        if "total" not in led:  # a /ledger that does not page lists what it has at once
            return pays, invs, led
        assert len(led["payments"]) <= limit
        off += len(led["payments"])
        if off >= led["total"] or not led["payments"]:
            return pays, invs, led


def _http_code(plug, path):
    try:
        plug.get(path)
        return 200
    except urllib.error.HTTPError as e:
        return e.code


def _stop_settling(p, w, over):
    """A signed config v2 that settles nothing more (amounts never due, 90-day periods):
    the chain holds still while the ledger is read."""
    cfg = plug_config(w.devnet.url, w.tariff.url, w.payee, w.chain_id, **over)
    cfg["settlement"] = {"min_amount": 10**24, "max_period_s": 90 * 86400,
                         "max_fee_share_pct": 100}
    cfg["server"] = {"port": p.http_port}
    code, body = p.post_config(p.sign(cfg, 2))
    assert code == 200, body


@pytest.mark.slow
def test_a_hundred_payments_are_all_listed_and_add_up_to_the_chain():
    day = calendar.timegm(time.gmtime()[:3] + (0, 0, 0)) - 86400
    over = {"wallet": {"mode": "per_channel"},
            "channels": {k: {"account": i} for i, k in enumerate(KEYS)},
            "settlement": {"min_amount": 1, "max_period_s": 600, "max_fee_share_pct": 100}}
    with World(day) as w:
        p = w.add_plug("hist", speed=1440, load=LOAD, deploy=False)
        p.provision(config_over=over)
        for wl in p.status()["wallets"]:
            if wl["account"]:
                w.devnet.fund(wl["address"], 10 * ETH)

        def mined():
            return [t for t in chain_payments(w.devnet, w.payee) if t["ok"]]

        t0 = time.monotonic()
        wait_for(lambda: len(mined()) >= N, 300, "%d payments on chain" % N)
        took = time.monotonic() - t0
        _stop_settling(p, w, over)
        wait_for(lambda: not p.status()["payments"]["pending"], 120, "no payment pending")
        txs = mined()
        pays, invs, last = page_all(p, 17)
        confirmed = [r for r in pays if r["st"] == "confirmed"]
        print("history: %d payments on chain in %.0f s; /ledger lists %d (%d confirmed), "
              "carried %s" % (len(txs), took, len(pays), len(confirmed), last.get("carried")))
        assert len(txs) >= N
        # every on-chain payment is listed once, with the amount the chain shows
        got = {(r["mined"] or r["hash"]).lower(): r["amt"] for r in confirmed}
        assert len(got) == len(confirmed), "a payment is listed twice"
        assert got == {t["hash"].lower(): t["value"] for t in txs}
        assert sum(got.values()) == w.payee_received()
        # one invoice per payment, and what the invoices bill is what was paid
        ids = [i["id"] for i in invs]
        assert len(ids) == len(set(ids))
        assert sum(i["amount"] for i in invs if i["payment"]
                   and i["payment"]["state"] == "confirmed") == w.payee_received()
        # newest page last: a listing from the end matches
        tail = json.loads(p.get("/ledger?offset=%d&limit=5" % (len(pays) - 5)))
        assert [r["id"] for r in tail["payments"]] == [r["id"] for r in pays[-5:]]
        # the CSV streams the whole history: a row per invoice item
        csv = p.get("/ledger?format=csv").splitlines()
        assert len(csv) == 1 + sum(len(i["items"]) for i in invs)
        # in units a person reads: ISO-8601 UTC times, Wh with 3 decimals, named base units
        assert csv[0] == ("invoice,start_utc,end_utc,channel,energy_wh,rate_per_kwh_base_units,"
                          "amount_base_units,payee,token,state,tx_hash")
        first = csv[1].split(",")
        assert re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ", first[1]), first
        item = invs[0]["items"][0]
        assert first[4] == "%d.%03d" % divmod(item["energy_mwh"], 1000), (first, item)
        # `make faults` reads the same ledger at the REPL in one go (tools/faults_audit.py)
        snap = snapshot(p)
        assert [r["id"] for r in snap["ledger"]["payments"]] == [r["id"] for r in pays]
        # /ledger refuses bad paging
        for q in ("offset=-1", "limit=0", "limit=x", "offset=1e3", "limit=100000"):
            assert _http_code(p, "/ledger?" + q) == 400, q
        store = _plug_module("store")
        flash = os.path.join(p.state, "state")
        sizes = {}
        for dirpath, _dirs, files in os.walk(flash):
            for f in files:
                sizes[os.path.relpath(os.path.join(dirpath, f), flash)] = \
                    os.path.getsize(os.path.join(dirpath, f))
        print("history: state files %s" % sorted(sizes.items()))
        segs = [n for n in sizes if n.startswith("history" + os.sep)]
        assert len(segs) >= 2  # 100 payments fill more than one history segment
        with open(os.path.join(os.path.dirname(store.__file__), "history.py")) as f:
            max_segs = int(f.read().split("_SEGS = ")[1].split()[0])
        assert len(segs) <= max_segs
        for name, size in sizes.items():
            lim = store.HISTORY_SEGMENT if name in segs else store.bound(name.split(".")[0])
            assert size <= lim, (name, size, lim)
