"""lib/ compiled with mpy-cross for the unix port, as the plug loads it (not as source).

Compiling a module from source costs MicroPython far more heap than loading its .mpy,
and the plug only ever loads .mpy (or frozen) code. Tests that prove a heap budget
run against this build. Each caller gets a private copy (pytest-xdist workers must not
share half-written files).
"""

import os
import shutil
import subprocess

from tools.paths import LIB, executable


def build_lib(out_dir):
    """Compile every module of lib/ into out_dir (same layout); returns out_dir."""
    mpy_cross = executable("mpy-cross")
    procs = []
    for dirpath, dirnames, filenames in os.walk(LIB):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        dst_dir = os.path.join(out_dir, os.path.relpath(dirpath, LIB))
        os.makedirs(dst_dir, exist_ok=True)
        for name in filenames:
            src = os.path.join(dirpath, name)
            if name.endswith(".py"):
                procs.append((src, subprocess.Popen(
                    [mpy_cross, "-march=x64", "-o", os.path.join(dst_dir, name[:-3] + ".mpy"),
                     src], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
            elif not name.endswith(".pyc"):
                shutil.copy2(src, os.path.join(dst_dir, name))
    failed = []
    for src, p in procs:
        out = p.communicate()[0]
        if p.returncode:
            failed.append("%s: %s" % (src, out.decode().strip()))
    if failed:
        raise RuntimeError("mpy-cross rejected:\n" + "\n".join(failed))
    return str(out_dir)


try:
    import pytest

    @pytest.fixture(scope="session", name="mpy_lib")
    def mpy_lib_fixture(tmp_path_factory):
        """Directory of lib/ compiled to .mpy, for MICROPYPATH."""
        return build_lib(str(tmp_path_factory.mktemp("mpy_lib")))
except ImportError:  # imported outside pytest
    pass
