"""Power cuts: a virtual plug SIGKILLed 15 times across a simulated day (some while a
payment is pending, some during a config apply, some while it writes its flash), checked
from the outside (`make faults` runs the full 50 cuts). And the audit `make faults` runs
after each run, on a plug that has paid more invoices than it keeps in full."""

from types import SimpleNamespace

import pytest

from tools import faults, faults_audit


@pytest.mark.slow
def test_fifteen_power_cuts_lose_nothing_and_pay_each_invoice_once():
    fig, problems = faults.power_cuts(cuts=15, day_s=40, seed=7, log=lambda *a: None)
    assert problems == []
    assert fig["cuts"] == 15 and fig["boots"] >= 16
    # counted from the plug's flash at the moment of the cut, not from what was aimed at
    assert fig["cuts_after_pending"] >= 1
    assert fig["cuts_in_config_apply"] >= 1
    assert fig["cuts_mid_write"] >= 1
    assert fig["payments"] >= 3 and fig["paid_wei"] == fig["payee_delta_wei"]
    # no cut loses more than one checkpoint interval (plus the read in flight, two reads
    # a loaded host stalled, and a write cut short)
    assert fig["max_checkpoint_age_s"] <= faults.CHECKPOINT_S + 4 * fig["read_s"]


PLUG = "0x" + "ab" * 20
MWH = 1000  # energy of each invoice, mWh


def _world(n_paid=40, keep=32, metered_uwh=None, stuck=False):
    """A plug that paid `n_paid` invoices of 1 Wh, keeps the last `keep` records in full and
    the older ids only, with 0.5 Wh not billed yet; the chain holds every payment."""
    txs, recs = [], []
    for seq in range(1, n_paid + 1):
        h = "0x%064x" % seq
        txs.append({"from": PLUG, "value": 100, "nonce": seq - 1, "hash": h, "block": seq,
                    "ok": True, "memo": (seq, seq * 60, seq * 60 + 60,
                                         [("M1/A", MWH, 10**5, 100)])})
        recs.append({"id": "%d-0" % seq, "st": "confirmed", "from": PLUG, "to": "0xp",
                     "amt": 100, "tok": None, "n": seq - 1, "hash": h, "mined": h, "blk": seq,
                     "err": None})
    kept = recs[-keep:]
    if stuck:
        kept[-1] = dict(kept[-1], st="sent", mined=None)
        txs.pop()
    led = {"payments": kept, "unsettled": [],
           "invoices": [{"id": r["id"], "items": [{"channel": "M1/A", "energy_mwh": MWH}]}
                        for r in kept]}
    unbilled = 500000
    st = {"wallets": [{"account": 0, "address": PLUG}],
          "channels": {"M1/A": {"import_uwh": metered_uwh if metered_uwh is not None else
                                n_paid * MWH * 1000 + unbilled, "unbilled_uwh": unbilled}}}
    snap = {"name": "p", "status": st, "ledger": led,
            "paid_ids": [r["id"] for r in recs[:-keep]]}
    paid = sum(t["value"] for t in txs)
    return SimpleNamespace(payee_received=lambda: paid), [snap], txs


def test_audit_checks_energy_and_payments_beyond_the_records_kept_in_full():
    assert faults_audit.check_money(*_world())[0] == []
    # energy billed that the plug no longer lists is still held against what it metered
    probs = faults_audit.check_money(*_world(metered_uwh=38 * MWH * 1000))[0]
    assert len(probs) == 1 and "M1/A metered 38000000 uWh but billed + unbilled is " \
        "40500000 uWh" in probs[0]
    # a payment on chain the plug knows neither in full nor by id
    w, snaps, txs = _world()
    snaps[0]["paid_ids"].remove("3-0")
    probs = faults_audit.check_money(w, snaps, txs)[0]
    assert probs == ["p: on-chain payment 0x%064x (invoice 3-0) unknown to the plug" % 3]


def test_audit_reports_a_payment_still_pending_after_settling():
    probs = faults_audit.check_money(*_world(stuck=True))[0]
    assert any("payment 40-0 still sent after settling" in p for p in probs), probs
