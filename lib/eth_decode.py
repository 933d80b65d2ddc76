# Decoding raw signed transactions (eth.decode_transaction), for reconciling what
# the plug broadcast with what a node reports. Strict: non-canonical RLP or
# integers, wrong field counts, high s or a v that does not match the chain id
# raise ValueError naming the field. Separate from eth.py because only
# reconciliation needs it; it is imported on first use.
import binascii

import ecdsa_micro
import rlp
from keccak import Keccak256, keccak256

import eth

_CHAIN_ID_MAX = (1 << 63) - 37  # eth_tx.CHAIN_ID_MAX (EIP-2294), without importing eth_tx


def _int(b, name):
    if not isinstance(b, bytes):
        raise ValueError("%s: must be an RLP string, not a list" % name)
    if len(b) > 32:
        raise ValueError("%s: longer than 32 bytes" % name)
    if len(b) and b[0] == 0:
        raise ValueError("%s: integer has leading zero bytes (non-canonical)" % name)
    return int.from_bytes(b, "big")


def _bytes(b, name):
    if not isinstance(b, bytes):
        raise ValueError("%s: must be an RLP string, not a list" % name)
    return b


def _to(b):
    b = _bytes(b, "to")
    if len(b) == 0:
        return None
    if len(b) != 20:
        raise ValueError("to: must be 20 bytes")
    return eth.to_checksum_address(b)


def _access_list(al):
    if not isinstance(al, list):
        raise ValueError("accessList: must be an RLP list")
    out = []
    for entry in al:
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[1], list):
            raise ValueError("accessList: each entry must be [address, [storageKeys]]")
        a = _bytes(entry[0], "accessList.address")
        if len(a) != 20:
            raise ValueError("accessList.address: must be 20 bytes")
        keys = []
        for k in entry[1]:
            if not isinstance(k, bytes) or len(k) != 32:
                raise ValueError("accessList: storage key must be 32 bytes")
            keys.append("0x" + binascii.hexlify(k).decode())
        out.append({"address": eth.to_checksum_address(a), "storageKeys": keys})
    return out


def _list(payload, count, what):
    try:
        items = rlp.decode(payload)
    except ValueError as e:
        raise ValueError("raw: malformed RLP in %s: %s" % (what, e))
    if not isinstance(items, list) or len(items) != count:
        raise ValueError("raw: a %s has %d RLP fields" % (what, count))
    return items


def _hash(prefix, items):
    h = Keccak256()
    h.update(prefix)
    rlp.encode_into(h, items)
    return h.digest()


def decode(raw):
    if not isinstance(raw, (bytes, bytearray, memoryview)) or len(raw) == 0:
        raise ValueError("raw: must be non-empty bytes")
    raw = bytes(raw)
    first = raw[0]
    if first >= 0xC0:
        it = _list(raw, 9, "legacy transaction")
        names = ("nonce", "gasPrice", "gas")
        tx = {"type": 0}
        for i in range(3):
            tx[names[i]] = _int(it[i], names[i])
        tx["to"] = _to(it[3])
        tx["value"] = _int(it[4], "value")
        tx["data"] = _bytes(it[5], "data")
        v = _int(it[6], "v")
        if v in (27, 28):  # before EIP-155: no chain id
            chain_id, recid, unsigned = None, v - 27, it[:6]
        elif v >= 37:
            chain_id, recid = (v - 35) >> 1, (v - 35) & 1
            if chain_id > _CHAIN_ID_MAX:
                raise ValueError("v: its chain id is above 2**63-37 (EIP-2294)")
            unsigned = it[:6] + [chain_id, 0, 0]
        else:
            raise ValueError("v: %d is neither 27/28 nor an EIP-155 value" % v)
        tx["chainId"] = chain_id
        tx["v"] = v
        digest = _hash(b"", unsigned)
    elif first == 2:
        it = _list(raw[1:], 12, "type 2 transaction")
        names = ("chainId", "nonce", "maxPriorityFeePerGas", "maxFeePerGas", "gas")
        tx = {"type": 2}
        for i in range(5):
            tx[names[i]] = _int(it[i], names[i])
        if tx["chainId"] > _CHAIN_ID_MAX:
            raise ValueError("chainId: above 2**63-37 (EIP-2294)")
        tx["to"] = _to(it[5])
        tx["value"] = _int(it[6], "value")
        tx["data"] = _bytes(it[7], "data")
        tx["accessList"] = _access_list(it[8])
        recid = _int(it[9], "yParity")
        if recid > 1:
            raise ValueError("yParity: must be 0 or 1")
        tx["yParity"] = recid
        digest = _hash(b"\x02", it[:9])
    else:
        raise ValueError("type: only legacy and type 2 transactions are supported (got 0x%02x)"
                         % first)
    r = _int(it[-2], "r")
    s = _int(it[-1], "s")
    eth.check_signature_ints(r, s)
    tx["r"] = r
    tx["s"] = s
    try:
        pub = ecdsa_micro.recover(digest, r, s, recid)
    except ValueError as e:
        raise ValueError("signature: does not recover to a public key (%s)" % e)
    tx["from"] = eth.public_to_address(pub)
    tx["hash"] = keccak256(raw)
    return tx
