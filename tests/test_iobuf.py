"""The energy checkpoint on a fragmented heap (plug/iobuf.py). On the ESP32-shaped 32-bit
build, after a payment with the endpoints polled, 24 KB were free in no piece of 512
bytes, and `[meter] checkpoint failed ... MemoryError allocating 512 bytes` followed:
energy at risk. Here the heap is cut into holes far smaller than 512 bytes; the ledger's
save still works with the buffers the app reserves at boot, and fails without them (the
control, so the test can fail)."""

import pytest

from tools import mp

CODE = """
import gc
from plug import iobuf
from plug.store import Store
iobuf.STORE.keep = %d  # 0: the control, each buffer asked of the GC as before
iobuf.reserve()
s = Store("st")
led = {"channels": {"M1/A": [[i, i * 1000, 0] for i in range(40)]}}
s.save("ledger", led)
s.load("ledger")
gc.collect()
holes = [None] * 1200
n = i = 0
whole = got = e = None  # every global made before the heap is cut (a dict grows)
try:  # fill the heap with 96-byte blocks, then free every other one
    while n < 1200:
        holes[n] = bytearray(80)
        n += 1
except MemoryError:
    pass
while i < n:
    holes[i] = None
    i += 2
gc.collect()
try:
    bytearray(512)
    whole = "a 512-byte block fits"
except MemoryError:
    whole = "no 512-byte block"
try:  # the checkpoint (a load is a boot's, not steady state's: after the holes go)
    led["channels"]["M1/A"][0][1] += 1
    s.save("ledger", led)
except MemoryError:
    got = "MemoryError"
holes = None
gc.collect()
if got is None:
    got = s.load("ledger")["channels"]["M1/A"][0][1]
print(repr((whole, got)))
"""


@pytest.mark.parametrize("keep, saved", [(1, 1), (0, "MemoryError")])
def test_a_checkpoint_is_saved_on_a_heap_with_no_512_byte_block(keep, saved, mpy_dirs,
                                                                 tmp_path):
    out = mp.run(CODE % keep, heap="64k", path_dirs=mpy_dirs, cwd=str(tmp_path))
    whole, got = eval(out.strip().splitlines()[-1])
    assert whole == "no 512-byte block"
    assert got == saved



PACK = """
import gc, sys
from plug.ledger import _pack
b = list(range(4 * 24 + 1))  # 24 buckets' edges and energy, as a channel holds them
out = _pack(b, 24)  # warm (a first call's own objects; the global made)
out = None
gc.collect()
a = gc.mem_alloc()
out = _pack(b, 24)
gc.collect()  # what is left: the list
print(len(out), gc.mem_alloc() - a, 8 if sys.maxsize > 2**32 else 4)
"""


def test_a_days_buckets_pack_into_a_list_of_their_own_size(mpy_dirs):
    # 24 buckets pack into 73 numbers for the checkpoint. Grown by appends the list asked
    # for room for 128 (512 bytes on the ESP32's 32 bits): the block the checkpoint could
    # not find on the ESP32-shaped heap after a payment.
    n, used, word = map(int, mp.run(PACK, heap="64k", path_dirs=mpy_dirs).split())
    assert n == 73
    assert used <= 73 * word + 64, used  # the list object and its 73 slots, no more
