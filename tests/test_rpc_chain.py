"""The JSON-RPC client and chain queries on MicroPython against anvil: node errors
become named conditions, fees follow the chain, the chain id is checked before any
signing, and the owner's spend limits stop a payment before it is signed."""

import pytest
from eth_account import Account

from paytest import PAYEE, Plug, build_dir, config
from plug.rpc import (AlreadyKnown, ExecutionReverted, InsufficientFunds, NonceTooLow, RPCError,
                      ReplacementUnderpriced, error_for)
from tools import mp
from tools.devnet import FAUCET, FAUCET_KEY

pytestmark = pytest.mark.slow

PRE = ("from plug.rpc import *\nfrom plug.chain import *\n"
       "c = Chain(RPC(%r, timeout_s=2, retries=0), %d, %r)\n")


def run(url, code, chain_id=31337, eip1559=True):
    return mp.run(PRE % (url, chain_id, eip1559) + code, heap="96k", path_dirs=build_dir())


def test_error_messages_of_common_nodes_map_to_named_conditions():
    cases = [
        (-32000, "nonce too low: next nonce 5, tx nonce 4", NonceTooLow),
        (-32003, "nonce too low", NonceTooLow),
        (-32000, "replacement transaction underpriced", ReplacementUnderpriced),
        (-32000, "insufficient funds for gas * price + value", InsufficientFunds),
        (-32003, "Insufficient funds for gas * price + value", InsufficientFunds),
        (-32000, "already known", AlreadyKnown),
        (-32003, "transaction already imported", AlreadyKnown),
        (3, "execution reverted: frozen", ExecutionReverted),
        (3, "revert", ExecutionReverted),
        (-32601, "the method eth_foo does not exist", RPCError),
    ]
    for code, msg, cls in cases:
        e = error_for(code, msg, "eth_sendRawTransaction")
        assert type(e) is cls, msg
        assert e.code == code and msg in str(e)


def test_real_node_errors_and_queries(devnet):
    acct = Account.from_key(FAUCET_KEY)

    def raw(**kw):
        tx = dict(to=PAYEE, value=1, gas=21000, chainId=31337, maxFeePerGas=3 * 10**9,
                  maxPriorityFeePerGas=10**9)
        tx.update(kw)
        return repr("0x" + acct.sign_transaction(tx).raw_transaction.hex().removeprefix("0x"))

    devnet.set_automine(False)
    devnet.rpc("anvil_setCode", "0x" + "00" * 18 + "fa11", "0x60006000fd")
    code = (
        "def t(fn):\n    try:\n        print('ok', fn())\n"
        "    except ChainError as e:\n        print('err', type(e).__name__)\n"
        "c.check_chain()\n"
        "t(lambda: c.send_raw(%s))\n"  # ok
        "t(lambda: c.send_raw(%s))\n"  # same again: already known counts as sent
        "t(lambda: c.nonce(%r, 'pending'))\nt(lambda: c.nonce(%r, 'latest'))\n"
        "t(lambda: sorted(c.fees().items()))\n"
        "t(lambda: c.balance(%r))\n"
        "t(lambda: c.estimate_gas({'from': %r, 'to': %r, 'data': b'', 'value': 1}))\n"
        "t(lambda: c.estimate_gas({'from': %r, 'to': '0x' + '00' * 18 + 'fa11'}))\n"
        "t(lambda: c.receipt('0x' + '00' * 32))\n"
        % (raw(nonce=0), raw(nonce=0), FAUCET, FAUCET, PAYEE, FAUCET, PAYEE, FAUCET))
    out = run(devnet.url, code).splitlines()
    assert out[0].startswith("ok 0x") and out[1] == out[0]
    assert out[2:4] == ["ok 1", "ok 0"]
    assert out[4] == "ok [('maxFeePerGas', 3000000000), ('maxPriorityFeePerGas', 1000000000)]"
    assert out[5] == "ok 0"
    assert out[6] == "ok 21000"
    assert out[7] == "err ExecutionReverted"
    assert out[8] == "ok None"
    devnet.mine()
    out = run(devnet.url, "def t(fn):\n    try:\n        print('ok', fn())\n"
              "    except ChainError as e:\n        print('err', type(e).__name__)\n"
              "t(lambda: c.send_raw(%s))\n"
              "t(lambda: c.send_raw(%s))\n"
              "t(lambda: sorted(Chain(c.rpc, 31337, False).fees().items()))\n"
              % (raw(nonce=0), raw(nonce=1, value=10**30))).splitlines()
    assert out[0] == "err NonceTooLow"
    assert out[1] == "err InsufficientFunds"
    assert out[2].startswith("ok [('gasPrice', ")


def test_wrong_chain_id_refuses_before_signing(tmp_path, devnet):
    cfg = config(devnet.url)
    cfg["chain"]["chain_id"] = 1
    plug = Plug(tmp_path / "s", cfg)
    devnet.fund(plug.address, 10**18)
    out = plug.run("p = make(ST)\ntry:\n    p.pay('w-1', %r, 5)\n"
                   "except ChainError as e:\n    print('refused', type(e).__name__, e)\n"
                   "print(len(p.records()))\n" % PAYEE)
    assert "refused WrongChain node is on chain 31337, config says 1" in out
    assert out.strip().endswith("0") and devnet.nonce(plug.address) == 0


def test_spend_limits_stop_payments_before_signing(tmp_path, devnet):
    cfg = config(devnet.url, limits={"per_payment": 1000, "per_day": 2500,
                                     "gas_floor_wei": 10**16})
    plug = Plug(tmp_path / "s", cfg)
    devnet.fund(plug.address, 10**18)
    code = ("p = make(ST)\n"
            "for iid, amt in (('a', 1001), ('b', 1000), ('c', 1000), ('d', 600), ('e', 500)):\n"
            "    try:\n        r = p.pay(iid, %r, amt)\n        print('paid', iid, r['st'])\n"
            "    except SpendRefused as e:\n        print('refused', iid, e)\n"
            "print('spent', p.spent_today())\n" % PAYEE)
    out = plug.run(code)
    assert "refused a amount 1001 is over the per-payment limit 1000" in out
    assert "paid b sent" in out and "paid c sent" in out
    assert "refused d amount 600 would take today's spend to 2600" in out
    assert "paid e sent" in out and "spent 2500" in out
    assert devnet.balance(PAYEE) == 2500
    # next day the daily limit is fresh, but the balance kept for gas stops it
    devnet.fund(plug.address, 10**16 + 1000)
    out = plug.run("p = make(ST)\np.clock.t += 86400\nprint('spent', p.spent_today())\n"
                   "try:\n    p.pay('f', %r, 1000)\nexcept SpendRefused as e:\n"
                   "    print('refused f', e)\n" % PAYEE)
    assert "spent 0" in out and "refused f balance of" in out and "floor 10000000000000000" in out
    assert devnet.balance(PAYEE) == 2500
