"""Provider and rates over real HTTP, on MicroPython: the reference tariff server on
loopback, the plug's Tariff and Billing running on the unix port from .mpy files as
the plug runs them. A hostile server must never change what was billed."""

import copy
import json
import os

import pytest

from tools import mp
from tools.paths import ROOT
from tools.tariff_server import TariffServer

DATA = os.path.join(os.path.dirname(__file__), "data")
PAYEE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
PAYEE2 = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
HEAP_SIG = "128k"  # eth + ecdsa_micro loaded from .mpy into the heap (frozen on the plug)



def schedule(**provider):
    with open(os.path.join(DATA, "tariff_schedule.json")) as f:
        s = json.load(f)
    s["provider"].update(provider)
    return s


@pytest.fixture
def server():
    with TariffServer(schedule()) as ts:
        yield ts


def cfg(url, **kw):
    p = {"url": url + "/provider.json", "approved_payees": [PAYEE, PAYEE2],
         "approved_tokens": [TOKEN], "rate_cap_per_kwh": 10**15, "fallback": "hold",
         "fallback_rate_per_kwh": 0, "refresh_s": 900}
    p.update(kw)
    return {"provider": p, "chain": {"chain_id": 31337}}


PRELUDE = """
import json, gc
from plug.store import Store
from plug.tariff import Tariff
from plug.billing import Billing
import requests
class Clock:
    t = 820540800 + 600   # 2026-01-01T00:10:00Z in plug time
    def time(self):
        return self.t
clock = Clock()
cfg = json.loads(%r)
store = Store(%r)
tf = Tariff(store, clock, cfg, log=None)
tf.timeout = 2
bil = Billing(store)
def control(**c):
    r = requests.post(%r + '/_control', data=json.dumps(c))
    r.close()
def snap():
    return json.dumps([tf.providers, tf.sched, tf.issued, bil.state])
"""


def run_plug(mpy_dirs, tmp_path, ts, code, heap=HEAP_SIG, **pcfg):
    os.makedirs(str(tmp_path), exist_ok=True)
    pre = PRELUDE % (json.dumps(cfg(ts.url, **pcfg)), str(tmp_path / "plug"), ts.url)
    out = mp.run(pre + code, heap=heap, path_dirs=mpy_dirs, timeout=120, cwd=ROOT)
    return json.loads(out.strip().splitlines()[-1])


def test_native_quote_prices_energy_at_the_rate_in_force(mpy_dirs, tmp_path, server):
    got = run_plug(mpy_dirs, tmp_path, server, """
tf.poll()
t0 = 820540800
# 1 kWh per 10 minutes across the first three rates (the third is negative)
chunks = [(t0 + i * 600, t0 + (i + 1) * 600, 10**9) for i in range(9)]
upto = bil.bill('M1/A', chunks, tf.segments)
print(json.dumps([tf.current()['name'], tf.sched, upto, bil.totals('M1/A'), bil.lines('M1/A'),
                  tf.reports]))
""")
    name, sched, upto, totals, lines, reports = got
    assert name == "Example Energy" and reports == []
    t0 = 820540800
    assert sched[:3] == [[t0, t0 + 1800, 125 * 10**12], [t0 + 1800, t0 + 3600, 200 * 10**12],
                         [t0 + 3600, t0 + 5400, -10 * 10**12]]
    assert upto == t0 + 5400
    # 3 kWh at 0.000125 ETH + 3 kWh at 0.0002 ETH + 3 kWh at -0.00001 ETH (a credit)
    assert totals == [9 * 10**9, 3 * 125 * 10**12 + 3 * 200 * 10**12 - 3 * 10 * 10**12]
    assert [ln[3] for ln in lines] == [125 * 10**12, 200 * 10**12, -10 * 10**12]
    assert [ln[4] for ln in lines] == [375 * 10**12, 600 * 10**12, -30 * 10**12]


@pytest.mark.parametrize("fmt, decimals", [("octopus", 6), ("awattar", 6), ("energy-charts", 6)])
def test_fiat_formats_over_http_convert_exactly(mpy_dirs, tmp_path, fmt, decimals):
    s = schedule(currency={"address": TOKEN, "decimals": decimals, "symbol": "EURC"}, format=fmt)
    s["signer_key"] = None
    s["intervals"] = [{"start": 1767225600, "end": 1767227400, "price": "0.2459"},
                      {"start": 1767227400, "end": 1767229200, "price": "-0.0301"},
                      {"start": 1767229200, "end": 1767231000, "price": "0.08574"}]
    with TariffServer(s) as ts:
        ts.control(page_size=1)  # Octopus: one result per page, `next` links followed
        got = run_plug(mpy_dirs, tmp_path, ts, """
tf.poll()
print(json.dumps([tf.sched, tf.reports, tf.current()['format']]))
""", heap="80k")  # the .mpy bytecode sits in this heap; frozen on the plug it does not
    sched, reports, f = got
    assert reports == [] and f == fmt
    assert [r for _, _, r in sched] == [245900, -30100, 85740]


def test_every_misbehaviour_is_refused_with_its_reason_and_changes_nothing(mpy_dirs, tmp_path,
                                                                         server):
    server.control(delay_s=3)
    cases = [("slow", "all", "no reply|broke off"), ("500", "all", "HTTP 500"),
             ("truncated", "all", "truncated reply"), ("malformed", "all", "malformed JSON"),
             ("oversize", "all", "over the 16384 byte limit"),
             ("swapped_payee", "provider", "payee 0x000000000000000000000000000000000000dEaD "
                                           "is not approved"),
             ("wrong_chain", "provider", "chain id 31338 is not the configured chain"),
             ("wrong_token", "provider", "token 0x000000000000000000000000000000000000dEaD is "
                                         "not approved"),
             ("bad_signature", "rates", "not by the provider's quote signer"),
             ("overlap", "rates", "overlaps"), ("unsorted", "rates", "overlaps|out of order"),
             ("wrong_types", "rates", "price must be a decimal string"),
             ("above_cap", "rates", "above the owner's cap"),
             ("replay_old", "rates", "older than the one in use")]
    got = run_plug(mpy_dirs, tmp_path, server, """
tf.poll()
t0 = 820540800
bil.bill('M1/A', [(t0, t0 + 600, 10**9)], tf.segments)
before = snap()
gen = store.generation('billing')
res = []
for m, target, _ in json.loads(%r):
    control(misbehave=[m], target=target)
    tf.next_desc = tf.next_rates = 0
    n = tf.report_count
    tf.poll()
    k = tf.report_count - n
    why = [r[1] for r in tf.reports[-k:]] if k else []
    res.append([m, why, snap() == before])
    control(misbehave=[])
    gc.collect()
# metering and billing carry on with the last good rates
upto = bil.bill('M1/A', [(t0 + 600, t0 + 1200, 10**9)], tf.segments)
print(json.dumps([res, upto, bil.totals('M1/A'), gen]))
""" % json.dumps(cases), heap="160k")  # 14 cases' results printed in one string
    res, upto, totals, gen = got
    import re

    for (m, target, reason), (m2, why, unchanged) in zip(cases, res):
        assert m == m2
        assert unchanged, "%s changed the tariff or billing state" % m
        assert why and all(re.search(reason, w) for w in why), (m, why)
        if target == "provider":
            assert all(w.startswith("provider refused") for w in why)
        if target == "rates":
            assert why[0].startswith("rates refused")
    assert upto == 820540800 + 1200 and totals == [2 * 10**9, 2 * 125 * 10**12]


def test_provider_change_takes_effect_at_the_next_interval_boundary(mpy_dirs, tmp_path, server):
    got = run_plug(mpy_dirs, tmp_path, server, """
tf.poll()
s = json.loads(%r)
control(schedule=s)
clock.t += 300   # 00:15, inside the 00:00..00:30 rate
tf.next_desc = 0
tf.poll()
t0 = 820540800
bil.bill('M1/A', [(t0 + 1200, t0 + 2400, 2 * 10**9)], tf.segments)
print(json.dumps([[p[0] for p in tf.providers], [p[1]['payee'] for p in tf.providers],
                  bil.lines('M1/A'), tf.reports]))
""" % json.dumps(schedule(payee=PAYEE2)))
    starts, payees, lines, reports = got
    t0 = 820540800
    assert starts == [0, t0 + 1800] and payees == [PAYEE, PAYEE2] and reports == []
    # 00:20..00:30 with the old provider, 00:30..00:40 with the new one
    assert [(ln[0], ln[1], ln[5]) for ln in lines] == [(t0 + 1200, t0 + 1800, 0),
                                                        (t0 + 1800, t0 + 2400, 1)]


def test_no_rate_holds_by_default_and_the_fallback_rate_applies_when_chosen(mpy_dirs, tmp_path,
                                                                          server):
    code = """
tf.poll()
t0 = 820540800
# energy before the first quoted interval: no rate
upto = bil.bill('M1/A', [(t0 - 600, t0, 10**9), (t0, t0 + 600, 10**9)], tf.segments)
print(json.dumps([upto, bil.totals('M1/A')]))
"""
    assert run_plug(mpy_dirs, tmp_path / "hold", server, code) == [None, [0, 0]]
    got = run_plug(mpy_dirs, tmp_path / "rate", server, code, fallback="rate",
                   fallback_rate_per_kwh=7 * 10**12)
    assert got == [820540800 + 600, [2 * 10**9, 7 * 10**12 + 125 * 10**12]]


def test_rates_survive_a_reboot_without_the_network(mpy_dirs, tmp_path, server):
    run_plug(mpy_dirs, tmp_path, server, "tf.poll()\nprint(1)")
    server.control(misbehave=["500"])
    got = run_plug(mpy_dirs, tmp_path, server, """
tf.poll()
print(json.dumps([len(tf.sched), tf.current()['payee'], tf.rate_at(820540800 + 100),
                  [r[1] for r in tf.reports]]))
""")
    n, payee, rate, reports = got
    assert n == 4 and payee == PAYEE and rate == [125 * 10**12, 0]
    assert len(reports) == 2 and all("HTTP 500" in r for r in reports)


def test_descriptor_checks_on_cpython():
    from plug.provider import TariffError, check_descriptor

    pc = cfg("http://x")["provider"]
    good = {"name": "E", "payee": PAYEE, "chain_id": 31337, "currency": "native",
            "rates": {"url": "http://x/r", "format": "native"}, "quote_signer": PAYEE}
    assert check_descriptor(good, pc, 31337)["token"] is None
    for patch, reason in [({"name": ""}, "name"), ({"payee": "0x12"}, "payee must be"),
                          ({"chain_id": "31337"}, "chain id"),
                          ({"currency": {"address": TOKEN, "decimals": 99, "symbol": "X"}},
                           "decimals"),
                          ({"rates": {"url": "ftp://x", "format": "native"}}, "rates.url"),
                          ({"rates": {"url": "http://x", "format": "csv"}}, "rates.format"),
                          ({"rates": {"url": "http://x", "format": "awattar"}}, "fiat"),
                          ({"quote_signer": None}, "quote_signer")]:
        d = copy.deepcopy(good)
        d.update(patch)
        with pytest.raises(TariffError, match=reason):
            check_descriptor(d, pc, 31337)


def test_trickled_body_and_header_flood_give_up_within_the_deadline(mpy_dirs, tmp_path, server):
    """A server that sends its body a byte a second, or 200 000 header lines, would hold
    the plug's event loop for minutes (watchdog reset; three in a row mean safe mode).
    The fetch gives up at its deadline with the reason, and nothing recorded changes."""
    cases = [("trickle", "provider", "not complete within 3 s"),
             ("trickle", "rates", "not complete within 3 s"),
             ("header_flood", "provider", "more than 40 header lines"),
             ("header_flood", "rates", "more than 40 header lines"),
             ("header_trickle", "provider", "not complete within 3 s"),
             ("header_trickle", "rates", "not complete within 3 s"),
             ("long_header", "provider", "header over 4096 bytes"),
             ("long_header", "rates", "header over 4096 bytes")]
    got = run_plug(mpy_dirs, tmp_path, server, """
import time
tf.poll()
t0 = 820540800
bil.bill('M1/A', [(t0, t0 + 600, 10**9)], tf.segments)
before = snap()
tf.deadline_s = 3   # socket timeout 2 s per read (the prelude), 3 s per request
get = tf.get
took = []
def timed(url):
    t = time.ticks_ms()
    try:
        return get(url)
    finally:
        took.append(time.ticks_diff(time.ticks_ms(), t))
tf.get = timed
res = []
for m, target, _ in json.loads(%r):
    control(misbehave=[m], target=target)
    tf.next_desc = tf.next_rates = 0
    n = tf.report_count
    took = []
    tf.poll()
    k = tf.report_count - n
    res.append([m, target, [r[1] for r in tf.reports[-k:]] if k else [], max(took),
                snap() == before])
    control(misbehave=[])
    gc.collect()
tf.next_desc = tf.next_rates = 0
n = tf.report_count
tf.poll()   # the server behaves again: the plug fetches normally
upto = bil.bill('M1/A', [(t0 + 600, t0 + 1200, 10**9)], tf.segments)
print(json.dumps([res, tf.report_count - n, upto, bil.totals('M1/A')]))
""" % json.dumps(cases), heap="192k")  # deadlines, not memory: the .mpy code fragments 128k
    res, new_reports, upto, totals = got
    for (m, target, reason), (m2, target2, why, ms, unchanged) in zip(cases, res):
        assert (m, target) == (m2, target2)
        assert unchanged, "%s (%s) changed the tariff or billing state" % (m, target)
        assert len(why) == 1 and reason in why[0], (m, target, why)
        assert why[0].startswith("provider refused" if target == "provider"
                                 else "rates refused"), why
        # deadline 3 s plus at most one socket read (2 s); without a deadline the
        # trickled ~400-byte reply takes minutes
        assert ms < 6000, (m, target, ms)
        if m in ("header_trickle", "long_header"):  # read in chunks, the deadline checked
            assert ms < (3700 if m == "header_trickle" else 1500), (m, target, ms)
    assert new_reports == 0
    assert upto == 820540800 + 1200 and totals == [2 * 10**9, 2 * 125 * 10**12]


def test_energy_held_for_want_of_a_rate_is_reported_once_per_gap(mpy_dirs, tmp_path, server):
    got = run_plug(mpy_dirs, tmp_path, server, """
tf.poll()
t0 = 820540800
held = []
def bill_all(chunks):
    for key in ('M1/A', 'M1/B'):
        bil.bill(key, chunks, tf.segments)
# before the first quoted rate: held, on both channels, on every pass
for _ in range(3):
    bill_all([(t0 - 600, t0, 10**9)])
held.append([r[1] for r in tf.reports])
# the quoted rates end at t0 + 7200: energy after that is a new gap
for _ in range(3):
    for key in ('M2/A', 'M2/B'):
        bil.bill(key, [(t0 + 6600, t0 + 7200, 10**9), (t0 + 7200, t0 + 7800, 10**9)],
                 tf.segments)
held.append([r[1] for r in tf.reports])
# channels stuck at different gaps do not report in turn on every pass
for _ in range(3):
    bil.bill('M3/A', [(t0 - 1200, t0 - 600, 10**9)], tf.segments)
    bil.bill('M2/A', [(t0 + 7200, t0 + 7800, 10**9)], tf.segments)
rate = tf.rate_at(t0 + 9000)
print(json.dumps([held, rate, tf.report_count, bil.totals('M2/A')]))
""")
    (first, second), rate, count, totals = got
    assert len(first) == 1, first
    assert first[0] == ("energy from %d (plug time) waits unpriced: no rate known "
                        "(policy hold)" % (820540800 - 600))
    assert len(second) == 2 and "energy from %d " % (820540800 + 7200) in second[1], second
    assert rate is None and count == 2  # asking for a rate is not a hold: no report
    assert totals == [10**9, 333333333333333]  # the priced chunk is billed, the rest waits
