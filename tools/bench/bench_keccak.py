"""Keccak-256 of 32 B and 1 KB: lib/keccak.py on the MicroPython unix port (viper and
pure-Python back ends) and on the WebAssembly port, next to CPython peers measured in
the same run: eth_hash (pycryptodome's C Keccak, what eth-account uses),
hashlib.sha3_256 (C, different padding, same permutation) and lib/keccak.py's own
pure-Python fallback on CPython. Target: 1 KB under 1 ms on the unix port (viper)."""

import hashlib
import os
import subprocess
import sys
import time

from tools import mp
from tools.paths import LIB, ROOT, executable

SIZES = (32, 1024)

_DEVICE = """
import time, keccak
keccak.set_backend(%r)
for n, reps in %r:
    data = bytes(range(256)) * (n // 256) + bytes(range(n %% 256))
    keccak.keccak256(data)
    t = time.ticks_us()
    for _ in range(reps):
        keccak.keccak256(data)
    print(n, time.ticks_diff(time.ticks_us(), t) / reps)
"""


def _parse(out):
    res = {}
    for line in out.strip().splitlines():
        n, us = line.split()
        res[int(n)] = float(us)
    return res


def _cpython(fn, n, reps):
    data = (bytes(range(256)) * 8)[:n]
    fn(data)
    t = time.perf_counter()
    for _ in range(reps):
        fn(data)
    return (time.perf_counter() - t) / reps * 1e6


def _wasm(reps):
    code = _DEVICE % ("python", reps)
    r = subprocess.run([executable("node"), os.path.join(ROOT, "tools", "wasm_run.mjs"),
                        "--heap", "256k", "--code", code],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    if r.returncode:
        raise RuntimeError(r.stderr)
    return _parse(r.stdout)


def run():
    rows = []
    rows.append(("MicroPython unix, viper", _parse(mp.run(_DEVICE % ("viper", [(32, 2000),
                                                                         (1024, 300)])))))
    rows.append(("MicroPython unix, pure Python", _parse(mp.run(_DEVICE % ("python", [(32, 100),
                                                                               (1024, 10)])))))
    try:
        rows.append(("MicroPython wasm (32-bit), pure Python", _wasm([(32, 20), (1024, 3)])))
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        print("  wasm port not measured: %s" % e)
    from eth_hash.auto import keccak as eth_keccak

    rows.append(("CPython eth_hash (pycryptodome, C)",
                 {n: _cpython(eth_keccak, n, 20000) for n in SIZES}))
    rows.append(("CPython hashlib.sha3_256 (C, SHA-3 pad)",
                 {n: _cpython(lambda d: hashlib.sha3_256(d).digest(), n, 20000) for n in SIZES}))
    sys.path.insert(0, LIB)
    try:
        import keccak

        rows.append(("CPython lib/keccak.py pure Python",
                     {n: _cpython(keccak.keccak256, n, 20 if n > 100 else 100) for n in SIZES}))
    finally:
        sys.path.remove(LIB)
    print("  %-42s %12s %12s" % ("keccak256, us per call", "32 B", "1 KB"))
    for name, res in rows:
        print("  %-42s %12.1f %12.1f" % (name, res[32], res[1024]))
    viper_1k = rows[0][1][1024]
    print("  target 1 KB < 1000 us on the unix port (viper): %.0f us, %s"
          % (viper_1k, "met" if viper_1k < 1000 else "NOT met"))


if __name__ == "__main__":
    run()
