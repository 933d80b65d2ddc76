"""The plug as a whole, driven only through its interfaces: the serial REPL (pty,
mpremote), HTTP, and the chain.

A virtual plug is calibrated at its REPL against a reference meter (the simulator's
load model) on a resistive reference load, gets its real loads (a cycling fridge, an
inductive load with harmonics, a capacitive one, a PV inverter exporting), is
provisioned by its owner, and runs a simulated day with a rate change at noon. Then:
the provider's on-chain balance delta equals the sum of confirmed payments, which
equals what the ledger billed and settled to the base unit, every invoice was paid by
exactly one transaction, and each channel's metered energy matches the energy the
simulator delivered within class 0.5S (0.5 %).
"""

import calendar
import time

import pytest

from tools.scenario import ETH, World

CAL_LOAD = "M1/A=10A,M1/B=10A,M2/1=10A,M2/2=10A,M2/3=10A"
DAY_LOAD = "M1/A=8A,M1/B=fridge,M2/1=4A@0.9ind~h3,M2/2=pv:6A,M2/3=0.5A@0.6cap"
KEYS = ("M1/A", "M1/B", "M2/1", "M2/2", "M2/3")
# A day in 90 s. Much faster, and an event loop stalled by a loaded CI machine for half
# a second lets the simulated ATM90E32's 16-bit energy registers wrap between reads.
SPEED = 960


@pytest.fixture(scope="module")
def day():
    day_start = calendar.timegm(time.gmtime()[:3] + (0, 0, 0)) - 86400
    with World(day_start, rates=((0, "0.0001"), (12, "0.0002"))) as w:
        p = w.add_plug("e2e", speed=SPEED, load=CAL_LOAD, deploy=False)
        cal_out = []
        for key in KEYS:  # a person with a reference meter, at the REPL
            v, a, watts = p.repl_eval("board.reference(%r)" % key)
            cal_out.append(p.mpremote("cal.voltage(%r, %r)\ncal.current(%r, %r)\n"
                                      "cal.power(%r, %r)" % (key, v, key, a, key, watts)))
        cal_out.append(p.mpremote("cal.save()"))
        p.set_load(DAY_LOAD)
        p.reboot()
        p.provision()
        keys = repr(KEYS)
        snap = ("[(plug.ledger.totals(k), board.true_energy_uwh(k)) for k in %s]" % keys)
        first = p.repl_eval(snap)
        start = p.status()["device"]["time"]
        while p.status()["device"]["time"] < start + 86400:
            time.sleep(2)
        last = p.repl_eval(snap)
        # one consistent snapshot while the plug keeps running: no payment in flight and
        # nothing billed before and after the ledger and the chain are read (a busy host
        # can let a billing pass or a receipt land between the reads)
        q = ("[(plug.ledger.totals(k)[0], plug.ledger.billed(k)[0], plug.ledger.pending(k)[0],"
             " plug.billing.totals(k)[0]) for k in %s]" % keys)
        for _ in range(60):
            st = p.status()
            if st["payments"]["pending"]:
                time.sleep(0.5)
                continue
            tally = p.repl_eval(q)
            led = p.ledger()
            received = w.payee_received()
            sent_txs = w.devnet.nonce(p.address)
            if [t[1] for t in p.repl_eval(q)] == [t[1] for t in tally] and \
                    not p.status()["payments"]["pending"]:
                break
        yield dict(world=w, plug=p, cal_out=cal_out, first=first, last=last, status=st,
                   ledger=led, received=received, sent_txs=sent_txs, tally=dict(zip(KEYS, tally)))


def test_calibration_at_the_repl_was_accepted(day):
    out = "\n".join(day["cal_out"])
    assert "Traceback" not in out, out
    assert "saved" in out.lower(), out


def test_provider_received_exactly_the_confirmed_payments(day):
    pays = [x for x in day["ledger"]["payments"] if x["st"] == "confirmed"]
    assert len(pays) >= 3  # a day at a 6-hour settlement period
    assert day["received"] == sum(x["amt"] for x in pays)
    # every transaction the plug ever sent is one confirmed payment: nothing paid twice
    assert day["sent_txs"] == len(pays)
    assert len({x["id"] for x in pays}) == len(pays)


def test_paid_invoices_are_what_was_billed(day):
    led = day["ledger"]
    paid = {x["id"]: x["amt"] for x in led["payments"] if x["st"] == "confirmed"}
    for inv in led["invoices"]:
        assert inv["amount"] == sum(it["amount"] for it in inv["items"])
        if inv["id"] in paid:
            assert paid[inv["id"]] == inv["amount"], inv


def test_every_metered_watt_hour_is_billed_once(day):
    led = day["ledger"]
    for key, (imported, marked, pending, billed) in day["tally"].items():
        # the ledger: what it metered is either marked billed or still waiting, never both
        assert imported == marked + pending and billed == marked, key
        assert pending < imported // 10, key  # billing keeps up: little is left waiting
        # the invoices and the lines not yet settled carry exactly that energy (mWh floors)
        items = [it["energy_mwh"] for inv in led["invoices"] for it in inv["items"]
                 if it["channel"] == key]
        lines = [ln["energy_uwh"] for ln in led["unsettled"] if ln["channel"] == key]
        in_ledger = sum(items) * 1000 + sum(lines)
        assert billed - 1000 * len(items) <= in_ledger <= billed, key


def test_rate_change_at_noon_is_priced_at_both_rates(day):
    led = day["ledger"]
    rates = {line["rate_per_kwh"] for line in led["unsettled"]}
    for inv in led["invoices"]:
        rates.update(it["rate_per_kwh"] for it in inv["items"] if it["energy_mwh"])
    # 0.0001 ETH/kWh before noon, 0.0002 after; an invoice spanning noon carries the
    # energy-weighted mean, strictly between the two
    assert 10**14 in rates and 2 * 10**14 in rates or any(10**14 < r < 2 * 10**14 for r in rates)
    billed_wh = sum(it["energy_mwh"] for inv in led["invoices"] for it in inv["items"]) / 1000
    billed_eth = sum(inv["amount"] for inv in led["invoices"]) / ETH
    assert 0.0001 * 0.99 <= billed_eth / (billed_wh / 1000) <= 0.0002 * 1.01


def test_export_channel_exports_and_is_not_billed(day):
    i = KEYS.index("M2/2")
    (imp0, exp0), _ = day["first"][i]
    (imp1, exp1), _ = day["last"][i]
    assert exp1 - exp0 > 5 * 10**9 and imp1 == imp0  # a PV inverter: > 5 kWh out, none in
    # what it imported while on the reference load during calibration is billed, what it
    # exported all day is not
    billed_mwh = sum(it["energy_mwh"] for inv in day["ledger"]["invoices"]
                     for it in inv["items"] if it["channel"] == "M2/2")
    billed_mwh += sum(line["energy_uwh"] // 1000 for line in day["ledger"]["unsettled"]
                      if line["channel"] == "M2/2")
    assert billed_mwh <= imp1 // 1000 + 1


def test_metered_energy_matches_the_simulator_within_class_05(day):
    errors = {}
    for key, (a, b) in zip(KEYS, zip(day["first"], day["last"])):
        (imp0, exp0), (true_imp0, true_exp0) = a
        (imp1, exp1), (true_imp1, true_exp1) = b
        metered = (imp1 - imp0) + (exp1 - exp0)
        true = (true_imp1 - true_imp0) + (true_exp1 - true_exp0)
        assert true > 10**9, key  # every channel drew or fed over 1 kWh
        errors[key] = (metered - true) / true * 100
    print("energy error per channel, %:", {k: round(v, 3) for k, v in errors.items()})
    assert all(abs(e) <= 0.5 for e in errors.values()), errors
