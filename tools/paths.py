"""Where things live in the checkout, for host tools and tests."""

import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(ROOT, "lib")
FIRMWARE = os.path.join(ROOT, "firmware")
BOARDS = os.path.join(ROOT, "boards")
BUILD = os.path.join(ROOT, "build")
TOOLS = os.path.join(ROOT, "tools")  # also on MicroPython's path for heap_holes.py
NODE_BIN = os.path.join(ROOT, "node_modules", ".bin")
DEVICE_DIRS = (LIB, FIRMWARE, BOARDS)


def executable(name):
    """Path of a command from the venv, node_modules or PATH; a clear error if missing."""
    import sys

    for d in (os.path.dirname(sys.executable), NODE_BIN):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    p = shutil.which(name)
    if p is None:
        raise FileNotFoundError("%s not found: run `make setup` first" % name)
    return p


def shim_micropython():
    """Make the plug's code importable on CPython: tools/shim stands in for MicroPython's
    `micropython` module (const, viper/native decorators)."""
    import sys

    shim = os.path.join(ROOT, "tools", "shim")
    if shim not in sys.path:
        sys.path.append(shim)


def micropypath(dirs=DEVICE_DIRS):
    """MICROPYPATH for the unix port: project dirs first, then the frozen modules."""
    return ":".join(list(dirs) + [".frozen"])
