"""The reference tariff server itself, from the host: formats, signing, runtime control."""

import json
import os
import subprocess
import sys
import time
import urllib.request

from eth_account import Account
from eth_account.messages import encode_defunct

from plug.rates_native import canonical as plug_canonical
from tools.devnet import free_port
from tools.paths import ROOT
from tools.tariff_server import TariffServer, canonical

SCHEDULE = os.path.join(os.path.dirname(__file__), "data", "tariff_schedule.json")


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def schedule():
    with open(SCHEDULE) as f:
        return json.load(f)


def test_native_quote_is_signed_by_the_descriptor_signer_over_the_canonical_body():
    with TariffServer(schedule()) as ts:
        d = get(ts.url + "/provider.json")
        q = get(d["rates"]["url"])
    assert canonical(q) == plug_canonical(q)  # host and plug agree on the bytes
    assert canonical(q).startswith(b"plug-rates/1\nchain_id=31337\ncurrency=native\n")
    who = Account.recover_message(encode_defunct(primitive=canonical(q)),
                                  signature=bytes.fromhex(q["signature"][2:]))
    assert who == d["quote_signer"]


def test_octopus_pages_link_newest_first_and_control_switches_at_runtime():
    with TariffServer(schedule(), fmt="octopus") as ts:
        ts.control(page_size=3)
        p1 = get(ts.url + "/rates/octopus")
        p2 = get(p1["next"])
        assert p1["count"] == 4 and len(p1["results"]) == 3 and p2["next"] is None
        froms = [r["valid_from"] for r in p1["results"] + p2["results"]]
        assert froms == sorted(froms, reverse=True)
        req = urllib.request.Request(ts.url + "/_control", json.dumps(
            {"misbehave": ["500"]}).encode(), method="POST")
        assert json.loads(urllib.request.urlopen(req).read())["misbehave"] == ["500"]
        try:
            get(ts.url + "/provider.json")
            raise AssertionError("expected HTTP 500")
        except urllib.error.HTTPError as e:
            assert e.code == 500
        bad = urllib.request.Request(ts.url + "/_control", b'{"misbehave": ["explode"]}',
                                     method="POST")
        try:
            urllib.request.urlopen(bad)
            raise AssertionError("expected HTTP 400")
        except urllib.error.HTTPError as e:
            assert e.code == 400


def test_command_line_server_starts_and_serves():
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "tools.tariff_server", "--schedule", SCHEDULE,
                          "--port", str(port), "--format", "awattar"], cwd=ROOT,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert "tariff server on http://127.0.0.1:%d" % port in p.stdout.readline()
        deadline = time.monotonic() + 10
        while True:
            try:
                d = get("http://127.0.0.1:%d/provider.json" % port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert d["rates"]["format"] == "awattar"
        assert get(d["rates"]["url"])["data"][0]["unit"] == "Eur/MWh"
    finally:
        p.terminate()
        p.wait(5)


def raw_get(ts, path, want, timeout=5):
    """Bytes of a GET read off a plain socket until `want` has arrived (or the reply ends)."""
    import socket

    with socket.create_connection((ts.host, ts.port), timeout=timeout) as c:
        c.sendall(b"GET %s HTTP/1.0\r\nHost: %s:%d\r\n\r\n" % (path.encode(), ts.host.encode(),
                                                              ts.port))
        data = bytearray()
        while not want(data):
            b = c.recv(65536)
            if not b:
                break
            data += b
        return bytes(data)


def test_trickle_and_header_flood_serve_whole_replies_slowly_or_with_200k_header_lines():
    with TariffServer(schedule()) as ts:
        whole = json.dumps(get(ts.url + "/provider.json")).encode()
        ts.control(misbehave=["header_flood"])
        r = raw_get(ts, "/provider.json", lambda d: False, timeout=30)
        head, _, body = r.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200 OK\r\n") and head.count(b"\r\nX-Junk: y") == 200000
        assert json.loads(body)["payee"] == schedule()["provider"]["payee"]
        ts.control(misbehave=["trickle"], trickle_s=0.2)
        t = time.monotonic()
        r = raw_get(ts, "/provider.json", lambda d: d.count(b"\r\n\r\n") and
                    len(d.partition(b"\r\n\r\n")[2]) >= 5)
        took = time.monotonic() - t
        head, _, body = r.partition(b"\r\n\r\n")
        # the headers announce the whole body at once, then bytes come one by one
        assert b"Content-Length: %d" % len(whole) in head
        assert body == whole[:len(body)] and 0.6 < took < 5


def test_revise_renames_and_dates_the_rates_url_on_every_descriptor():
    with TariffServer(schedule()) as ts:
        ts.control(revise=True)
        d1, d2 = get(ts.url + "/provider.json"), get(ts.url + "/provider.json")
        assert (d1["name"], d2["name"]) == ("Example Energy #1", "Example Energy #2")
        assert d2["rates"]["url"].endswith("/rates/native?rev=2")
        assert get(d2["rates"]["url"])["format"] == "plug-rates/1"
