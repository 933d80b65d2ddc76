"""One full payment (sign, send, receipt) from the plug on the unix port against anvil:
heap it needs, and JSON-RPC round trips it makes.

Heap figures, all from build/unix (.mpy, as a virtual plug runs it):
  - code: heap taken by importing the payment stack (eth, ecdsa_micro, rpc, chain,
    payments, wallet, store). On an ESP32 with these modules frozen it is flash, not heap.
  - working set: the smallest free heap left after the imports with which one payment
    still completes (found by bisection with a ballast allocation).
  - min -X heapsize: the smallest heap cap with which import + payment completes.
Round trips: HTTP requests per payment, ours (nonce, fees, balance check, send, then
receipt polling) next to the minimal fire-and-forget flow of the embedded libraries
(nonce, gas price, send: 3, with no receipt and no recovery).
"""

import os
import sys
import tempfile

from tools import mp
from tools.devnet import Devnet
from tools.paths import ROOT

PAYEE = "0x2546BcD3c84621e976D8185a91A922aE77ECEc30"

_CODE = """
import gc
gc.collect()
base = gc.mem_alloc()
from payplug import *
p = make(ST)
p.wallet.sign_transaction({"to": %(payee)r, "nonce": 0, "gas": 21000, "maxFeePerGas": 2,
                          "maxPriorityFeePerGas": 1, "chainId": 1})  # loads lazy modules
p.chain.check_chain()  # and requests
gc.collect()
code = gc.mem_alloc() - base
ballast = [None] * 512
i = 0
while %(leave)d and gc.mem_free() > %(leave)d + 1024 and i < 512:
    ballast[i] = bytearray(min(4096, gc.mem_free() - %(leave)d - 512))
    i += 1
gc.collect()
free = gc.mem_free()
t0 = p.chain.rpc.round_trips
r = p.pay(%(iid)r, %(payee)r, 5)
t1 = p.chain.rpc.round_trips
settle(p)
print('RESULT', r['st'], '%%d+%%d' %% (t1 - t0, p.chain.rpc.round_trips - t1), code, free)
"""


def _setup_paths():
    import eth_account  # noqa: F401  (before lib/ shadows the rlp package)

    for d in (os.path.join(ROOT, "tests"), os.path.join(ROOT, "lib"),
              os.path.join(ROOT, "firmware")):
        if d not in sys.path:
            sys.path.insert(0, d)


_RUNS = [0]


def _attempt(devnet, dirs, heap_kb, leave=0, eip1559=True):
    from paytest import Plug, config

    _RUNS[0] += 1
    n = _RUNS
    cfg = config(devnet.url)
    cfg["chain"]["eip1559"] = eip1559
    plug = Plug(tempfile.mkdtemp(prefix="benchpay-"), cfg, heap="%dk" % heap_kb)
    devnet.fund(plug.address, 10**18)
    code = "ST = %r\n" % plug.state + _CODE % {"leave": leave, "iid": "b%d" % n[0],
                                                "payee": PAYEE}
    r = mp.run(code, heap="%dk" % heap_kb, path_dirs=dirs, check=False, timeout=120)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT confirmed"):
            _, _, trips, code_b, free = line.split()
            return trips, int(code_b), int(free)
    return None


_ROM_PREFIX = """
import gc, sys, vfs
gc.collect()
u0 = gc.mem_alloc()
with open(%(img)r, 'rb') as f:
    rom = f.read()
vfs.mount(vfs.VfsRom(rom), '/rom')
sys.path[:0] = ['/rom', '/rom/lib']
gc.collect()
extra = gc.mem_free() - (%(pool)d - u0)  # the rest of the heap is what a %(pool)d B cap gives
ballast = bytearray(extra - 64) if extra > 64 else None
gc.collect()
"""


def _romfs_image(dirs):
    """A ROMFS image of the payment stack (lib/, plug/, the test's payplug), as an ESP32's
    romfs partition would hold it: bytecode then runs in place instead of in the heap."""
    import shutil
    import subprocess

    from tools.paths import BUILD, executable

    src = tempfile.mkdtemp(prefix="benchpay-rom-")
    shutil.copytree(os.path.join(BUILD, "unix", "lib"), os.path.join(src, "lib"))
    shutil.copytree(os.path.join(BUILD, "unix", "firmware", "plug"), os.path.join(src, "plug"))
    subprocess.run([executable("mpy-cross"), "-march=x64", "-o",
                    os.path.join(src, "payplug.mpy"), os.path.join(ROOT, "tests", "payplug.py")],
                   check=True)
    img = os.path.join(tempfile.mkdtemp(prefix="benchpay-img-"), "pay.romfs")
    subprocess.run([executable("mpremote"), "romfs", "--no-mpy", "-o", img, "build", src],
                   check=True, capture_output=True)
    shutil.rmtree(src, ignore_errors=True)
    return img


def _attempt_rom(devnet, img, pool_kb):
    """One payment from ROMFS with `pool_kb` of heap beside the image (ballast takes the rest)."""
    from paytest import Plug, config

    _RUNS[0] += 1
    plug = Plug(tempfile.mkdtemp(prefix="benchpay-"), config(devnet.url), heap="256k")
    devnet.fund(plug.address, 10**18)
    code = (_ROM_PREFIX % {"img": img, "pool": pool_kb * 1024} + "ST = %r\n" % plug.state
            + _CODE % {"leave": 0, "iid": "r%d" % _RUNS[0], "payee": PAYEE})
    heap = "%dk" % (os.path.getsize(img) // 1024 + pool_kb + 64)
    r = mp.run(code, heap=heap, path_dirs=(), check=False, timeout=120)
    return any(ln.startswith("RESULT confirmed") for ln in r.stdout.splitlines())


def _bisect(ok, lo, hi):
    """Smallest x in [lo, hi] with ok(x) true (ok monotone); None if ok(hi) is false."""
    if not ok(hi):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def run():
    _setup_paths()
    from paytest import build_dir

    dirs = build_dir()
    with Devnet() as devnet:
        big = _attempt(devnet, dirs, 256)
        if big is None:
            print("payment failed even with a 256 KB heap")
            return
        trips, code_b, _ = big
        legacy = _attempt(devnet, dirs, 256, eip1559=False)
        step = 1024
        working = _bisect(lambda k: _attempt(devnet, dirs, 256, leave=k * step) is not None,
                          1, 64)
        min_heap = _bisect(lambda k: _attempt(devnet, dirs, k * 8) is not None, 6, 32)
        img = _romfs_image(dirs)
        rom_heap = _bisect(lambda k: _attempt_rom(devnet, img, k * 4), 4, 32)
    print("heap, code of the payment stack (.mpy in RAM; flash when frozen): %6d bytes"
          % code_b)
    if working:
        print("heap, working set of one payment (sign, send, receipt):    <= %6d bytes"
              % (working * step))
    print("heap, smallest -X heapsize for import + one payment:          %s"
          % ("%d KB" % (min_heap * 8) if min_heap else "> 256 KB"))
    print("heap, smallest heap for import + one payment, code in ROMFS:  %s   "
          "(+ metering loop peak 20 KB = %s; target: the 64 KB cap)"
          % ("%d KB" % (rom_heap * 4) if rom_heap else "> 128 KB",
             "%d KB" % (rom_heap * 4 + 20) if rom_heap else "?"))
    print("rpc round trips per payment (pay + steps until confirmed; chain id checked once "
          "per boot, not counted): plug EIP-1559 %s, plug legacy %s, fire-and-forget peer 3+0 "
          "(no receipt)" % (trips, legacy[0] if legacy else "-"))


if __name__ == "__main__":
    run()
