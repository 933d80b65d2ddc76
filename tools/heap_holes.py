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
# the `size` ones, gc.collect(). They are held in chained lists of a fixed length: a list
# that grew would leave its old storage free, a hole far larger than `size`. Returns what
# is kept (a list): holding it keeps the heap fragmented. A hole is at least `size`
# bytes; two freed bytearrays that ended up next to each other (the filling reuses
# garbage out of address order) make one of up to about twice that, so the bound in
# force is the largest free block afterwards: micropython.mem_info() prints it as "max
# free sz", in GC blocks (16 bytes on 32 bits, 32 on 64). Long-lived objects the code
# under test makes land in the holes too, so the holes shrink as it runs. Names the
# caller binds afterwards must exist before: a namespace that grows needs a block too.
# holes(size, slack=True) frees the smaller ones as well: free pieces below `size` are
# scattered between the kept blocks, as in a heap that has run a while, so what the code
# under test keeps need not fill the holes (a piece next to a hole makes it larger).
import gc

_CHUNK = 32  # slots per list holding the `size` ones (the first: the list before)


def holes(size, slack=False):
    gc.collect()
    keep = [None, None]  # [the newest list of `size` ones, the chain of smaller ones]
    try:
        while True:
            c = [None] * _CHUNK
            c[0] = keep[0]
            keep[0] = c
            i = 1
            while i < _CHUNK:
                c[i] = bytearray(size)
                i += 1
    except MemoryError:
        pass
    m = size // 2
    while m >= 16:
        try:
            while True:
                keep[1] = (keep[1], bytearray(m))
        except MemoryError:
            m //= 2
    c = keep[0]
    while c is not None:  # in place, with no object made: the heap is full
        i = 1
        while i < _CHUNK:
            c[i] = None
            i += 2
        c = c[0]
    if slack:
        keep[1] = None
    gc.collect()
    return keep


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
