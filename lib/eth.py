# Ethereum for the plug: addresses (EIP-55), signed transactions (EIP-155 legacy
# and EIP-1559), transaction hashes and decoding, EIP-191 personal messages and
# ERC-20 calldata. Runs on MicroPython and CPython; byte for byte the same as
# eth-account.
#
# Transactions are dicts with eth-account's field names:
#   type 0: nonce, gasPrice, gas, to, value, data, chainId
#   type 2: nonce, maxPriorityFeePerGas, maxFeePerGas, gas, to, value, data,
#           accessList, chainId
# `type` may be left out: gasPrice means 0, maxFeePerGas means 2. `value` defaults
# to 0, `data` to b"", `accessList` to []. `to` is required and must be a
# checksummed address: the plug only pays, it never deploys contracts, and a
# forgotten `to` would otherwise turn a payment into a contract creation. A `from`
# field, if given, must be the signing key's address. Any other field, a missing
# one or a bad value raises ValueError naming the field. The key never appears in
# an error message.
import binascii

import ecdsa_micro
import rlp
from keccak import Keccak256, keccak256

_UINT256_MAX = (1 << 256) - 1
_UINT64_MAX = (1 << 64) - 1  # EIP-2681 nonce limit
_CHAIN_ID_MAX = (1 << 63) - 37  # EIP-2294: the legacy v = 2 * chainId + 36 fits 64 bits
_HALF_N = ecdsa_micro.N >> 1
_HEX = "0123456789abcdefABCDEF"
_MSG_PREFIX = b"\x19Ethereum Signed Message:\n"
_SEL_TRANSFER = b"\xa9\x05\x9c\xbb"  # transfer(address,uint256)
_SEL_BALANCE_OF = b"\x70\xa0\x82\x31"  # balanceOf(address)

_COMMON = ("type", "nonce", "gas", "to", "value", "data", "chainId", "from")
_FIELDS = {
    0: _COMMON + ("gasPrice",),
    2: _COMMON + ("maxFeePerGas", "maxPriorityFeePerGas", "accessList"),
}


def _hex(b):
    return binascii.hexlify(b).decode()


def _is_bytes(x):
    return isinstance(x, (bytes, bytearray, memoryview))


# ---- addresses -------------------------------------------------------------


def _checksum(lower40):
    """EIP-55: upper-case each letter whose nibble of keccak(lower hex) is >= 8."""
    h = keccak256(lower40.encode())
    out = []
    for i in range(40):
        c = lower40[i]
        nib = h[i >> 1] >> 4 if i & 1 == 0 else h[i >> 1] & 15
        out.append(c.upper() if c > "9" and nib >= 8 else c)
    return "0x" + "".join(out)


def _hex40(s, field):
    if not isinstance(s, str):
        raise ValueError("%s: address must be a '0x' hex string, got %s" % (field, type(s).__name__))
    if len(s) != 42 or s[:2] not in ("0x", "0X"):
        raise ValueError("%s: address must be '0x' and 40 hex digits" % field)
    body = s[2:]
    for c in body:
        if c not in _HEX:
            raise ValueError("%s: address has a non-hex character %r" % (field, c))
    return body


def _address_bytes(s, field, strict=True):
    """The 20 bytes of a checksummed address (strict) or of any valid address."""
    body = _hex40(s, field)
    lower = body.lower()
    good = _checksum(lower)
    if body != good[2:]:
        if strict:
            raise ValueError("%s: %s has a wrong or missing EIP-55 checksum (expected %s)"
                             % (field, s, good))
        if body != lower and body != body.upper():
            raise ValueError("%s: %s has a wrong EIP-55 checksum (expected %s)" % (field, s, good))
    return binascii.unhexlify(lower)


def to_checksum_address(addr):
    """EIP-55 form of `addr`: a hex string (all lower, all upper, or already checksummed)
    or 20 bytes. A mixed-case string with a wrong checksum is a typo: ValueError."""
    if _is_bytes(addr):
        if len(addr) != 20:
            raise ValueError("address: must be 20 bytes, got %d" % len(addr))
        return _checksum(_hex(addr))
    return _checksum(_hex(_address_bytes(addr, "address", strict=False)))


def is_address(s):
    """True for a '0x' + 40 hex digit string whose mixed case, if any, is a valid
    EIP-55 checksum (all lower or all upper case carry no checksum, as in eth-utils)."""
    try:
        _address_bytes(s, "address", strict=False)
        return True
    except ValueError:
        return False


def is_checksum_address(s):
    try:
        _address_bytes(s, "address", strict=True)
        return True
    except ValueError:
        return False


def public_to_address(pub64):
    if not _is_bytes(pub64) or len(pub64) != 64:
        raise ValueError("public_key: must be 64 bytes (x || y)")
    return _checksum(_hex(keccak256(pub64)[12:]))


def _check_key(private_key):
    if not _is_bytes(private_key) or len(private_key) != 32:
        raise ValueError("private_key: must be 32 bytes")
    k = int.from_bytes(bytes(private_key), "big")
    if k == 0 or k >= ecdsa_micro.N:
        raise ValueError("private_key: out of range for secp256k1")


def address(private_key):
    """The EIP-55 address of a 32-byte private key."""
    _check_key(private_key)
    return public_to_address(ecdsa_micro.public_key(bytes(private_key)))


# ---- transactions ----------------------------------------------------------


def _uint(tx, name, limit=_UINT256_MAX, default=None):
    v = tx.get(name, default)
    if v is None:
        raise ValueError("%s: missing" % name)
    if type(v) is bool or not isinstance(v, int):
        raise ValueError("%s: must be an int, got %s" % (name, type(v).__name__))
    if v < 0:
        raise ValueError("%s: must not be negative" % name)
    if v > limit:
        raise ValueError("%s: too large (max %d)" % (name, limit))
    return v


def _data(tx):
    d = tx.get("data", b"")
    if not _is_bytes(d):
        raise ValueError("data: must be bytes, got %s" % type(d).__name__)
    return bytes(d)


def _storage_key(k):
    if _is_bytes(k):
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
        out.append([_address_bytes(entry["address"], "accessList.address"),
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
    if type(t) is bool or t not in _FIELDS:
        raise ValueError("type: only 0 (legacy, EIP-155) and 2 (EIP-1559) are supported")
    for name in tx:
        if name not in _FIELDS[t]:
            raise ValueError("%s: unknown field for a type %d transaction" % (name, t))
    return t


def _unsigned_fields(tx):
    """(type, list of RLP items without the signature) of a validated tx."""
    t = _tx_type(tx)
    to = tx.get("to")
    if to is None:
        raise ValueError("to: missing (contract creation is not supported)")
    to = _address_bytes(to, "to")
    nonce = _uint(tx, "nonce", _UINT64_MAX)
    gas = _uint(tx, "gas")
    value = _uint(tx, "value", default=0)
    data = _data(tx)
    chain_id = _uint(tx, "chainId", _CHAIN_ID_MAX)
    if chain_id == 0:
        raise ValueError("chainId: must be >= 1 (replay protection)")
    if t == 0:
        return t, [nonce, _uint(tx, "gasPrice"), gas, to, value, data, chain_id]
    max_fee = _uint(tx, "maxFeePerGas")
    tip = _uint(tx, "maxPriorityFeePerGas")
    if tip > max_fee:
        raise ValueError("maxPriorityFeePerGas: exceeds maxFeePerGas")
    return t, [chain_id, nonce, tip, max_fee, gas, to, value, data, _access_list(tx)]


def _signing_hash(t, items):
    h = Keccak256()
    if t == 0:
        h.update(rlp.encode(items + [0, 0]))  # EIP-155: chainId, 0, 0 close the list
    else:
        h.update(b"\x02")
        h.update(rlp.encode(items))
    return h.digest()


def sign_transaction(tx, private_key):
    """Validate `tx`, sign it and return the raw transaction bytes (what
    eth_sendRawTransaction takes)."""
    t, items = _unsigned_fields(tx)
    _check_key(private_key)
    if "from" in tx and _address_bytes(tx["from"], "from", strict=False) != \
            _address_bytes(address(private_key), "from"):
        raise ValueError("from: is not the address of the signing key")
    digest = _signing_hash(t, items)
    r, s, recid = ecdsa_micro.sign(digest, bytes(private_key))
    if t == 0:
        items[6] = recid + 35 + 2 * items[6]  # EIP-155 v replaces chainId
        items.append(r)
        items.append(s)
        return rlp.encode(items)
    items.append(recid)
    items.append(r)
    items.append(s)
    return b"\x02" + rlp.encode(items)


def transaction_hash(raw):
    """The hash a node reports for a raw signed transaction."""
    if not _is_bytes(raw) or len(raw) == 0:
        raise ValueError("raw: must be non-empty bytes")
    return keccak256(raw)


def _signature_ints(r, s):
    if r == 0 or r >= ecdsa_micro.N:
        raise ValueError("signature: r out of range")
    if s == 0 or s > _HALF_N:
        raise ValueError("signature: s is zero or high (not low-s, EIP-2)")


def decode_transaction(raw):
    """Decode and check a raw signed transaction (type 0 or 2), recovering its
    sender: a dict with eth-account's field names plus 'from' and 'hash'."""
    from eth_decode import decode

    return decode(raw)


# ---- EIP-191 personal messages -----------------------------------------------


def _message_hash(msg):
    if isinstance(msg, str):
        msg = msg.encode()
    if not _is_bytes(msg):
        raise ValueError("message: must be bytes or str")
    h = Keccak256()
    h.update(_MSG_PREFIX)
    h.update(str(len(msg)).encode())
    h.update(msg)
    return h.digest()


def sign_message(msg, private_key):
    """EIP-191 personal_sign of `msg` (bytes, or str as UTF-8): 65 bytes r||s||v,
    v = 27 or 28, as eth-account's sign_message(encode_defunct(...))."""
    digest = _message_hash(msg)
    _check_key(private_key)
    r, s, recid = ecdsa_micro.sign(digest, bytes(private_key))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((27 + recid,))


def recover_message(msg, signature):
    """The address that signed `msg` with EIP-191 personal_sign. ValueError for a
    malformed signature, a high s or a v other than 27/28."""
    if not _is_bytes(signature) or len(signature) != 65:
        raise ValueError("signature: must be 65 bytes (r || s || v)")
    v = signature[64]
    if v not in (27, 28):
        raise ValueError("signature: v must be 27 or 28, got %d" % v)
    r = int.from_bytes(bytes(signature[:32]), "big")
    s = int.from_bytes(bytes(signature[32:64]), "big")
    _signature_ints(r, s)
    return public_to_address(ecdsa_micro.recover(_message_hash(msg), r, s, v - 27))


# ---- ERC-20 calldata ---------------------------------------------------------


def erc20_transfer_data(to, amount):
    """Calldata of ERC-20 transfer(to, amount); `to` checksummed, 0 <= amount < 2**256."""
    a = _address_bytes(to, "to")
    n = _uint({"amount": amount}, "amount")
    return _SEL_TRANSFER + bytes(12) + a + n.to_bytes(32, "big")


def erc20_balance_of_data(owner):
    """Calldata of ERC-20 balanceOf(owner)."""
    return _SEL_BALANCE_OF + bytes(12) + _address_bytes(owner, "owner", strict=False)
