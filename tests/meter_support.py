"""Host helpers for the meter, power-cut and calibration tests.

The plug runs compiled .mpy (64 KB cannot compile the drivers and the app from source),
so these tests run the same: `compiled_tree(dest)` compiles lib/, firmware/, boards/
and the device-side test helpers (tests/simplug.py, ...) for the unix port. Modules that
do not compile (a colleague's work in progress) are skipped here; a module the test
needs then fails at import with a clear error.
"""

import os
import subprocess

from tools import mp
from tools.paths import DEVICE_DIRS, executable

TESTS = os.path.dirname(os.path.abspath(__file__))
DEVICE_HELPERS = ("simplug.py", "powercut_plug.py", "calib_plug.py", "meter_cases.py")


def compiled_tree(dest):
    """Compile device code into dest/{lib,firmware,boards,tests}; returns the path dirs."""
    mpy_cross = executable("mpy-cross")
    jobs = []
    for src_root in DEVICE_DIRS:
        tree = os.path.basename(src_root)
        for dirpath, dirnames, filenames in os.walk(src_root):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            rel = os.path.relpath(dirpath, src_root)
            for name in filenames:
                if name.endswith(".py"):
                    dst = os.path.join(dest, tree, rel, name[:-3] + ".mpy")
                    jobs.append((os.path.join(dirpath, name), os.path.normpath(dst)))
    for name in DEVICE_HELPERS:
        src = os.path.join(TESTS, name)
        if os.path.exists(src):
            jobs.append((src, os.path.join(dest, "tests", name[:-3] + ".mpy")))
    procs = []
    for src, dst in jobs:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        procs.append(subprocess.Popen([mpy_cross, "-march=x64", "-o", dst, src],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if len(procs) >= 16:
            procs.pop(0).wait()
    for p in procs:
        p.wait()
    return tuple(os.path.join(dest, d) for d in ("tests", "lib", "firmware", "boards"))


def mp_env(path_dirs, extra=None):
    return mp.env(path_dirs, extra)


def mp_command(heap="64k"):
    return mp.command(heap)



