"""A rate gap that no rate will fill must not stop billing for good. The reference
tariff server on loopback serves aWATTar or native rates with a hole; the plug's Tariff
and Billing run on the MicroPython unix port from .mpy files. Once the gap is closed
everything after it is billed, its energy stays on a zero-priced "unpriced" line,
energy totals are conserved and nothing is billed twice."""

import json
import os


from tools import mp
from tools.paths import ROOT
from tools.tariff_server import TariffServer

DATA = os.path.join(os.path.dirname(__file__), "data")
PAYEE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
U0 = 1767225600  # 2026-01-01T00:00:00Z
T0 = 820540800  # the same in plug time
KWH = 10**9  # uWh



def schedule(intervals, **provider):
    with open(os.path.join(DATA, "tariff_schedule.json")) as f:
        s = json.load(f)
    s["provider"].update(provider)
    s["intervals"] = intervals
    return s


PRELUDE = """
import json
from plug.store import Store
from plug.tariff import Tariff
from plug.billing import Billing
import requests
class Clock:
    t = %d
    def time(self):
        return self.t
clock = Clock()
tf = Tariff(Store(%r), clock, json.loads(%r), log=None)
tf.timeout = 2
bil = Billing(tf.store)
urls = []
get = tf.get
def logged_get(url):
    urls.append(url)
    return get(url)
tf.get = logged_get
def control(**c):
    r = requests.post(%r + '/_control', data=json.dumps(c))
    r.close()
def poll(t):
    clock.t = t
    tf.next_rates = 0
    tf.poll(t)
def bill(chunks):
    upto = bil.bill('M1/A', chunks, tf.segments)
    return [upto, list(bil.totals('M1/A')), [list(x) for x in bil.lines('M1/A')],
            [r[1] for r in tf.reports]]
"""


def run_plug(mpy_dirs, tmp_path, ts, code, fmt_cfg=None, period_s=86400):
    cfg = {"provider": {"url": ts.url + "/provider.json", "approved_payees": [PAYEE],
                        "approved_tokens": [TOKEN], "rate_cap_per_kwh": 10**15,
                        "fallback": "hold", "fallback_rate_per_kwh": 0, "refresh_s": 900},
           "chain": {"chain_id": 31337}, "settlement": {"max_period_s": period_s}}
    os.makedirs(str(tmp_path / "plug"), exist_ok=True)
    pre = PRELUDE % (T0 + 600, str(tmp_path / "plug"), json.dumps(cfg), ts.url)
    out = mp.run(pre + code, heap="128k", path_dirs=mpy_dirs, timeout=120, cwd=ROOT)
    return json.loads(out.strip().splitlines()[-1])


def test_a_gap_the_provider_skipped_is_billed_unpriced_and_billing_goes_on(mpy_dirs,
                                                                           tmp_path):
    # aWATTar skips 01:00-02:00: no rate will ever come for it
    hole = [{"start": U0, "end": U0 + 3600, "price": "0.2"},
            {"start": U0 + 7200, "end": U0 + 10800, "price": "0.3"},
            {"start": U0 + 10800, "end": U0 + 14400, "price": "0.25"}]
    filled = hole[:1] + [{"start": U0 + 3600, "end": U0 + 7200, "price": "0.5"}] + hole[1:]
    s = schedule(hole, currency={"address": TOKEN, "decimals": 6, "symbol": "EURC"},
                 format="awattar")
    s["signer_key"] = None
    with TariffServer(s) as ts:
        got = run_plug(mpy_dirs, tmp_path, ts, """
t0 = %d
chunks = [(t0 + i * 600, t0 + (i + 1) * 600, 10**9) for i in range(18)]   # 00:00-03:00
poll(t0 + 600)
before = bill(chunks)               # 00:10: the gap has not ended yet: energy waits
poll(t0 + 7800)                     # 02:10: asks from the gap's start, still no rate
after = bill(chunks)
# the provider publishes a rate for the gap later: what was billed is not billed again
control(schedule=json.loads(%r))
poll(t0 + 8400)
again = bill(chunks + [(t0 + 10800, t0 + 11400, 10**9)])
print(json.dumps([before, after, again, urls]))
""" % (T0, json.dumps(dict(s, intervals=filled))))
    before, after, again, urls = got
    upto, totals, lines, reports = before
    assert upto == T0 + 3600 and totals == [6 * KWH, 6 * 200000]
    assert any("waits unpriced" in r for r in reports), reports
    upto, totals, lines, reports = after
    assert upto == T0 + 10800  # everything after the gap is billed
    # 0.20 and 0.30 EUR/kWh in a 6-decimal stablecoin; the gap's 6 kWh at amount 0
    assert lines == [[T0, T0 + 3600, 6 * KWH, 200000, 1200000, 0],
                     [T0 + 3600, T0 + 7200, 6 * KWH, 0, 0, 0, "unpriced"],
                     [T0 + 7200, T0 + 10800, 6 * KWH, 300000, 1800000, 0]]
    assert totals == [18 * KWH, 3000000]
    assert sum(ln[2] for ln in lines) == totals[0]
    assert reports[-1] == ("energy from %d to %d (plug time) billed unpriced (amount 0): the "
                           "provider has no rate for it" % (T0 + 3600, T0 + 7200))
    # the rates were asked for from the time the energy waited (aWATTar: Unix ms)
    assert any(u.endswith("/rates/awattar?start=%d" % ((U0 + 3600) * 1000)) for u in urls)
    upto, totals, lines, reports = again
    assert upto == T0 + 11400
    assert totals == [19 * KWH, 3000000 + 250000]
    assert lines[1] == [T0 + 3600, T0 + 7200, 6 * KWH, 0, 0, 0, "unpriced"]


def test_a_gap_in_a_native_quote_waits_one_settlement_period_then_is_billed_unpriced(
        mpy_dirs, tmp_path):
    # the quote starts at 00:00: energy from 23:40 has no rate; the provider has one
    # settlement period (here an hour) to publish one
    with TariffServer(schedule(json.load(open(os.path.join(DATA, "tariff_schedule.json")))
                               ["intervals"])) as ts:
        got = run_plug(mpy_dirs, tmp_path, ts, """
t0 = %d
chunks = [(t0 - 1200 + i * 600, t0 - 600 + i * 600, 10**9) for i in range(4)]  # 23:40-00:20
poll(t0 + 600)
young = bill(chunks)
poll(t0 + 3599)
still = bill(chunks)
poll(t0 + 3600)
old = bill(chunks)
print(json.dumps([young, still, old]))
""" % T0, period_s=3600)
    young, still, old = got
    assert young[0] is None and still[0] is None and still[1] == [0, 0]
    upto, totals, lines, reports = old
    assert upto == T0 + 1200
    assert lines == [[T0 - 1200, T0, 2 * KWH, 0, 0, 0, "unpriced"],
                     [T0, T0 + 1200, 2 * KWH, 125 * 10**12, 250 * 10**12, 0]]
    assert totals == [4 * KWH, 250 * 10**12]
    assert "billed unpriced" in reports[-1]
