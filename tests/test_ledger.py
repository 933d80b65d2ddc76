"""The energy ledger on the MicroPython unix port: spike rejection, totals that never
go backwards, restore from a torn checkpoint, bounded buckets, billing cursor, heap.

The cases live in tests/ledger_cases.py and run in one MicroPython process (fast);
each case is reported here as its own test with MicroPython's traceback.
"""

import os
import re

import pytest

from tools import mp
from tools.paths import DEVICE_DIRS

TESTS = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(TESTS, "ledger_cases.py")) as _f:
    CASES = re.findall(r"^def (test_\w+)", _f.read(), re.M)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ledger")
    r = mp.run(path=os.path.join(TESTS, "mprun.py"), args=["ledger_cases"], heap="96k",
               path_dirs=(TESTS,) + DEVICE_DIRS, extra_env={"LEDGER_TMP": str(tmp)},
               check=False, timeout=300)
    out = r.stdout + r.stderr
    blocks = {}
    for m in re.finditer(r"^(ok  |FAIL) ledger_cases\.(\w+)\n((?:(?!ok  |FAIL ).*\n)*)", out, re.M):
        blocks[m.group(2)] = (m.group(1).strip(), m.group(3))
    return blocks, out


@pytest.mark.parametrize("case", CASES)
def test_ledger_on_micropython(results, case):
    blocks, out = results
    assert case in blocks, "case did not run; MicroPython said:\n" + out[-4000:]
    status, detail = blocks[case]
    assert status == "ok", detail


def test_ledger_module_compiles_with_mpy_cross(tmp_path):
    import subprocess

    from tools.paths import ROOT, executable

    for name in ("ledger.py",):
        r = subprocess.run([executable("mpy-cross"), "-march=xtensawin", "-o",
                            str(tmp_path / "x.mpy"), os.path.join(ROOT, "firmware", "plug", name)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
