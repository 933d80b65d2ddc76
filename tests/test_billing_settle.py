"""Settlement: when billed amounts become payments, one per wallet, with a memo the
provider can audit, and invoice ids that survive reboots."""

import json

import pytest

from plug.billing import Billing
from plug.settle import Settlement, decode_memo, encode_memo, memo_bytes
from plug.store import Store
from plug.tariff import Tariff

PAYEE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DESCRIPTOR = {"name": "E", "payee": PAYEE, "chain_id": 31337,
              "currency": {"address": TOKEN, "decimals": 6, "symbol": "EURC"},
              "rates": {"url": "http://127.0.0.1:1/r", "format": "awattar"}}


class Clock:
    t = 0

    def time(self):
        return self.t


def config(mode="single", **settlement):
    s = {"min_amount": 1000, "max_period_s": 86400, "max_fee_share_pct": 10}
    s.update(settlement)
    return {"provider": {"url": "http://127.0.0.1:1/provider.json", "approved_payees": [PAYEE],
                         "approved_tokens": [TOKEN], "fallback": "hold", "refresh_s": 900},
            "chain": {"chain_id": 31337}, "settlement": s, "wallet": {"mode": mode},
            "channels": {"M1/A": {"account": 1}, "M1/B": {"account": 2}, "M2/A": {"account": 1}}}


def plug(root, mode="single", **settlement):
    """Billing + Tariff (descriptor accepted from bytes, as read off the wire) + Settlement."""
    store = Store(root)
    cfg = config(mode, **settlement)
    tf = Tariff(store, Clock(), cfg, http=lambda url: json.dumps(DESCRIPTOR).encode(), log=None)
    if tf.current() is None:
        tf.refresh_descriptor(0)
    bil = Billing(store)
    return bil, Settlement(bil, tf, cfg, log=None)


def flat(rate):
    return lambda t0, t1: [(t0, t1, rate, 0)]


def test_memo_roundtrip_and_layout():
    items = [("M1/A", 1_234_567_890, 250_000, 308_641), ("M1/B", 999, 0, 0)]
    m = encode_memo(7, 820540800, 820627200, items)
    assert m[:5] == b"PLUG1" and len(m) < 60
    assert decode_memo(m) == (7, 820540800, 820627200,
                              [("M1/A", 1_234_567, 250_000, 308_641), ("M1/B", 0, 0, 0)])
    for bad in (b"PLUG2" + m[5:], m[:-1], m + b"\x00"):
        with pytest.raises(ValueError):
            decode_memo(bad)


def test_settles_at_the_minimum_amount_not_before(tmp_path):
    bil, st = plug(str(tmp_path))
    bil.bill("M1/A", [(0, 60, 3 * 10**6)], flat(250_000))  # 3 Wh at 0.25/kWh = 750 units
    assert st.prepare(100) == []
    bil.bill("M1/A", [(60, 120, 2 * 10**6)], flat(250_000))  # +500 -> 1250 >= 1000
    (inv,) = st.prepare(130)
    assert inv["amount"] == 1250 and inv["payee"] == PAYEE and inv["token"] == TOKEN
    assert decode_memo(memo_bytes(inv)) == (1, 0, 120, [("M1/A", 5000, 250_000, 1250)])
    assert bil.lines("M1/A") == []  # the lines moved into the invoice


def test_fee_share_raises_the_threshold_and_the_period_forces_settlement(tmp_path):
    bil, st = plug(str(tmp_path), max_fee_share_pct=5)
    bil.bill("M1/A", [(0, 60, 8 * 10**6)], flat(250_000))  # 2000 units
    assert st.threshold(fee=150) == 3000  # a 150-unit fee is <= 5 % of 3000
    assert st.prepare(100, fee=150) == []
    (inv,) = st.prepare(86400, fee=150)  # a day after the oldest line: settle anyway
    assert inv["amount"] == 2000


def test_one_payment_per_wallet_covering_its_channels(tmp_path):
    for mode, want in (("single", {0: ["M1/A", "M1/B", "M2/A"]}),
                       ("per_channel", {1: ["M1/A", "M2/A"], 2: ["M1/B"]})):
        bil, st = plug(str(tmp_path / mode), mode)
        for key in ("M1/A", "M1/B", "M2/A"):
            bil.bill(key, [(0, 60, 10**9)], flat(250_000))
        invs = st.prepare(100)
        got = {inv["account"]: [it[0] for it in inv["items"]] for inv in invs}
        assert got == want
        assert sum(inv["amount"] for inv in invs) == 3 * 250_000
        assert len({inv["id"] for inv in invs}) == len(invs)


def test_invoice_ids_are_stable_across_reboots_and_paid_once(tmp_path):
    root = str(tmp_path)
    bil, st = plug(root)
    bil.bill("M1/A", [(0, 60, 10**9)], flat(250_000))
    calls = []

    def pay_down(*a):
        calls.append(a)
        raise OSError("no route to the RPC node")

    assert st.settle(100, pay_down) == [("1-0", "no route to the RPC node")]
    bil2, st2 = plug(root)  # reboot
    assert [i["id"] for i in st2.open_invoices()] == ["1-0"]

    def pay_ok(*a):
        calls.append(a)

    assert st2.settle(200, pay_ok) == [("1-0", None)]
    assert calls[0] == calls[1] and calls[0][:4] == ("1-0", PAYEE, 250_000, TOKEN)
    _, st3 = plug(root)
    assert st3.open_invoices() == [] and st3.settle(300, pay_ok) == []
    # the next invoice gets the next number, never a reused one
    bil4, st4 = plug(root)
    bil4.bill("M1/A", [(60, 120, 10**9)], flat(250_000))
    assert [i["id"] for i in st4.prepare(400)] == ["2-0"]


def test_zero_amount_periods_close_without_a_payment(tmp_path):
    bil, st = plug(str(tmp_path))
    bil.bill("M1/A", [(0, 60, 10**9)], flat(-5))  # negative price: billed 0
    assert st.prepare(86400) == [] and bil.lines("M1/A") == []


def test_unknown_fee_without_a_minimum_settles_once_a_period_not_every_minute(tmp_path):
    """An ERC-20 plug (the app passes fee=None: a token's price in wei is unknown) with
    the default min_amount 0 paid every amount > 0 at once: a token transfer a minute.
    With neither a fee nor a minimum to weigh, only the period rule settles."""
    bil, st = plug(str(tmp_path), min_amount=0)
    assert st.threshold(fee=None) is None
    paid = []
    for m in range(1, 24 * 60 + 1):  # a money step a minute for a day, 1 Wh a minute
        bil.bill("M1/A", [((m - 1) * 60, m * 60, 10**6)], flat(250_000))
        st.settle(m * 60, lambda *a: paid.append(a), fee=None)
    assert [(p[0], p[2]) for p in paid] == [("1-0", 24 * 60 * 250)]  # once, at the day's end
    # a known fee still sets a threshold (10 % share: 10x the fee), and min_amount counts
    assert st.threshold(fee=100) == 1000 and st.threshold(fee=0) == 0
    _, st2 = plug(str(tmp_path / "min"), min_amount=500)
    assert st2.threshold(fee=None) == 500
