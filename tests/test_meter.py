"""The metering loop on the MicroPython unix port, with the real ADE7953 and ATM90E32
drivers on their simulators and a stepped sim clock: energy follows the true load, live
readings for status, a chip that stops answering is marked faulty (logged once, retried
with exponential backoff) while the other keeps metering, spikes are rejected, the loop
checkpoints every interval and on stop. Cases: tests/meter_cases.py."""

import os
import re

import pytest

from meter_support import TESTS, compiled_tree
from tools import mp

with open(os.path.join(TESTS, "meter_cases.py")) as _f:
    CASES = re.findall(r"^def (test_\w+)", _f.read(), re.M)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    dirs = compiled_tree(str(tmp_path_factory.mktemp("mpy")))
    tmp = tmp_path_factory.mktemp("meter")
    r = mp.run(path=os.path.join(TESTS, "mprun.py"), args=["meter_cases"], heap="256k",
               path_dirs=(TESTS,) + dirs, extra_env={"METER_TMP": str(tmp)}, check=False,
               timeout=300)
    out = r.stdout + r.stderr
    blocks = {}
    for m in re.finditer(r"^(ok  |FAIL) meter_cases\.(\w+)\n((?:(?!ok  |FAIL ).*\n)*)", out, re.M):
        blocks[m.group(2)] = (m.group(1).strip(), m.group(3))
    return blocks, out


@pytest.mark.parametrize("case", CASES)
def test_meter_on_micropython(results, case):
    blocks, out = results
    assert case in blocks, "case did not run; MicroPython said:\n" + out[-4000:]
    status, detail = blocks[case]
    assert status == "ok", detail
