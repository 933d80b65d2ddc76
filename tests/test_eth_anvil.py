"""Transactions signed on MicroPython are accepted and mined by a real node (anvil).

The plug's key, its transactions and the ERC-20 calldata all come from lib/eth.py
running on the MicroPython unix port (64 KB heap, lib/ as .mpy); the host only
funds accounts, deploys the test token (signed with eth-account) and reads balances.
"""

import json
import os

import pytest
from eth_account import Account

import eth
from mpy_lib import mpy_lib_fixture  # noqa: F401  (the mpy_lib fixture)
from tests.contracts import deploy_token
from tools import mp

pytestmark = pytest.mark.slow

SIGN_SCRIPT = """
import binascii, json, eth
key = binascii.unhexlify(%(key)r)
print(eth.address(key))
for tx in json.loads(%(txs)r):
    if "transfer" in tx:  # ERC-20 calldata made here, on the plug
        to, amount = tx.pop("transfer")
        tx["data"] = eth.erc20_transfer_data(to, amount)
    raw = eth.sign_transaction(tx, key)
    print(binascii.hexlify(raw).decode(), binascii.hexlify(eth.transaction_hash(raw)).decode())
"""


def sign_on_micropython(lib_dir, key, txs):
    """(address, [(raw_hex, hash_hex)]) from one MicroPython process."""
    out = mp.run(SIGN_SCRIPT % {"key": key.hex(), "txs": json.dumps(txs)},
                 path_dirs=(lib_dir,), heap="64k").split("\n")
    return out[0], [tuple(line.split()) for line in out[1:1 + len(txs)]]


def new_key():
    while True:
        k = os.urandom(32)
        if 0 < int.from_bytes(k, "big") < eth._N:
            return k


def send(devnet, raw_hex, hash_hex):
    assert devnet.rpc("eth_sendRawTransaction", "0x" + raw_hex) == "0x" + hash_hex
    receipt = devnet.wait_receipt("0x" + hash_hex)
    assert receipt["status"] == "0x1", receipt
    return receipt


@pytest.mark.parametrize("chain_id", [31337, 2**32 + 7])  # and one above 32 bits
def test_type0_and_type2_transfers_are_mined(devnet_factory, mpy_lib, chain_id):
    devnet = devnet_factory(chain_id=chain_id)
    key = new_key()
    plug = Account.from_key(key).address
    devnet.fund(plug, 10**19)
    receiver = Account.create().address
    gas_price = int(devnet.rpc("eth_gasPrice"), 16)
    v0, v2 = 123456789 * 10**9 + 1, 10**18 + 7
    txs = [{"nonce": 0, "gasPrice": 2 * gas_price, "gas": 21000, "to": receiver, "value": v0,
            "chainId": devnet.chain_id},
           {"type": 2, "nonce": 1, "maxFeePerGas": 3 * gas_price, "maxPriorityFeePerGas": 10**9,
            "gas": 21000, "to": receiver, "value": v2, "chainId": devnet.chain_id}]
    address, signed = sign_on_micropython(mpy_lib, key, txs)
    assert address == plug

    before = devnet.balance(receiver)
    send(devnet, *signed[0])
    assert devnet.balance(receiver) == before + v0
    r2 = send(devnet, *signed[1])
    assert devnet.balance(receiver) == before + v0 + v2
    assert r2["type"] == "0x2" and r2["from"].lower() == plug.lower()
    assert devnet.nonce(plug) == 2
    for raw, _ in signed:
        assert eth.decode_transaction(bytes.fromhex(raw))["chainId"] == chain_id


def test_erc20_transfer_signed_on_micropython_moves_exactly_the_amount(devnet, mpy_lib):
    key = new_key()
    plug = Account.from_key(key).address
    devnet.fund(plug, 10**18)
    supply = 10**6 * 10**6
    token = deploy_token(devnet, plug, supply)
    payee = Account.create().address
    amount = 1234567
    base_fee = int(devnet.rpc("eth_gasPrice"), 16)
    txs = [{"type": 2, "nonce": 0, "maxFeePerGas": 3 * base_fee, "maxPriorityFeePerGas": 1,
            "gas": 100000, "to": token, "value": 0, "chainId": devnet.chain_id,
            "transfer": [payee, amount]}]
    _, signed = sign_on_micropython(mpy_lib, key, txs)
    receipt = send(devnet, *signed[0])
    assert receipt["to"].lower() == token.lower()
    assert token_balance(devnet, token, payee) == amount
    assert token_balance(devnet, token, plug) == supply - amount



def token_balance(devnet, token, owner):
    data = "0x" + eth.erc20_balance_of_data(owner).hex()
    return int(devnet.rpc("eth_call", {"to": token, "data": data}, "latest"), 16)
