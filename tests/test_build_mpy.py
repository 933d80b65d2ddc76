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


def test_the_build_is_stamped_with_the_git_hash_and_dev_outside_git(tmp_path):
    import subprocess

    from tools.paths import FIRMWARE, ROOT, executable

    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=7", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    assert build_mpy.source_build() == head and len(head) == 7
    assert build_mpy.source_build(str(tmp_path)) == "dev"  # not a git checkout
    nested = tmp_path / "copy"  # a copy inside another checkout is not that checkout
    nested.mkdir()
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert build_mpy.source_build(str(nested)) == "dev"
    # the compiled plug/version.py says the build; its source keeps "dev"
    src = tmp_path / "fw" / "plug"
    src.mkdir(parents=True)
    with open(os.path.join(FIRMWARE, "plug", "version.py")) as f:
        text = f.read()
    assert 'BUILD = "dev"' in text
    (src / "version.py").write_text(text)
    out = tmp_path / "out"
    build_mpy.build("unix", out=str(out), dirs=(str(tmp_path / "fw"),))
    r = subprocess.run([executable("micropython"), "-c",
                        "import sys; sys.path.insert(0, %r); import plug.version as v; "
                        "print(v.VERSION, v.BUILD)" % str(out / "fw")],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["0.5.0", head], r.stdout + r.stderr
    assert (src / "version.py").read_text() == text
