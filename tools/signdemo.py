"""python -m tools.signdemo: a wallet on MicroPython pays on a local Ethereum devnet.

The smallest proof that the signing core works. It starts anvil, starts the MicroPython
unix port (64 KB heap, lib/ as .mpy from `make mpy`), which creates a wallet key from
os.urandom and prints only its address; the host funds that address, the MicroPython
side signs an EIP-1559 transfer with lib/eth.py, the host broadcasts it and prints
the transaction hash and the receiver's new balance. The key never leaves the
MicroPython process. Exits 0 only if the receiver's balance rose by exactly the value.
"""

import json
import os
import subprocess
import sys

from . import mp
from .devnet import Devnet
from .paths import BUILD, LIB

VALUE = 12345 * 10**12  # 0.012345 ETH
RECEIVER = "0x7e7e7e7E7e7E7e7e7e7E7e7e7e7E7e7e7e7e7e7E"  # an empty account, EIP-55 form

# The plug side: create a key, print the address, then sign what the host asks for.
PLUG = """
import binascii, json, os, sys
import eth
while True:
    key = os.urandom(32)
    try:
        address = eth.address(key)
        break
    except ValueError:  # 0 or >= n: astronomically rare, draw again
        pass
print(address)
req = json.loads(sys.stdin.readline())
tx = {"type": 2, "chainId": req["chainId"], "nonce": req["nonce"], "to": req["to"],
      "value": int(req["value"]), "gas": 21000, "maxFeePerGas": int(req["maxFeePerGas"]),
      "maxPriorityFeePerGas": int(req["maxPriorityFeePerGas"]), "data": b""}
print(binascii.hexlify(eth.sign_transaction(tx, key)).decode())
"""


def lib_dirs():
    """lib/ as .mpy (what `make mpy` built for the unix port), else the source."""
    built = os.path.join(BUILD, "unix", "lib")
    return (built,) if os.path.isdir(built) else (LIB,)


def main():
    dirs = lib_dirs()
    heap = mp.DEFAULT_HEAP if dirs[0] != LIB else "128k"  # source costs heap to compile
    with Devnet() as dev:
        print("devnet   anvil, chain %d on %s" % (dev.chain_id, dev.url))
        plug = subprocess.Popen(mp.command(heap, ["-c", PLUG]), env=mp.env(dirs),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            address = plug.stdout.readline().strip()
            if not address.startswith("0x"):
                raise SystemExit("MicroPython did not create a wallet:\n" + plug.stderr.read())
            print("wallet   %s  (key made on MicroPython with os.urandom)" % address)
            dev.fund(address, 10**18)
            print("funded   %s with 1 ETH" % address)

            receiver = RECEIVER
            before = dev.balance(receiver)
            base_fee = int(dev.rpc("eth_gasPrice"), 16)
            req = {"chainId": dev.chain_id, "nonce": dev.nonce(address), "to": receiver,
                   "value": str(VALUE), "maxFeePerGas": str(2 * base_fee + 10**9),
                   "maxPriorityFeePerGas": str(10**9)}
            out, err = plug.communicate(json.dumps(req) + "\n", timeout=120)
        finally:
            if plug.poll() is None:
                plug.kill()
                plug.wait()
        if plug.returncode:
            raise SystemExit("MicroPython failed to sign:\n" + err)
        raw = "0x" + out.strip()
        print("signed   EIP-1559 transfer of %d wei to %s on MicroPython (%d bytes)"
              % (VALUE, receiver, (len(raw) - 2) // 2))
        tx_hash = dev.rpc("eth_sendRawTransaction", raw)
        receipt = dev.wait_receipt(tx_hash)
        print("sent     tx %s, mined in block %d, status %s"
              % (tx_hash, int(receipt["blockNumber"], 16), receipt["status"]))
        after = dev.balance(receiver)
        print("receiver %s balance %d wei (was %d)" % (receiver, after, before))
        ok = receipt["status"] == "0x1" and after - before == VALUE
        print("OK: the balance rose by exactly the value" if ok
              else "FAILED: balance changed by %d, expected %d" % (after - before, VALUE))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
