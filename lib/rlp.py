# Recursive Length Prefix encoding (Ethereum yellow paper, appendix B).
#
#   encode(item) -> bytes       item: bytes-like | str (UTF-8) | int >= 0 | list/tuple of items
#   decode(data, max_depth=16) -> item   strings come back as bytes, lists as lists
#   decode_int(b) -> int        a decoded string read as a canonical big-endian integer
#   encoded_length(item) -> int
#   encode_into(sink, item)     streams the encoding into sink.update() (a Keccak256) or
#                               sink.write() (a stream) without building it in RAM
#
# decode() is strict: every item must be in its one canonical form (shortest length
# prefix, no leading zeros in lengths, single bytes below 0x80 not wrapped), and the
# input must hold exactly one item. Anything else raises RLPError naming the problem.
import binascii


class RLPError(ValueError):
    pass


MAX_DEPTH = 16  # transactions nest 3 deep (access list entries); this leaves room


def _int_bytes(n):
    if n < 0:
        raise RLPError("RLP cannot encode a negative integer (%d)" % n)
    if n == 0:
        return b""
    if n < 0x80:
        return bytes((n,))
    h = "%x" % n
    if len(h) & 1:
        h = "0" + h
    return binascii.unhexlify(h)


def _leaf(item):
    """The bytes of a string item, or None for a list; RLPError for other types."""
    if isinstance(item, (bytes, bytearray, memoryview)):
        return item
    if isinstance(item, str):
        return item.encode()
    if isinstance(item, bool):
        raise RLPError("RLP cannot encode a bool; use the integers 0 and 1")
    if isinstance(item, int):
        return _int_bytes(item)
    if isinstance(item, (list, tuple)):
        return None
    raise RLPError("RLP cannot encode %s; use bytes, str, int >= 0 or a list" % type(item).__name__)


def _len_of_len(n):
    k = 0
    while n:
        n >>= 8
        k += 1
    return k


def _prefix_len(n, leaf0):
    # bytes taken by the prefix of a payload of n bytes (leaf0: the single byte, or -1)
    if n == 1 and 0 <= leaf0 < 0x80:
        return 0
    if n < 56:
        return 1
    return 1 + _len_of_len(n)


def _payload_len(item, depth):
    total = 0
    for x in item:
        total += _enc_len(x, depth + 1)
    return total


def _enc_len(item, depth=0):
    if depth > MAX_DEPTH * 4:
        raise RLPError("RLP item nested too deeply (a list that contains itself?)")
    b = _leaf(item)
    if b is None:
        n = _payload_len(item, depth)
        return _prefix_len(n, -1) + n
    n = len(b)
    return _prefix_len(n, b[0] if n == 1 else -1) + n


def encoded_length(item):
    """Length in bytes of encode(item), without building it."""
    return _enc_len(item)


def _header(n, short_base, long_base):
    if n < 56:
        return bytes((short_base + n,))
    k = _len_of_len(n)
    return bytes((long_base + k,)) + n.to_bytes(k, "big")


def _emit(out, item, depth):
    # out(bytes-like) is called with the pieces of the encoding in order
    if depth > MAX_DEPTH * 4:
        raise RLPError("RLP item nested too deeply (a list that contains itself?)")
    b = _leaf(item)
    if b is None:
        out(_header(_payload_len(item, depth), 0xC0, 0xF7))
        for x in item:
            _emit(out, x, depth + 1)
        return
    n = len(b)
    if n == 1 and b[0] < 0x80:
        out(bytes((b[0],)))
        return
    out(_header(n, 0x80, 0xB7))
    if n:
        out(b)


def encode_into(sink, item):
    """Stream the encoding of item into sink.update(bytes) or sink.write(bytes)."""
    out = getattr(sink, "update", None) or sink.write
    _emit(out, item, 0)


class _Filler:
    def __init__(self, n):
        self.buf = bytearray(n)
        self.pos = 0

    def put(self, b):
        n = len(b)
        self.buf[self.pos:self.pos + n] = b
        self.pos += n


def encode(item):
    """The RLP encoding of item as bytes."""
    f = _Filler(_enc_len(item))
    _emit(f.put, item, 0)
    return bytes(f.buf)


# ---- decoding ----

def _read_len(data, pos, k, end, what):
    # a long-form length of k bytes at data[pos:pos+k]
    if pos + k > end:
        raise RLPError("RLP input truncated: %s length needs %d bytes at offset %d"
                       % (what, k, pos))
    if data[pos] == 0:
        raise RLPError("non-canonical RLP: %s length at offset %d has a leading zero" % (what, pos))
    n = 0
    for i in range(pos, pos + k):
        n = (n << 8) | data[i]
    if n < 56:
        raise RLPError("non-canonical RLP: %s of %d bytes at offset %d uses the long form"
                       % (what, n, pos - 1))
    return n


def _span(data, pos, end, base, what):
    """(start, stop) of the payload of the string (base 0x80) or list (base 0xC0) whose
    prefix is at data[pos]: short form base + n for n < 56, else base + 55 + k and a
    k-byte length."""
    b0 = data[pos]
    if b0 <= base + 55:
        n = b0 - base
        start = pos + 1
    else:
        k = b0 - base - 55
        n = _read_len(data, pos + 1, k, end, what)
        start = pos + 1 + k
    stop = start + n
    if stop > end:
        raise RLPError("RLP input truncated: %s of %d bytes at offset %d runs past the end"
                       % (what, n, pos))
    return start, stop


def _item(data, pos, end, depth, max_depth):
    """Decode the item at data[pos] that must end by `end`; returns (item, next_pos)."""
    if pos >= end:
        raise RLPError("RLP input truncated: expected an item at offset %d" % pos)
    b0 = data[pos]
    if b0 < 0x80:
        return bytes((b0,)), pos + 1
    if b0 < 0xC0:
        start, stop = _span(data, pos, end, 0x80, "string")
        if stop - start == 1 and data[start] < 0x80:
            raise RLPError("non-canonical RLP: single byte 0x%02x at offset %d must not have a "
                           "length prefix" % (data[start], pos))
        return bytes(data[start:stop]), stop
    if depth >= max_depth:
        raise RLPError("RLP lists nested deeper than %d at offset %d" % (max_depth, pos))
    start, stop = _span(data, pos, end, 0xC0, "list")
    items = []
    p = start
    while p < stop:
        x, p = _item(data, p, stop, depth + 1, max_depth)
        items.append(x)
    return items, stop


def decode(data, max_depth=MAX_DEPTH):
    """Decode exactly one RLP item from a bytes-like object (strict; RLPError otherwise)."""
    if isinstance(data, str) or not isinstance(data, (bytes, bytearray, memoryview)):
        raise RLPError("RLP decode needs bytes, not %s" % type(data).__name__)
    n = len(data)
    if n == 0:
        raise RLPError("RLP input is empty")
    item, end = _item(data, 0, n, 0, max_depth)
    if end != n:
        raise RLPError("RLP input has %d trailing bytes after the item (offset %d)"
                       % (n - end, end))
    return item


def decode_int(b, what="integer"):
    """A decoded RLP string as an unsigned integer; rejects leading zeros and lists."""
    if not isinstance(b, (bytes, bytearray)):
        raise RLPError("%s must be an RLP string, not a list" % what)
    if len(b) and b[0] == 0:
        raise RLPError("non-canonical RLP: %s has a leading zero byte" % what)
    if not b:
        return 0
    return int.from_bytes(b, "big")
