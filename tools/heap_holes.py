# Fragment the MicroPython heap into holes of a given size, to test what a code path
# asks for at once (runs on MicroPython; the unix port cannot report its largest
# allocation, but a heap with no free block above `size` fails any that is larger).
#
#   keep = heap_holes.holes(2048)   # the heap is now kept blocks with free holes of
#   ...                             # about 2 KB between them (no free block larger)
#   keep = None; gc.collect()       # the heap whole again
#   heap_holes.largest()            # bytes of the largest free block, by allocation
#
# holes(size): allocate bytearrays of `size` bytes until MemoryError (then smaller ones
# down to 16 bytes, so no other free block is left anywhere), drop every other one of
# the `size` ones, gc.collect(). Returns what is kept (a list): holding it keeps the
# heap fragmented. A hole is at least `size` bytes; two freed bytearrays that ended up
# next to each other (the filling reuses garbage out of address order) make one of up to
# about twice that, so the bound in force is the largest free block afterwards:
# micropython.mem_info() prints it as "max free sz", in GC blocks (16 bytes on 32 bits,
# 32 on 64). Long-lived objects the code under test makes land in the holes too, so the
# holes shrink as it runs.
import gc


def holes(size):
    gc.collect()
    rest = []  # below `size`: so the only free blocks left are the holes
    full = [rest]  # no list may grow once the heap is full
    try:
        while True:
            full.append(bytearray(size))
    except MemoryError:
        pass
    n = size // 2
    while n >= 16:
        try:
            while True:
                rest.append(bytearray(n))
        except MemoryError:
            n //= 2
    i = 1
    while i < len(full):  # in place, with no object made: the heap is full
        full[i] = None
        i += 2
    gc.collect()
    return full


def largest(step=16):
    """Bytes of the largest free block (within `step`), found by allocation."""
    gc.collect()
    lo, hi = 0, 1 << 22
    while hi - lo > step:
        mid = (lo + hi) // 2
        try:
            bytearray(mid)
            lo = mid
        except MemoryError:
            hi = mid
    gc.collect()
    return lo
