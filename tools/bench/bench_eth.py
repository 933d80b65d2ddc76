"""lib/eth.py: full sign_transaction on the MicroPython unix port (lib/ as .mpy, 64 KB
heap) next to eth-account on CPython, measured in the same run; the heap a signed
transaction needs on the unix port; the size of each .mpy that ships (build/esp32).

Times are the best of several batches (the machine may be shared), in milliseconds
per transaction. Heap figures:
  code      heap taken by importing eth + eth_tx and their libraries as .mpy (on the
            ESP32 frozen modules take none of it)
  peak      the smallest free heap (1 KB steps, fragmented as it is after imports)
            in which sign_transaction still succeeds: what signing needs at its peak
  retained  what one signature leaves allocated after gc.collect() (should be ~0)
"""

import os
import subprocess
import tempfile
import time

from tools import mp
from tools.paths import BUILD, ROOT

REPS = 5
KEY = bytes([0x46] * 32)
TOKEN = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
PAYEE = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"


def txs():
    data = (bytes.fromhex("a9059cbb") + bytes(12) + bytes.fromhex(PAYEE[2:])
            + (10**18).to_bytes(32, "big"))
    t0 = {"nonce": 9, "gasPrice": 20 * 10**9, "gas": 60000, "to": TOKEN, "value": 0,
          "data": data, "chainId": 1}
    t2 = {"type": 2, "nonce": 9, "maxFeePerGas": 30 * 10**9, "maxPriorityFeePerGas": 10**9,
          "gas": 60000, "to": TOKEN, "value": 0, "data": data, "chainId": 11155111,
          "accessList": []}
    return {"type 0 (EIP-155)": t0, "type 2 (EIP-1559)": t2}


MP_TIME = r"""
import time, gc
import eth, eth_tx
key = bytes([0x46] * 32)
def best(fn, n, reps=%(reps)d):
    fn()
    b = 1e18
    for _ in range(reps):
        t0 = time.ticks_us()
        for _ in range(n):
            fn()
        b = min(b, time.ticks_diff(time.ticks_us(), t0) / n)
    return b
for name, tx in %(txs)r:
    print("%%s|%%.3f" %% (name, best(lambda: eth.sign_transaction(tx, key), 10) / 1000))
gc.collect()
a = gc.mem_alloc()
eth.sign_transaction(tx, key)
gc.collect()
print("retained|%%d" %% (gc.mem_alloc() - a))
"""

MP_CODE = r"""
import gc
gc.collect()
a = gc.mem_alloc()
import eth, eth_tx
gc.collect()
print(gc.mem_alloc() - a)
"""

MP_BUDGET = r"""
import gc
import eth, eth_tx
key = bytes([0x46] * 32)
tx = %(tx)r
eth.address(key)
gc.collect()
ballast = []
while gc.mem_free() > %(budget)d + 128:
    ballast.append(bytearray(128))
gc.collect()
eth.sign_transaction(tx, key)
print("ok")
"""


def lib_mpy():
    """lib/ as unix-port .mpy: build/unix/lib from `make mpy`, else a private build."""
    built = os.path.join(BUILD, "unix", "lib")
    if os.path.isdir(built):
        return built
    import sys

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from mpy_lib import build_lib

    return build_lib(tempfile.mkdtemp(prefix="bench_eth_"))


def cpython_times():
    from eth_account import Account

    out = {}
    for name, tx in txs().items():
        tx = {k: v for k, v in tx.items() if (k, v) != ("type", 0)}
        Account.sign_transaction(tx, KEY)
        best = 1e18
        for _ in range(REPS):
            t0 = time.perf_counter()
            for _ in range(20):
                Account.sign_transaction(tx, KEY)
            best = min(best, (time.perf_counter() - t0) / 20 * 1000)
        out[name] = best
    return out


def peak_heap(lib, tx):
    """Smallest free heap (KB) in which signing tx succeeds, by bisection."""
    lo, hi = 1, 48  # KB: fails at lo (assumed), succeeds at hi
    if not _fits(lib, tx, hi):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _fits(lib, tx, mid):
            hi = mid
        else:
            lo = mid
    return hi


def _fits(lib, tx, kb):
    r = mp.run(MP_BUDGET % {"tx": tx, "budget": kb * 1024}, path_dirs=(lib,), heap="96k",
               check=False)
    return r.returncode == 0 and r.stdout.strip() == "ok"


def mpy_sizes():
    root = os.path.join(BUILD, "esp32")
    if not os.path.isdir(root):
        subprocess.run([os.path.join(ROOT, ".venv", "bin", "python"), "-m", "tools.build_mpy"],
                       cwd=ROOT, check=True, capture_output=True)
    sizes = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".mpy"):
                p = os.path.join(dirpath, f)
                sizes.append((os.path.relpath(p, root), os.path.getsize(p)))
    return sorted(sizes)


def run():
    lib = lib_mpy()
    cases = txs()
    out = mp.run(MP_TIME % {"reps": REPS, "txs": list(cases.items())}, path_dirs=(lib,),
                 heap="64k")
    mp_times = dict(line.split("|") for line in out.strip().splitlines())
    cpy = cpython_times()
    print("sign_transaction, ERC-20 transfer (ms per tx)   MicroPython unix   eth-account CPython"
          "   ratio")
    for name in cases:
        m = float(mp_times[name])
        print("  %-44s %10.2f %18.2f %9.1fx" % (name, m, cpy[name], m / cpy[name]))
    code = int(mp.run(MP_CODE, path_dirs=(lib,), heap="64k").strip())
    print("heap on the unix port (64 KB heap, lib/ as .mpy)")
    print("  code     eth + eth_tx + keccak + rlp + ecdsa_micro  %6d bytes" % code)
    peaks = []
    for name, tx in cases.items():
        kb = peak_heap(lib, tx)
        peaks.append(kb)
        print("  peak     sign_transaction %-26s <= %s KB free heap (target < 24 KB)"
              % (name, kb if kb else "> 48"))
    met = all(kb and kb < 24 for kb in peaks)
    print("  target peak heap < 24 KB for both transaction types: %s"
          % ("met" if met else "NOT met"))
    print("  retained after one sign_transaction + gc.collect()  %6s bytes"
          % mp_times["retained"])
    print(".mpy sizes (build/esp32, xtensawin)")
    total = 0
    for rel, size in mpy_sizes():
        if rel.startswith("lib" + os.sep):
            print("  %7d  %s" % (size, rel))
        total += size
    print("  %7d  all device code (lib, firmware, boards)" % total)


if __name__ == "__main__":
    run()
