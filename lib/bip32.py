# BIP-32 hierarchical deterministic private keys on secp256k1, as Ethereum wallets
# use them (BIP-44 path m/44'/60'/0'/0/i).
#
#   master_key(seed) -> (key32, chain_code32)        seed: 16..64 bytes (BIP-39 seed is 64)
#   child_key(key, chain_code, index) -> (key32, chain_code32)   index >= HARDENED: hardened
#   parse_path("m/44'/60'/0'/0/3") -> [0x8000002C, 0x8000003C, 0x80000000, 0, 3]
#   derive(seed, path) -> (key32, chain_code32)
#   ETH_PATH = "m/44'/60'/0'/0"; eth_account_key(seed, i) -> key32 of m/44'/60'/0'/0/i
#
# Errors are Bip32Error (a ValueError); messages never contain key material.
# Non-hardened steps need the parent public key: ecdsa_micro.public_key, imported
# only when such a step happens.
from sha512 import hmac_sha512

HARDENED = 0x80000000
# secp256k1 group order
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ETH_PATH = "m/44'/60'/0'/0"


class Bip32Error(ValueError):
    pass


def _int(b):
    return int.from_bytes(b, "big")


def _b32(n):
    return n.to_bytes(32, "big")


def compressed(pub64):
    """SEC1 compressed form (33 bytes) of an x||y public key."""
    if len(pub64) != 64:
        raise Bip32Error("public key must be 64 bytes (x||y)")
    return (b"\x03" if pub64[63] & 1 else b"\x02") + bytes(pub64[:32])


def master_key(seed):
    seed = bytes(seed)
    if not 16 <= len(seed) <= 64:
        raise Bip32Error("seed must be 16 to 64 bytes, got %d" % len(seed))
    i = hmac_sha512(b"Bitcoin seed", seed)
    k = _int(i[:32])
    if k == 0 or k >= N:
        raise Bip32Error("seed gives an invalid master key; use another seed")
    return i[:32], i[32:]


def child_key(key, chain_code, index):
    if not isinstance(index, int) or not 0 <= index <= 0xFFFFFFFF:
        raise Bip32Error("child index must be 0..2**32-1")
    if len(key) != 32 or len(chain_code) != 32:
        raise Bip32Error("key and chain code must be 32 bytes each")
    if index >= HARDENED:
        data = b"\x00" + bytes(key)
    else:
        from ecdsa_micro import public_key

        data = compressed(public_key(bytes(key)))
    i = hmac_sha512(bytes(chain_code), data + index.to_bytes(4, "big"))
    il = _int(i[:32])
    k = (il + _int(key)) % N
    if il >= N or k == 0:
        # probability below 2**-127; BIP-32 says skip to the next index
        raise Bip32Error("child %d is invalid; use the next index" % index)
    return _b32(k), i[32:]


def parse_path(path):
    """A path string ("m/44'/60'/0'/0/1", h or ' marks hardened) or a list of ints."""
    if isinstance(path, (list, tuple)):
        out = list(path)
    else:
        if not isinstance(path, str):
            raise Bip32Error("path must be a string like m/44'/60'/0'/0/0")
        parts = path.strip().split("/")
        if parts[0] != "m":
            raise Bip32Error("path must start with m/: %r" % path)
        out = []
        for p in parts[1:]:
            hard = p[-1:] in ("'", "h", "H")
            digits = p[:-1] if hard else p
            if not digits.isdigit() or len(digits) > 10:
                raise Bip32Error("bad path element %r in %r" % (p, path))
            n = int(digits)
            if n >= HARDENED:
                raise Bip32Error("path index %d too large in %r" % (n, path))
            out.append(n + HARDENED if hard else n)
    for n in out:
        if not isinstance(n, int) or not 0 <= n <= 0xFFFFFFFF:
            raise Bip32Error("path index out of range")
    return out


def derive(seed, path):
    k, c = master_key(seed)
    for index in parse_path(path):
        k, c = child_key(k, c, index)
    return k, c


def eth_account_key(seed, account):
    """Private key of account `account` on the Ethereum BIP-44 path m/44'/60'/0'/0/i."""
    if not isinstance(account, int) or not 0 <= account < HARDENED:
        raise Bip32Error("account index must be 0..2**31-1")
    k, c = derive(seed, ETH_PATH)
    return child_key(k, c, account)[0]
