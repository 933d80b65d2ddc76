# Signs a batch of transactions and messages on MicroPython for the oracle tests.
#   micropython tests/eth_batch.py <file>
# The file is binary: each job is a header line, then <n> raw payload bytes (the
# transaction's data, or the message), so several KB of payload cost the heap only
# their own size. Each job prints one line (hex, space separated):
#   T <key> <n> <tx json>  ->  raw  from  hash     (signed, then decoded again here)
#   S <key> <n> <tx json>  ->  raw                 (signed only: decoding is 4x slower)
#   M <key> <n>            ->  signature
#   R <sig> <n>            ->  address | ERR <message>
# Integers in the tx JSON are "0x" hex strings, so big values parse cheaply.
import binascii
import gc
import json
import sys

import eth

_INTS = ("nonce", "gas", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "value",
         "chainId", "type")


def hx(b):
    return binascii.hexlify(b).decode()


def put_hex(b):
    # in pieces: the hex of a 6 KB transaction would need 12 KB in one block
    for i in range(0, len(b), 256):
        sys.stdout.write(hx(b[i:i + 256]))


def transaction(key, tx, data, decode):
    tx = json.loads(tx)
    for k in _INTS:
        if k in tx:
            tx[k] = int(tx[k], 16)
    tx["data"] = data
    raw = eth.sign_transaction(tx, key)
    tx = data = None
    put_hex(raw)
    if not decode:
        print()
        return
    d = eth.decode_transaction(raw)
    raw = None
    print(" %s %s" % (d["from"], hx(d["hash"])))


def main(path):
    with open(path, "rb") as f:
        while True:
            head = f.readline()
            if not head:
                break
            parts = head.decode().split(" ", 3)
            head = None
            gc.collect()
            op = parts[0]
            a = binascii.unhexlify(parts[1])
            payload = f.read(int(parts[2]))
            if op in ("T", "S"):
                transaction(a, parts[3], payload, op == "T")
            elif op == "M":
                print(hx(eth.sign_message(payload, a)))
            elif op == "R":
                try:
                    print(eth.recover_message(payload, a))
                except ValueError as e:
                    print("ERR %s" % e)
            else:
                raise ValueError("unknown op %r" % op)
            parts = payload = a = None


main(sys.argv[1])
