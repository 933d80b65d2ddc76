"""secp256k1 on the MicroPython unix port (lib/ecdsa_micro) next to python-ecdsa (and
coincurve, if installed) on CPython, measured in the same run; plus the heap that signing
needs on the unix port and the cost of the three modular inverses we could use.

Each figure is the best of several batches (the machine may be shared), in microseconds
per operation.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

from tools import mp
from tools.paths import LIB, executable

REPS = 5

MP_BENCH = r"""
import time, gc
import ecdsa_micro
from ecdsa_micro import curve, gtable

def best(fn, n, reps=%(reps)d):
    fn()
    b = 1e18
    for _ in range(reps):
        t0 = time.ticks_us()
        for _ in range(n):
            fn()
        b = min(b, time.ticks_diff(time.ticks_us(), t0) / n)
    return b

key = bytes(range(1, 33))
d = bytes(32 - i for i in range(32))
r, s, v = ecdsa_micro.sign(d, key)
pub = ecdsa_micro.public_key(key)
print("source", gtable.source())
print("sign", best(lambda: ecdsa_micro.sign(d, key), 20))
print("public_key", best(lambda: ecdsa_micro.public_key(key), 20))
print("recover", best(lambda: ecdsa_micro.recover(d, r, s, v), 4))
print("verify", best(lambda: ecdsa_micro.verify(d, r, s, pub), 4))
a = curve.GX
P = curve.P
def euclid(a, m):
    lm, hm = 1, 0
    low, high = a %% m, m
    while low > 1:
        q = high // low
        lm, low, hm, high = hm - lm * q, high - low * q, lm, low
    return lm %% m
print("inv_lehmer", best(lambda: curve.inv(a, P), 50))
print("inv_euclid", best(lambda: euclid(a, P), 50))
print("inv_pow", best(lambda: pow(a, P - 2, P), 5))
gtable._state = False
print("sign_no_table", best(lambda: ecdsa_micro.sign(d, key), 5))
"""

HEAP_PROBE = r"""
import gc
gc.collect()
before = gc.mem_alloc()
import ecdsa_micro
key = bytes(range(1, 33))
gc.collect()
print("import", gc.mem_alloc() - before)
# fill the heap with 256-byte ballast blocks until only about SPARE bytes stay free
n = (gc.mem_free() - %(spare)d) // 272
chunks = [None] * (n if n > 0 else 0)
for i in range(len(chunks)):
    chunks[i] = bytearray(256)
gc.collect()
print("free", gc.mem_free())
%(body)s
print("done")
"""
SIGN = "ecdsa_micro.sign(bytes(32), key)"
RECOVER = ("r, s, v = ecdsa_micro.sign(bytes(32), key)\n"
           "ecdsa_micro.recover(bytes(32), r, s, v)")


def _best(fn, n, reps=REPS):
    fn()
    b = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        b = min(b, (time.perf_counter() - t0) / n * 1e6)
    return b


def _cpython_peers():
    from ecdsa import SECP256k1, SigningKey, VerifyingKey
    from ecdsa.util import sigencode_string

    key = bytes(range(1, 33))
    d = bytes(32 - i for i in range(32))
    sk = SigningKey.from_string(key, curve=SECP256k1)
    vk = sk.get_verifying_key()
    sig = sk.sign_digest_deterministic(d, hashfunc=hashlib.sha256, sigencode=sigencode_string)
    out = {
        "ecdsa sign_digest": _best(lambda: sk.sign_digest(d), 50),
        "ecdsa sign_digest_deterministic": _best(
            lambda: sk.sign_digest_deterministic(d, hashfunc=hashlib.sha256), 50),
        "ecdsa public key": _best(
            lambda: SigningKey.from_string(key, curve=SECP256k1).get_verifying_key(), 50),
        "ecdsa recover": _best(
            lambda: VerifyingKey.from_public_key_recovery_with_digest(sig, d, SECP256k1), 5),
        "ecdsa verify_digest": _best(lambda: vk.verify_digest(sig, d), 10),
    }
    try:
        import coincurve
    except ImportError:
        return out, None
    ck = coincurve.PrivateKey(key)
    rsig = ck.sign_recoverable(d, hasher=None)
    cc = {
        "coincurve sign": _best(lambda: ck.sign_recoverable(d, hasher=None), 500),
        "coincurve recover": _best(lambda: coincurve.PublicKey.from_signature_and_message(
            rsig, d, hasher=None), 500),
    }
    return out, cc


def _ours_on_cpython():
    sys.path.insert(0, LIB)
    import ecdsa_micro

    key = bytes(range(1, 33))
    d = bytes(32 - i for i in range(32))
    r, s, v = ecdsa_micro.sign(d, key)
    return {
        "sign": _best(lambda: ecdsa_micro.sign(d, key), 50),
        "recover": _best(lambda: ecdsa_micro.recover(d, r, s, v), 10),
    }


def _parse(out):
    res = {}
    for line in out.splitlines():
        k, _, v = line.partition(" ")
        try:
            res[k] = float(v)
        except ValueError:
            res[k] = v
    return res


def _compiled(dest):
    """lib/ecdsa_micro as .mpy (x64) in dest, as a plug would load it from its filesystem."""
    src_dir = os.path.join(LIB, "ecdsa_micro")
    pkg = os.path.join(dest, "ecdsa_micro")
    os.makedirs(pkg)
    sizes = {}
    for name in sorted(os.listdir(src_dir)):
        src = os.path.join(src_dir, name)
        if name.endswith(".py"):
            dst = os.path.join(pkg, name[:-3] + ".mpy")
            subprocess.run([executable("mpy-cross"), "-o", dst, src], check=True)
            sizes[name[:-3] + ".mpy"] = os.path.getsize(dst)
        elif name.endswith(".bin"):
            shutil.copy(src, pkg)
    return sizes


def _heap_needed(path, body, lo=0, hi=40000, step=256):
    """Least free heap (bytes, after import) with which `body` completes on a 64 KB heap."""
    free = None
    while hi - lo > step:
        mid = (lo + hi) // 2
        r = mp.run(HEAP_PROBE % {"spare": mid, "body": body}, path_dirs=(path,), check=False)
        if r.returncode == 0 and "done" in r.stdout:
            hi = mid
            free = _parse(r.stdout)
        else:
            lo = mid
    return free


def run(rounds=3):
    # alternate CPython and MicroPython rounds and keep each side's best, so a busy
    # spell on a shared machine does not favour either
    peers = cc = m = None
    for _ in range(rounds):
        p, c = _cpython_peers()
        peers = p if peers is None else {k: min(v, peers[k]) for k, v in p.items()}
        cc = c if cc is None else {k: min(v, cc[k]) for k, v in c.items()}
        mm = _parse(mp.run(MP_BENCH % {"reps": REPS}, timeout=600))
        m = mm if m is None else {k: (min(v, m[k]) if isinstance(v, float) else v)
                                  for k, v in mm.items()}
    ours_cpy = _ours_on_cpython()

    print("secp256k1 (us/op, best of %d x %d)   MicroPython unix (64k heap)   CPython peers"
          % (REPS, rounds))
    print("  table source on unix port: %s" % m["source"])
    rows = (
        ("sign", m["sign"], peers["ecdsa sign_digest"], "python-ecdsa sign_digest"),
        ("sign (RFC 6979 both)", m["sign"], peers["ecdsa sign_digest_deterministic"],
         "python-ecdsa sign_digest_deterministic"),
        ("public_key", m["public_key"], peers["ecdsa public key"], "python-ecdsa key+pubkey"),
        ("recover", m["recover"], peers["ecdsa recover"],
         "python-ecdsa from_public_key_recovery"),
        ("verify", m["verify"], peers["ecdsa verify_digest"], "python-ecdsa verify_digest"),
    )
    for name, ours, peer, what in rows:
        print("  %-22s %9.0f   %9.0f  %-40s ratio %.2fx" % (name, ours, peer, what, ours / peer))
    worst = max(ours / peer for name, ours, peer, _ in rows if name.startswith("sign"))
    print("  target sign within 3x of python-ecdsa (worse of its two signers): %.2fx, %s"
          % (worst, "met" if worst <= 3 else "NOT met"))
    if cc:
        for k, v in cc.items():
            print("  %-22s %9s   %9.1f  %s" % (k.split()[1], "", v, k))
    else:
        print("  (coincurve not installed: no libsecp256k1 peer)")
    print("  sign without table     %9.0f   (fallback: GLV + wNAF, no table)" % m["sign_no_table"])
    print("  ecdsa_micro on CPython: sign %.0f us, recover %.0f us"
          % (ours_cpy["sign"], ours_cpy["recover"]))
    print("  modular inverse mod p on the unix port: Lehmer %.0f us, Euclid %.0f us, "
          "pow(x, p-2, p) %.0f us" % (m["inv_lehmer"], m["inv_euclid"], m["inv_pow"]))

    tmp = tempfile.mkdtemp(prefix="bench_ecdsa_")
    try:
        sizes = _compiled(tmp)
        sign = _heap_needed(tmp, SIGN)
        rec = _heap_needed(tmp, RECOVER)
    finally:
        shutil.rmtree(tmp)
    print("  heap (unix port, 64-bit, package as .mpy): import keeps %d B; first sign runs "
          "with %d B free, sign + recover with %d B free"
          % (sign["import"], sign["free"], rec["free"]))
    print("  .mpy sizes (x64): %s; g_table.bin %d B"
          % (", ".join("%s %d" % kv for kv in sorted(sizes.items())),
             os.path.getsize(os.path.join(LIB, "ecdsa_micro", "g_table.bin"))))


if __name__ == "__main__":
    run()
