"""Fixtures shared by the whole suite.

`micropython` runs device code under the real MicroPython unix port with the heap
capped as on the ESP32; `devnet` is a real anvil node on a free loopback port.
"""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# eth-account (the oracle) imports PyPI's `rlp`, which lib/rlp.py shadows once lib/ is
# on sys.path. Import it first, keep PyPI's rlp reachable as `pyrlp`, and leave the
# name `rlp` free for lib/rlp.py (eth-account binds its rlp objects at import time).
import eth_account  # noqa: E402
import eth_account.messages  # noqa: E402, F401

sys.modules["pyrlp"] = sys.modules.pop("rlp")
for _m in [m for m in sys.modules if m.startswith("rlp.")]:
    sys.modules["py" + _m] = sys.modules.pop(_m)

for _d in (ROOT, os.path.join(ROOT, "lib"), os.path.join(ROOT, "firmware"),
           os.path.join(ROOT, "boards"), os.path.join(ROOT, "tests"),
           os.path.join(ROOT, "tools", "shim")):
    if _d not in sys.path:
        sys.path.insert(0, _d)

from tools import mp  # noqa: E402
from tools.devnet import Devnet  # noqa: E402


class MicroPython:
    """`micropython.run(code, heap="64k")` returns stdout; a MicroPython exception
    fails the test with MicroPython's traceback."""

    run = staticmethod(mp.run)

    def eval(self, code, heap=mp.DEFAULT_HEAP, **kw):
        """Run `code` and return the last line of its output parsed as a Python literal."""
        import ast

        out = mp.run(code, heap=heap, **kw).strip().splitlines()
        return ast.literal_eval(out[-1]) if out else None


@pytest.fixture(scope="session")
def micropython():
    return MicroPython()


@pytest.fixture
def devnet():
    """A fresh anvil per test (chain id 31337, automine on)."""
    with Devnet() as d:
        yield d


@pytest.fixture
def devnet_factory():
    """Start anvil with custom options: devnet_factory(chain_id=..., automine=False)."""
    started = []

    def make(**kw):
        d = Devnet(**kw).start()
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


@pytest.fixture(scope="module")
def mpy_dirs():
    """MICROPYPATH for device code compiled for the unix port (build/unix, and tests/)."""
    from paytest import build_dir

    return build_dir()


@pytest.fixture(scope="module")
def repl_vp(tmp_path_factory):
    """The REPL test app (tests/repl_main.py) on a virtual plug's pty, one per module."""
    from iface_util import TESTS, compile_plug

    from tools.vplug import VirtualPlug

    mpy = compile_plug(str(tmp_path_factory.mktemp("mpy")))
    flash = tmp_path_factory.mktemp("flash")
    plug = VirtualPlug(str(flash), main_script=os.path.join(TESTS, "repl_main.py"),
                       path_dirs=(mpy,), serial_link=str(flash) + "-tty")
    plug.start()
    plug.expect("repl test app ready")
    yield plug
    plug.kill()


@pytest.fixture
def repl_plug(repl_vp):
    """repl_vp alive and at a fresh prompt."""
    assert repl_vp.alive, repl_vp.screen[-2000:]
    repl_vp.reset_prompt()
    return repl_vp
