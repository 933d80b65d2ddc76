"""Compile all device code (lib/, firmware/, boards/) with mpy-cross into build/<arch>/.

Two targets: `xtensawin` (the ESP32, what ships) and `x64` (the unix port, what a
virtual plug runs); viper and native code is compiled for the target's CPU. Each
source tree maps to build/<arch>/<tree>/ with the same layout; data files beside the
code (such as the secp256k1 table) are copied as they are. `main.py` and `boot.py`
stay source, because the firmware runs them by file name. A module that mpy-cross
rejects fails the build with its message, and its stale .mpy is removed.
"""

import os
import shutil
import subprocess
import sys

from .paths import BUILD, DEVICE_DIRS, executable

KEEP_SOURCE = ("main.py", "boot.py")
SKIP_DIRS = ("__pycache__",)


ARCHES = {"esp32": "xtensawin", "unix": "x64"}


def build(target="esp32", out=None, verbose=False, dirs=DEVICE_DIRS):
    out = out or os.path.join(BUILD, target)
    march = ARCHES[target]
    mpy_cross = executable("mpy-cross")
    sizes = {}
    failed = []
    for src_root in dirs:
        tree = os.path.basename(src_root)
        for dirpath, dirnames, filenames in os.walk(src_root):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
            rel = os.path.relpath(dirpath, src_root)
            dst_dir = os.path.normpath(os.path.join(out, tree, rel))
            os.makedirs(dst_dir, exist_ok=True)
            for name in sorted(filenames):
                src = os.path.join(dirpath, name)
                if name.endswith(".py") and name not in KEEP_SOURCE:
                    dst = os.path.join(dst_dir, name[:-3] + ".mpy")
                    if _fresh(src, dst):
                        sizes[os.path.relpath(dst, out)] = os.path.getsize(dst)
                        continue
                    tmp = "%s.%d.tmp" % (dst, os.getpid())
                    r = subprocess.run(
                        [mpy_cross, "-march=" + march, "-o", tmp, src],
                        capture_output=True,
                        text=True,
                    )
                    if not r.returncode:
                        os.replace(tmp, dst)  # a plug or test reading dst never sees half
                    elif os.path.exists(tmp):
                        os.remove(tmp)
                    if r.returncode:
                        failed.append("%s: %s" % (src, (r.stderr or r.stdout).strip()))
                        if os.path.exists(dst):  # the last good build of the old source
                            os.remove(dst)
                        continue
                    sizes[os.path.relpath(dst, out)] = os.path.getsize(dst)
                elif not name.endswith((".pyc",)):
                    dst = os.path.join(dst_dir, name)
                    if not _fresh(src, dst):
                        tmp = "%s.%d.tmp" % (dst, os.getpid())
                        shutil.copy2(src, tmp)
                        os.replace(tmp, dst)
    if failed:
        raise SystemExit("mpy-cross rejected:\n  " + "\n  ".join(failed))
    if verbose:
        for k in sorted(sizes):
            print("%7d  %s" % (sizes[k], k))
    return sizes


def _fresh(src, dst):
    return os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(src)


def main():
    for target in ARCHES:
        sizes = build(target, verbose="-v" in sys.argv)
        print(
            "mpy %-5s: %d modules, %d bytes in build/%s/"
            % (target, len(sizes), sum(sizes.values()), target)
        )


if __name__ == "__main__":
    main()
