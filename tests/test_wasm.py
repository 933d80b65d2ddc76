"""Every dual-mode library test module (tests/test_lib_*.py) on the 32-bit WebAssembly port.

The npm package @micropython/micropython-webassembly-pyscript runs under Node through
tools/wasm_run.mjs. It has 32-bit small ints (above 2**30 an int is a heap object, as on
the ESP32) and no viper, so it proves that lib/ and its pure-Python fallbacks hold there.
A module that needs something this port lacks opts out with a line `WASM = False`
(and says why beside it); `WASM_HEAP = "256k"` or else `MP_HEAP` sets its heap.
"""

import glob
import os
import re
import subprocess

import pytest

from tools.paths import ROOT, executable

TESTS = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(ROOT, "tools", "wasm_run.mjs")
PORT = os.path.join(ROOT, "node_modules", "@micropython", "micropython-webassembly-pyscript")
MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(TESTS, "test_lib_*.py")))

pytestmark = pytest.mark.skipif(not os.path.isdir(PORT),
                                reason="WebAssembly port missing: run `make setup`")


def _source(name):
    with open(os.path.join(TESTS, name + ".py")) as f:
        return f.read()


def _setting(src, key, default):
    m = re.search(r'^%s = "(\w+)"' % key, src, re.M)
    return m.group(1) if m else default


def run_wasm(args, timeout=600):
    return subprocess.run([executable("node"), RUNNER] + list(args), capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize("module", MODULES)
def test_module_on_wasm(module):
    src = _source(module)
    if re.search(r"^WASM = False", src, re.M):
        pytest.skip("%s opts out of the WebAssembly port (WASM = False)" % module)
    heap = _setting(src, "WASM_HEAP", _setting(src, "MP_HEAP", "64k"))
    r = run_wasm(["--heap", heap, module])
    assert r.returncode == 0 and re.search(r"^\d+ passed, 0 failed$", r.stdout, re.M), (
        "wasm exit %d\n--- stdout ---\n%s\n--- stderr ---\n%s"
        % (r.returncode, r.stdout[-8000:], r.stderr[-8000:]))


def test_port_is_32_bit_without_viper():
    code = ("import sys, keccak\n"
            "print(sys.maxsize, keccak.backend())\n"
            "try:\n"
            "    import keccak_viper\n"
            "    print('viper')\n"
            "except SyntaxError:\n"
            "    print('no viper')\n")
    r = run_wasm(["--code", code])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2147483647", "python", "no", "viper"]


def test_runner_reports_failures(tmp_path):
    (tmp_path / "test_lib_wasmdemo.py").write_text(
        "def test_good():\n    assert 2 ** 31 + 1 == 2147483649\n\n"
        "def test_bad():\n    assert 1 == 2, 'expected failure'\n")
    r = run_wasm(["--dir", "%s:/extra" % tmp_path, "test_lib_wasmdemo"])
    assert r.returncode == 1
    assert "ok   test_lib_wasmdemo.test_good" in r.stdout
    assert "FAIL test_lib_wasmdemo.test_bad" in r.stdout
    assert "1 passed, 1 failed" in r.stdout


def test_runner_rejects_bad_use():
    r = run_wasm([])
    assert r.returncode == 2 and "nothing to run" in r.stderr
    r = run_wasm(["--heap", "lots", "x"])
    assert r.returncode == 2 and "bad size" in r.stderr
    r = run_wasm(["--code", "import no_such_module"])
    assert r.returncode == 2 and "ImportError" in r.stderr
