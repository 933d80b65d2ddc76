"""lib/keccak_viper.py under a model of viper's 32-bit integer semantics (the ESP32's).

There is no 32-bit viper on this machine (the unix port is x64, where viper ints are
64 bits, and the WebAssembly port has no viper). So the exact source of the viper
functions is executed on CPython with its machine words modelled: every value is a
register of N bits (wrapping arithmetic), `int` values shift right arithmetically and
`uint` values logically (the result of a binary op takes the left operand's type, as
in py/emitnative.c), ptr32 loads give a signed `int` (sign-extended on the 32-bit
model, zero-extended on x64 as the real unix port does), stores truncate.

The 64-bit model is checked against the real x64 viper on a probe of shifts, signs and
wrap-around; the 32-bit model then shows that the same keccak source gives the right
digests where ints are 32 bits, and that it does catch the classic bug (a right shift
of a word loaded as signed `int`) when it is planted: x64 hides that bug.
"""

import os
import random

import pytest
from eth_hash.auto import keccak as oracle_keccak

from tools.paths import LIB


def make_model(bits):
    mask = (1 << bits) - 1
    top = 1 << (bits - 1)

    class Reg:
        """A viper register value: `bits` wide, typed int (signed) or uint."""

        __slots__ = ("v", "signed")

        def __init__(self, v, signed):
            self.v = v & mask
            self.signed = signed

        def _other(self, o):
            return o.v if isinstance(o, Reg) else o & mask

        def _sval(self):
            return self.v - (1 << bits) if self.v & top else self.v

        def __xor__(self, o):
            return Reg(self.v ^ self._other(o), self.signed)

        def __and__(self, o):
            return Reg(self.v & self._other(o), self.signed)

        def __or__(self, o):
            return Reg(self.v | self._other(o), self.signed)

        def __add__(self, o):
            return Reg(self.v + self._other(o), self.signed)

        def __sub__(self, o):
            return Reg(self.v - self._other(o), self.signed)

        def __rsub__(self, o):  # literal - reg: the literal is an int
            return Reg(o - self.v, True)

        def __radd__(self, o):
            return Reg(o + self.v, True)

        def __lshift__(self, n):
            return Reg(self.v << int(n), self.signed)

        def __rshift__(self, n):
            n = int(n)
            if n >= bits or n < 0:
                raise AssertionError("shift by %d on a %d-bit register" % (n, bits))
            if self.signed:
                return Reg(self._sval() >> n, True)
            return Reg(self.v >> n, False)

        def __bool__(self):
            return self.v != 0

        def __int__(self):
            return self._sval() if self.signed else self.v

        __index__ = __int__

        def __lt__(self, o):
            return int(self) < int(o)

    def uint(x):
        return Reg(x.v if isinstance(x, Reg) else x, False)

    class ptr32:
        def __init__(self, words):
            self.words = words

        def __getitem__(self, i):
            w = self.words[int(i)]
            if bits == 32:
                return Reg(w, True)  # the register holds the word as it is
            return Reg(w, True)  # x64: a zero-extended 32-bit load

        def __setitem__(self, i, val):
            self.words[int(i)] = (val.v if isinstance(val, Reg) else val) & 0xFFFFFFFF

    class ptr8(ptr32):
        def __getitem__(self, i):
            return Reg(self.words[int(i)], True)

        def __setitem__(self, i, val):
            self.words[int(i)] = (val.v if isinstance(val, Reg) else val) & 0xFF

    return {"uint": uint, "ptr32": ptr32, "ptr8": ptr8}


def load_viper_source(bits, patch=None):
    """The functions of lib/keccak_viper.py, run as plain Python on the `bits` model."""
    with open(os.path.join(LIB, "keccak_viper.py")) as f:
        src = f.read()
    src = src.replace("import micropython\n", "").replace("@micropython.viper\n", "")
    if patch:
        old, new = patch
        assert old in src
        src = src.replace(old, new)
    ns = make_model(bits)
    exec(compile(src, "keccak_viper.py(model %d-bit)" % bits, "exec"), ns)
    return ns


def model_keccak(ns, data):
    import keccak  # lib/keccak.py for its tables (the fallback is not used here)

    P = ns["ptr32"]
    s = [0] * 50
    w = [0] * 70
    t = list(keccak._T)
    rc = list(keccak._RC)
    blocks = bytearray(data)
    blocks.append(0x01)
    while len(blocks) % 136:
        blocks.append(0)
    blocks[-1] ^= 0x80
    for off in range(0, len(blocks), 136):
        ns["absorb"](P(s), ns["ptr8"](list(blocks)), off, 17)
        ns["permute"](P(s), P(w), ns["ptr8"](t), P(rc))
    out = [0] * 32
    ns["squeeze"](P(s), ns["ptr8"](out), 4)
    return bytes(out)


MESSAGES = [b"", b"abc", b"\xff" * 135, b"\x80" * 137,
            bytes(random.Random(5).getrandbits(8) for _ in range(300))]


@pytest.mark.parametrize("bits", [32, 64])
def test_viper_source_is_right_on_both_word_sizes(bits):
    ns = load_viper_source(bits)
    for m in MESSAGES:
        assert model_keccak(ns, m) == oracle_keccak(m), (bits, len(m))


def test_model_catches_a_signed_shift():
    # Plant the bug the 32-bit rules guard against: rotate a word loaded as a signed
    # int. x64 hides it (zero-extended loads), the 32-bit model must not.
    bug = ("e = uint(s[i]) ^ uint(w[60 + x])", "e = s[i] ^ w[60 + x]")
    assert model_keccak(load_viper_source(64, bug), b"abc") == oracle_keccak(b"abc")
    assert model_keccak(load_viper_source(32, bug), b"abc") != oracle_keccak(b"abc")


_PROBE = """
@micropython.viper
def probe(b: ptr32, out: ptr32):
    x = b[0]
    y = uint(b[0])
    out[0] = x >> 4
    out[1] = y >> 4
    out[2] = (y << 8) >> 8
    out[3] = (x << 8) >> 8
    out[4] = (0 - y) >> 3
    out[5] = uint(0 - y) >> 3
    out[6] = (y ^ 0x3FFFFFFF) >> 20
    out[7] = ((y << 20) | (y >> 12)) >> 28
"""
_PROBE_INPUTS = (0xF0000001, 0x12345678, 0x80000000, 0x7FFFFFFF, 1)


def _probe_model(bits, v):
    ns = make_model(bits)
    exec(_PROBE.replace("@micropython.viper\n", ""), ns)
    out = [0] * 8
    ns["probe"](ns["ptr32"]([v]), ns["ptr32"](out))
    return out


def test_64_bit_model_matches_the_real_x64_viper(micropython):
    # the model is only worth something if it predicts the real thing where we have it
    code = ("import micropython, array\n" + _PROBE +
            "for v in %r:\n"
            "    out = array.array('I', [0] * 8)\n"
            "    probe(array.array('I', [v]), out)\n"
            "    print(list(out))\n" % (_PROBE_INPUTS,))
    real = [eval(line) for line in micropython.run(code).strip().splitlines()]
    model = [_probe_model(64, v) for v in _PROBE_INPUTS]
    assert real == model
    # and the 32-bit model differs exactly where signed words meet right shifts
    m32 = [_probe_model(32, v) for v in _PROBE_INPUTS]
    assert m32 != model
    assert [r[1] for r in m32] == [r[1] for r in model]  # uint >> : same everywhere
