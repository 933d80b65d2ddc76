# RFC 6979 deterministic nonces for secp256k1 with HMAC-SHA256 (section 3.2).
# MicroPython has no `hmac` module, so HMAC (RFC 2104) is written out here over
# hashlib.sha256. With qlen = hlen = 256 bits, bits2int is a plain big-endian read.
import hashlib

from .curve import N

_BLOCK = 64
_IPAD = int.from_bytes(b"\x36" * _BLOCK, "big")
_OPAD = int.from_bytes(b"\x5c" * _BLOCK, "big")


def _pads(key):
    """The inner and outer HMAC key blocks (RFC 2104) for a key of at most 64 bytes."""
    k = int.from_bytes(key, "big") << (8 * (_BLOCK - len(key)))  # zero-padded on the right
    return (k ^ _IPAD).to_bytes(_BLOCK, "big"), (k ^ _OPAD).to_bytes(_BLOCK, "big")


def _hmac(pads, msg):
    h = hashlib.sha256(pads[0])
    h.update(msg)
    ih = h.digest()
    h = hashlib.sha256(pads[1])
    h.update(ih)
    return h.digest()


def hmac_sha256(key, msg):
    """HMAC-SHA256 (RFC 2104)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    return _hmac(_pads(key), msg)


class Nonces:
    """The candidate k values of RFC 6979 3.2 for (private key, digest), in order.

    `next()` returns the next k in [1, N); the signer asks again only if a k gives
    r == 0 or s == 0. `extra()` draws one more secret value from the same generator
    (used to blind the signer's arithmetic; not part of RFC 6979's k sequence).
    """

    def __init__(self, key_bytes, digest):
        h = int.from_bytes(digest, "big") % N
        seed = bytes(key_bytes) + h.to_bytes(32, "big")
        v = b"\x01" * 32
        pads = _pads(b"\x00" * 32)
        pads = _pads(_hmac(pads, v + b"\x00" + seed))
        v = _hmac(pads, v)
        pads = _pads(_hmac(pads, v + b"\x01" + seed))
        self._v = _hmac(pads, v)
        self._pads = pads
        self._fresh = True

    def next(self):
        while True:
            if not self._fresh:
                self._pads = _pads(_hmac(self._pads, self._v + b"\x00"))
                self._v = _hmac(self._pads, self._v)
            self._fresh = False
            self._v = _hmac(self._pads, self._v)
            t = int.from_bytes(self._v, "big")
            if 0 < t < N:
                return t

    def extra(self):
        # HMAC_K(V || 0x02): an input the RFC 6979 sequence never uses, so the k
        # sequence stays exactly the RFC's; secret because K and V are.
        return int.from_bytes(_hmac(self._pads, self._v + b"\x02"), "big") % (N - 1) + 1
