"""Helpers for test files that run under both CPython (pytest) and MicroPython.

Dual-mode test files are named `test_lib_*.py`; they import nothing from pytest,
only from here, so `tests/mprun.py` can run them on the unix port and under Node's
WebAssembly port.
"""

import sys

MICROPYTHON = sys.implementation.name == "micropython"


def raises(exc_type, fn, *args, **kw):
    """Assert that fn(*args, **kw) raises exc_type; return the exception."""
    try:
        fn(*args, **kw)
    except exc_type as e:
        return e
    raise AssertionError("%s did not raise %s" % (fn, exc_type.__name__))


def unhex(s):
    if s[:2] in ("0x", "0X"):
        s = s[2:]
    import binascii

    return binascii.unhexlify(s)


def tohex(b):
    import binascii

    return "0x" + binascii.hexlify(b).decode()
