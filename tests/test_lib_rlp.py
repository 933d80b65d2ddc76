"""RLP encode/decode on CPython, the MicroPython unix port and the 32-bit WebAssembly port.

Vector sources: the Ethereum wiki's RLP page, now
https://ethereum.org/en/developers/docs/data-structures-and-encoding/rlp/ ("Examples":
"dog", ["cat", "dog"], "", [], 0, "\\x00", "\\x0f", "\\x04\\x00", the set-theoretic
representation of three, the 56-byte "Lorem ipsum" string), and the yellow paper,
appendix B (canonical form). The integer cases (15, 1024, 2**256-1) follow from B's
"BE(x)" without leading zeros. tests/test_keccak_rlp_oracle.py cross-checks random
items against the `rlp` package (pyrlp) that eth-account uses.
"""

import rlp
from dual import raises, tohex, unhex

LOREM = b"Lorem ipsum dolor sit amet, consectetur adipisicing elit"

VECTORS = (
    (b"dog", "0x83646f67"),
    ([b"cat", b"dog"], "0xc88363617483646f67"),
    (b"", "0x80"),
    ([], "0xc0"),
    (0, "0x80"),
    (b"\x00", "0x00"),
    (b"\x0f", "0x0f"),
    (15, "0x0f"),
    (b"\x04\x00", "0x820400"),
    (1024, "0x820400"),
    ([[], [[]], [[], [[]]]], "0xc7c0c1c0c3c0c1c0"),
    (LOREM, "0xb838" + "4c6f72656d20697073756d20646f6c6f722073697420616d65742c20636f6e7365"
            "637465747572206164697069736963696e6720656c6974"),
    (127, "0x7f"),
    (128, "0x8180"),
    (2 ** 256 - 1, "0xa0" + "ff" * 32),
)


def test_wiki_vectors_encode():
    for item, want in VECTORS:
        assert tohex(rlp.encode(item)) == want, item


def test_wiki_vectors_decode():
    for item, want in VECTORS:
        got = rlp.decode(unhex(want))
        if isinstance(item, int):
            assert rlp.decode_int(got) == item
        else:
            assert got == item, want


def test_str_is_utf8_and_tuple_is_list():
    assert rlp.encode("dog") == rlp.encode(b"dog")
    assert rlp.encode(("cat", "dog")) == unhex("0xc88363617483646f67")
    assert rlp.encode("é") == b"\x82\xc3\xa9"


def test_long_string_and_long_list():
    s = b"x" * 1024
    e = rlp.encode(s)
    assert e[:3] == b"\xb9\x04\x00" and len(e) == 1027
    assert rlp.decode(e) == s
    lst = [b"ab"] * 30  # payload 90 bytes: long list form
    e = rlp.encode(lst)
    assert e[:2] == b"\xf8\x5a"
    assert rlp.decode(e) == lst
    # exactly 55 and 56 bytes: the short/long boundary
    assert rlp.encode(b"y" * 55)[:1] == b"\xb7"
    assert rlp.encode(b"y" * 56)[:2] == b"\xb8\x38"
    assert rlp.encode([b"z" * 54])[:1] == b"\xf7"  # payload 1 + 54 = 55 bytes
    assert rlp.encode([b"z" * 55])[:2] == b"\xf8\x38"  # payload 56 bytes


def test_round_trip_nested():
    item = [b"", [b"\x00", b"\x7f", b"\x80"], [[b"abc" * 30], []], b"\xff" * 70, [[[[b"deep"]]]]]
    e = rlp.encode(item)
    assert rlp.decode(e) == item
    assert rlp.encoded_length(item) == len(e)
    assert rlp.decode(bytearray(e)) == item
    assert rlp.decode(memoryview(e)) == item


def test_big_integers():
    for n in (0, 1, 0x7F, 0x80, 0xFF, 0x100, 2 ** 31, 2 ** 32, 2 ** 53 + 1, 2 ** 64, 2 ** 255):
        e = rlp.encode(n)
        assert rlp.decode_int(rlp.decode(e)) == n, n


def test_encode_rejects_bad_items():
    e = raises(rlp.RLPError, rlp.encode, -1)
    assert "negative" in str(e)
    e = raises(rlp.RLPError, rlp.encode, [b"ok", None])
    assert "NoneType" in str(e)
    raises(rlp.RLPError, rlp.encode, 1.5)
    raises(rlp.RLPError, rlp.encode, {"a": 1})
    e = raises(rlp.RLPError, rlp.encode, True)
    assert "bool" in str(e)
    assert issubclass(rlp.RLPError, ValueError)


def test_encode_refuses_self_containing_list():
    a = [b"x"]
    a.append(a)
    e = raises(rlp.RLPError, rlp.encode, a)
    assert "deep" in str(e)


def _bad(hexstr, words):
    e = raises(rlp.RLPError, rlp.decode, unhex(hexstr))
    msg = str(e)
    for w in words:
        assert w in msg, (hexstr, msg)


def test_decode_rejects_non_canonical():
    _bad("0x8105", ["single byte", "0x05"])  # 0x05 must be encoded as itself
    _bad("0x817f", ["single byte"])
    _bad("0xb80548656c6c6f", ["long form"])  # 5-byte string in long form
    _bad("0xb90040" + "61" * 64, ["leading zero"])  # length 0x0040 with a leading zero
    _bad("0xf803636174", ["long form", "list"])  # 3-byte list in long form
    _bad("0xf90040" + "00" * 64, ["leading zero", "list"])
    _bad("0xc28105", ["single byte"])  # also inside a list


def test_decode_rejects_truncated_and_trailing():
    _bad("0x", ["empty"])
    _bad("0x83646f", ["truncated"])
    _bad("0xb8", ["truncated"])  # length byte missing
    _bad("0xb938", ["truncated"])
    _bad("0xc883636174836466", ["truncated"])
    _bad("0xc1", ["truncated"])
    _bad("0x83646f6700", ["trailing", "1"])
    _bad("0x8000", ["trailing"])
    _bad("0xc0c0", ["trailing"])
    # an item inside a list that runs past the list's own end
    _bad("0xc2836162", ["past the end"])
    _bad("0xbf" + "ff" * 8, ["truncated"])  # an absurd 8-byte length


def test_decode_nesting_limit():
    deep = b"\xc0"
    for _ in range(rlp.MAX_DEPTH - 1):
        deep = rlp.encode([rlp.decode(deep)])
    rlp.decode(deep)  # MAX_DEPTH levels: fine
    too_deep = rlp.encode([rlp.decode(deep)])
    e = raises(rlp.RLPError, rlp.decode, too_deep)
    assert "nested deeper" in str(e)
    assert rlp.decode(too_deep, max_depth=rlp.MAX_DEPTH + 1)


def test_decode_rejects_non_bytes():
    raises(rlp.RLPError, rlp.decode, "0x80")
    raises(rlp.RLPError, rlp.decode, [0x80])


def test_decode_int_is_strict():
    assert rlp.decode_int(b"") == 0
    assert rlp.decode_int(b"\x01\x00") == 256
    e = raises(rlp.RLPError, rlp.decode_int, b"\x00\x01", "nonce")
    assert "nonce" in str(e) and "leading zero" in str(e)
    raises(rlp.RLPError, rlp.decode_int, b"\x00")
    raises(rlp.RLPError, rlp.decode_int, [b"\x01"])


class _Collect:
    def __init__(self):
        self.parts = []

    def write(self, b):
        self.parts.append(bytes(b))


def test_encode_into_streams():
    item = [5, b"\x80", [b"x" * 60, []], 2 ** 70, "str"]
    whole = rlp.encode(item)
    sink = _Collect()
    rlp.encode_into(sink, item)
    assert b"".join(sink.parts) == whole
    assert len(sink.parts) > 3  # pieces, not one built-up copy
    import keccak  # imported here: compiling it from source next to this module is heavy

    h = keccak.Keccak256()
    rlp.encode_into(h, item)
    assert h.digest() == keccak.keccak256(whole)
