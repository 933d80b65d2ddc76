# Keccak-256 as Ethereum uses it (the original Keccak padding 0x01, not SHA3's 0x06).
#
#   keccak256(data) -> 32 bytes
#   Keccak256(data=None): update(data) -> self, digest() -> 32 bytes, copy()
#
# digest() does not disturb the running state: more update() calls may follow.
#
# Two back ends with the same state layout (50 bit-interleaved 32-bit words, see
# keccak_viper.py): the @micropython.viper one where the native emitter exists
# (ESP32, unix port; keccak_viper.py) and a pure-Python one everywhere else
# (CPython, the WebAssembly port; keccak_py.py). set_backend("python") forces the
# fallback, for tests.
#
# Reference: FIPS 202 section 3 (the permutation) and the Keccak team's
# "Keccak implementation overview" section 2.1 (bit interleaving).
import array

RATE = 136  # bytes per block for a 256-bit capacity of 512 bits
_LANES = 17  # RATE // 8
DIGEST_SIZE = 32

# rho offsets r[x + 5y] (FIPS 202 table 2)
_RHO = bytes((0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61,
              56, 14))

# round constants RC[ir] (FIPS 202 section 3.2.5), 64-bit
_RC64 = (
    0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000,
    0x000000000000808B, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
    0x000000000000008A, 0x0000000000000088, 0x0000000080008009, 0x000000008000000A,
    0x000000008000808B, 0x800000000000008B, 0x8000000000008089, 0x8000000000008003,
    0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
)


def _interleave64(v):
    """(even word, odd word) of a 64-bit lane; only used to build the tables."""
    e = o = 0
    for j in range(32):
        e |= ((v >> (2 * j)) & 1) << j
        o |= ((v >> (2 * j + 1)) & 1) << j
    return e, o


def _tables():
    rc = array.array("I", [0] * 48)
    for i in range(24):
        rc[2 * i], rc[2 * i + 1] = _interleave64(_RC64[i])
    t = bytearray(100)
    for i in range(25):
        x = i % 5
        y = i // 5
        r = _RHO[i]
        k = 4 * i
        t[k] = y + 5 * ((2 * x + 3 * y) % 5)  # pi: (x, y) -> (y, 2x + 3y)
        if r & 1:  # odd rotation: even' = rotl(odd, (r+1)/2), odd' = rotl(even, (r-1)/2)
            t[k + 1] = 1
            t[k + 2] = ((r + 1) // 2) % 32
            t[k + 3] = (r - 1) // 2
        else:
            t[k + 2] = r // 2
            t[k + 3] = r // 2
    return rc, t


_RC, _T = _tables()
_W = array.array("I", [0] * 70)  # scratch for the permutation (B, C, D)
# ---- back end selection ----

try:
    import keccak_viper as _kv
except (ImportError, SyntaxError, NameError):  # CPython, or a port without the native emitter
    _kv = None


def set_backend(name):
    """Select "viper" or "python" (the fallback); returns the previous name.
    ValueError if viper is asked for where the port has no native emitter."""
    global _permute, _absorb, _squeeze, _backend
    prev = _backend
    if name == "viper":
        if _kv is None:
            raise ValueError("keccak backend 'viper' is not available on this port")
        _permute, _absorb, _squeeze = _kv.permute, _kv.absorb, _kv.squeeze
    elif name == "python":
        import keccak_py as _kp  # only loaded where it is used: it costs heap on the plug

        _permute, _absorb, _squeeze = _kp.permute, _kp.absorb, _kp.squeeze
    else:
        raise ValueError("keccak backend must be 'viper' or 'python', not %r" % (name,))
    _backend = name
    return prev


def backend():
    """The back end in use: "viper" or "python"."""
    return _backend


_backend = None
set_backend("python" if _kv is None else "viper")


# ---- hashing ----

_S1 = array.array("I", [0] * 50)  # state of the one-shot keccak256()
_PAD = bytearray(RATE)  # last block of the one-shot keccak256()


def _check(data):
    if isinstance(data, str):
        raise TypeError("keccak256 hashes bytes; encode the str first (e.g. s.encode())")


def _pad_final(s, buf, n):
    """Pad the n bytes in buf (Keccak: 0x01 ... 0x80), absorb and permute."""
    for j in range(n, RATE):
        buf[j] = 0
    buf[n] ^= 0x01
    buf[RATE - 1] ^= 0x80
    _absorb(s, buf, 0, _LANES)
    _permute(s, _W, _T, _RC)


def keccak256(data):
    """Keccak-256 digest (32 bytes) of a bytes-like object."""
    _check(data)
    s = _S1
    for j in range(50):
        s[j] = 0
    n = len(data)
    off = 0
    while n - off >= RATE:
        _absorb(s, data, off, _LANES)
        _permute(s, _W, _T, _RC)
        off += RATE
    buf = _PAD
    if off < n:
        buf[0:n - off] = memoryview(data)[off:n]
    _pad_final(s, buf, n - off)
    out = bytearray(DIGEST_SIZE)
    _squeeze(s, out, 4)
    return bytes(out)


class Keccak256:
    """Incremental Keccak-256: Keccak256().update(a).update(b).digest().

    Absorbs whole blocks straight from the caller's buffer; only a partial block
    is copied. digest() works on a copy, so hashing can go on after it."""

    digest_size = DIGEST_SIZE
    block_size = RATE

    def __init__(self, data=None):
        self._s = array.array("I", [0] * 50)
        self._buf = bytearray(RATE)
        self._n = 0
        if data is not None:
            self.update(data)

    def update(self, data):
        _check(data)
        n = len(data)
        off = 0
        buf = self._buf
        s = self._s
        if self._n:
            k = RATE - self._n
            if k > n:
                k = n
            buf[self._n:self._n + k] = memoryview(data)[0:k]
            self._n += k
            off = k
            if self._n < RATE:
                return self
            _absorb(s, buf, 0, _LANES)
            _permute(s, _W, _T, _RC)
            self._n = 0
        while n - off >= RATE:
            _absorb(s, data, off, _LANES)
            _permute(s, _W, _T, _RC)
            off += RATE
        if off < n:
            buf[0:n - off] = memoryview(data)[off:n]
            self._n = n - off
        return self

    def copy(self):
        c = Keccak256()
        c._s[:] = self._s
        c._buf[:] = self._buf
        c._n = self._n
        return c

    def digest(self):
        s = array.array("I", self._s)
        buf = bytearray(self._buf)
        _pad_final(s, buf, self._n)
        out = bytearray(DIGEST_SIZE)
        _squeeze(s, out, 4)
        return bytes(out)

    def hexdigest(self):
        import binascii

        return binascii.hexlify(self.digest()).decode()
