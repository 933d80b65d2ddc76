"""lib/ecdsa_micro on known vectors, edge scalars and bad inputs; runs on CPython, the
MicroPython unix port (64 KB heap) and the 32-bit WebAssembly port.

Sources of the vectors:
- RFC 6979 gives no secp256k1 cases; the k values below are the widely used secp256k1 /
  SHA-256 ones from python-ecdsa's test suite (ecdsa/test_pyecdsa.py, class RFC6979,
  test_SECP256k1 .. test_SECP256k1_6: the first two computed by the Go reference
  implementation, the rest the "Satoshi Nakamoto" / "Alan Turing" cases also found in
  trezor-crypto's tests/test_check.c and bitcoinjs-lib's fixtures).
- r, s (low-s normalised), recovery id and public key of each case: python-ecdsa 0.19 and
  eth-keys on CPython; tests/test_ecdsa_cross.py re-derives every number of VECTORS from
  those libraries on each run, so a wrong constant here fails there.
- HMAC-SHA256: RFC 4231 test cases 1, 2 and 6.
"""

import hashlib

from dual import raises, unhex

import ecdsa_micro
from ecdsa_micro import ECDSAError, N, curve, gtable
from ecdsa_micro.rfc6979 import Nonces, hmac_sha256

# (private key, message hashed with SHA-256, RFC 6979 k, r, low s, recid, public key x||y)
VECTORS = (
    (0x9D0219792467D7D37B4D43298A7D0C05, b"sample",
     "8fa1f95d514760e498f28957b824ee6ec39ed64826ff4fecc2b5739ec45b91cd",
     "199eb60d223844856dae58327e24f0672c11de488e22a358fdb768175e30d903",
     "145f3a3d438672006470e5eb60e055031525488433a25d1d13921702ee4ebc1f", 1,
     "17a359b19ad83d413f1709e9c2a3b132149f0a3e211fad72ce012595e9167900"
     "9b51612af25150c0bec30410a0368f46eefe9179eeb92e2309310a631a82ad47"),
    (0xCCA9FBCC1B41E5A95D369EAA6DDCFF73B61A4EFAA279CFC6567E8DAA39CBAF50, b"sample",
     "2df40ca70e639d89528a6b670d9d48d9165fdc0febc0974056bdce192b8e16a3",
     "af340daf02cc15c8d5d08d7735dfe6b98a474ed373bdb5fbecf7571be52b3842",
     "5009fb27f37034a9b24b707b7c6b79ca23ddef9e25f7282e8a797efe53a8f124", 1,
     "91f1ed66d63e12df118095ae010152f6cf65ffee656831f3000c28c4421d8e5b"
     "41b60399f2f3e0154134c91195c10fa3b728dcff53a0c42f195cabe2ef0c9847"),
    (1, b"Satoshi Nakamoto",
     "8f8a276c19f4149656b280621e358cce24f5f52542772691ee69063b74f15d15",
     "934b1ea10a4b3c1757e2b0c017d0b6143ce3c9a7e6a4a49860d7a6ab210ee3d8",
     "2442ce9d2b916064108014783e923ec36b49743e2ffa1c4496f01a512aafd9e5", 1,
     "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
     "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"),
    (1, b"All those moments will be lost in time, like tears in rain. Time to die...",
     "38aa22d72376b4dbc472e06c3ba403ee0a394da63fc58d88686c611aba98d6b3",
     "8600dbd41e348fe5c9465ab92d23e3db8b98b873beecd930736488696438cb6b",
     "547fe64427496db33bf66019dacbf0039c04199abb0122918601db38a72cfc21", 0,
     "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
     "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"),
    (N - 1, b"Satoshi Nakamoto",
     "33a19b60e25fb6f4435af53a3d42d493644827367e6453928554f43e49aa6f90",
     "fd567d121db66e382991534ada77a6bd3106f0a1098c231e47993447cd6af2d0",
     "6b39cd0eb1bc8603e159ef5c20a5c8ad685a45b06ce9bebed3f153d10d93bed5", 0,
     "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
     "b7c52588d95c3b9aa25b0403f1eef75702e84bb7597aabe663b82f6f04ef2777"),
    (0xF8B8AF8CE3C7CCA5E300D33939540C10D45CE001B8F252BFBC57BA0342904181, b"Alan Turing",
     "525a82b70e67874398067543fd84c83d30c175fdc45fdeee082fe13b1d7cfdf1",
     "7063ae83e7f62bbb171798131b4a0564b956930092b33b07b395615d9ec7e15c",
     "58dfcc1e00a35e1572f366ffe34ba0fc47db1e7189759b9fb233c5b05ab388ea", 0,
     "92df7b245b81aa637ab4e867c8d511008f79161a97d64f2ac709600352f7acbc"
     "e9bfdf1b13fa0cb1de4521e5386cde3a1cd26c5ab584989d07bbed58a5419f62"),
    (0xE91671C46231F833A6406CCBEA0E3E392C76C167BAC1CB013F6F1013980455C2,
     b"There is a computer disease that anybody who works with computers knows about. It's"
     b" a very serious disease and it interferes completely with the work. The trouble with"
     b" computers is that you 'play' with them!",
     "1f4b84c23a86a221d233f2521be018d9318639d5b8bbd6374a8a59232d16ad3d",
     "b552edd27580141f3b2a5463048cb7cd3e047b97c9f98076c32dbdf85a68718b",
     "279fa72dd19bfae05577e06c7c0c1900c371fcd5893f7e1d56a37d30174671f6", 1,
     "567b7512001f3cc4dcb8b8096c046fff571ab07adb2126cd42908f2ff1ca424a"
     "3ab781fe65ba2bbc50b71532312b3836793be62bc4f313e8874fa8a2b1cacea1"),
)

G_BYTES = curve.GX.to_bytes(32, "big") + curve.GY.to_bytes(32, "big")
KEY = unhex("4646464646464646464646464646464646464646464646464646464646464646")
DIGEST = hashlib.sha256(b"metering plug").digest()


def key_bytes(d):
    return d.to_bytes(32, "big")


def hexint(s):
    return int.from_bytes(unhex(s), "big")


def test_rfc6979_k_matches_published_vectors():
    for d, msg, k, _r, _s, _v, _pub in VECTORS:
        got = Nonces(key_bytes(d), hashlib.sha256(msg).digest()).next()
        assert got == hexint(k), msg


def test_sign_matches_vectors_with_low_s_and_recovery_id():
    for d, msg, _k, r, s, v, _pub in VECTORS:
        assert ecdsa_micro.sign(hashlib.sha256(msg).digest(), key_bytes(d)) == (
            hexint(r), hexint(s), v), msg


def test_recover_and_verify_vectors():
    for d, msg, _k, r, s, v, pub in VECTORS:
        digest = hashlib.sha256(msg).digest()
        want = ecdsa_micro.public_key(key_bytes(d))
        assert want == unhex(pub)
        assert ecdsa_micro.recover(digest, hexint(r), hexint(s), v) == want
        assert ecdsa_micro.verify(digest, hexint(r), hexint(s), want)


def test_public_key_of_small_and_extreme_keys():
    assert ecdsa_micro.public_key(key_bytes(1)) == G_BYTES
    minus_g = curve.GX.to_bytes(32, "big") + (curve.P - curve.GY).to_bytes(32, "big")
    assert ecdsa_micro.public_key(key_bytes(N - 1)) == minus_g
    # the table path (regular recoding, odd/even keys) against plain wNAF multiplication
    for d in (2, 3, 64, 127, 2**255, 2**256 - 2**200, N - 2, N // 2, N // 2 + 1,
              0x5555555555555555555555555555555555555555555555555555555555555555):
        want = curve.to_affine(curve.mul(d, curve.GX, curve.GY))
        pub = ecdsa_micro.public_key(key_bytes(d))
        assert pub == want[0].to_bytes(32, "big") + want[1].to_bytes(32, "big"), hex(d)


def test_round_trip_for_derived_keys():
    key = KEY
    for _ in range(6):
        key = hashlib.sha256(key).digest()
        digest = hashlib.sha256(key + b"digest").digest()
        r, s, v = ecdsa_micro.sign(digest, key)
        assert 0 < r < N and 0 < s <= N // 2 and v in (0, 1)
        pub = ecdsa_micro.public_key(key)
        assert ecdsa_micro.recover(digest, r, s, v) == pub
        assert ecdsa_micro.recover(digest, r, s, v ^ 1) != pub
        assert ecdsa_micro.verify(digest, r, s, pub)
        assert ecdsa_micro.sign(digest, bytearray(key)) == (r, s, v)


def test_extreme_digests_round_trip():
    # digest 0 makes u1 = 0 in recover (only the R term is left); 0xff..ff is above N
    pub = ecdsa_micro.public_key(KEY)
    for digest in (bytes(32), b"\xff" * 32, N.to_bytes(32, "big")):
        r, s, v = ecdsa_micro.sign(digest, KEY)
        assert ecdsa_micro.recover(digest, r, s, v) == pub
        assert ecdsa_micro.verify(digest, r, s, pub)
    # N and 0 are the same number mod N, and RFC 6979 seeds k with the digest mod N
    assert ecdsa_micro.sign(N.to_bytes(32, "big"), KEY) == ecdsa_micro.sign(bytes(32), KEY)


def test_verify_rejects_tampering():
    r, s, v = ecdsa_micro.sign(DIGEST, KEY)
    pub = ecdsa_micro.public_key(KEY)
    other = ecdsa_micro.public_key(hashlib.sha256(KEY).digest())
    assert ecdsa_micro.verify(DIGEST, r, s, pub)
    assert not ecdsa_micro.verify(hashlib.sha256(DIGEST).digest(), r, s, pub)
    assert not ecdsa_micro.verify(DIGEST, r, s, other)
    assert not ecdsa_micro.verify(DIGEST, r ^ 2, s, pub)
    assert not ecdsa_micro.verify(DIGEST, r, (s * 3) % N, pub)
    for bad in (0, N, N + 1, -1):
        assert not ecdsa_micro.verify(DIGEST, bad, s, pub)
        assert not ecdsa_micro.verify(DIGEST, r, bad, pub)


def test_high_s_accepted_unless_low_s_asked():
    r, s, v = ecdsa_micro.sign(DIGEST, KEY)
    pub = ecdsa_micro.public_key(KEY)
    assert ecdsa_micro.verify(DIGEST, r, N - s, pub)  # plain ECDSA: (r, -s) is valid too
    assert not ecdsa_micro.verify(DIGEST, r, N - s, pub, low_s=True)
    assert ecdsa_micro.verify(DIGEST, r, s, pub, low_s=True)
    assert ecdsa_micro.recover(DIGEST, r, N - s, v ^ 1) == pub
    e = raises(ECDSAError, ecdsa_micro.recover, DIGEST, r, N - s, v ^ 1, low_s=True)
    assert "s is high" in str(e)


def test_bad_keys_and_digests_are_named_and_key_never_shown():
    secret = unhex("ab" * 32)
    cases = (
        (ecdsa_micro.sign, (DIGEST, secret[:31]), "private key must be 32 bytes"),
        (ecdsa_micro.sign, (DIGEST, secret + b"\x00"), "private key must be 32 bytes"),
        (ecdsa_micro.sign, (DIGEST, bytes(32)), "private key out of range"),
        (ecdsa_micro.sign, (DIGEST, key_bytes(N)), "private key out of range"),
        (ecdsa_micro.sign, (DIGEST, b"\xff" * 32), "private key out of range"),
        (ecdsa_micro.sign, (DIGEST, "ab" * 32), "private key must be bytes"),
        (ecdsa_micro.sign, (DIGEST, 12345), "private key must be bytes"),
        (ecdsa_micro.sign, (DIGEST[:31], secret), "digest must be 32 bytes"),
        (ecdsa_micro.sign, ("00" * 32, secret), "digest must be bytes"),
        (ecdsa_micro.public_key, (bytes(32),), "private key out of range"),
        (ecdsa_micro.public_key, (secret[:16],), "private key must be 32 bytes"),
    )
    for fn, args, words in cases:
        e = raises(ECDSAError, fn, *args)
        assert isinstance(e, ValueError)
        msg = str(e)
        assert words in msg, msg
        assert "abab" not in msg and "\\xab" not in msg and "171" not in msg, msg


def test_recover_rejects_out_of_range_signatures():
    r, s, v = ecdsa_micro.sign(DIGEST, KEY)
    for args, words in (
        ((DIGEST, 0, s, v), "r out of range"),
        ((DIGEST, N, s, v), "r out of range"),
        ((DIGEST, r, 0, v), "s out of range"),
        ((DIGEST, r, N + 5, v), "s out of range"),
        ((DIGEST, r, s, 4), "recid"),
        ((DIGEST, r, s, -1), "recid"),
        ((DIGEST, "1", s, v), "r must be an int"),
        ((DIGEST[:20], r, s, v), "digest must be 32 bytes"),
        # x = 5 has no y on secp256k1 (5**3 + 7 is not a square mod p)
        ((DIGEST, 5, s, 0), "not the x of a curve point"),
        # recid 2/3 mean x = r + n, which must stay below p
        ((DIGEST, curve.P - N, s, 2), "not the x of a curve point"),
    ):
        e = raises(ECDSAError, ecdsa_micro.recover, *args)
        assert words in str(e), str(e)


def test_verify_rejects_malformed_public_keys():
    r, s, _v = ecdsa_micro.sign(DIGEST, KEY)
    pub = ecdsa_micro.public_key(KEY)
    for bad, words in ((b"\x04" + pub, "64 bytes"), (pub[:63], "64 bytes"),
                       (pub[:63] + bytes([pub[63] ^ 1]), "not a point"),
                       (bytes(64), "not a point"), (b"\xff" * 64, "not a point")):
        e = raises(ECDSAError, ecdsa_micro.verify, DIGEST, r, s, bad)
        assert words in str(e), str(e)


def test_point_addition_special_cases():
    g = (curve.GX, curve.GY, 1)
    two = curve.to_affine(curve.double(g))
    assert curve.to_affine(curve.add_affine(g, curve.GX, curve.GY)) == two  # P + P
    assert curve.add_affine(g, curve.GX, curve.P - curve.GY)[2] == 0  # P + (-P)
    assert curve.to_affine(curve.add(g, g)) == two
    assert curve.add(g, (curve.GX, curve.P - curve.GY, 1))[2] == 0
    assert curve.to_affine(curve.add(curve.INFINITY, g)) == (curve.GX, curve.GY)
    assert gtable.mul_g(0)[2] == 0 and curve.mul(0, curve.GX, curve.GY)[2] == 0
    assert curve.lift_x(5, 0) is None
    for a in (1, 2, curve.GX, curve.P - 1):
        assert a * curve.inv(a, curve.P) % curve.P == 1
        assert a * curve.inv(a, N) % N == 1
    raises(ZeroDivisionError, curve.inv, curve.P, curve.P)


def test_hmac_sha256_rfc4231():
    assert hmac_sha256(b"\x0b" * 20, b"Hi There") == unhex(
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    assert hmac_sha256(b"Jefe", b"what do ya want for nothing?") == unhex(
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    big_key = hmac_sha256(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First")
    assert big_key == unhex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")


def test_table_is_used_where_the_file_is_reachable():
    import os

    here = gtable._here()
    try:
        os.stat(here + "g_table.bin")
        reachable = True
    except OSError:
        reachable = False
    assert gtable.source() == ("file" if reachable else "none")
