"""A virtual plug behind a lying JSON-RPC node (the faults run's `lying` phase): nonces far
ahead and behind, receipts for transactions the node swallowed, another chain id and
malformed replies for about 40 s, then honesty. Every invoice made by then is paid on
chain exactly once within 5 minutes, nothing goes to an unapproved address, and the
payments store stays under its bound throughout. And the money audit it ends with, on a
chain that keeps mining while it runs."""

from types import SimpleNamespace

import pytest

from tools import faults_audit, faults_net

LIES = (("ahead", 14), ("fake_receipt", 8), ("behind", 8), ("wrong_chain", 4),
        ("malformed", 4))


@pytest.mark.slow
def test_a_lying_node_delays_payments_and_never_stops_or_doubles_them():
    fig, problems = faults_net.lying(day_s=60, lies=LIES, heal_s=300, log=lambda *a: None)
    assert problems == []
    assert fig["lies_told"] > 20
    assert fig["invoices_at_honesty"] >= 3
    assert fig["healed_s"] < 300
    assert fig["store_max_bytes"] <= faults_net.PAYMENTS_MAX_BYTES
    assert fig["paid_wei"] == fig["payee_delta_wei"]


PAYEE = "0x" + "5e" * 20
CODE = "M1/A"


def _pay(devnet, plug, seq, value):
    """A transfer from `plug` (an anvil account) to the payee with invoice seq's memo."""
    memo = faults_audit._plug_module("settle").encode_memo(
        seq, seq * 60, seq * 60 + 60, [(CODE, 1000000, value * 1000, value)])
    h = devnet.rpc("eth_sendTransaction", {"from": plug, "to": PAYEE, "value": hex(value),
                                           "data": "0x" + memo.hex()})
    devnet.wait_receipt(h)
    return h


def _snap(plug, paid):
    """A plug that paid invoices `paid` ({seq: (hash, value)}) and metered exactly that."""
    recs = [{"id": "%d-0" % seq, "st": "confirmed", "from": plug, "to": PAYEE, "amt": v,
             "tok": None, "n": seq - 1, "hash": h, "mined": h, "blk": 0, "err": None}
            for seq, (h, v) in paid.items()]
    led = {"payments": recs, "unsettled": [],
           "invoices": [{"id": r["id"], "items": [{"channel": CODE, "energy_mwh": 1000}]}
                        for r in recs]}
    st = {"wallets": [{"account": 0, "address": plug}],
          "channels": {CODE: {"import_uwh": len(recs) * 10**6, "unbilled_uwh": 0}}}
    return {"name": "p", "status": st, "ledger": led, "paid_ids": []}


def test_the_audit_reads_the_balance_where_it_scanned_and_sees_a_late_double_payment(devnet):
    """The plug keeps paying while the audit runs: its balance and its transfer scan are
    taken at the same block; a transfer mined after that block is checked a moment later:
    a new invoice is fine, an invoice paid again is a problem, however late it comes."""
    plug = devnet.rpc("eth_accounts")[1].lower()
    w = SimpleNamespace(devnet=devnet, payee=PAYEE, payee_start=devnet.balance(PAYEE),
                        payee_received=lambda: devnet.balance(PAYEE) - w.payee_start)
    h1 = _pay(devnet, plug, 1, 700)
    txs = faults_audit.chain_payments(devnet, PAYEE)  # the audit's scan ...
    snaps = [_snap(plug, {1: (h1, 700)})]
    _pay(devnet, plug, 2, 900)  # ... and the plug's next invoice, mined right after it
    probs, fig = faults_audit.check_money(w, snaps, txs, late_s=0)
    assert probs == []
    assert fig["paid_wei"] == fig["payee_delta_wei"] == 700 and fig["late_transfers"] == 1
    # a transaction signed for invoice 1 earlier, mined only after the audit's scan
    late = _pay(devnet, plug, 1, 700)
    probs, fig = faults_audit.check_money(w, snaps, txs, late_s=0)
    assert fig["late_transfers"] == 2
    assert probs == ["DOUBLE PAYMENT: late transfer %s (nonce 2, block %d) to the payee after "
                     "the audit (block %d) pays invoice 1, paid at the audit"
                     % (late, int(devnet.receipt(late)["blockNumber"], 16), txs.block)]
