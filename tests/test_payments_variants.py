"""Payment variants on a real anvil node under MicroPython: legacy (eth_gasPrice, type 0)
transactions and their replacement, and waiting for several confirmations."""

import json

import pytest

from paytest import PAYEE, Plug, config

pytestmark = pytest.mark.slow

AMOUNT = 4321 * 10**9
LEGACY = {"eip1559": False}


def test_legacy_payment_lands_once(tmp_path, devnet):
    plug = Plug(tmp_path / "s", config(devnet.url, chain=LEGACY))
    devnet.fund(plug.address, 10**18)
    out = plug.run("p = make(ST)\np.pay('l-1', %r, %d)\nprint('left', settle(p))\n"
                   "p.pay('l-1', %r, %d)\n" % (PAYEE, AMOUNT, PAYEE, AMOUNT))
    assert "left 0" in out
    recs = plug.records()
    assert [(r["id"], r["st"]) for r in recs] == [("l-1", "confirmed")]
    tx = devnet.rpc("eth_getTransactionByHash", recs[0]["mined"])
    assert tx["type"] == "0x0" and "maxFeePerGas" not in tx
    assert int(tx["gasPrice"], 16) >= int(devnet.rpc("eth_gasPrice"), 16)
    assert int(tx["chainId"], 16) == 31337  # EIP-155 replay protection
    assert devnet.balance(PAYEE) == AMOUNT and devnet.nonce(plug.address) == 1


def test_stuck_legacy_payment_is_replaced_with_a_higher_gas_price(tmp_path, devnet_factory):
    d = devnet_factory(automine=False)
    plug = Plug(tmp_path / "s", config(d.url, chain=LEGACY))
    d.fund(plug.address, 10**18)
    d.mine()
    out = plug.run(
        "clock = ManualClock()\np = make(ST, clock)\n"
        "r = p.pay('l-2', %r, %d)\nprint('first', r['st'], r['hash'])\n"
        "p.step()\nprint('still', r['st'], len(r['v']))\n"
        "clock.t += 61\np.step()\nprint('replaced', r['st'], len(r['v']), r['hash'])\n"
        % (PAYEE, AMOUNT))
    assert "still sent 1" in out
    first = out.split("first sent ")[1].split()[0]
    second = out.split("replaced sent 2 ")[1].split()[0]
    assert first != second
    t2 = d.rpc("eth_getTransactionByHash", second)
    assert t2["type"] == "0x0" and int(t2["nonce"], 16) == 0
    t1 = d.rpc("eth_getTransactionByHash", first)
    if t1 is not None:
        assert int(t2["gasPrice"], 16) * 10 > int(t1["gasPrice"], 16) * 11
    d.mine()
    recs = plug.records("p = make(ST)\nsettle(p)\n")
    assert recs[0]["st"] == "confirmed" and recs[0]["mined"] == second
    assert recs[0]["hashes"] == [first, second]
    assert d.balance(PAYEE) == AMOUNT and d.nonce(plug.address) == 1


def test_payment_waits_for_three_confirmations(tmp_path, devnet_factory):
    d = devnet_factory(automine=False)
    plug = Plug(tmp_path / "s", config(d.url, chain={"confirmations": 3}))
    d.fund(plug.address, 10**18)
    d.mine()
    show = "for r in p.records():\n    print('REC', json.dumps([r['st'], r['blk'], r['mined']]))\n"

    def step():  # a fresh boot each time: what was recorded survives
        out = plug.run("import json\np = make(ST)\np.step()\n" + show)
        return json.loads(out.split("REC ")[1].splitlines()[0])

    plug.run("p = make(ST)\np.pay('c-1', %r, %d)\n" % (PAYEE, AMOUNT))
    assert step() == ["sent", None, None]
    d.mine()
    block = int(d.rpc("eth_blockNumber"), 16)
    st, blk, mined = step()
    assert (st, blk) == ("sent", block) and d.receipt(mined)["blockNumber"] == hex(block)
    d.mine()
    assert step() == ["sent", block, mined]
    d.mine()
    assert step() == ["confirmed", block, mined]
    assert d.balance(PAYEE) == AMOUNT and d.nonce(plug.address) == 1
