# 512-byte I/O buffers kept for reuse. On an ESP32 without PSRAM, once a payment's short-
# and long-lived objects have interleaved, the heap can have 24 KB free in no piece of
# 512 bytes (measured on the ESP32-shaped 32-bit build): a buffer asked of the GC then
# fails, and with it the energy checkpoint, an RPC reply or an answer. Buffers taken from
# a pool come back to it and are never given to the GC; the app fills the pools at boot,
# while the heap is whole. One pool per user, so answers streaming to four clients
# cannot take the buffer an energy checkpoint or a payment needs:
#   STORE    the store's saves and loads (plug/store.py; synchronous: one is enough)
#   CLIENT   a request's head and its reply in pieces (plug/http_client.py)
#   SERVER   an answer being written, one per connection (plug/server.py)
#
#   reserve()           at boot: every pool full
#   b = POOL.take()     a buffer (from the GC only when the pool is empty)
#   POOL.give(b)        back when done: nothing may keep it or a view of it afterwards
#   POOL.give_all(bs)   each buffer of a list (a reply read in pieces) back
SIZE = 512


class Pool:
    def __init__(self, keep):
        self.free = []
        self.keep = keep  # at most kept: more given back go to the GC

    def take(self):
        return self.free.pop() if self.free else bytearray(SIZE)

    def give(self, b):
        if len(self.free) >= self.keep or type(b) is not bytearray or len(b) != SIZE:
            return
        for x in self.free:
            if x is b:  # given back twice: once is enough
                return
        self.free.append(b)

    def give_all(self, bufs):
        if type(bufs) is list:
            for b in bufs:
                self.give(b)


STORE = Pool(1)
CLIENT = Pool(4)  # the head, then a reply of up to 1.5 KB (a receipt: ~1.1 KB)
SERVER = Pool(2)


def reserve():
    for p in (STORE, CLIENT, SERVER):
        while len(p.free) < p.keep:
            p.free.append(bytearray(SIZE))
