"""Test contracts: compiled with solc (compile.py) and deployed on the test node."""


def deploy_token(devnet, holder, supply):
    """Deploy TestToken with `supply` base units held by `holder`; its checksummed address."""
    from eth_account import Account

    import eth
    from tests.contracts.compile import compiled
    from tools.devnet import FAUCET, FAUCET_KEY

    _, code = compiled("TestToken")
    args = bytes(12) + bytes.fromhex(holder[2:]) + supply.to_bytes(32, "big")
    tx = {"nonce": devnet.nonce(FAUCET), "gasPrice": 2 * int(devnet.rpc("eth_gasPrice"), 16),
          "gas": 2_000_000, "data": code + args, "value": 0, "chainId": devnet.chain_id}
    signed = Account.sign_transaction(tx, FAUCET_KEY)
    h = devnet.rpc("eth_sendRawTransaction", "0x" + signed.raw_transaction.hex())
    receipt = devnet.wait_receipt(h)
    assert receipt["status"] == "0x1", receipt
    return eth.to_checksum_address(receipt["contractAddress"])
