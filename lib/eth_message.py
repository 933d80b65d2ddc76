# EIP-191 personal messages (eth.sign_message / eth.recover_message), as
# eth-account's sign_message(encode_defunct(...)) and MetaMask's personal_sign:
# keccak256("\x19Ethereum Signed Message:\n" + decimal length + message), signed
# as 65 bytes r || s || v with v = 27 or 28.
import ecdsa_micro
from keccak import Keccak256

from eth import check_key, check_signature_ints, is_bytes, public_to_address

_PREFIX = b"\x19Ethereum Signed Message:\n"


def message_hash(msg):
    """The EIP-191 digest of msg (bytes, or str taken as UTF-8)."""
    if isinstance(msg, str):
        msg = msg.encode()
    if not is_bytes(msg):
        raise ValueError("message: must be bytes or str, got %s" % type(msg).__name__)
    h = Keccak256()
    h.update(_PREFIX)
    h.update(str(len(msg)).encode())
    h.update(msg)
    return h.digest()


def sign_message(msg, private_key):
    digest = message_hash(msg)
    r, s, recid = ecdsa_micro.sign(digest, check_key(private_key))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((27 + recid,))


def recover_message(msg, signature):
    """ValueError for a signature that is not 65 bytes, has v other than 27/28, an r
    out of range or a high s (EIP-2: every signature has a low-s twin)."""
    if not is_bytes(signature) or len(signature) != 65:
        raise ValueError("signature: must be 65 bytes (r || s || v)")
    v = signature[64]
    if v not in (27, 28):
        raise ValueError("signature: v must be 27 or 28, got %d" % v)
    r = int.from_bytes(bytes(signature[:32]), "big")
    s = int.from_bytes(bytes(signature[32:64]), "big")
    check_signature_ints(r, s)
    digest = message_hash(msg)
    try:
        pub = ecdsa_micro.recover(digest, r, s, v - 27)
    except ValueError as e:
        raise ValueError("signature: does not recover to a public key (%s)" % e)
    return public_to_address(pub)
