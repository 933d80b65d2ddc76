"""GET /metrics to Prometheus' conventions, read live from a virtual plug with real
anvil after a payment: Prometheus' own parser (prometheus_client) reads it, `promtool
check metrics` finds nothing to say, energy counters are in joules (1 uWh = 0.0036 J),
and balance, accrued, paid, unpaid invoices, frequency, link state, late reads, HTTP
counters and plug_build_info agree with /status."""

import shutil
import subprocess
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tools.build_mpy import source_build
from tests.iface_util import wait_paid, yesterdays_world

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plug():
    with yesterdays_world() as w:
        p = w.add_plug("metrics", speed=1440, deploy=False)
        p.provision()
        wait_paid(p, 90)
        yield p


def scrape(plug):
    """(families by name, raw text) as Prometheus reads them."""
    with urllib.request.urlopen(plug.url + "/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}, text


def samples(fam, name=None):
    return [s for s in fam.samples if name is None or s.name == name]


def test_promtool_finds_nothing_to_say(plug):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool not installed (Debian: prometheus)")
    _, text = scrape(plug)
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


def test_energy_counters_are_joules_and_agree_with_status(plug):
    before = plug.status()["channels"]
    fams, text = scrape(plug)
    after = plug.status()["channels"]
    assert "_wh_total" not in text  # the Wh counters are gone (README: renamed)
    for direction in ("import", "export"):
        fam = fams["plug_energy_%s_joules" % direction]  # the parser drops _total
        assert fam.type == "counter"
        got = {"%s/%s" % (s.labels["device"], s.labels["channel"]): s.value
               for s in samples(fam, "plug_energy_%s_joules_total" % direction)}
        assert set(got) == set(before)
        for key, v in got.items():
            lo = before[key][direction + "_uwh"] * 36 // 10000
            hi = after[key][direction + "_uwh"] * 36 // 10000
            assert v == int(v) and lo <= v <= hi, (key, v, lo, hi)
    assert sum(s.value for s in samples(fams["plug_energy_import_joules"])) > 3600
    assert any(s.value > 0 for s in samples(fams["plug_energy_export_joules"]))  # the PV
    per = fams["plug_energy_period_joules"]
    assert {s.labels["period"] for s in per.samples} == {"today", "yesterday", "month",
                                                        "last_month"}
    assert {s.labels["direction"] for s in per.samples} == {"import", "export"}


def test_device_money_http_and_build_info(plug):
    urllib.request.urlopen(plug.url + "/status", timeout=10).read()
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(plug.url + "/no-such-page", timeout=10)
    st = plug.status()
    fams, _ = scrape(plug)
    (info,) = fams["plug_build_info"].samples  # a gauge of 1 (text format 0.0.4)
    assert info.labels == {"version": "0.5.0", "build": source_build()} and info.value == 1
    for name in ("plug_frequency_hertz", "plug_voltage_volts", "plug_power_watts"):
        assert len(fams[name].samples) == len(st["channels"])
    assert all(s.value == 50.0 for s in fams["plug_frequency_hertz"].samples)
    (up,) = fams["plug_network_up"].samples
    assert up.value == 1
    assert fams["plug_late_reads"].type == "counter"
    (bal,) = fams["plug_wallet_balance"].samples
    w = st["wallets"][0]
    assert bal.labels == {"account": "0", "address": w["address"], "asset": "native"}
    assert 0 < bal.value <= 10 * 10**18  # float64 here; exact in /status balance_str
    (paid,) = samples(fams["plug_paid"], "plug_paid_total")
    assert paid.value >= float(st["payments"]["paid_total"]) > 0
    assert fams["plug_invoices_unpaid"].samples[0].value >= 0
    assert {s.labels["state"] for s in fams["plug_payments"].samples} == {
        "pending", "confirmed", "failed"}
    assert "plug_accrued" in fams and "plug_alerts" in fams and "plug_rate_per_kwh" in fams
    codes = {s.labels["code"]: s.value for s in
             samples(fams["plug_http_responses"], "plug_http_responses_total")}
    assert codes["2xx"] >= 2 and codes["4xx"] >= 1, codes  # the 404 above
    (reqs,) = samples(fams["plug_http_requests"], "plug_http_requests_total")
    assert reqs.value >= codes["2xx"]
    assert {s.labels["reason"] for s in fams["plug_http_dropped"].samples} == {
        "busy", "timeout", "evicted"}
