"""Keccak-256 (Ethereum's, original 0x01 padding) on CPython and MicroPython.

Runs under pytest on CPython (pure-Python back end), on the MicroPython unix port
(viper and pure-Python back ends, each test runs on both) and on the 32-bit
WebAssembly port (pure Python). tests/test_keccak_rlp_oracle.py cross-checks
thousands of lengths against pycryptodome.

Vector sources:
- "" : go-ethereum's EmptyCodeHash (core/types/hashing.go, crypto.Keccak256(nil)).
- "abc", the 448-bit and 896-bit FIPS 180-2 messages and 1,000,000 x "a": Crypto++
  TestVectors/keccak.txt (https://github.com/weidai11/cryptopp/blob/master/TestVectors/keccak.txt),
  the same values as pycryptodome's and noble-hashes' Keccak-256 tests.
- Function selectors and the Transfer topic: EIP-20 / the Solidity ABI specification
  (transfer(address,uint256) = 0xa9059cbb, balanceOf(address) = 0x70a08231).
"""

import keccak
from dual import MICROPYTHON, raises, tohex

BACKENDS = ["python"] + (["viper"] if keccak._kv is not None else [])

EMPTY = "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
VECTORS = (
    (b"", EMPTY),
    (b"abc", "0x4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "0x45d3b367a6904e6e8d502ee04999a7c27647f91fa845d456525fd352ae3d7371"),
    (b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
     b"klmnopqrlmnopqrsmnopqrstnopqrstu",
     "0xf519747ed599024f3882238e5ab43960132572b7345fbeb9a90769dafd21ad67"),
    (b"Transfer(address,address,uint256)",
     "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"),
)
MILLION_A = "0xfadae6b49f129bbb812be8407b7b2894f34aecf6dbd1f9b0f0c7e9853098fc96"


def each_backend(fn):
    """Run fn(backend_name) on every back end this interpreter has, restoring the default."""
    prev = keccak.backend()
    try:
        for name in BACKENDS:
            keccak.set_backend(name)
            fn(name)
    finally:
        keccak.set_backend(prev)


def pattern(n, seed=1):
    # deterministic bytes that are not periodic in the block size
    out = bytearray(n)
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = (x >> 16) & 0xFF
    return bytes(out)


def test_default_backend_is_viper_where_available():
    if MICROPYTHON and keccak._kv is not None:
        assert keccak.backend() == "viper"
    else:
        assert keccak.backend() == "python"


def test_published_vectors():
    def check(name):
        for msg, want in VECTORS:
            assert tohex(keccak.keccak256(msg)) == want, (name, msg)
            assert tohex(keccak.Keccak256(msg).digest()) == want, (name, msg)
    each_backend(check)


def test_is_keccak_not_sha3():
    # SHA3-256("") is a7ffc6f8...; Ethereum's Keccak must not produce it
    def check(name):
        assert tohex(keccak.keccak256(b""))[:10] != "0xa7ffc6f8"
    each_backend(check)


def test_function_selectors():
    def check(name):
        assert keccak.keccak256(b"transfer(address,uint256)")[:4] == b"\xa9\x05\x9c\xbb"
        assert keccak.keccak256(b"balanceOf(address)")[:4] == b"\x70\xa0\x82\x31"
    each_backend(check)


def test_million_a_streamed():
    # 1,000,000 x "a" fed 1000 bytes at a time: the heap never holds the message.
    # The pure-Python back ends would take many seconds, so only the fast paths run it.
    if keccak._kv is None:
        return
    prev = keccak.set_backend("viper")
    try:
        h = keccak.Keccak256()
        chunk = b"a" * 1000
        for _ in range(1000):
            h.update(chunk)
        assert tohex(h.digest()) == MILLION_A
    finally:
        keccak.set_backend(prev)


def test_block_boundaries_one_shot_equals_incremental():
    # 135/136/137 bytes straddle the rate; the padding bytes 0x01 and 0x80 share a
    # byte (0x81) at length 135. Every split of the message must give the same digest.
    msg = pattern(300)

    def check(name):
        for n in (0, 1, 134, 135, 136, 137, 271, 272, 273):
            m = msg[:n]
            want = keccak.keccak256(m)
            for cut in (0, 1, n // 2, 135, 136, 137, n):
                if cut > n:
                    continue
                h = keccak.Keccak256()
                h.update(m[:cut]).update(m[cut:])
                assert h.digest() == want, (name, n, cut)
    each_backend(check)


def test_backends_agree():
    if len(BACKENDS) < 2:
        return
    msg = pattern(700, seed=7)
    prev = keccak.backend()
    try:
        for n in (0, 31, 32, 33, 135, 136, 137, 500, 700):
            keccak.set_backend("python")
            a = keccak.keccak256(msg[:n])
            keccak.set_backend("viper")
            b = keccak.keccak256(msg[:n])
            assert a == b, n
    finally:
        keccak.set_backend(prev)


def test_high_bytes_and_bit_31():
    # all-0xff and 0x80-heavy input sets bit 31 of every word: the signed/unsigned
    # shift trap on a 32-bit viper
    def check(name):
        assert tohex(keccak.keccak256(b"\xff" * 200)) == tohex(keccak.Keccak256(b"\xff" * 200)
                                                               .digest())
        a = keccak.keccak256(b"\x80" * 136)
        h = keccak.Keccak256()
        for _ in range(136):
            h.update(b"\x80")
        assert h.digest() == a
    each_backend(check)


def test_digest_keeps_state_and_copy_is_independent():
    def check(name):
        h = keccak.Keccak256(b"ab")
        first = h.digest()
        assert h.digest() == first  # digest twice: same answer
        c = h.copy()
        h.update(b"c")
        assert h.digest() == keccak.keccak256(b"abc")
        assert c.digest() == first  # the copy did not see "c"
        c.update(b"c" * 300)
        assert c.digest() == keccak.keccak256(b"ab" + b"c" * 300)
        assert h.hexdigest() == tohex(keccak.keccak256(b"abc"))[2:]
    each_backend(check)


def test_accepts_bytes_like():
    def check(name):
        want = keccak.keccak256(b"hello world" * 20)
        assert keccak.keccak256(bytearray(b"hello world" * 20)) == want
        assert keccak.keccak256(memoryview(b"hello world" * 20)) == want
        h = keccak.Keccak256().update(memoryview(bytearray(b"hello world" * 20)))
        assert h.digest() == want
    each_backend(check)


def test_digest_is_bytes_of_32():
    d = keccak.keccak256(b"x")
    assert isinstance(d, bytes) and len(d) == 32


def test_str_is_refused_with_a_hint():
    e = raises(TypeError, keccak.keccak256, "abc")
    assert "encode" in str(e)
    raises(TypeError, keccak.Keccak256().update, "abc")


def test_unknown_backend_is_refused():
    e = raises(ValueError, keccak.set_backend, "asm")
    assert "viper" in str(e) and "python" in str(e)
    if keccak._kv is None:
        raises(ValueError, keccak.set_backend, "viper")
    assert keccak.backend() in ("viper", "python")
