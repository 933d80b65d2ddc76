# JSON from outside the plug (config envelopes from the LAN or the pull URL, JSON-RPC
# replies, provider descriptors and rates), parsed only within bounds:
#
#   obj = jsonlimit.loads(body, max_bytes)             # ValueError saying which bound
#   jsonlimit.check(body, max_bytes, max_depth=8)      # the same checks, no parsing
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

import micropython
from micropython import const

MAX_DEPTH = const(8)


try:
    @micropython.viper
    def _deepest(buf, n: int, limit: int) -> int:
        p = ptr8(buf)  # noqa: F821 - a viper builtin
        depth = 0
        instr = 0
        esc = 0
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
                instr = 1
            elif c == 91 or c == 123:
                depth += 1
                if depth > limit:
                    return i
            elif c == 93 or c == 125:
                depth -= 1
            i += 1
        return -1

    VIPER = True
except (ImportError, SyntaxError, NameError):  # CPython (tools/shim), or no native emitter
    from plug.jsonlimit_py import deepest as _deepest

    VIPER = False


def check(buf, max_bytes, max_depth=MAX_DEPTH):
    """ValueError if `buf` (bytes or str) is larger than `max_bytes` or nests [ and {
    deeper than `max_depth` outside strings; parses nothing."""
    if isinstance(buf, str):
        buf = buf.encode()
    n = len(buf)
    if n > max_bytes:
        raise ValueError("larger than %d bytes" % max_bytes)
    if _deepest(buf, n, max_depth) >= 0:
        raise ValueError("nested deeper than %d levels" % max_depth)


def loads(buf, max_bytes, max_depth=MAX_DEPTH):
    """json.loads(buf) after check(); ValueError with the reason otherwise."""
    check(buf, max_bytes, max_depth)
    try:
        return json.loads(buf)
    except (ValueError, UnicodeError):
        raise ValueError("not valid JSON")
    except RuntimeError:  # not expected after the scan; never a 500 either way
        raise ValueError("nested deeper than %d levels" % max_depth)
