"""`make mpy` (tools/build_mpy.py) fails naming the module mpy-cross rejects; it builds
into a temporary directory here, never the build/ other tests load."""

import os

import pytest

from tools import build_mpy


def test_rejected_module_fails_the_build_by_name(tmp_path):
    src = tmp_path / "lib"
    (src / "pkg").mkdir(parents=True)
    (src / "good.py").write_text("X = 1\n")
    (src / "pkg" / "broken.py").write_text("def f(:\n    pass\n")
    out = tmp_path / "out"
    stale = out / "lib" / "pkg" / "broken.mpy"  # from before the source broke
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"M")
    os.utime(stale, (0, 0))
    with pytest.raises(SystemExit) as e:
        build_mpy.build("unix", out=str(out), dirs=(str(src),))
    msg = str(e.value)
    assert msg.startswith("mpy-cross rejected:")
    assert str(src / "pkg" / "broken.py") in msg and "SyntaxError" in msg
    assert "good.py" not in msg
    assert (out / "lib" / "good.mpy").exists()
    assert not stale.exists(), "a stale .mpy of the rejected module is left to be loaded"
