"""MicroPython source for tests of a fragmented heap: `cut(size)` fills the heap with
bytearrays of `size` bytes (into `holes`, a list the test makes while the heap is whole,
with every other global it uses), then frees every other one, so what is free lies in
holes a little larger than `size`."""

_CUT = """
n = i = 0
try:
    while n < len(holes):
        holes[n] = bytearray(SIZE)
        n += 1
except MemoryError:
    pass
while i < n:
    holes[i] = None
    i += 2
gc.collect()
"""


def cut(size):
    return _CUT.replace("SIZE", str(size))
