# Signed Ethereum transactions (eth.sign_transaction): EIP-155 legacy (type 0) and
# EIP-1559 (type 2), byte for byte as eth-account signs them.
#
# A transaction is a dict with eth-account's field names:
#   type 0: nonce, gasPrice, gas, to, value, data, chainId
#   type 2: nonce, maxPriorityFeePerGas, maxFeePerGas, gas, to, value, data,
#           accessList, chainId
# `type` may be left out: gasPrice means 0, maxFeePerGas means 2. `value` defaults
# to 0, `data` (bytes) to b"", `accessList` (list of {"address", "storageKeys"},
# keys as "0x" + 64 hex or 32 bytes) to []. Limits: integers 0 .. 2**256-1, nonce
# below 2**64 (EIP-2681), chainId 1 .. 2**63-37 (EIP-2294, so v fits 64 bits).
# `to` is required and must be a checksummed address: the plug only pays, it never
# deploys contracts, and a forgotten `to` would otherwise turn a payment into a
# contract creation. A `from` field, if given, must be the signing key's address.
# Unknown fields (a typo such as `gasprice`) are rejected, not ignored.
#
# Heap: the unsigned encoding streams into the hasher (rlp.encode_into), and the
# signed one is joined once from its pieces, so beyond the caller's data only the
# raw transaction itself is allocated in one block.
import binascii

import ecdsa_micro
import rlp
from keccak import Keccak256

from eth import address, address_bytes, check_key, is_bytes, uint

_UINT64_MAX = (1 << 64) - 1  # EIP-2681 nonce limit
_CHAIN_ID_MAX = (1 << 63) - 37  # EIP-2294: the legacy v = 2 * chainId + 36 fits 64 bits

_COMMON = ("type", "nonce", "gas", "to", "value", "data", "chainId", "from")
_FIELDS = {
    0: _COMMON + ("gasPrice",),
    2: _COMMON + ("maxFeePerGas", "maxPriorityFeePerGas", "accessList"),
}


def _storage_key(k):
    if is_bytes(k):
        if len(k) == 32:
            return bytes(k)
    elif isinstance(k, str) and len(k) == 66 and k[:2] == "0x":
        try:
            return binascii.unhexlify(k[2:])
        except ValueError:
            pass
    raise ValueError("accessList: storage key must be 32 bytes or '0x' + 64 hex digits")


def _access_list(tx):
    al = tx.get("accessList", ())
    if not isinstance(al, (list, tuple)):
        raise ValueError("accessList: must be a list of {address, storageKeys}")
    out = []
    for entry in al:
        if not isinstance(entry, dict) or "address" not in entry or len(entry) > 2:
            raise ValueError("accessList: each entry must be {'address', 'storageKeys'}")
        keys = entry.get("storageKeys", ())
        if not isinstance(keys, (list, tuple)):
            raise ValueError("accessList: storageKeys must be a list")
        out.append([address_bytes(entry["address"], "accessList.address"),
                    [_storage_key(k) for k in keys]])
    return out


def _tx_type(tx):
    if not isinstance(tx, dict):
        raise ValueError("tx: must be a dict")
    if "gasPrice" in tx and ("maxFeePerGas" in tx or "maxPriorityFeePerGas" in tx):
        raise ValueError("gasPrice: cannot be combined with maxFeePerGas/maxPriorityFeePerGas"
                         " (type 0 takes gasPrice, type 2 the max fees)")
    t = tx.get("type")
    if t is None:
        if "maxFeePerGas" in tx or "maxPriorityFeePerGas" in tx:
            t = 2
        elif "gasPrice" in tx:
            t = 0
        else:
            raise ValueError("gasPrice: missing (or maxFeePerGas for a type 2 transaction)")
    if type(t) is not int or t not in _FIELDS:
        raise ValueError("type: only 0 (legacy, EIP-155) and 2 (EIP-1559) are supported")
    for name in tx:
        if name not in _FIELDS[t]:
            raise ValueError("%s: unknown field for a type %d transaction" % (name, t))
    return t


def unsigned_fields(tx):
    """(type, list of RLP items without the signature) of a validated tx."""
    t = _tx_type(tx)
    to = tx.get("to")
    if to is None:
        raise ValueError("to: missing (contract creation is not supported)")
    to = address_bytes(to, "to")
    nonce = uint(tx.get("nonce"), "nonce", _UINT64_MAX)
    gas = uint(tx.get("gas"), "gas")
    value = uint(tx.get("value", 0), "value")
    data = tx.get("data", b"")
    if not is_bytes(data):
        raise ValueError("data: must be bytes, got %s" % type(data).__name__)
    if not isinstance(data, bytes):
        data = bytes(data)  # MicroPython's bytes.join takes bytes only
    chain_id = uint(tx.get("chainId"), "chainId", _CHAIN_ID_MAX)
    if chain_id == 0:
        raise ValueError("chainId: must be >= 1 (replay protection)")
    if t == 0:
        return t, [nonce, uint(tx.get("gasPrice"), "gasPrice"), gas, to, value, data, chain_id]
    max_fee = uint(tx.get("maxFeePerGas"), "maxFeePerGas")
    tip = uint(tx.get("maxPriorityFeePerGas"), "maxPriorityFeePerGas")
    if tip > max_fee:
        raise ValueError("maxPriorityFeePerGas: exceeds maxFeePerGas")
    return t, [chain_id, nonce, tip, max_fee, gas, to, value, data, _access_list(tx)]


def signing_hash(t, items):
    """The digest a signer signs for unsigned_fields() (items are left unchanged)."""
    h = Keccak256()
    if t == 0:
        items.append(0)  # EIP-155: chainId, 0, 0 close the list
        items.append(0)
        rlp.encode_into(h, items)
        del items[7:]
    else:
        h.update(b"\x02")
        rlp.encode_into(h, items)
    return h.digest()


def sign_transaction(tx, private_key):
    t, items = unsigned_fields(tx)
    key = check_key(private_key)
    if "from" in tx and address_bytes(tx["from"], "from", strict=False) != \
            address_bytes(address(key), "from"):
        raise ValueError("from: is not the address of the signing key")
    r, s, recid = ecdsa_micro.sign(signing_hash(t, items), key)
    if t == 0:
        items[6] = recid + 35 + 2 * items[6]  # EIP-155: v takes chainId's place
    else:
        items.append(recid)
    items.append(r)
    items.append(s)
    # collect the pieces (data by reference) and join once: one block of the final
    # size, not an encoding buffer plus its copy plus the type prefix
    out = _Pieces(b"" if t == 0 else b"\x02")
    rlp.encode_into(out, items)
    return b"".join(out.parts)


class _Pieces:
    def __init__(self, first):
        self.parts = [first]
        self.write = self.parts.append
