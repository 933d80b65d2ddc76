# The bytes the owner signs and the check of that signature (config.py describes the
# envelope): canonical(obj) equals CPython's json.dumps(obj, sort_keys=True,
# separators=(",", ":")) byte for byte, integers only; signed_message() is what
# `plugctl config sign` signs (EIP-191 personal_sign), recover_signer() who signed it.
# Imported when an envelope arrives, not at boot.
from plug.schema import ConfigError

_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _enc_str(s, w):
    # Works on the UTF-8 bytes: runs of printable ASCII go in as one slice, other
    # characters are decoded from their 1-4 bytes (O(n); indexing a non-ASCII str is
    # O(n) per character on MicroPython). A JSON "\ud83d\ude00" pair arrives on the plug
    # as two 3-byte surrogates and is written back as the same two escapes, which is
    # what CPython writes for the one astral character it decodes them to.
    b = s.encode("utf-8", "surrogatepass")
    mv = memoryview(b)
    w(b'"')
    i, n = 0, len(b)
    while i < n:
        j = i
        while j < n and 0x20 <= b[j] < 0x7F and b[j] != 0x22 and b[j] != 0x5C:
            j += 1
        if j > i:
            w(mv[i:j])
            i = j
            continue
        c = b[i]
        if c < 0x80:
            e = _ESC.get(chr(c))
            w(e.encode() if e else b"\\u%04x" % c)
            i += 1
            continue
        if c >= 0xF0:
            c = ((c & 0x07) << 18) | ((b[i + 1] & 0x3F) << 12) | ((b[i + 2] & 0x3F) << 6) | (
                b[i + 3] & 0x3F)
            i += 4
        elif c >= 0xE0:
            c = ((c & 0x0F) << 12) | ((b[i + 1] & 0x3F) << 6) | (b[i + 2] & 0x3F)
            i += 3
        else:
            c = ((c & 0x1F) << 6) | (b[i + 1] & 0x3F)
            i += 2
        if c < 0x10000:
            w(b"\\u%04x" % c)
        else:
            c -= 0x10000
            w(b"\\u%04x\\u%04x" % (0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF)))
    w(b'"')


def _code_points(k):
    # sort key for keys holding surrogates: pairs count as the character they encode
    out = []
    i, n = 0, len(k)
    while i < n:
        c = ord(k[i])
        if 0xD800 <= c < 0xDC00 and i + 1 < n and 0xDC00 <= ord(k[i + 1]) < 0xE000:
            c = 0x10000 + ((c - 0xD800) << 10) + ord(k[i + 1]) - 0xDC00
            i += 1
        out.append(c)
        i += 1
    return out


def _sorted_keys(d):
    """Keys in CPython's order (by code point). MicroPython compares the UTF-8 bytes,
    which is the same order unless a key holds surrogates from a \\u escape."""
    for k in d:
        if not isinstance(k, str):
            raise ConfigError("config: keys must be strings")
    keys = sorted(d)
    for k in keys:
        if b"\xed" in k.encode("utf-8", "surrogatepass"):
            return sorted(keys, key=_code_points)
    return keys


def _enc(v, w):
    if v is None:
        w(b"null")
    elif v is True:
        w(b"true")
    elif v is False:
        w(b"false")
    elif type(v) is int:
        w(str(v).encode())
    elif isinstance(v, str):
        _enc_str(v, w)
    elif isinstance(v, (list, tuple)):
        w(b"[")
        for i, x in enumerate(v):
            if i:
                w(b",")
            _enc(x, w)
        w(b"]")
    elif isinstance(v, dict):
        w(b"{")
        for i, k in enumerate(_sorted_keys(v)):
            if i:
                w(b",")
            _enc_str(k, w)
            w(b":")
            _enc(v[k], w)
        w(b"}")
    else:
        raise ConfigError("config: %s values are not allowed (integers, strings, true/false, "
                          "null, lists and objects only)" % type(v).__name__)


def canonical(obj):
    """The bytes the owner signs: CPython's json.dumps(obj, sort_keys=True,
    separators=(",", ":")) with its default ASCII escaping."""
    out = bytearray()
    _enc(obj, out.extend)
    return bytes(out)


class _Count:
    def __init__(self):
        self.n = 0

    def add(self, b):
        self.n += len(b)


def signed_digest(version, cfg, plug):
    """EIP-191 digest of signed_message(version, cfg, plug), streamed into the hasher in
    two passes (length, then bytes), so the encoding never sits in RAM as a whole: a
    config near MAX_ENVELOPE_BYTES would otherwise need its size three times over."""
    from keccak import Keccak256

    obj = {"config": cfg, "plug": plug, "version": version}
    c = _Count()
    _enc(obj, c.add)
    h = Keccak256()
    h.update(b"\x19Ethereum Signed Message:\n")
    h.update(str(c.n).encode())
    _enc(obj, h.update)
    return h.digest()


def recover_signer(version, cfg, plug, sig):
    """Address that signed (version, cfg, plug) with the 65-byte EIP-191 signature `sig`, as
    eth.recover_message checks it (v 27/28, r in range, low s); ValueError otherwise."""
    import ecdsa_micro
    import eth

    if len(sig) != 65 or sig[64] not in (27, 28):
        raise ValueError("signature: must be 65 bytes with v 27 or 28")
    r = int.from_bytes(bytes(sig[:32]), "big")
    s = int.from_bytes(bytes(sig[32:64]), "big")
    eth.check_signature_ints(r, s)
    try:
        pub = ecdsa_micro.recover(signed_digest(version, cfg, plug), r, s, sig[64] - 27)
    except ValueError as e:
        raise ValueError("signature: does not recover to a public key (%s)" % e)
    return eth.public_to_address(pub)


def signed_message(version, cfg, plug):
    return canonical({"config": cfg, "plug": plug, "version": version})
