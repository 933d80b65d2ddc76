"""Billing and rate parsing: one day of one-minute energy buckets priced across 48
half-hourly rates, and a 48-result Octopus page (one day of Agile) parsed, on CPython and on the
MicroPython unix port (80 KB heap: the .mpy bytecode sits in it, where a frozen plug keeps it
in flash) side by side in the same run."""

import json
import os
import shutil
import sys
import tempfile
import time

from tools import mp
from tools.paths import FIRMWARE, ROOT, shim_micropython

CASE = r"""
import json, time
try:
    import gc
except ImportError:
    gc = None
from plug.billing import Billing
from plug.store import Store
from plug import rates_fiat
try:
    ticks = time.ticks_us
    diff = lambda a, b: time.ticks_diff(a, b)
except AttributeError:
    ticks = lambda: int(time.perf_counter() * 1e6)
    diff = lambda a, b: a - b
ROOT = %r
sched = [(i * 1800, (i + 1) * 1800, 200000 + i * 1111) for i in range(48)]
def segs(t0, t1):
    out, t = [], t0
    for s, e, r in sched:
        if e > t and s < t1:
            out.append((t, min(e, t1), r, 0))
            t = min(e, t1)
    return out
b = Billing(Store(ROOT))
bill_us = 0
for h in range(24):  # billed hourly (as the ledger lists them), one store write per pass
    chunks = [(i * 60, (i + 1) * 60, 1234567 + i) for i in range(h * 60, h * 60 + 60)]
    t = ticks()
    b.bill('M1/A', chunks, segs)
    bill_us += diff(ticks(), t)
    chunks = None
    gc and gc.collect()  # as the plug's main loop does between passes
n_lines = len(b.lines('M1/A'))
b = Billing = None
if gc:  # the plug parses rates with billing loaded; 64 KB here holds one or the other
    import sys
    del sys.modules['plug.billing']
    gc.collect()
with open(ROOT + '/../page.json') as f:
    body = f.read()
gc and gc.collect()
t = ticks()
rates_fiat.parse_octopus(json.loads(body), 6, 10**9)
parse_us = diff(ticks(), t)
print(json.dumps([bill_us, parse_us, n_lines, len(body)]))
"""


def _cpython(root):
    shim_micropython()
    sys.path.insert(0, FIRMWARE)
    ns = {}
    import io
    import contextlib

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(CASE % root, ns)
    return json.loads(buf.getvalue().strip().splitlines()[-1])


def octopus_page(n=48):
    res = []
    for i in range(n):  # newest first, half-hourly
        t = 1779667200 + (n - 1 - i) * 1800
        a, b = time.gmtime(t), time.gmtime(t + 1800)
        res.append({"value_exc_vat": round(13.4286 + i * 0.1905, 4),
                    "value_inc_vat": round((13.4286 + i * 0.1905) * 1.05, 4),
                    "valid_from": time.strftime("%Y-%m-%dT%H:%M:%SZ", a),
                    "valid_to": time.strftime("%Y-%m-%dT%H:%M:%SZ", b), "payment_method": None})
    return json.dumps({"count": n, "next": None, "previous": None, "results": res})


def run():
    tmp = tempfile.mkdtemp()
    try:
        with open(os.path.join(tmp, "page.json"), "w") as f:
            f.write(octopus_page())
        os.mkdir(os.path.join(tmp, "py"))
        os.mkdir(os.path.join(tmp, "mp"))
        py = _cpython(os.path.join(tmp, "py"))
        from tools.build_mpy import build
        from tools.paths import BUILD

        build("unix")  # run from .mpy, as the plug does
        dirs = tuple(os.path.join(BUILD, "unix", d) for d in ("lib", "firmware", "boards"))
        out = mp.run(CASE % os.path.join(tmp, "mp"), cwd=ROOT, path_dirs=dirs, heap="80k")
        m = json.loads(out.strip().splitlines()[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("bill 1440 one-minute buckets over 48 rates (24 passes, %d lines):" % py[2])
    print("  cpython      %8.1f ms   micropython(unix,80k) %8.1f ms" % (py[0] / 1e3, m[0] / 1e3))
    print("parse octopus page (48 results, %d bytes):" % py[3])
    print("  cpython      %8.1f ms   micropython(unix,80k) %8.1f ms" % (py[1] / 1e3, m[1] / 1e3))


if __name__ == "__main__":
    run()
