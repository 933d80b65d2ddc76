# Stage a release bundle from a file as the plug would take it from its HTTP stream
# (plug.update.Staging), in the working directory (the flash), with a heap cap given by
# the test. argv: bundle owner address board running_version config_version length|-
# [chunk]. Prints "STAGED <version>" or "REFUSED <reason>", then the live heap the
# staging held while the files streamed (sampled at each read).
import asyncio
import gc
import sys

gc.collect()
_BASE = gc.mem_alloc()
from plug.update import Staging, UpdateError  # noqa: E402

gc.collect()
_MODULE = gc.mem_alloc() - _BASE
import eth_message  # noqa: E402, F401 - loaded by the app already (config signatures)


def _grow_qstr_pool():
    # New names (dict keys, ...) are interned in qstr pools on the heap, each pool twice the
    # last: one allocated mid-stream (KBs, when the names loaded so far just fill the pool)
    # is the interpreter's, not the staging's. Intern throwaway names until a pool is added.
    gc.collect()
    for i in range(600):
        before = gc.mem_alloc()
        getattr(gc, "_q%d" % i, None)
        if gc.mem_alloc() - before > 1024:
            break


_grow_qstr_pool()


class FileStream:
    """An asyncio stream stand-in over a file, handing out at most `chunk` bytes a read,
    as a socket does."""

    def __init__(self, f, chunk, base):
        self.f = f
        self.chunk = chunk
        self.base = base
        self.peak = 0  # live heap above `base` while the files stream (sampled per read)

    async def readinto(self, mv):
        if self.f.tell() > 4096:
            gc.collect()
            self.peak = max(self.peak, gc.mem_alloc() - self.base)
        return self.f.readinto(mv[:self.chunk])


def main():
    path, owner, address, board, version, cfgv, length = sys.argv[1:8]
    chunk = int(sys.argv[8]) if len(sys.argv) > 8 else 536
    with open(path, "rb") as f:
        gc.collect()
        stream = FileStream(f, chunk, gc.mem_alloc())
        s = Staging(owner, address, board, version, int(cfgv))
        s.on_trial = __import__("os").getenv("UPDATE_ON_TRIAL")  # a release not yet kept
        s.rolled_back = __import__("os").getenv("UPDATE_ROLLED_BACK")  # failed its trial
        try:
            m = asyncio.run(s.run(stream, None if length == "-" else int(length)))
            print("STAGED", m["version"])
        except UpdateError as e:
            print("REFUSED", e)
    print("MODULE", _MODULE)
    print("STREAM_PEAK", stream.peak)


main()
