"""Settlement: when billed amounts become payments, one per wallet, with a memo the
provider can audit, and invoice ids that survive reboots."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

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


def test_signed_memo_fields_roundtrip_on_micropython(micropython):
    items = [("M1/A", 10**9, -30_000, -30_000), ("M1/B", 10**9, 10**18, 10**18 + 1),
             ("M2/1", 0, -1, 0)]
    want = decode_memo(encode_memo(3, 1, 2, items))
    assert want[3] == [("M1/A", 10**6, -30_000, -30_000), ("M1/B", 10**6, 10**18, 10**18 + 1),
                       ("M2/1", 0, -1, 0)]
    out = micropython.run("from plug.settle import encode_memo, decode_memo\n"
                          "m = encode_memo(3, 1, 2, %r)\nprint(m.hex(), decode_memo(m))" % items)
    hexmemo, got = out.split(" ", 1)
    assert hexmemo == encode_memo(3, 1, 2, items).hex()
    assert eval(got) == (3, 1, 2, want[3])


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
    bil.bill("M1/A", [(0, 60, 10**9)], flat(0))
    assert st.prepare(86400) == [] and bil.lines("M1/A") == []


def test_a_credit_at_negative_prices_carries_into_the_next_payment(tmp_path):
    root = str(tmp_path)
    bil, st = plug(root)
    for m in range(60):  # an hour of 1 kWh a minute at about -0.05/kWh: 60 lines
        bil.bill("M1/A", [(m * 60, m * 60 + 60, 10**9)], flat(-50_000 - 60 * (m % 2)))
    credit = -(30 * 50_000 + 30 * 50_060)
    # more than 12 lines on a channel fold at once (settle._MAX_LINES), exactly
    assert st.prepare(3600) == [] and len(bil.lines("M1/A")) == 1
    assert bil.lines("M1/A")[0][4] == credit
    assert st.prepare(86400) == []  # the period ends in credit: nothing paid, nothing lost
    (one,) = bil.lines("M1/A")  # folded into one line that keeps span, energy and amount
    assert one[:3] == [0, 3600, 60 * 10**9] and one[4] == credit == bil.totals("M1/A")[1]
    assert Billing(Store(root)).lines("M1/A") == [one]  # durable
    gen = Store(root).generation("billing")
    assert st.prepare(86400 + 60) == [] and Store(root).generation("billing") == gen
    bil.bill("M1/A", [(86400, 86460, 2 * 10**9)], flat(1_000_000))  # still in credit
    assert st.prepare(86460) == []
    bil.bill("M1/A", [(86460, 86520, 2 * 10**9)], flat(1_000_000))
    (inv,) = st.prepare(86520)
    assert inv["amount"] == 4_000_000 + credit and (inv["t0"], inv["t1"]) == (0, 86520)
    code, mwh, rate, amount = decode_memo(memo_bytes(inv))[3][0]
    assert (code, mwh, amount) == ("M1/A", 64 * 10**6, 4_000_000 + credit)
    exact = (4_000_000 * 10**9 - 50_030 * 60 * 10**9) // (64 * 10**9)
    assert exact - 2 <= rate <= exact  # each of the two folds floors the mean once
    assert bil.lines("M1/A") == []


def test_after_a_credit_the_next_payment_waits_for_the_minimum_or_a_new_period(tmp_path):
    bil, st = plug(str(tmp_path), min_amount=100_000)
    bil.bill("M1/A", [(0, 60, 10**9)], flat(-1000))
    bil.bill("M1/A", [(60, 120, 10**6)], lambda t0, t1: [(t0, t1, None, 0)])  # a closed gap
    bil.bill("M1/A", [(120, 180, 10**9)], flat(-999))
    assert st.prepare(86400) == []  # in credit at the period's end: a new period starts
    assert [(ln[0], ln[1], ln[2], ln[4], ln[6:]) for ln in bil.lines("M1/A")] == [
        (60, 120, 10**6, 0, ["unpriced"]), (0, 180, 2 * 10**9, -1999, [])]  # folded apart
    bil.bill("M1/A", [(86400, 86460, 10**9)], flat(2000))  # net +1 base unit
    assert st.prepare(86460) == [] and st.prepare(2 * 86400 - 1) == []  # not worth a fee
    (inv,) = st.prepare(2 * 86400)
    assert inv["amount"] == 1 and (inv["t0"], inv["t1"]) == (0, 86460)
    assert sum(it[1] for it in inv["items"]) == 3 * 10**9 + 10**6  # all the energy


def test_a_channel_in_credit_lowers_the_wallets_payment(tmp_path):
    bil, st = plug(str(tmp_path))
    bil.bill("M1/A", [(0, 60, 10**9)], flat(-30_000))  # 1 kWh consumed at -0.03/kWh
    bil.bill("M1/B", [(0, 60, 10**9)], flat(250_000))
    (inv,) = st.prepare(86400)
    assert inv["amount"] == 220_000
    assert decode_memo(memo_bytes(inv))[3] == [("M1/A", 10**6, -30_000, -30_000),
                                                ("M1/B", 10**6, 250_000, 250_000)]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hs.lists(hs.tuples(hs.sampled_from(["M1/A", "M1/B", "M2/A"]), hs.integers(0, 3 * 10**9),
                          hs.integers(-400_000, 400_000), hs.booleans()),
                min_size=1, max_size=60),
       hs.sampled_from(["single", "per_channel"]))
def test_invoices_plus_accrued_equal_billed_and_no_payment_is_below_one(tmp_path_factory,
                                                                        steps, mode):
    """Random energy at random (also negative) rates, settled hour by hour, with reboots:
    every invoice is above 0, and paid + still accrued == billed, per wallet."""
    root = str(tmp_path_factory.mktemp("st"))
    bil, st = plug(root, mode, min_amount=100_000, max_period_s=4 * 3600)
    paid = {}
    for i, (key, uwh, rate, reboot) in enumerate(steps):
        bil.bill(key, [(i * 3600, i * 3600 + 3600, uwh)], flat(rate))
        for inv in st.prepare(i * 3600 + 3600):
            assert inv["amount"] > 0
            assert sum(it[3] for it in inv["items"]) == inv["amount"]
            paid[inv["account"]] = paid.get(inv["account"], 0) + inv["amount"]
        if reboot:
            bil, st = plug(root, mode, min_amount=100_000, max_period_s=4 * 3600)
    billed, accrued = {}, {}
    for key in ("M1/A", "M1/B", "M2/A"):
        acct = st.wallet_of(key)
        billed[acct] = billed.get(acct, 0) + bil.totals(key)[1]
    for (acct, _pid), amount in st.accrued().items():
        accrued[acct] = accrued.get(acct, 0) + amount
    for acct in billed:
        assert paid.get(acct, 0) + accrued.get(acct, 0) == billed[acct]


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
