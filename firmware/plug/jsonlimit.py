# JSON from outside the plug (config envelopes from the LAN or the pull URL, JSON-RPC
# replies, provider descriptors and rates), parsed only within bounds:
#
#   obj = jsonlimit.loads(body, max_bytes)             # ValueError saying which bound
#   jsonlimit.check(body, max_bytes, max_depth=8)      # the same checks, no parsing
#   obj = jsonlimit.parse(body)                        # after check(): the parser's own
#
# body is bytes, str, or a list of bytes-like chunks of one document (a reply as
# plug.http_client reads it with chunks=True: pieces of <= 512 B, issue 11). A list is
# scanned chunk by chunk with the scanner's state carried across, and parsed by
# json.load() over a stream on the chunks (_Chunks), so no block the size of the
# document is ever made; the parser pulls a byte per call through readinto (about 2 ms
# per KB more than json.loads on the unix port).
#
# The size is checked first; then a byte scanner counts the nesting of [ and { outside
# strings and refuses more than max_depth levels, BEFORE the parser runs and before
# anything walks the result recursively (the canonical encoder and signature recovery,
# the schema, json.dumps into the store), so no input reaches the recursion limit or the
# C stack, which is smaller on an ESP32 than here. Only then json.loads. Every refusal
# is a ValueError whose message says which bound was crossed ("nested deeper than 8
# levels", "larger than 8192 bytes", "not valid JSON"); callers turn it into their own
# error (ConfigError -> 400, BadReply, TariffError).
#
# Nothing the plug reads legitimately comes near MAX_DEPTH: an envelope is 4 levels
# deep (envelope, config, calibration, channel), a receipt with logs 4, rates 3.
# The scanner is viper code on the plug (native: 16 KB in about 0.1 ms on the unix port)
# and plain Python on a host (plug/jsonlimit_py.py: the tools import this module too).
# Callers that parse
# large replies import this module at their top, so loading it never has to find room
# beside a reply already in RAM.
import json
import sys

import micropython
from micropython import const

try:
    from io import IOBase
except ImportError:
    IOBase = object

_MP = sys.implementation.name == "micropython"

MAX_DEPTH = const(8)


_START = const(262144)  # the scanner's state before the first byte: (0 + 65536) * 4

try:
    @micropython.viper
    def _scan(buf, n: int, state: int, limit: int) -> int:
        p = ptr8(buf)  # noqa: F821 - a viper builtin
        esc = state & 1
        instr = state & 2
        depth = (state >> 2) - 65536
        i = 0
        while i < n:
            c = p[i]
            if instr:
                if esc:
                    esc = 0
                elif c == 92:
                    esc = 1
                elif c == 34:
                    instr = 0
            elif c == 34:
                instr = 2
            elif c == 91 or c == 123:
                depth += 1
                if depth > limit:
                    return -1
            elif c == 93 or c == 125:
                depth -= 1
            i += 1
        return ((depth + 65536) << 2) | instr | esc

    VIPER = True
except (ImportError, SyntaxError, NameError):  # CPython (tools/shim), or no native emitter
    from plug.jsonlimit_py import scan as _scan

    VIPER = False


def _deepest(buf, n, limit):
    """>= 0 if buf[:n] alone opens level `limit` + 1 outside strings, else -1."""
    return 0 if _scan(buf, n, _START, limit) < 0 else -1


def _chunks(buf):
    if isinstance(buf, list):  # a reply as plug.http_client reads it: pieces of <= 512 B
        return buf
    return [buf.encode() if isinstance(buf, str) else buf]


def check(buf, max_bytes, max_depth=MAX_DEPTH):
    """ValueError if `buf` (bytes or str, or a list of bytes-like chunks of one document)
    is larger than `max_bytes` or nests [ and { deeper than `max_depth` outside strings;
    parses nothing. The scan carries its state from one chunk to the next."""
    chunks = _chunks(buf)
    n = 0
    for b in chunks:
        n += len(b)
    if n > max_bytes:
        raise ValueError("larger than %d bytes" % max_bytes)
    state = _START
    for b in chunks:
        state = _scan(b, len(b), state, max_depth)
        if state < 0:
            raise ValueError("nested deeper than %d levels" % max_depth)


class _Chunks(IOBase):
    """A list of chunks read as one stream: json.load() on MicroPython reads a byte at a
    time through readinto, so no buffer the size of the document is ever made."""

    def __init__(self, chunks):
        self.c = chunks
        self.i = 0  # the next chunk
        self.cur = b""
        self.p = 0  # in cur

    def readinto(self, mv):
        p = self.p
        cur = self.cur
        while p >= len(cur):
            if self.i >= len(self.c):
                return 0
            cur = self.cur = self.c[self.i]
            self.i += 1
            p = 0
        n = len(mv)
        if n == 1:  # the parser's every call: kept short
            mv[0] = cur[p]
            self.p = p + 1
            return 1
        n = min(n, len(cur) - p)
        mv[:n] = memoryview(cur)[p:p + n]
        self.p = p + n
        return n


def parse(buf):
    """json.loads(buf), or json.load() over the chunks of a list, without joining them
    (CPython, for the host tools: joined); raises what the parser raises. check() first."""
    if not isinstance(buf, list):
        return json.loads(buf)
    if not _MP:
        return json.loads(b"".join(buf))
    return json.load(_Chunks(buf))


def loads(buf, max_bytes, max_depth=MAX_DEPTH):
    """parse(buf) after check() (bytes, str or a list of chunks); ValueError with the
    reason otherwise."""
    check(buf, max_bytes, max_depth)
    try:
        return parse(buf)
    except (ValueError, UnicodeError):
        raise ValueError("not valid JSON")
    except RuntimeError:  # not expected after the scan; never a 500 either way
        raise ValueError("nested deeper than %d levels" % max_depth)
