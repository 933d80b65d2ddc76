"""The payment rules that keep the wallet safe when the chain misbehaves, on a real anvil
node under MicroPython: a lagging node cannot make the plug pay twice, replacement fees
stop rising, a reverted payment is paid again only at the owner's word (once), and a clock
set back does not grant a fresh daily allowance."""

import json

import hostile_rpc
import pytest
from hostile_rpc import HostileRPC, _env, _ok

from paytest import PAYEE, Plug, config

pytestmark = pytest.mark.slow

AMOUNT = 12345 * 10**9

hostile_rpc.MODES.setdefault("null_receipt", lambda req, up: _ok(_env(req, result=None)))


def test_a_node_that_answers_no_receipt_does_not_make_the_plug_pay_twice(tmp_path, devnet):
    # the payment is mined; then a node that lags behind (or a load balancer in front of
    # one) answers "no receipt" while the account's nonce has passed ours
    plug = Plug(tmp_path / "s", config(devnet.url))
    devnet.fund(plug.address, 10**18)
    plug.records("p = make(ST)\np.pay('L-1', %r, %d)\n" % (PAYEE, AMOUNT))
    with HostileRPC(upstream=devnet.url) as h:
        url = h.url("null_receipt", ["eth_getTransactionReceipt"])
        out = plug.run("clock = ManualClock()\np = make(ST, clock, urls=[%r])\n"
                       "for i in range(6):\n    p.step()\n    clock.t += 10\n"
                       "show(p.get('L-1'))\n" % url)
    rec = json.loads(out.splitlines()[-1])
    assert rec["st"] == "sent" and rec["n"] == 0  # not signed again on a short silence
    recs = plug.records("p = make(ST)\nsettle(p)\n")
    assert [(r["st"], r["n"]) for r in recs] == [("confirmed", 0)]
    assert devnet.balance(PAYEE) == AMOUNT and devnet.nonce(plug.address) == 1


def _signed_again_after_a_lie(tmp_path, d, confirmations=1):
    """A payment mined at nonce 0 that a lying node made the plug sign again at nonce 1
    (pending: the devnet does not automine)."""
    plug = Plug(tmp_path / "s", config(d.url, chain={"confirmations": confirmations}))
    d.fund(plug.address, 10**18)
    d.mine()
    plug.records("p = make(ST)\np.pay('C-1', %r, %d)\n" % (PAYEE, AMOUNT))
    d.mine()  # nonce 0 is mined: the payment landed
    out = _steps(plug, d, "null_receipt", ["eth_getTransactionReceipt"], 5,
                 "show(p.get('C-1'))\n")
    rec = json.loads(out.splitlines()[-1])
    assert rec["n"] == 1 and rec["st"] == "sent"  # taken as displaced: signed again
    assert d.rpc("eth_getTransactionCount", plug.address, "pending") == "0x2"
    return plug


def _steps(plug, d, mode, methods, n, then="", start="None"):
    """n steps a minute apart through a node misbehaving per `mode` on `methods`."""
    with HostileRPC(upstream=d.url) as h:
        return plug.run("clock = ManualClock(%s)\np = make(ST, clock, urls=[%r])\n"
                        "for i in range(%d):\n    p.step()\n    clock.t += 61\n%s"
                        % (start, h.url(mode, methods), n, then))


@pytest.mark.parametrize("confirmations", [1, 3])
def test_a_first_transaction_mined_after_all_cancels_the_one_signed_again(tmp_path,
                                                                          devnet_factory,
                                                                          confirmations):
    d = devnet_factory(automine=False)
    plug = _signed_again_after_a_lie(tmp_path, d, confirmations)
    # an honest node shows the first transaction's receipt: the second must never land
    recs = {r["id"]: r for r in plug.records("p = make(ST)\np.step()\n")}
    assert recs["C-1"]["st"] == ("confirmed" if confirmations == 1 else "sent")
    assert recs["C-1"]["mined"] != recs["C-1"]["hash"]
    cancel = recs["C-1~cancel1"]
    assert (cancel["n"], cancel["to"], cancel["amt"], cancel["st"]) == (1, plug.address, 0,
                                                                          "sent")
    # the node lies again while the payment waits for its confirmations, for deadlines
    # on end: the payment is not sent or re-signed at nonce 1 over its cancellation
    out = _steps(plug, d, "null_receipt", ["eth_getTransactionReceipt"], 4,
                 start="ManualClock().t + 7200")
    assert "invoice C-1: " not in out  # neither re-signed nor sent: no fee war either
    d.mine(confirmations)
    assert d.balance(PAYEE) == AMOUNT and d.nonce(plug.address) == 2  # paid once
    recs = {r["id"]: r for r in plug.records("p = make(ST)\nsettle(p)\n")}
    assert recs["C-1"]["st"] == recs["C-1~cancel1"]["st"] == "confirmed"


def test_a_cancellation_that_loses_the_race_says_the_invoice_was_paid_twice(tmp_path,
                                                                           devnet_factory):
    d = devnet_factory(automine=False)
    plug = _signed_again_after_a_lie(tmp_path, d)
    # the cancellation cannot be broadcast...
    _steps(plug, d, "http500", ["eth_sendRawTransaction"], 1)
    d.mine()  # ...and the transaction signed again is mined
    assert d.balance(PAYEE) == 2 * AMOUNT
    out = plug.run("clock = ManualClock(ManualClock().t + 3600)\np = make(ST, clock)\n"
                   "for i in range(4):\n    p.step()\n    clock.t += 61\n"
                   "show(p.get('C-1~cancel1'))\n")
    cancel = json.loads(out.splitlines()[-1])
    assert cancel["st"] == "failed" and "the invoice was PAID TWICE" in cancel["err"]
    assert "PAID TWICE" in out


_FEES = """
def fees(r):
    return [r['v'][0]['fee'][0], r['v'][-1]['fee'][0], len(r['v'])]
"""


def test_replacement_fees_stop_at_the_ceilings_and_the_payment_still_lands(tmp_path,
                                                                            devnet_factory):
    d = devnet_factory(automine=False)
    plug = Plug(tmp_path / "s", config(d.url))
    d.fund(plug.address, 10**18)
    d.mine()
    # a node that accepts but never mines: forty deadlines pass
    out = plug.run(_FEES + "clock = ManualClock()\np = make(ST, clock)\n"
                   "r = p.pay('F-1', %r, %d)\n"
                   "for i in range(40):\n    clock.t += 61\n    p.step()\n"
                   "print(json.dumps(fees(p.get('F-1'))))\nprint(p.get('F-1')['err'])\n"
                   % (PAYEE, AMOUNT))
    first, last, n = json.loads(out.splitlines()[-2])
    assert 8 < n < 16 and 3 * first < last <= 4 * first  # the built-in ceiling
    assert "not replaced: fee ceiling" in out.splitlines()[-1]
    # the owner sets a lower ceiling: no variant above it is ever signed
    cap = first * 2
    plug2 = Plug(tmp_path / "s2", config(d.url, chain={"max_fee_per_gas": cap}))
    d.fund(plug2.address, 10**18)
    out = plug2.run(_FEES + "clock = ManualClock()\np = make(ST, clock)\n"
                    "r = p.pay('F-2', %r, %d)\n"
                    "for i in range(20):\n    clock.t += 61\n    p.step()\n"
                    "print(json.dumps(fees(p.get('F-2'))))\n" % (PAYEE, AMOUNT))
    first2, last2, n2 = json.loads(out.splitlines()[-1])
    assert first2 == first and cap * 8 // 9 < last2 <= cap and n2 < 9
    d.mine()
    for p in (plug, plug2):
        recs = p.records("p = make(ST)\nsettle(p)\n")
        assert [r["st"] for r in recs] == ["confirmed"]
    assert d.balance(PAYEE) == 2 * AMOUNT


def test_a_replacement_the_balance_cannot_cover_is_not_signed(tmp_path, devnet_factory):
    d = devnet_factory(automine=False)
    plug = Plug(tmp_path / "s", config(d.url))
    d.fund(plug.address, 10**18)
    d.mine()
    plug.records("p = make(ST)\np.pay('B-1', %r, %d)\n" % (PAYEE, AMOUNT))
    # the balance drops (another spender with the same key, say) to the amount alone
    d.rpc("anvil_setBalance", plug.address, hex(AMOUNT + 21000 * 10**9))
    out = plug.run("clock = ManualClock()\np = make(ST, clock)\nclock.t += 61\np.step()\n"
                   "r = p.get('B-1')\nprint(len(r['v']), r['err'])\n")
    n, err = out.splitlines()[-1].split(" ", 1)
    assert n == "1" and "not replaced: balance of" in err


def test_a_reverted_payment_waits_for_the_owner_and_is_paid_again_once(tmp_path, devnet):
    payee = "0x" + "00" * 18 + "fa12"
    devnet.rpc("anvil_setCode", payee, "0x60006000fd")  # the payee rejects every transfer
    plug = Plug(tmp_path / "s", config(devnet.url))
    devnet.fund(plug.address, 10**18)
    out = plug.run("clock = ManualClock(10**8)\np = make(ST, clock)\np.pay('R-1', %r, %d)\n"
                   "for i in range(48):\n    p.step()\n    clock.t += 1800\n"
                   "show(p.get('R-1'))\n" % (payee, AMOUNT))
    rec = json.loads(out.splitlines()[-1])
    # a day of steps signs nothing more: a node lying about receipts cannot cause a repeat
    assert rec["st"] == "failed" and rec["att"] == 1 and "retry_payment('R-1')" in rec["err"]
    assert devnet.nonce(plug.address) == 1
    devnet.rpc("anvil_setCode", payee, "0x")  # the payee accepts transfers again
    out = plug.run("p = make(ST)\ntry:\n    p.retry('nope')\nexcept PaymentError as e:\n"
                   "    print('refused', e)\np.retry('R-1')\nsettle(p)\ntry:\n"
                   "    p.retry('R-1')\nexcept PaymentError as e:\n    print('refused', e)\n"
                   "show(p.get('R-1'))\nprint('spent', p.spent_today())\n")
    assert "refused invoice nope has no failed payment" in out
    assert "refused invoice R-1 has no failed payment" in out  # confirmed: not again
    rec = json.loads([x for x in out.splitlines() if x.startswith("{")][-1])
    assert rec["st"] == "confirmed" and rec["att"] == 2
    assert "spent %d" % AMOUNT in out
    assert devnet.balance(payee) == AMOUNT and devnet.nonce(plug.address) == 2


def test_a_clock_set_back_keeps_todays_spend(tmp_path, devnet):
    cfg = config(devnet.url, limits={"per_payment": AMOUNT, "per_day": AMOUNT,
                                     "gas_floor_wei": 0})
    plug = Plug(tmp_path / "s", cfg)
    devnet.fund(plug.address, 10**18)
    out = plug.run("clock = ManualClock(10**8)\np = make(ST, clock)\n"
                   "p.pay('D-1', %r, %d)\nclock.t -= 86400\n"
                   "try:\n    p.pay('D-2', %r, %d)\nexcept SpendRefused as e:\n"
                   "    print('refused', e)\n" % (PAYEE, AMOUNT, PAYEE, AMOUNT))
    assert "refused amount %d would take today's spend" % AMOUNT in out
    assert devnet.balance(PAYEE) == AMOUNT
