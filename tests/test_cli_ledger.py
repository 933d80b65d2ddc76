"""`plugctl ledger URL` reads every page of a plug's /ledger (as firmware/plug/web.py pages
it: payments oldest first, `next_offset` until the last page, which adds the open invoices
and unsettled lines) and prints tables in people's units, CSV with ISO-8601 UTC times and
named units, or the raw JSON. Served here by a real HTTP server on loopback."""

import csv
import http.server
import io
import json
import threading
import urllib.parse

import pytest

from test_cli_errors import plugctl

PAYEE = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
PLUG = "0xd94ce29F33FaAb332A2237526521C1d1Aa676d03"
DAY = 849830400  # 2026-12-06T00:00:00Z as plug time (seconds since 2000)
H = [("0x" + c * 64) for c in "abc"]


def pay(n, st, amt, h, err=None):
    return {"id": "%d-0" % (n + 1), "st": st, "att": 1, "from": PLUG, "to": PAYEE, "amt": amt,
            "tok": None, "n": n, "hash": h, "mined": h if st == "confirmed" else None,
            "blk": n + 1 if st == "confirmed" else None, "err": err, "t": DAY + 21600 * n}


def invoice(n, items, state, h):
    return {"id": "%d-0" % (n + 1), "t_start": DAY + 21600 * n, "t_end": DAY + 21600 * (n + 1),
            "payee": PAYEE, "token": None, "amount": sum(i[3] for i in items),
            "items": [{"channel": c, "energy_mwh": e, "rate_per_kwh": r, "amount": a}
                      for c, e, r, a in items],
            "payment": state and {"state": state, "hash": h}}


PAYMENTS = [pay(0, "confirmed", 1121331400000000, H[0]),
            pay(1, "failed", 512000000000000, H[1], "receipt status 0"),
            pay(2, "sent", 2000000000000000, H[2])]
INVOICES = [
    invoice(0, [("M1/A", 5603657, 200000000000000, 1120731400000000),
                ("M2/2", 3000, 200000000000000, 600000000000)], "confirmed", H[0]),
    invoice(1, [("M1/A", 2560000, 200000000000000, 512000000000000)], "failed", H[1]),
    invoice(2, [("M1/A", 10000000, 200000000000000, 2000000000000000)], "sent", H[2]),
]
OPEN = invoice(3, [("M1/B", 271757, 100000000000000, 27175700000)], None, None)
UNSETTLED = [{"channel": "M1/A", "t_start": DAY + 86400 + 60 * i, "t_end": DAY + 86460 + 60 * i,
              "energy_uwh": 136500000, "rate_per_kwh": 100000000000000,
              "amount": 13650000000} for i in range(3)]
STATUS = {"device": {"board": "sim", "time": DAY + 90000, "config_version": 1},
          "provider": {"name": "Example Energy", "payee": PAYEE, "token": None,
                       "currency": "native", "decimals": 18, "rate_per_kwh": 10**14},
          "channels": {}, "wallets": [], "payments": {"accrued": {}}}


def page(offset):
    """/ledger?offset=N as the plug sends it, one payment per page."""
    last = offset >= len(PAYMENTS) - 1
    return {"total": len(PAYMENTS), "offset": offset, "next_offset": None if last else offset + 1,
            "order": "oldest first",
            "carried": {"n": 2, "confirmed": 2, "paid": {"native": 10**16}},
            "payments": PAYMENTS[offset:offset + 1], "invoices": INVOICES[offset:offset + 1]
            + ([OPEN] if last else []), "unsettled": UNSETTLED if last else []}


@pytest.fixture(scope="module")
def plug_url():
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            u = urllib.parse.urlsplit(self.path)
            seen.append(self.path)
            q = urllib.parse.parse_qs(u.query)
            if u.path == "/status":
                body = STATUS
            elif u.path == "/ledger":
                body = page(int(q.get("offset", ["0"])[0]))
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % srv.server_address[1], seen
    srv.shutdown()
    srv.server_close()


def run(plug_url, *args, tz="UTC"):
    url, seen = plug_url
    del seen[:]
    r = plugctl("ledger", url, *args, env={"TZ": tz})  # tz: plugctl's local time zone
    assert r.returncode == 0 and r.stderr == "", r
    return r.stdout, list(seen)


def test_table_in_local_time_and_the_currency_unit(plug_url):
    out, seen = run(plug_url)
    assert [p for p in seen if p.startswith("/ledger")] == [
        "/ledger", "/ledger?offset=1", "/ledger?offset=2"]
    assert ("invoice 1-0  2026-12-06 00:00 - 06:00  0.001121 ETH to %s  confirmed  %s"
            % (PAYEE, H[0])) in out
    assert "invoice 2-0  2026-12-06 06:00 - 12:00  0.000512 ETH to" in out
    assert "invoice 4-0  2026-12-06 18:00 - 2026-12-07 00:00  0.00000002718 ETH to %s  " \
           "not paid yet" % PAYEE in out
    row = [ln.split() for ln in out.splitlines() if ln.split()[:1] == ["M1/A"]][0]
    assert row == ["M1/A", "5603.657", "0.0002", "ETH/kWh", "0.001121", "ETH"]
    assert "Billed, not yet invoiced" in out and "2026-12-07 00:00 - 00:03" in out
    assert "409.500" in out  # 3 x 136.5 Wh
    pays = out[out.index("\nPayments"):]
    for p in PAYMENTS:
        assert p["id"] in pays and p["hash"] in pays
    assert "receipt status 0" in pays and "0.002 ETH" in pays
    assert "Older payments no longer kept on the plug: 2 (2 confirmed, paid 0.01 ETH)" in out
    assert "None" not in out and "{" not in out


def test_times_follow_the_local_time_zone_and_raw_gives_base_units(plug_url):
    out, _ = run(plug_url, "--raw", tz="XYZ-3")  # POSIX TZ: UTC+3, called XYZ
    assert "Invoices (times in XYZ (UTC+03:00))" in out
    assert "invoice 1-0  2026-12-06 03:00 - 09:00  1121331400000000 wei to" in out
    assert "200000000000000 wei/kWh" in out and " ETH" not in out


def test_csv_has_utc_times_named_units_and_every_page(plug_url):
    out, _ = run(plug_url, "--csv", tz="XYZ-3")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert out.splitlines()[0] == ("invoice,start_utc,end_utc,channel,energy_wh,rate_per_kwh,"
                                   "amount,currency,rate_per_kwh_base_units,amount_base_units,"
                                   "payee,state,tx_hash")
    assert [(r["invoice"], r["channel"]) for r in rows] == [
        ("1-0", "M1/A"), ("1-0", "M2/2"), ("2-0", "M1/A"), ("3-0", "M1/A"), ("4-0", "M1/B")]
    r = rows[0]
    assert (r["start_utc"], r["end_utc"]) == ("2026-12-06T00:00:00Z", "2026-12-06T06:00:00Z")
    assert (r["energy_wh"], r["rate_per_kwh"], r["amount"], r["currency"]) == (
        "5603.657", "0.0002", "0.0011207314", "ETH")
    assert (r["rate_per_kwh_base_units"], r["amount_base_units"]) == (
        "200000000000000", "1120731400000000")
    assert (r["payee"], r["state"], r["tx_hash"]) == (PAYEE, "confirmed", H[0])
    assert rows[1]["energy_wh"] == "3.000"
    assert (rows[4]["state"], rows[4]["tx_hash"]) == ("", "")


def test_json_is_the_whole_ledger(plug_url):
    out, _ = run(plug_url, "--json")
    led = json.loads(out)
    assert led["payments"] == PAYMENTS and led["invoices"] == INVOICES + [OPEN]
    assert led["unsettled"] == UNSETTLED and led["next_offset"] is None


@pytest.mark.parametrize("page", ["/status", "/ledger/", "/status/"])
def test_a_url_copied_with_the_page_path_is_the_plugs_address(plug_url, page):
    """`plugctl status http://HOST:PORT/status` asked /status/status (404) before."""
    url, seen = plug_url
    for cmd in ("status", "ledger"):
        del seen[:]
        r = plugctl(cmd, url + page, env={"TZ": "UTC"})
        assert r.returncode == 0 and r.stderr == "", r
        assert seen and all(p in ("/status", "/ledger") or p.startswith("/ledger?")
                            for p in seen), seen
