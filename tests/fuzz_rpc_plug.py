# Device side of the JSON-RPC fuzz (tests/test_fuzz_replies.py): the plug's chain client
# (plug/rpc.py + plug/chain.py) against a local server that answers every request with a
# generated reply. argv: URL N. Runs N chain calls in rotation and prints one line each:
# "OK <call>", "REFUSED <call> <ChainError subclass>", "BAD <call> <what>" when a call
# returned a value it should not have believed, "CRASH <call> <Type>: <msg>" otherwise.
import gc
import sys

from plug.chain import Chain
from plug.rpc import RPC, ChainError

ADDR = "0x2546BcD3c84621e976D8185a91A922aE77ECEc30"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
HASH = "0x" + "ab" * 32
RAW = b"\x02\xc0"
U64 = (1 << 64) - 1


def _int(v, hi):
    return type(v) is int and 0 <= v <= hi


def checks(c):
    import eth
    import binascii

    mine = "0x" + binascii.hexlify(eth.transaction_hash(RAW)).decode()

    def receipt_ok(r):
        return r is None or (isinstance(r, dict) and r.get("hash") == HASH
                             and r.get("status") in (0, 1) and _int(r.get("block"), U64))

    def fees_ok(f):
        return isinstance(f, dict) and all(_int(v, 1 << 256) for v in f.values()) and f

    return (
        ("chain", lambda: Chain(c.rpc, 31337).check_chain(), lambda v: v is None),
        ("nonce", lambda: c.nonce(ADDR), lambda v: _int(v, U64)),
        ("block", c.block_number, lambda v: _int(v, U64)),
        ("balance", lambda: c.balance(ADDR), lambda v: _int(v, (1 << 256) - 1)),
        ("gas", lambda: c.estimate_gas({"from": ADDR, "to": TOKEN, "data": b"\x01"}),
         lambda v: _int(v, 30000000)),
        ("receipt", lambda: c.receipt(HASH), receipt_ok),
        ("send", lambda: c.send_raw("0x02c0"), lambda v: v == mine),
        ("erc20", lambda: c.erc20_balance(TOKEN, ADDR), lambda v: _int(v, (1 << 256) - 1)),
        ("fees", c.fees, fees_ok),
    )


def main(url, n):
    c = Chain(RPC([url], timeout_s=1, retries=0, deadline_s=2), 31337, True)
    calls = checks(c)
    for i in range(n):
        name, fn, ok = calls[i % len(calls)]
        try:
            v = fn()
            print(("OK %s" % name) if ok(v) else ("BAD %s %r" % (name, v))[:200])
        except ChainError as e:
            print("REFUSED %s %s" % (name, type(e).__name__))
        except Exception as e:
            print("CRASH %s %s: %s" % (name, type(e).__name__, str(e)[:100]))
        v = None
        gc.collect()
    print("DONE %d" % n)


main(sys.argv[1], int(sys.argv[2]))
