"""`plugctl plot` (tools/plot.py) on a plug with a PV channel exporting and many payments
close together: the export shows below 0 (live power, export to date) and says why it is
not drawn over time; payment labels never overprint each other."""

import itertools

from tools import plot

DAY = 849830400  # 2026-12-06T00:00:00Z as plug time
PAYEE = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def channel(w, imp_wh, exp_wh):
    return {"name": "", "V": 230.0, "A": abs(w) / 230, "W": w, "PF": 1.0,
            "import_uwh": imp_wh * 10**6, "export_uwh": exp_wh * 10**6, "fault": False}


def day():
    status = {"device": {"board": "sim", "time": DAY + 86400},
              "provider": {"name": "Example Energy", "payee": PAYEE, "token": None,
                           "currency": "native", "decimals": 18, "rate_per_kwh": 10**14},
              "channels": {"M1/A": channel(1850.0, 40000, 0), "M2/2": channel(-1437.0, 0, 14200)},
              "wallets": [{"account": 0, "address": "0x" + "ab" * 20}]}
    invoices, payments = [], []
    for n in range(144):  # an invoice every 10 min, paid at once: payments 10 min apart
        t0 = DAY + 600 * n
        invoices.append({"id": "%d-0" % n, "t_start": t0, "t_end": t0 + 600, "token": None,
                         "items": [{"channel": "M1/A", "energy_mwh": 308333, "amount":
                                    30833300000000 + n},
                                   {"channel": "M2/2", "energy_mwh": 0, "amount": 0}]})
        payments.append({"id": "%d-0" % n, "st": "confirmed", "amt": 30833300000000 + n,
                         "tok": None, "t": t0 + 600 + 5})
    return status, {"invoices": invoices, "payments": payments, "unsettled": []}


def test_export_shows_below_zero_and_the_legend_says_why():
    status, led = day()
    fig = plot.figure(status, led)
    fig.canvas.draw()
    power, energy, cost = fig.axes
    assert min(y for ln in energy.get_lines() for y in ln.get_ydata()) <= -14.2
    legend = [t.get_text() for t in energy.get_legend().get_texts()]
    pv = [x for x in legend if x.startswith("M2/2")]
    assert pv and "export 14.200 kWh" in pv[0] and "not billed" in pv[0], legend
    assert "M2/2 -1437 W" in [t.get_text() for t in power.texts]
    assert "M2/2 export 14.200 kWh" in [t.get_text() for t in energy.texts]


def test_payment_labels_do_not_overprint():
    status, led = day()
    fig = plot.figure(status, led)
    fig.canvas.draw()
    cost = fig.axes[2]
    r = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(r) for t in cost.texts]
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    counts = [int(t.get_text().split()[0]) if "payments" in t.get_text() else 1
              for t in cost.texts]
    assert sum(counts) == len(led["payments"]) and len(counts) > 5, counts
    assert all(t.get_text().endswith(" ETH") for t in cost.texts)
