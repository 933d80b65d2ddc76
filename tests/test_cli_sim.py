"""`plugctl sim` refuses a --load the sim board could not boot with, before starting it."""

import os
import signal
import subprocess
import sys

import pytest

from tools.paths import ROOT


def run_sim(tmp_path, load):
    state = tmp_path / "flash"
    p = subprocess.Popen([sys.executable, "-m", "tools.plugctl", "sim", "--state", str(state),
                          "--serial", str(tmp_path / "plug.tty"), "--load", load],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:  # it started a plug: stop it and the plug
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(20)
    return p.returncode, out, err, state


@pytest.mark.parametrize("load, reason", [
    ("M1/A=banana", "load 'banana': expected <amps>A, fridge, pv or off"),
    ("M1/A=8A,M9/A=8A", "KEY must be one of M1/A, M1/B, M2/1, M2/2, M2/3"),
    ("M2/1=4A@0.9foo", "power factor needs ind or cap"),
    ("M2/1=4A@1.5ind", "pf must be in (0, 1]"),
    ("M1/A=nanA", "M1/A: current must be a finite number of amps"),
    ("M1/A=\uff18A", "only ASCII characters"),
])
def test_sim_refuses_a_load_the_board_cannot_parse(tmp_path, load, reason):
    code, out, err, state = run_sim(tmp_path, load)
    assert code not in (0, None), (out, err)
    assert reason in err and "plugctl sim: --load" in err, err
    assert "Traceback" not in err
    assert not os.path.exists(state / "sim.json")  # nothing written, no plug booted
