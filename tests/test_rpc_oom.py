"""A node call that fails for want of the plug's own memory does not put the node into
cooldown. Seen on the ESP32-shaped 32-bit build: a receipt poll during a payment ran out of
heap ("out of memory: memory allocation failed, allocating 661 bytes"), the client then
treated the node as down and refused every call for 30 s ("not tried, no node answered
9 s ago"), so the payment waited on a node that was fine while memory came back at once."""

import heap_holes
import pytest

from paytest import build_dir
from tools import mp

pytestmark = pytest.mark.slow

CODE = """
import gc
from plug.rpc import RPC, Unreachable
r = RPC(%r, timeout_s=5, retries=0, cooldown_ms=30000)
r.call("eth_blockNumber")
from plug import iobuf
iobuf.CLIENT.free = []  # its reply buffers come from the GC, as when the pool is lent out
gc.collect()
holes = [None] * 400
got = e = None
""" + heap_holes.cut(240) + """
try:
    r.call("eth_blockNumber")
    got = "answered on a heap in holes"
except Unreachable as e:
    got = str(e)
holes = None
gc.collect()
print(repr(got))
try:
    print(repr(r.call("eth_blockNumber")))
except Unreachable as e:
    print(repr(str(e)))
"""


def test_a_call_that_ran_out_of_memory_leaves_the_node_usable(devnet):
    out = mp.run(CODE % devnet.url, heap="64k", path_dirs=build_dir()).strip().splitlines()
    first, second = eval(out[-2]), eval(out[-1])
    assert "out of memory" in first
    assert second.startswith("0x"), second  # the block number: the node was asked again
