# secp256k1 point arithmetic on MicroPython's long ints (also runs on CPython).
#
# Points are Jacobian triples (X, Y, Z) meaning the affine point (X/Z^2, Y/Z^3);
# Z == 0 is the point at infinity. Affine points are (x, y) pairs. Every field
# element handed out is reduced into [0, P). The curve is y^2 = x^3 + 7 (a = 0).
#
# On MicroPython each long-int operation allocates a small object and costs about a
# microsecond of interpreter time, so the formulas below minimise the number of `%`
# (the most expensive step) rather than the number of multiplications, and the
# modular inverse is Lehmer's extended Euclid, which measured ~10x faster than
# pow(x, P - 2, P) on the unix port (tools/bench/bench_ecdsa.py prints both).

import sys

P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
GX = 0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798
GY = 0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8
B = 7

INFINITY = (0, 1, 0)


# Lehmer's extended gcd: most steps run on single-precision (small) ints taken from
# the top _LEHMER bits, then one 2x2 matrix is applied to the long ints. Small ints
# are 31-bit on the ESP32 and 63-bit on the unix port, hence the two widths.
_LEHMER = 60 if sys.maxsize > (1 << 40) else 28
_LIMIT = 1 << _LEHMER


def inv(a, m):
    """a^-1 mod m for a not divisible by the odd prime m (variable time)."""
    x, y = m, a % m
    xa, ya = 0, 1
    s = 256 - _LEHMER
    while y >= _LIMIT:
        xh = x >> s
        while s and xh < (_LIMIT >> 8):
            s = s - 8 if s > 8 else 0
            xh = x >> s
        yh = y >> s
        A, B, C, D = 1, 0, 0, 1
        while True:  # Knuth, TAOCP 4.5.2 algorithm L
            yc = yh + C
            yd = yh + D
            if yc == 0 or yd == 0:
                break
            q = (xh + A) // yc
            if q != (xh + B) // yd:
                break
            A, C = C, A - q * C
            B, D = D, B - q * D
            xh, yh = yh, xh - q * yh
        if B == 0:
            q = x // y
            x, y = y, x - q * y
            xa, ya = ya, xa - q * ya
        else:
            x, y = A * x + B * y, C * x + D * y
            xa, ya = A * xa + B * ya, C * xa + D * ya
    while y:
        q = x // y
        x, y = y, x - q * y
        xa, ya = ya, xa - q * ya
    if x != 1:
        raise ZeroDivisionError("no inverse")
    return xa % m


def on_curve(x, y):
    return 0 <= x < P and 0 <= y < P and (y * y - x * x * x - B) % P == 0


def lift_x(x, odd):
    """The affine point with this x and y parity `odd`, or None if x is not on the curve."""
    if not 0 <= x < P:
        return None
    y2 = (x * x * x + B) % P
    y = pow(y2, (P + 1) >> 2, P)
    if y * y % P != y2:
        return None
    if (y & 1) != odd:
        y = P - y
    return x, y


def double(pt):
    X, Y, Z = pt
    if Z == 0 or Y == 0:
        return INFINITY
    yy = Y * Y % P
    s = 4 * X * yy % P
    m = 3 * X * X % P
    X3 = (m * m - 2 * s) % P
    return X3, (m * (s - X3) - 8 * yy * yy) % P, 2 * Y * Z % P


def add_affine(pt, x2, y2):
    """Jacobian pt + affine (x2, y2) (mixed addition, 8M + 3S)."""
    X, Y, Z = pt
    if Z == 0:
        return x2, y2, 1
    zz = Z * Z % P
    h = x2 * zz % P - X
    r = y2 * zz % P * Z % P - Y
    if h == 0:
        if r == 0:
            return double(pt)
        return INFINITY
    hh = h * h % P
    hhh = h * hh % P
    v = X * hh % P
    X3 = (r * r - hhh - 2 * v) % P
    return X3, (r * (v - X3) - Y * hhh) % P, Z * h % P


def add(p1, p2):
    """Jacobian + Jacobian."""
    X1, Y1, Z1 = p1
    X2, Y2, Z2 = p2
    if Z1 == 0:
        return p2
    if Z2 == 0:
        return p1
    z1z1 = Z1 * Z1 % P
    z2z2 = Z2 * Z2 % P
    u1 = X1 * z2z2 % P
    s1 = Y1 * z2z2 % P * Z2 % P
    h = X2 * z1z1 % P - u1
    r = Y2 * z1z1 % P * Z1 % P - s1
    if h == 0:
        if r == 0:
            return double(p1)
        return INFINITY
    hh = h * h % P
    hhh = h * hh % P
    v = u1 * hh % P
    X3 = (r * r - hhh - 2 * v) % P
    return X3, (r * (v - X3) - s1 * hhh) % P, Z1 * Z2 % P * h % P


def to_affine(pt):
    """(x, y) of a Jacobian point, or None for infinity."""
    X, Y, Z = pt
    if Z == 0:
        return None
    zi = inv(Z, P)
    zi2 = zi * zi % P
    return X * zi2 % P, Y * zi2 % P * zi % P


def _wnaf(k, w):
    """Width-w NAF of 0 <= k < 2**256, least significant digit first, in a bytearray
    (digit d stored as d & 0xFF: one small allocation instead of a growing list)."""
    digits = bytearray(257)
    full = 1 << w
    half = full >> 1
    i = 0
    while k:
        if k & 1:
            d = k & (full - 1)
            if d >= half:
                d -= full
            k -= d
            digits[i] = d & 0xFF
        k >>= 1
        i += 1
    return digits, i


def _odd_multiples(x, y, count):
    """[(x, y), 3(x, y), ..., (2*count - 1)(x, y)] as affine points, one inversion in all."""
    jac = [(x, y, 1)]
    two = double((x, y, 1))
    for _ in range(count - 1):
        jac.append(add(jac[-1], two))
    # Montgomery's simultaneous inversion of all Z.
    acc = [1] * count
    run = 1
    for i in range(count):
        acc[i] = run
        z = jac[i][2]
        if z == 0:  # a multiple hit infinity: only for points of tiny order, not on secp256k1
            raise ZeroDivisionError("point of small order")
        run = run * z % P
    run = inv(run, P)
    out = [None] * count
    for i in range(count - 1, -1, -1):
        X, Y, Z = jac[i]
        zi = run * acc[i] % P
        run = run * Z % P
        zi2 = zi * zi % P
        out[i] = (X * zi2 % P, Y * zi2 % P * zi % P)
    return out


# GLV endomorphism of secp256k1: LAMBDA * (x, y) = (BETA * x, y). A scalar k splits into
# k1 + k2 * LAMBDA (mod N) with |k1|, |k2| < 2**129 (lattice basis a1, b1, a2, b2 as in
# libsecp256k1 and Hal Finney's note), so k * Q needs 129 doublings instead of 256.
_LAMBDA = 0x5363AD4CC05C30E0A5261C028812645A122E22EA20816678DF02967C1B23BD72
_BETA = 0x7AE96A2B657C07106E64479EAC3434E99CF0497512F58995C1396C28719501EE
_A1 = 0x3086D221A7D46BCDE86C90E49284EB15
_MB1 = 0xE4437ED6010E88286F547FA90ABFE4C3  # -b1
_A2 = 0x114CA50F7A8E2F3F657C1108D9D44CFD8
# b2 = a1


def split(k):
    """(k1, k2) with k1 + k2 * LAMBDA == k (mod N), both of at most 129 bits in size."""
    half = N >> 1
    c1 = (_A1 * k + half) // N
    c2 = (_MB1 * k + half) // N
    return k - c1 * _A1 - c2 * _A2, c1 * _MB1 - c2 * _A1


def mul(k, x, y, w=5):
    """k * (x, y) for a public scalar 0 <= k < N (GLV + width-w NAF, variable time);
    Jacobian result."""
    if k == 0:
        return INFINITY
    k1, k2 = split(k)
    pre = _odd_multiples(x, y, 1 << (w - 2))  # odd multiples of Q; of LAMBDA*Q: x * BETA
    neg1 = k1 < 0
    neg2 = k2 < 0
    d1, n1 = _wnaf(-k1 if neg1 else k1, w)
    d2, n2 = _wnaf(-k2 if neg2 else k2, w)
    acc = INFINITY
    for i in range((n1 if n1 > n2 else n2) - 1, -1, -1):
        if acc[2]:
            acc = double(acc)
        d = d1[i]
        if d:
            if d < 128:
                px, py = pre[d >> 1]
                neg = neg1
            else:
                px, py = pre[(256 - d) >> 1]
                neg = not neg1
            acc = add_affine(acc, px, P - py if neg else py)
        d = d2[i]
        if d:
            if d < 128:
                px, py = pre[d >> 1]
                neg = neg2
            else:
                px, py = pre[(256 - d) >> 1]
                neg = not neg2
            acc = add_affine(acc, _BETA * px % P, P - py if neg else py)
    return acc
