"""lib/eth.py on known vectors and bad inputs; runs on CPython and on MicroPython.

Sources of the vectors:
- EIP-155 (https://eips.ethereum.org/EIPS/eip-155), "Example": nonce 9, gasPrice 20 gwei,
  gas 21000, to 0x3535..., value 1 ether, chainId 1, private key 0x4646...46.
- EIP-55 (https://eips.ethereum.org/EIPS/eip-55), "Test Cases".
- The type 2 transaction, message signature and ERC-20 calldata were produced by
  eth-account 0.14 (Account.sign_transaction / sign_message(encode_defunct(text=...)))
  and by the Solidity ABI (transfer(address,uint256) selector a9059cbb).
"""

from dual import raises, tohex, unhex

import eth

# Compiling this file and lib/ from source costs MicroPython far more heap than the
# plug's .mpy modules do; the 64 KB budget is proven on .mpy in test_eth_oracle.py.
MP_HEAP = "128k"

KEY = unhex("46" * 32)
KEY_ADDRESS = "0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F"
TO = "0x3535353535353535353535353535353535353535"

EIP155_TX = {"nonce": 9, "gasPrice": 20 * 10**9, "gas": 21000, "to": TO,
             "value": 10**18, "data": b"", "chainId": 1}
EIP155_RAW = ("0xf86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764"
              "00008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9"
              "d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83")

TYPE2_RAW = ("0x02f89b018001028252089435353535353535353535353535353535353535350180f838f79435353535"
             "35353535353535353535353535353535e1a00000000000000000000000000000000000000000000000"
             "00000000000000000080a0bcd40a17228b4ce544bf57e1a2a36e910388ec65b5acafe284b6b9df5bf0b5"
             "d8a0067a8d674626d6d19666f50ef28f9bab0a71c04cfaaabf635d4212bf86674687")

HELLO_SIG = ("0xf63c93dc642a4839770b35abf9cb304ac2f1b5463d9a9abd87546feaa0af992e659cf087c433e45c45f"
             "6135cb819ab1922c6359dbb1b8c8d7a54141de2cd4beb1b")

EIP55 = [
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


def type2_tx():
    return {"type": 2, "nonce": 0, "maxFeePerGas": 2, "maxPriorityFeePerGas": 1, "gas": 21000,
            "to": TO, "value": 1, "data": b"", "chainId": 1,
            "accessList": [{"address": TO, "storageKeys": ["0x" + "00" * 32]}]}


def field_error(field, fn, *args):
    """fn(*args) raises ValueError whose message names `field` and never shows the key."""
    e = raises(ValueError, fn, *args)
    msg = str(e)
    assert field in msg, "%r does not name %s" % (msg, field)
    assert "4646464646" not in msg and "0x46" not in msg, msg
    return msg


def with_(tx, **changes):
    t = dict(tx)
    for k in changes:
        if changes[k] is DROP:
            t.pop(k, None)
        else:
            t[k] = changes[k]
    return t


DROP = object()


# ---- known vectors -----------------------------------------------------------

def test_eip155_example_transaction():
    assert tohex(eth.sign_transaction(EIP155_TX, KEY)) == EIP155_RAW


def test_eip155_example_key_address():
    assert eth.address(KEY) == KEY_ADDRESS


def test_type2_transaction_matches_eth_account():
    assert tohex(eth.sign_transaction(type2_tx(), KEY)) == TYPE2_RAW


def test_type_inferred_from_fee_fields():
    t = type2_tx()
    del t["type"]
    assert tohex(eth.sign_transaction(t, KEY)) == TYPE2_RAW
    assert tohex(eth.sign_transaction(with_(EIP155_TX, type=0), KEY)) == EIP155_RAW


def test_eip55_addresses():
    for a in EIP55:
        assert eth.to_checksum_address(a.lower()) == a
        assert eth.to_checksum_address("0x" + a[2:].upper()) == a
        assert eth.to_checksum_address(unhex(a)) == a
        assert eth.is_address(a) and eth.is_checksum_address(a)


def test_bad_checksum_rejected():
    a = EIP55[4]
    flipped = a[:-1] + ("D" if a[-1] == "d" else "d")
    assert not eth.is_address(flipped)
    assert not eth.is_checksum_address(a.lower())
    assert eth.is_address(a.lower())  # no checksum to check, as eth-utils
    field_error("address", eth.to_checksum_address, flipped)
    for bad in ("0x123", "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed00", "0x" + "g" * 40, None, 5):
        assert not eth.is_address(bad)


def test_transaction_hash_and_decode_roundtrip():
    raw = eth.sign_transaction(EIP155_TX, KEY)
    assert tohex(eth.transaction_hash(raw)) == (
        "0x33469b22e9f636356c4160a87eb19df52b7412e8eac32a4a55ffe88ea8350788")
    d = eth.decode_transaction(raw)
    assert d["from"] == KEY_ADDRESS and d["chainId"] == 1 and d["v"] == 37
    for k in EIP155_TX:
        assert d[k] == EIP155_TX[k], k
    assert d["hash"] == eth.transaction_hash(raw)
    d2 = eth.decode_transaction(unhex(TYPE2_RAW))
    t = type2_tx()
    for k in t:
        assert d2[k] == t[k], k
    assert d2["from"] == KEY_ADDRESS and d2["yParity"] == 0


def test_large_chain_id_legacy_roundtrip():
    for cid in (2**32 + 7, 2**53 + 1, 2**63 - 37):
        raw = eth.sign_transaction(with_(EIP155_TX, chainId=cid), KEY)
        d = eth.decode_transaction(raw)
        assert d["chainId"] == cid and d["from"] == KEY_ADDRESS
        assert d["v"] in (cid * 2 + 35, cid * 2 + 36)


def test_message_sign_and_recover():
    sig = eth.sign_message("hello", KEY)
    assert tohex(sig) == HELLO_SIG
    assert eth.sign_message(b"hello", KEY) == sig
    assert eth.recover_message("hello", sig) == KEY_ADDRESS
    assert eth.recover_message(b"hellO", sig) != KEY_ADDRESS


def test_erc20_calldata():
    d = eth.erc20_transfer_data(EIP55[4], 10**18)
    assert tohex(d) == ("0xa9059cbb0000000000000000000000005aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
                        "0000000000000000000000000000000000000000000000000de0b6b3a7640000")
    assert tohex(eth.erc20_balance_of_data(EIP55[4])) == (
        "0x70a082310000000000000000000000005aaeb6053f3e94c9b9a09f33669435e7ef1beaed")
    field_error("amount", eth.erc20_transfer_data, EIP55[4], -1)
    field_error("amount", eth.erc20_transfer_data, EIP55[4], 2**256)
    field_error("to", eth.erc20_transfer_data, EIP55[4].lower(), 1)


# ---- bad inputs: each raises ValueError naming the field -----------------------

def test_missing_fields_named():
    for f in ("nonce", "gas", "chainId", "to", "gasPrice"):
        field_error(f, eth.sign_transaction, with_(EIP155_TX, **{f: DROP}), KEY)
    for f in ("maxFeePerGas", "maxPriorityFeePerGas"):
        field_error(f, eth.sign_transaction, with_(type2_tx(), **{f: DROP}), KEY)
    field_error("to", eth.sign_transaction, with_(EIP155_TX, to=None), KEY)


def test_bad_integers_named():
    for f in ("nonce", "gas", "gasPrice", "value", "chainId"):
        field_error(f, eth.sign_transaction, with_(EIP155_TX, **{f: -1}), KEY)
        field_error(f, eth.sign_transaction, with_(EIP155_TX, **{f: 2**256}), KEY)
        field_error(f, eth.sign_transaction, with_(EIP155_TX, **{f: "1"}), KEY)
        field_error(f, eth.sign_transaction, with_(EIP155_TX, **{f: 1.0}), KEY)
        field_error(f, eth.sign_transaction, with_(EIP155_TX, **{f: True}), KEY)
    field_error("nonce", eth.sign_transaction, with_(EIP155_TX, nonce=2**64), KEY)
    field_error("chainId", eth.sign_transaction, with_(EIP155_TX, chainId=0), KEY)
    field_error("chainId", eth.sign_transaction, with_(EIP155_TX, chainId=2**63 - 36), KEY)
    for f in ("maxFeePerGas", "maxPriorityFeePerGas"):
        field_error(f, eth.sign_transaction, with_(type2_tx(), **{f: 2**256}), KEY)
    field_error("maxPriorityFeePerGas", eth.sign_transaction,
                with_(type2_tx(), maxPriorityFeePerGas=3), KEY)


def test_bad_addresses_data_and_types_named():
    field_error("to", eth.sign_transaction, with_(EIP155_TX, to=EIP55[4].lower()), KEY)
    field_error("to", eth.sign_transaction, with_(EIP155_TX, to="0x35"), KEY)
    field_error("to", eth.sign_transaction, with_(EIP155_TX, to=unhex(TO)), KEY)
    field_error("data", eth.sign_transaction, with_(EIP155_TX, data="0x00"), KEY)
    field_error("data", eth.sign_transaction, with_(EIP155_TX, data=[1]), KEY)
    field_error("type", eth.sign_transaction, with_(EIP155_TX, type=1), KEY)
    field_error("type", eth.sign_transaction, with_(EIP155_TX, type="0x0"), KEY)
    for t in ([2], {}, 2.0, True):  # not TypeError (unhashable), not 2.0 taken for 2
        field_error("type", eth.sign_transaction, with_(type2_tx(), type=t), KEY)
    field_error("type", eth.sign_transaction, with_(EIP155_TX, type=0.0), KEY)
    field_error("gasprice", eth.sign_transaction, with_(EIP155_TX, gasprice=1), KEY)
    field_error("accessList", eth.sign_transaction, with_(EIP155_TX, accessList=[]), KEY)
    field_error("maxFeePerGas", eth.sign_transaction, with_(EIP155_TX, maxFeePerGas=1), KEY)
    field_error("gasPrice", eth.sign_transaction, with_(type2_tx(), gasPrice=1), KEY)
    field_error("maxFeePerGas", eth.sign_transaction, with_(EIP155_TX, type=0, maxFeePerGas=1), KEY)
    field_error("gasPrice", eth.sign_transaction, with_(type2_tx(), type=2, gasPrice=1), KEY)
    field_error("from", eth.sign_transaction, with_(EIP155_TX, **{"from": EIP55[4]}), KEY)
    assert tohex(eth.sign_transaction(with_(EIP155_TX, **{"from": KEY_ADDRESS}), KEY)) == EIP155_RAW
    field_error("tx", eth.sign_transaction, [1, 2], KEY)


def test_bad_access_lists_named():
    for al in ("x", [1], [{"storageKeys": []}], [{"address": TO, "storageKeys": ["0x00"]}],
               [{"address": EIP55[4].lower(), "storageKeys": []}],
               [{"address": TO, "storageKeys": "0x" + "00" * 32}],
               [{"address": TO, "storageKeys": [], "extra": 1}]):
        field_error("accessList", eth.sign_transaction, with_(type2_tx(), accessList=al), KEY)


def test_bad_keys_never_shown():
    for k in (b"", KEY[:31], KEY + b"\x00", bytes(32), b"\xff" * 32, "46" * 32, None):
        field_error("private_key", eth.sign_transaction, EIP155_TX, k)
        field_error("private_key", eth.address, k)
        field_error("private_key", eth.sign_message, "hi", k)


def test_bad_signatures_rejected():
    sig = unhex(HELLO_SIG)
    field_error("signature", eth.recover_message, "hello", sig[:64])
    field_error("signature", eth.recover_message, "hello", sig[:64] + b"\x01")
    field_error("signature", eth.recover_message, "hello", sig[:64] + b"\x1d")
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(sig[32:64], "big")
    high = sig[:32] + (n - s).to_bytes(32, "big") + bytes((55 - sig[64],))
    field_error("signature", eth.recover_message, "hello", high)  # same point, high s
    field_error("signature", eth.recover_message, "hello", bytes(32) + sig[32:])
    field_error("message", eth.recover_message, 5, sig)


def test_malformed_raw_transactions_rejected():
    raw = unhex(EIP155_RAW)
    field_error("raw", eth.decode_transaction, b"")
    field_error("raw", eth.decode_transaction, raw[:-1])
    field_error("raw", eth.decode_transaction, raw + b"\x00")
    field_error("type", eth.decode_transaction, b"\x01" + raw)
    field_error("raw", eth.transaction_hash, "0x00")
    t2 = unhex(TYPE2_RAW)
    field_error("raw", eth.decode_transaction, t2[:-2])
    # v = 30 is neither pre-EIP-155 nor EIP-155
    bad_v = raw.replace(b"\x80\x25\xa0", b"\x80\x1e\xa0")
    field_error("v", eth.decode_transaction, bad_v)


def test_decode_rejects_high_s_and_non_canonical_fields():
    import rlp

    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    items = rlp.decode(unhex(EIP155_RAW))
    s = int.from_bytes(items[8], "big")
    v = int.from_bytes(items[6], "big")
    flipped = v + 1 if (v - 35) % 2 == 0 else v - 1
    high = items[:6] + [flipped, items[7], n - s]  # the same signature with s high
    field_error("signature", eth.decode_transaction, rlp.encode(high))
    padded = [b"\x00\x09"] + items[1:]  # nonce 9 with a leading zero byte
    field_error("nonce", eth.decode_transaction, rlp.encode(padded))
    wrong_to = items[:3] + [b"\x35" * 19] + items[4:]
    field_error("to", eth.decode_transaction, rlp.encode(wrong_to))
    t2 = rlp.decode(unhex(TYPE2_RAW)[1:])
    field_error("yParity", eth.decode_transaction, b"\x02" + rlp.encode(t2[:9] + [2] + t2[10:]))
    bad_list = b"\x02" + rlp.encode(t2[:8] + [b"x"] + t2[9:])
    field_error("accessList", eth.decode_transaction, bad_list)


def test_decode_caps_chain_id_as_signing_does():
    import rlp

    top = 2**63 - 37  # EIP-2294, the largest chain id sign_transaction accepts
    items = rlp.decode(eth.sign_transaction(with_(EIP155_TX, chainId=top), KEY))
    v = int.from_bytes(items[6], "big")
    assert eth.decode_transaction(rlp.encode(items))["chainId"] == top
    field_error("v", eth.decode_transaction, rlp.encode(items[:6] + [v + 2] + items[7:]))
    field_error("v", eth.decode_transaction, rlp.encode(items[:6] + [2**256 - 1] + items[7:]))
    raw2 = eth.sign_transaction(with_(type2_tx(), chainId=top), KEY)
    assert eth.decode_transaction(raw2)["chainId"] == top
    t2 = rlp.decode(raw2[1:])
    field_error("chainId", eth.decode_transaction, b"\x02" + rlp.encode([top + 1] + t2[1:]))
    field_error("chainId", eth.decode_transaction, b"\x02" + rlp.encode([2**255] + t2[1:]))


def test_bytes_like_inputs_accepted():
    tx = with_(EIP155_TX, data=bytearray(b"\x01\x02"))
    raw = eth.sign_transaction(tx, bytearray(KEY))
    assert eth.sign_transaction(with_(tx, data=memoryview(b"\x01\x02")), KEY) == raw
    assert eth.decode_transaction(bytearray(raw))["data"] == b"\x01\x02"
    assert eth.sign_message(bytearray(b"hello"), KEY) == unhex(HELLO_SIG)
    assert eth.recover_message("hello", bytearray(unhex(HELLO_SIG))) == KEY_ADDRESS
