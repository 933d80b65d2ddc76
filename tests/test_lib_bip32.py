"""SHA-512, HMAC-SHA512 and BIP-32 derivation (runs on CPython and MicroPython).

Vectors: FIPS 180-4 examples (NIST CSRC "SHA512.pdf": "abc" and the 896-bit message),
RFC 4231 test cases 1, 2 and 6 (HMAC-SHA-512), and BIP-32's test vectors 1 and 2
(https://github.com/bitcoin/bips/blob/master/bip-0032.mediawiki#test-vectors): the
xprv strings are base58check-decoded here and their depth, child number, chain code
and key compared with our derivation (the parent fingerprint needs RIPEMD-160, which
the plug never needs and does not have).
"""

# non-hardened steps import ecdsa_micro, compiled here from source: more than 64 KB
MP_HEAP = "96k"

import sha512  # noqa: E402
from bip32 import HARDENED, Bip32Error, derive, eth_account_key, master_key, parse_path  # noqa: E402
from dual import raises, unhex  # noqa: E402

H = HARDENED

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58check_decode(s):
    n = 0
    for ch in s:
        n = n * 58 + _B58.index(ch)
    raw = n.to_bytes(82, "big")
    import hashlib

    body, check = raw[:-4], raw[-4:]
    if hashlib.sha256(hashlib.sha256(body).digest()).digest()[:4] != check:
        raise AssertionError("bad base58 checksum in test vector")
    return body


def xprv_fields(s):
    b = b58check_decode(s)
    assert b[:4] == unhex("0488ade4")
    return b[4], int.from_bytes(b[9:13], "big"), b[13:45], b[46:78]


SEED1 = unhex("000102030405060708090a0b0c0d0e0f")
VECTOR1 = [
    ([],
     "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPP"
     "qjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi"),
    ([0 + H],
     "xprv9uHRZZhk6KAJC1avXpDAp4MDc3sQKNxDiPvvkX8Br5ngLNv1TxvU"
     "xt4cV1rGL5hj6KCesnDYUhd7oWgT11eZG7XnxHrnYeSvkzY7d2bhkJ7"),
    ([0 + H, 1],
     "xprv9wTYmMFdV23N2TdNG573QoEsfRrWKQgWeibmLntzniatZvR9BmLn"
     "vSxqu53Kw1UmYPxLgboyZQaXwTCg8MSY3H2EU4pWcQDnRnrVA1xe8fs"),
    ([0 + H, 1, 2 + H],
     "xprv9z4pot5VBttmtdRTWfWQmoH1taj2axGVzFqSb8C9xaxKymcFzXBD"
     "ptWmT7FwuEzG3ryjH4ktypQSAewRiNMjANTtpgP4mLTj34bhnZX7UiM"),
    ([0 + H, 1, 2 + H, 2],
     "xprvA2JDeKCSNNZky6uBCviVfJSKyQ1mDYahRjijr5idH2WwLsEd4Hsb"
     "2Tyh8RfQMuPh7f7RtyzTtdrbdqqsunu5Mm3wDvUAKRHSC34sJ7in334"),
    ([0 + H, 1, 2 + H, 2, 1000000000],
     "xprvA41z7zogVVwxVSgdKUHDy1SKmdb533PjDz7J6N6mV6uS3ze1ai8F"
     "Ha8kmHScGpWmj4WggLyQjgPie1rFSruoUihUZREPSL39UNdE3BBDu76"),
]
SEED2 = unhex("fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693908d8a87"
              "84817e7b7875726f6c696663605d5a5754514e4b484542")
VECTOR2 = [
    ([],
     "xprv9s21ZrQH143K31xYSDQpPDxsXRTUcvj2iNHm5NUtrGiGG5e2DtAL"
     "Gdso3pGz6ssrdK4PFmM8NSpSBHNqPqm55Qn3LqFtT2emdEXVYsCzC2U"),
    ([0],
     "xprv9vHkqa6EV4sPZHYqZznhT2NPtPCjKuDKGY38FBWLvgaDx45zo9WQ"
     "RUT3dKYnjwih2yJD9mkrocEZXo1ex8G81dwSM1fwqWpWkeS3v86pgKt"),
]


def check_chain(seed, vector):
    for path, xprv in vector:
        depth, child, chain_code, key = xprv_fields(xprv)
        k, c = derive(seed, path)
        assert depth == len(path)
        assert child == (path[-1] if path else 0)
        assert c == chain_code, path
        assert k == key, path


def test_sha512_fips_examples():
    for fn in (sha512.sha512, lambda m: sha512.SHA512(m).digest()):
        assert fn(b"abc") == unhex(
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
            "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
        assert fn(b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnop"
                  b"jklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu") == unhex(
            "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
            "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909")
        assert fn(b"") == unhex(
            "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
            "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e")


def test_sha512_streaming_matches_one_shot_across_block_edges():
    data = bytes(range(256)) * 2
    for n in (0, 1, 111, 112, 127, 128, 129, 255, 256, 300):
        h = sha512.SHA512()
        h.update(data[:n // 3]).update(data[n // 3:n])
        assert h.digest() == sha512.sha512(data[:n]), n


def test_sha512_refuses_text():
    raises(TypeError, sha512.SHA512().update, "abc")


def test_hmac_sha512_rfc4231():
    assert sha512.hmac_sha512(b"\x0b" * 20, b"Hi There") == unhex(
        "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
        "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854")
    assert sha512.hmac_sha512(b"Jefe", b"what do ya want for nothing?") == unhex(
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
        "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737")
    # key longer than the block: hashed first
    msg = b"Test Using Larger Than Block-Size Key - Hash Key First"
    assert sha512.hmac_sha512(b"\xaa" * 131, msg) == unhex(
        "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
        "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598")


def test_bip32_vector1_hardened_and_normal_steps():
    check_chain(SEED1, VECTOR1)


def test_bip32_vector2_64_byte_seed():
    check_chain(SEED2, VECTOR2)


def test_parse_path_forms():
    assert parse_path("m/44'/60'/0'/0/3") == [44 + H, 60 + H, H, 0, 3]
    assert parse_path("m/0h/1/2H") == [H, 1, 2 + H]
    assert parse_path("m") == []
    assert parse_path([1, H]) == [1, H]


def test_bad_inputs_are_refused_with_bip32error():
    for bad in ("44'/60'", "m/x", "m/-1", "m/2147483648", "m//1", "m/1''", 7):
        raises(Bip32Error, parse_path, bad)
    raises(Bip32Error, parse_path, [2**32])
    raises(Bip32Error, master_key, b"short")
    raises(Bip32Error, master_key, b"x" * 65)
    raises(Bip32Error, eth_account_key, SEED1, -1)
    raises(Bip32Error, eth_account_key, SEED1, H)
    assert isinstance(Bip32Error("x"), ValueError)


def test_error_messages_never_carry_seed_bytes():
    e = raises(Bip32Error, master_key, b"\x01\x02secret!")
    assert "secret" not in str(e) and "0102" not in str(e)
