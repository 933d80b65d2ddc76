"""The state files stay bounded: settlement keeps at most 8 invoices open and folds a
channel's billed lines beyond 12 (exactly: energy and amounts unchanged); payments
refuse a 9th unfinished payment with a clear error and sign nothing."""

import pytest
from paytest import PAYEE, Plug, config
from test_billing_settle import flat, plug

from plug.settle import _MAX_LINES, _MAX_OPEN_INV


def test_at_most_eight_invoices_wait_and_the_rest_waits_as_billed_lines(tmp_path):
    bil, st = plug(str(tmp_path), min_amount=1)
    refused = []

    def pay(*a):
        refused.append(a[0])
        raise RuntimeError("node away")

    for i in range(12):
        bil.bill("M1/A", [(i * 60, i * 60 + 60, 10**9)], flat(10**6))
        st.settle(i * 60 + 60, pay)
    assert len(st.open_invoices()) == _MAX_OPEN_INV == 8
    invoiced = sum(inv["amount"] for inv in st.open_invoices())
    waiting = sum(ln[4] for ln in bil.lines("M1/A"))
    assert waiting > 0 and invoiced + waiting == 12 * 10**6 == bil.totals("M1/A")[1]
    # once they are paid, the waiting lines become invoices
    st.settle(12 * 60, lambda *a: None)
    st.settle(12 * 60, lambda *a: None)
    assert st.open_invoices() == [] and bil.lines("M1/A") == []


def test_a_channel_with_many_rate_changes_folds_its_lines_exactly(tmp_path):
    bil, st = plug(str(tmp_path), min_amount=10**30)  # never due: lines pile up
    for i in range(40):
        bil.bill("M1/A", [(i * 60, i * 60 + 60, 10**9 + i)], flat(10**6 + i * 1000))
        st.prepare(i * 60 + 60)
        assert len(bil.lines("M1/A")) <= _MAX_LINES
    lines = bil.lines("M1/A")
    assert sum(ln[2] for ln in lines) == bil.totals("M1/A")[0] == 40 * 10**9 + sum(range(40))
    assert sum(ln[4] for ln in lines) == bil.totals("M1/A")[1]
    assert lines[0][0] == 0 and lines[-1][1] == 40 * 60


@pytest.mark.slow
def test_a_ninth_unfinished_payment_is_refused_and_nothing_is_signed(tmp_path,
                                                                      devnet_factory):
    import os

    from eth_account import Account
    from eth_account.hdaccount.deterministic import HDPath

    d = devnet_factory(automine=False)  # nothing is mined: payments stay "sent"
    seed = os.urandom(32)
    keys = {"M1/A": 0, "M1/B": 1, "M2/A": 2}  # three wallets (each signs 4 nonces ahead)
    p = Plug(tmp_path / "s", config(d.url, wallet={"mode": "per_channel"},
                                    channels={k: {"account": a} for k, a in keys.items()}),
             seed=seed)
    addrs = [Account.from_key(HDPath("m/44'/60'/0'/0/%d" % i).derive(seed)).address
             for i in range(3)]
    for a in addrs:
        d.fund(a, 10**18)
    d.mine()
    out = p.run("p = make(ST)\n"
                "for i in range(9):\n"
                "    try:\n"
                "        p.pay('%%d-0' %% i, %r, 1000 + i, channel_key=%r[i %% 3])\n"
                "    except Exception as e:\n"
                "        print('refused', i, type(e).__name__, e)\n"
                "print('unfinished', len(p.unfinished()))\n" % (PAYEE, list(keys)))
    assert "refused 8 PaymentError 8 payments are unfinished, the most the plug keeps" in out
    assert "unfinished 8" in out and out.count("refused") == 1
    assert sum(d.nonce(a, "pending") for a in addrs) == 8
