# ecdsa_micro: secp256k1 ECDSA for MicroPython (and CPython), as Ethereum uses it.
#
#   public_key(priv32) -> 64 bytes x || y (no 0x04 prefix)
#   sign(digest32, priv32) -> (r, s, recid)   RFC 6979 k (HMAC-SHA256), low s, recid 0/1
#   recover(digest32, r, s, recid, low_s=False) -> 64-byte public key
#   verify(digest32, r, s, pub64, low_s=False) -> bool
#
# Signatures: s is always returned low (s <= N/2, the recid flipped to match). recid is
# the parity of R.y, always 0 or 1: a k whose R.x lands in [N, P) (probability ~2**-128)
# would need recid 2 or 3, which Ethereum's v cannot carry, so sign() treats that k as
# unsuitable and takes RFC 6979's next candidate, as it does for r == 0 or s == 0.
# recover() accepts recid 0..3 (bit 1 set: R.x = r + N).
# verify() follows plain ECDSA and accepts a high s unless low_s=True (Ethereum
# transactions require low s since Homestead; ecrecover accepts both). Bad inputs
# (wrong lengths or types, key not in 1 .. N-1, r or s out of range for recover, a
# public key off the curve) raise ECDSAError, a ValueError; messages never carry a key.
# For verify, an r or s out of range is simply an invalid signature: False.
#
# Speed and heap: k * G uses the precomputed table in gtable.py (off the heap), a fixed
# 42 mixed additions per signature; recover/verify add u2 * Q with the GLV endomorphism
# and width-5 NAFs (curve.mul). Side channels, what was cheap: no secret-dependent
# skipped additions or doublings; the signer's two inversions (Lehmer, variable time)
# and its starting Jacobian coordinates are blinded by a secret value drawn from the
# same HMAC-DRBG. Not constant time: table indices and big-int operand sizes still
# depend on k. tools/bench/bench_ecdsa.py prints timings and heap figures.
from .curve import GX, GY, N, P, add, inv, lift_x, mul, on_curve
from .gtable import mul_g
from .rfc6979 import Nonces

__all__ = ("ECDSAError", "N", "P", "public_key", "sign", "recover", "verify")

_HALF_N = N >> 1


class ECDSAError(ValueError):
    """Invalid input to an ECDSA operation (the message names the argument)."""


def _bytes32(value, what):
    if not isinstance(value, (bytes, bytearray)):
        raise ECDSAError("%s must be bytes, got %s" % (what, type(value).__name__))
    if len(value) != 32:
        raise ECDSAError("%s must be 32 bytes, got %d" % (what, len(value)))
    return int.from_bytes(value, "big")


def _private(priv):
    d = _bytes32(priv, "private key")
    if not 0 < d < N:
        raise ECDSAError("private key out of range: must be 1 .. n-1 for secp256k1")
    return d


def _scalar(v, what):
    if not isinstance(v, int) or isinstance(v, bool):
        raise ECDSAError("%s must be an int, got %s" % (what, type(v).__name__))
    return 0 < v < N


def _affine_bytes(pt, blind=1):
    X, Y, Z = pt
    if Z == 0:
        raise ECDSAError("result is the point at infinity")
    zi = inv(Z * blind % P, P) * blind % P
    zi2 = zi * zi % P
    x = X * zi2 % P
    y = Y * zi2 % P * zi % P
    return x.to_bytes(32, "big") + y.to_bytes(32, "big")


def public_key(priv):
    """64-byte public key (x || y, big endian) of a 32-byte private key."""
    d = _private(priv)
    import hashlib

    blind = int.from_bytes(hashlib.sha256(b"ecdsa_micro blind" + bytes(priv)).digest(), "big")
    blind = blind % (N - 1) + 1
    return _affine_bytes(mul_g(d, blind), blind)


def sign(digest, priv):
    """Sign a 32-byte digest: (r, s, recid) with RFC 6979 k and s <= N/2."""
    z = _bytes32(digest, "digest") % N
    d = _private(priv)
    nonces = Nonces(priv, digest)
    blind = nonces.extra()
    while True:  # another round needs R.x >= N, r == 0 or s == 0: never by chance
        k = nonces.next()
        X, Y, Z = mul_g(k, blind)
        zi = inv(Z * blind % P, P) * blind % P
        zi2 = zi * zi % P
        x = X * zi2 % P
        if x >= N or x == 0:
            continue
        r = x
        s = inv(k * blind % N, N) * blind % N * (z + r * d) % N
        if s == 0:
            continue
        recid = (Y * zi2 % P * zi % P) & 1
        if s > _HALF_N:
            s = N - s
            recid ^= 1
        return r, s, recid


def recover(digest, r, s, recid, low_s=False):
    """The 64-byte public key that made signature (r, s, recid) over digest."""
    z = _bytes32(digest, "digest") % N
    if not _scalar(r, "r"):
        raise ECDSAError("r out of range: must be 1 .. n-1")
    if not _scalar(s, "s"):
        raise ECDSAError("s out of range: must be 1 .. n-1")
    if low_s and s > _HALF_N:
        raise ECDSAError("s is high (> n/2): not a canonical signature")
    if not isinstance(recid, int) or not 0 <= recid <= 3:
        raise ECDSAError("recid must be 0, 1, 2 or 3")
    pt = lift_x(r + (recid >> 1) * N, recid & 1)
    if pt is None:
        raise ECDSAError("signature does not recover: r is not the x of a curve point")
    rinv = inv(r, N)
    q = add(mul_g((-z * rinv) % N), mul(s * rinv % N, pt[0], pt[1]))
    if q[2] == 0:
        raise ECDSAError("signature does not recover: result is the point at infinity")
    return _affine_bytes(q)


def verify(digest, r, s, pub, low_s=False):
    """True if (r, s) is a valid signature of digest by the 64-byte public key pub."""
    z = _bytes32(digest, "digest") % N
    if not isinstance(pub, (bytes, bytearray)) or len(pub) != 64:
        raise ECDSAError("public key must be 64 bytes (x || y, no 0x04 prefix)")
    qx = int.from_bytes(pub[:32], "big")
    qy = int.from_bytes(pub[32:], "big")
    if not on_curve(qx, qy):
        raise ECDSAError("public key is not a point on secp256k1")
    if not (_scalar(r, "r") and _scalar(s, "s")):
        return False
    if low_s and s > _HALF_N:
        return False
    w = inv(s, N)
    X, _, Z = add(mul_g(z * w % N), mul(r * w % N, qx, qy))
    if Z == 0:
        return False
    zz = Z * Z % P
    # R.x mod N == r without an inversion: X == x * Z^2 for x = r or r + N (< P)
    return X == r * zz % P or (r + N < P and X == (r + N) * zz % P)


# The generator, for callers that want it (x, y affine).
G = (GX, GY)
