"""The chain client on a heap the plug has used for a while.

A node call that fails for want of the plug's own memory does not put the node into
cooldown. Seen on the ESP32-shaped 32-bit build: a receipt poll during a payment ran out of
heap ("out of memory: memory allocation failed, allocating 661 bytes"), the client then
treated the node as down and refused every call for 30 s ("not tried, no node answered
9 s ago"), so the payment waited on a node that was fine while memory came back at once.

A signed transaction is sent from the hex its payment record keeps, in one block of the
request's size: before, its hex was made again, then its JSON, then that encoded, then
head and body joined (the 661 bytes above, the payment's largest allocation), and the
money pass failed on the ESP32-shaped build "allocating 467 bytes" (the hex) pass after
pass."""

import pytest

from eth_account import Account

from paytest import build_dir
from tools import mp
from tools.devnet import FAUCET_KEY
from tools.paths import TOOLS

pytestmark = pytest.mark.slow

CODE = """
import gc
import heap_holes
from plug.rpc import RPC, Unreachable
r = RPC(%r, timeout_s=5, retries=0, cooldown_ms=30000)
r.call("eth_blockNumber")
from plug import iobuf
iobuf.CLIENT.free = []  # its reply buffers come from the GC, as when the pool is lent out
gc.collect()
got = e = keep = None
keep = heap_holes.holes(240)
try:
    r.call("eth_blockNumber")
    got = "answered on a heap in holes"
except Unreachable as e:
    got = str(e)
keep = None
gc.collect()
print(repr(got))
try:
    print(repr(r.call("eth_blockNumber")))
except Unreachable as e:
    print(repr(str(e)))
"""


def test_a_call_that_ran_out_of_memory_leaves_the_node_usable(devnet):
    out = mp.run(CODE % devnet.url, heap="64k", path_dirs=build_dir() + (TOOLS,))
    first, second = (eval(x) for x in out.strip().splitlines()[-2:])
    assert "out of memory" in first
    assert second.startswith("0x"), second  # the block number: the node was asked again


SEND = """
import gc
import heap_holes
from plug import iobuf
from plug.chain import Chain
from plug.rpc import RPC
iobuf.reserve()
c = Chain(RPC(%r, timeout_s=5, retries=0), 31337, True)
c.rpc.call("eth_blockNumber")
raw = %r
got = e = keep = None
keep = heap_holes.holes(600)  # the body (545 bytes) fits; head + body does not
try:
    got = c.send_raw(raw)
except Exception as e:
    got = "%%s: %%s" %% (type(e).__name__, e)
keep = None
gc.collect()
print(repr(got))
"""


def test_a_transaction_is_sent_on_a_heap_with_no_block_of_head_and_body(devnet):
    # a transfer with a 120-byte memo: 233 bytes signed, 466 characters of hex
    tx = dict(to="0x" + "11" * 20, value=1, gas=60000, chainId=31337, nonce=0,
              maxFeePerGas=3 * 10**9, maxPriorityFeePerGas=10**9, data=b"m" * 120)
    signed = Account.from_key(FAUCET_KEY).sign_transaction(tx)
    raw = "0x" + signed.raw_transaction.hex().removeprefix("0x")
    assert 460 <= len(raw) <= 480
    out = mp.run(SEND % (devnet.url, raw), heap="128k", path_dirs=build_dir() + (TOOLS,))
    got = eval(out.strip().splitlines()[-1])
    assert got == "0x" + signed.hash.hex().removeprefix("0x")
    assert devnet.nonce(Account.from_key(FAUCET_KEY).address) == 1  # the node has it
