# Signs a batch of transactions and messages on MicroPython for the oracle tests.
#   micropython tests/eth_batch.py <file>
# Each input line is one job, each output line its answer (hex, space separated):
#   T <key> <tx json>   ->  raw  from  hash      (signed, then decoded again here)
#   M <key> <message>   ->  signature
#   R <message> <sig>   ->  address | ERR <message>
# Integers in the tx JSON are "0x" hex strings and data is hex, so big values and
# several KB of data stay cheap to parse on a 64 KB heap.
import binascii
import gc
import json
import sys

import eth

_INTS = ("nonce", "gas", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "value",
         "chainId", "type")


def hx(b):
    return binascii.hexlify(b).decode()


def job(line):
    op, a, b = line.split(" ", 2)
    if op == "T":
        tx = json.loads(b)
        for k in _INTS:
            if k in tx:
                tx[k] = int(tx[k], 16)
        if "data" in tx:
            tx["data"] = binascii.unhexlify(tx["data"])
        raw = eth.sign_transaction(tx, binascii.unhexlify(a))
        tx = None
        d = eth.decode_transaction(raw)
        return "%s %s %s" % (hx(raw), d["from"], hx(d["hash"]))
    if op == "M":
        return hx(eth.sign_message(binascii.unhexlify(b), binascii.unhexlify(a)))
    if op == "R":
        try:
            return eth.recover_message(binascii.unhexlify(a), binascii.unhexlify(b))
        except ValueError as e:
            return "ERR %s" % e
    raise ValueError("unknown op %r" % op)


def main(path):
    with open(path) as f:
        while True:
            line = f.readline()
            if not line:
                break
            line = line.rstrip("\n")
            if line:
                gc.collect()
                print(job(line))


main(sys.argv[1])
