"""Which descriptor changes make a new provider, and how many providers the plug keeps.
A week of 15-minute refreshes against the reference tariff server on the MicroPython
unix port (80 KB heap: .mpy files, whose bytecode a frozen plug keeps in flash); a month of
daily payee changes with the provider's replies served by a function, on CPython."""

import json
import os

import pytest

from plug.store import Store
from plug.provider import TariffError
from plug.tariff import Tariff
from tools import mp
from tools.paths import ROOT
from tools.tariff_server import TariffServer

DATA = os.path.join(os.path.dirname(__file__), "data")
PAYEE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
PAYEE2 = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
EURC = {"address": TOKEN, "decimals": 6, "symbol": "EURC"}
T0 = 820540800  # 2026-01-01T00:00:00Z in plug time
UNIX_2000 = 946684800



def schedule(**provider):
    with open(os.path.join(DATA, "tariff_schedule.json")) as f:
        s = json.load(f)
    s["provider"].update(currency=EURC, format="awattar", **provider)
    s["signer_key"] = None
    return s


def cfg(url, refresh_s, **kw):
    p = {"url": url, "approved_payees": [PAYEE, PAYEE2], "approved_tokens": [TOKEN],
         "rate_cap_per_kwh": 10**9, "fallback": "hold", "refresh_s": refresh_s}
    p.update(kw)
    return {"provider": p, "chain": {"chain_id": 31337}, "settlement": {"max_period_s": 86400}}


def test_renames_and_dated_rates_urls_update_the_provider_in_place(mpy_dirs, tmp_path):
    """A provider that renames itself and dates its rates URL on every reply stays one
    provider through a week of 15-minute refreshes (before: one provider per refresh,
    672 a week, a state file of hundreds of KB); a new payee is still a new provider."""
    with TariffServer(schedule()) as ts:
        ts.control(revise=True)
        c = cfg(ts.url + "/provider.json", 900, fallback="rate", fallback_rate_per_kwh=100000)
        code = """
import json, os, gc
from plug.store import Store
from plug.tariff import Tariff
from plug.billing import Billing
class Clock:
    t = %d
    def time(self):
        return self.t
clock = Clock()
cfg = json.loads(%r)
root = %r
store = Store(root)
tf = Tariff(store, clock, cfg, log=None)
tf.timeout = 2
bil = Billing(store)
def state_bytes():
    n = 0
    for s in ('0', '1'):
        try:
            n = max(n, os.stat(root + '/tariff.' + s)[6])
        except OSError:
            pass
    return n
pids = set()
for k in range(672):   # a week, every 15 minutes
    clock.t += 900
    tf.poll()
    bil.bill('M1/A', [(clock.t - 900, clock.t, 10**6)], tf.segments)
    pids.add(bil.lines('M1/A')[-1][5])
    gc.collect()   # as the app's money loop does after each step
week = [len(tf.providers), tf.base, tf.current()['name'], tf.current()['rates_url'],
        state_bytes(), sorted(pids), [r[1] for r in tf.reports]]
import requests   # the test's own client, not the plug's: loaded after the week
r = requests.post(%r + '/_control', data=json.dumps({'schedule': json.loads(%r)}))
r.close()
clock.t += 900
tf.poll()
again = Tariff(store, clock, cfg, log=None)   # a reboot keeps it
print(json.dumps([week, [p[0] for p in tf.providers], [p[1]['payee'] for p in tf.providers],
                  again.providers == tf.providers]))
""" % (T0, json.dumps(c), str(tmp_path / "plug"), ts.url, json.dumps(schedule(payee=PAYEE2)))
        # 80k: the .mpy bytecode sits in this heap; frozen on the plug it does not
        out = mp.run(code, heap="80k", path_dirs=mpy_dirs, timeout=300, cwd=ROOT)
    week, starts, payees, same = json.loads(out.strip().splitlines()[-1])
    n, base, name, url, size, pids, reports = week
    assert reports == []
    assert n == 1 and base == 0 and pids == [0]
    # the newest name and URL, updated in place
    assert name == "Example Energy #672" and url.endswith("/rates/awattar?rev=672")
    assert size < 2000, size
    assert starts == [0, T0 + 673 * 900] and payees == [PAYEE, PAYEE2] and same


class Provider:
    """Descriptor and aWATTar-format rates as a provider serves them on day `day`: the
    payee changes every day, 24 hourly prices from midnight UTC of the plug's day."""

    def __init__(self, clock):
        self.clock = clock

    def __call__(self, url):
        day = self.clock.t // 86400
        if url.endswith("/provider.json"):
            return json.dumps({"name": "Energy", "payee": PAYEE if day % 2 else PAYEE2,
                               "chain_id": 31337, "currency": EURC,
                               "rates": {"url": "http://rates.example/now",
                                         "format": "awattar"}}).encode()
        t0 = (day * 86400 + UNIX_2000) * 1000
        return json.dumps({"object": "list", "url": "/de/v1/marketdata", "data": [
            {"start_timestamp": t0 + h * 3600000, "end_timestamp": t0 + (h + 1) * 3600000,
             "marketprice": 100.5 + h, "unit": "Eur/MWh"} for h in range(24)]}).encode()


class Clock:
    t = T0

    def time(self):
        return self.t


def test_old_providers_are_dropped_without_renumbering_the_kept_ones(tmp_path):
    """A provider whose payee changes every day for a month: the plug keeps only the
    providers whose time still has kept rates (400 hourly rates, about 17 days) or that
    ended less than two settlement periods ago; the kept ones keep their numbers, and a
    dropped number is refused by name, never taken for another provider."""
    clock = Clock()
    c = cfg("http://provider.example/provider.json", 3600)
    store = Store(str(tmp_path / "plug"))
    tf = Tariff(store, clock, c, http=Provider(clock), log=None)
    seen = {}
    for _ in range(30 * 24):  # a month, every hour
        clock.t += 3600
        tf.poll()
        pid = tf.rate_at(clock.t)[1]
        seen[pid] = tf.provider(pid)["payee"]
    assert tf.reports == []
    assert len(seen) == 31 and len(tf.sched) == 400
    # every kept provider but the newest has kept rates in its time
    assert tf.providers[1][0] > tf.sched[0][0]
    assert tf.base >= 11 and len(tf.providers) <= 19
    for i, (_, d) in enumerate(tf.providers):  # numbers did not move
        assert seen.get(tf.base + i, d["payee"]) == d["payee"]
    assert tf.rate_at(clock.t)[1] == tf.base + len(tf.providers) - 1
    with pytest.raises(TariffError, match="provider %d is not kept" % (tf.base - 1)):
        tf.provider(tf.base - 1)
    again = Tariff(store, clock, c, http=Provider(clock), log=None)  # a reboot
    assert (again.base, again.providers) == (tf.base, tf.providers)
    size = max(os.path.getsize(str(tmp_path / "plug" / n))
               for n in os.listdir(str(tmp_path / "plug")) if n.startswith("tariff."))
    assert size < 24000, size
