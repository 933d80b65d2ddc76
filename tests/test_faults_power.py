"""Power cuts: a virtual plug SIGKILLed 15 times across a simulated day (some while a
payment is pending, some during a config apply, some while it writes its flash), checked
from the outside (`make faults` runs the full 50 cuts), every restored and reported total
against the simulator's exact record of what the chips handed out. And the audit `make
faults` runs after each run, on a plug that has paid more invoices than it keeps in full."""

import struct
import threading
from types import SimpleNamespace

import pytest

from hostile_rpc import read_request, serve
from tools import faults, faults_audit, faults_power
from tools.scenario import PlugHandle


@pytest.mark.slow
def test_fifteen_power_cuts_lose_nothing_and_pay_each_invoice_once():
    fig, problems = faults_power.power_cuts(cuts=15, day_s=40, seed=7, log=lambda *a: None)
    assert problems == []
    assert fig["cuts"] == 15 and fig["boots"] >= 16
    # counted from the plug's flash at the moment of the cut, not from what was aimed at
    assert fig["cuts_after_pending"] >= 1
    assert fig["cuts_in_config_apply"] >= 1
    assert fig["cuts_mid_write"] >= 1
    assert fig["payments"] >= 3 and fig["paid_wei"] == fig["payee_delta_wei"]
    # no cut loses more than one checkpoint interval plus two passes of the meter (the
    # checkpointing one and the read in flight), however long a loaded host made them
    assert fig["max_checkpoint_age_s"] <= faults.CHECKPOINT_S + 2 * fig["max_read_gap_s"] + 1
    assert fig["max_read_gap_s"] >= fig["read_s"] - 1
    assert fig["totals_checked"] >= 15 * 2 * len(faults.KEYS)


def test_a_total_above_what_the_chips_handed_out_is_a_problem(tmp_path):
    """The exact check the cuts run: the virtual plug's energy log (what each channel's
    chip handed out, over every boot) against the totals the plug restored or reports."""
    ints = "%di" % faults_power.SIM_PASSES
    (tmp_path / "sim_energy_M1.bin").write_bytes(struct.pack(
        "<8d" + ints, 1000.4, 0, 990, 0, 5, 0, 5, 0, 100, 143, 186, *[0] * 13))
    (tmp_path / "sim_energy_M2.bin").write_bytes(struct.pack(
        "<12d" + ints, 7, 0, 7, 0, 0, 9, 0, 9, 0, 0, 0, 0, *[0] * 16))
    handed, passes = faults_power.read_sim_energy(str(tmp_path))
    assert handed["M1/A"] == (1000.4, 0.0, 990.0, 0.0) and handed["M2/2"][1] == 9.0
    assert passes == [100, 143, 186]
    ok = {"M1/A": (1000, 0), "M1/B": (5, 0), "M2/1": (7, None), "M2/2": (0, 9), "M2/3": (0, 0)}
    assert faults_power._invented(3, "restored", ok, handed) == []
    probs = faults_power._invented(3, "restored",
                                   dict(ok, **{"M1/A": (1002, 0), "M2/2": (0, 11)}), handed)
    assert probs == ["cut 3: restored M1/A import 1002 uWh, more than the 1000.4 uWh its "
                     "chip ever handed out",
                     "cut 3: restored M2/2 export 11 uWh, more than the 9.0 uWh its chip "
                     "ever handed out"]


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


def test_a_config_post_cut_mid_reply_is_an_outcome_not_a_dead_thread():
    """A power cut while the plug answers POST /config leaves the client a short body
    (http.client.IncompleteRead, not an OSError): the cut's POST thread records it."""

    def cut_mid_reply(sock):
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\nConnection: close\r\n\r\n{\"vers")
        sock.close()  # the plug's process is gone

    server = serve(cut_mid_reply)
    try:
        url = "http://127.0.0.1:%d" % server.server_address[1]
        p = SimpleNamespace(post_config=lambda env: PlugHandle.post_config(
            SimpleNamespace(url=url), env))
        out, died = {}, []
        th = threading.Thread(target=faults._post_into, args=(out, p, {"version": 2}))
        old_hook = threading.excepthook
        threading.excepthook = lambda a: died.append(a.exc_type.__name__)
        try:
            th.start()
            th.join(20)
        finally:
            threading.excepthook = old_hook
        assert not died, "the POST thread died with %s" % died
        code, why = out["r"]
        assert code is None and "IncompleteRead" in why, out
    finally:
        server.shutdown()
        server.server_close()
