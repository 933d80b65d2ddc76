# Ethereum for the plug: the public API. Byte for byte the same as eth-account;
# runs on MicroPython and CPython.
#
#   address(private_key) -> str                 EIP-55 address of a 32-byte key
#   public_to_address(pub64) -> str
#   to_checksum_address(addr) -> str            addr: hex string or 20 bytes
#   is_address(s) -> bool; is_checksum_address(s) -> bool
#   sign_transaction(tx, private_key) -> bytes  raw signed tx (type 0 EIP-155, type 2 EIP-1559)
#   transaction_hash(raw) -> bytes32
#   decode_transaction(raw) -> dict             fields + 'from' (recovered) + 'hash'
#   sign_message(msg, private_key) -> bytes65   EIP-191 personal_sign, v = 27/28
#   recover_message(msg, signature) -> str      address; rejects high s and bad v
#   erc20_transfer_data(to, amount) -> bytes; erc20_balance_of_data(owner) -> bytes
#
# Bad input raises ValueError whose message starts with the field's name; the key
# never appears in a message. The transaction rules (fields, limits, why `to` is
# required) are at the top of eth_tx.py.
#
# Heap: this module holds what address checks need (keccak only). Signing, messages
# and decoding live in eth_tx, eth_message and eth_decode and are imported on first
# use, with ecdsa_micro, so code that only checks addresses stays small on the plug.
import binascii

from keccak import keccak256

UINT256_MAX = (1 << 256) - 1
_HEX = "0123456789abcdefABCDEF"
_SEL_TRANSFER = b"\xa9\x05\x9c\xbb"  # transfer(address,uint256)
_SEL_BALANCE_OF = b"\x70\xa0\x82\x31"  # balanceOf(address)
# secp256k1 group order (SEC 2, 2.4.1); ecdsa_micro.N, kept here to avoid importing it
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def hexstr(b):
    return binascii.hexlify(b).decode()


def is_bytes(x):
    return isinstance(x, (bytes, bytearray, memoryview))


def uint(value, name, limit=UINT256_MAX):
    """value as a checked unsigned int; ValueError naming `name` otherwise."""
    if value is None:
        raise ValueError("%s: missing" % name)
    if type(value) is bool or not isinstance(value, int):
        raise ValueError("%s: must be an int, got %s" % (name, type(value).__name__))
    if value < 0:
        raise ValueError("%s: must not be negative" % name)
    if value > limit:
        raise ValueError("%s: too large (max %d)" % (name, limit))
    return value


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


def address_bytes(s, field, strict=True):
    """The 20 bytes of address string `s`. strict: it must carry its EIP-55 checksum;
    otherwise all lower or all upper case (no checksum) is accepted too."""
    if not isinstance(s, str):
        raise ValueError("%s: address must be a '0x' hex string, got %s"
                         % (field, type(s).__name__))
    if len(s) != 42 or s[:2] not in ("0x", "0X"):
        raise ValueError("%s: address must be '0x' and 40 hex digits" % field)
    body = s[2:]
    for c in body:
        if c not in _HEX:
            raise ValueError("%s: address has a non-hex character %r" % (field, c))
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
    if is_bytes(addr):
        if len(addr) != 20:
            raise ValueError("address: must be 20 bytes, got %d" % len(addr))
        return _checksum(hexstr(addr))
    return _checksum(hexstr(address_bytes(addr, "address", strict=False)))


def is_address(s):
    """True for '0x' + 40 hex digits whose mixed case, if any, is a valid EIP-55
    checksum (all lower or all upper case carry no checksum, as in eth-utils)."""
    try:
        address_bytes(s, "address", strict=False)
        return True
    except ValueError:
        return False


def is_checksum_address(s):
    """True only for an address in its exact EIP-55 form."""
    try:
        address_bytes(s, "address", strict=True)
        return True
    except ValueError:
        return False


def public_to_address(pub64):
    if not is_bytes(pub64) or len(pub64) != 64:
        raise ValueError("public_key: must be 64 bytes (x || y)")
    return _checksum(hexstr(keccak256(pub64)[12:]))


def check_key(private_key):
    """ValueError unless private_key is 32 bytes in 1 .. n-1 (never shows the key)."""
    if not isinstance(private_key, (bytes, bytearray)) or len(private_key) != 32:
        raise ValueError("private_key: must be 32 bytes")
    k = int.from_bytes(bytes(private_key), "big")
    if k == 0 or k >= _N:
        raise ValueError("private_key: out of range for secp256k1")
    return bytes(private_key)


def address(private_key):
    """The EIP-55 address of a 32-byte private key."""
    import ecdsa_micro

    return public_to_address(ecdsa_micro.public_key(check_key(private_key)))


# ---- transactions and messages (imported on first use) -----------------------


def sign_transaction(tx, private_key):
    """Validate `tx` (eth-account field names), sign it, return the raw transaction."""
    from eth_tx import sign_transaction as sign

    return sign(tx, private_key)


def transaction_hash(raw):
    """The hash a node reports for a raw signed transaction."""
    if not is_bytes(raw) or len(raw) == 0:
        raise ValueError("raw: must be non-empty bytes")
    return keccak256(raw)


def decode_transaction(raw):
    """Decode and check a raw signed transaction (type 0 or 2), recovering its
    sender: a dict with eth-account's field names plus 'from' and 'hash'."""
    from eth_decode import decode

    return decode(raw)


def sign_message(msg, private_key):
    """EIP-191 personal_sign of msg (bytes, or str as UTF-8): 65 bytes r || s || v."""
    from eth_message import sign_message as sign

    return sign(msg, private_key)


def recover_message(msg, signature):
    """The address that signed msg with EIP-191 personal_sign."""
    from eth_message import recover_message as recover

    return recover(msg, signature)


def check_signature_ints(r, s):
    """ValueError unless 0 < r < n and 0 < s <= n/2 (EIP-2 low s)."""
    if r == 0 or r >= _N:
        raise ValueError("signature: r out of range")
    if s == 0 or s > _N >> 1:
        raise ValueError("signature: s is zero or high (not low-s, EIP-2)")


# ---- ERC-20 calldata ---------------------------------------------------------


def erc20_transfer_data(to, amount):
    """Calldata of ERC-20 transfer(to, amount); `to` checksummed, 0 <= amount < 2**256."""
    a = address_bytes(to, "to")
    return _SEL_TRANSFER + bytes(12) + a + uint(amount, "amount").to_bytes(32, "big")


def erc20_balance_of_data(owner):
    """Calldata of ERC-20 balanceOf(owner)."""
    return _SEL_BALANCE_OF + bytes(12) + address_bytes(owner, "owner", strict=False)
