# 512-byte I/O buffers kept for reuse by the store, the HTTP server and the HTTP client.
# On an ESP32 without PSRAM, once a payment's short- and long-lived objects have
# interleaved, the heap can have 24 KB free in no piece of 512 bytes (measured on the
# ESP32-shaped 32-bit build): a buffer asked of the GC then fails, and with it the energy
# checkpoint, an answer or an RPC reply. These buffers are never given to the GC: the
# app reserves some at boot, while the heap is whole, and what is taken comes back.
#
#   reserve(n)    at boot: n buffers ready
#   b = take()    a buffer (a new one only when all are out)
#   give(b)       back when done: nothing may keep it or a view of it afterwards
#   give_all(bs)  each buffer of a list (a reply read in pieces) back
SIZE = 512
_KEEP = 6  # at most kept: more given back go to the GC
_free = []


def reserve(n):
    while len(_free) < n:
        _free.append(bytearray(SIZE))


def take():
    return _free.pop() if _free else bytearray(SIZE)


def give(b):
    if len(_free) >= _KEEP or type(b) is not bytearray or len(b) != SIZE:
        return
    for x in _free:
        if x is b:  # given back twice: once is enough
            return
    _free.append(b)


def give_all(bufs):
    if type(bufs) is list:
        for b in bufs:
            give(b)
