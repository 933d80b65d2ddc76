"""Every dual-mode library test module (tests/test_lib_*.py) again, on MicroPython.

Under pytest the same files run on CPython; here each runs on the unix port with the
heap capped, so the library code is proven on the interpreter the plug runs.
A module may set `MP_HEAP = "128k"` on a line of its own for tests that need more.
"""

import glob
import os
import re

import pytest

from tools import mp
from tools.paths import DEVICE_DIRS

TESTS = os.path.dirname(os.path.abspath(__file__))
MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(TESTS, "test_lib_*.py")))


def heap_of(name):
    with open(os.path.join(TESTS, name + ".py")) as f:
        m = re.search(r'^MP_HEAP = "(\w+)"', f.read(), re.M)
    return m.group(1) if m else mp.DEFAULT_HEAP


@pytest.mark.parametrize("module", MODULES)
def test_module_on_micropython(module):
    out = mp.run(path=os.path.join(TESTS, "mprun.py"), args=[module], heap=heap_of(module),
                 path_dirs=(TESTS,) + DEVICE_DIRS, timeout=600)
    assert re.search(r"^\d+ passed, 0 failed$", out, re.M), out
