"""Compile all device code (lib/, firmware/, boards/) with mpy-cross into build/<arch>/.

Two targets: `xtensawin` (the ESP32, what ships) and `x64` (the unix port, what a
virtual plug runs); viper and native code is compiled for the target's CPU. Each
source tree maps to build/<arch>/<tree>/ with the same layout; data files beside the
code (such as the secp256k1 table) are copied as they are. `main.py` and `boot.py`
stay source, because the firmware runs them by file name. A module that mpy-cross
rejects fails the build with its message, and its stale .mpy is removed. The page in
firmware/www/ is gzipped (build/<arch>/firmware/www/index.html.gz), as the plug serves it.

`plug/version.py` is compiled with BUILD set to the short git hash of this checkout
(`source_build()`; "dev" outside a git checkout), so /status, /metrics and the boot log
name the build; boards/manifest.py stages it the same way for the frozen firmware.
"""

import os
import shutil
import subprocess
import sys

from .paths import BUILD, DEVICE_DIRS, ROOT, executable

KEEP_SOURCE = ("main.py", "boot.py")
SKIP_DIRS = ("__pycache__",)
VERSION_FILE = os.path.join("plug", "version.py")  # under firmware/: BUILD stamped in
WWW = "www"  # firmware/www/<name>: the owner's page, built as <name>.gz (gzip_file)


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
                    if os.path.relpath(src, src_root) == VERSION_FILE:
                        err = _build_version(mpy_cross, march, src, dst, out)
                        if err:
                            failed.append(err)
                        else:
                            sizes[os.path.relpath(dst, out)] = os.path.getsize(dst)
                        continue
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
                elif tree == "firmware" and rel.split(os.sep)[0] == WWW:
                    dst = os.path.join(dst_dir, name + ".gz")  # the page, as served
                    if not _fresh(src, dst):
                        gzip_file(src, dst)
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


def gzip_file(src, dst):
    """dst = src gzipped at level 9, the same bytes for the same source (no name, time 0):
    the plug serves it as it is, its trailer (CRC-32, length) is the page's ETag."""
    import gzip

    with open(src, "rb") as f:
        data = gzip.compress(f.read(), compresslevel=9, mtime=0)
    tmp = "%s.%d.tmp" % (dst, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, dst)


def _fresh(src, dst):
    return os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(src)


def source_build(root=None):
    """The short git hash of the checkout at `root` (this one by default), or "dev" when
    it is not a git checkout of its own (a tarball, a copy) or git is missing."""
    root = os.path.realpath(root or ROOT)
    try:
        top = subprocess.run(["git", "-C", root, "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, timeout=30)
        if top.returncode or os.path.realpath(top.stdout.strip()) != root:
            return "dev"
        r = subprocess.run(["git", "-C", root, "rev-parse", "--short=7", "HEAD"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "dev"
    h = r.stdout.strip()
    return h if not r.returncode and h and all(c in "0123456789abcdef" for c in h) else "dev"


def stamped_version(src, build):
    """plug/version.py's source with BUILD = `build` (the line `BUILD = "..."`)."""
    with open(src) as f:
        lines = f.read().split("\n")
    n = 0
    for i, line in enumerate(lines):
        if line.startswith("BUILD = "):
            lines[i] = "BUILD = %r" % build
            n += 1
    if n != 1:
        raise SystemExit("%s: expected one line `BUILD = ...`, found %d" % (src, n))
    return "\n".join(lines)


def stage_version(src, out_dir, build=None):
    """Write plug/version.py stamped with the build (source_build()) into out_dir; its path."""
    text = stamped_version(src, build or source_build())
    os.makedirs(out_dir, exist_ok=True)
    dst = os.path.join(out_dir, "version.py")
    try:
        with open(dst) as f:
            if f.read() == text:
                return dst  # unchanged: keep its time, so nothing downstream rebuilds
    except OSError:
        pass
    tmp = "%s.%d.tmp" % (dst, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, dst)
    return dst


def _build_version(mpy_cross, march, src, dst, out):
    """Compile plug/version.py with BUILD stamped in, when the source or the build changed
    since the last time (a marker in `out` holds the build compiled). None or an error."""
    build = source_build()
    marker = os.path.join(out, ".version-build")
    try:
        with open(marker) as f:
            done = f.read()
    except OSError:
        done = None
    if _fresh(src, dst) and done == build:
        return None
    import tempfile

    tmpdir = tempfile.mkdtemp(prefix="plug-version-")
    try:
        staged = stage_version(src, tmpdir, build)
        tmp = "%s.%d.tmp" % (dst, os.getpid())
        r = subprocess.run([mpy_cross, "-march=" + march, "-s", src, "-o", tmp, staged],
                           capture_output=True, text=True)
        if r.returncode:
            if os.path.exists(tmp):
                os.remove(tmp)
            if os.path.exists(dst):
                os.remove(dst)
            return "%s: %s" % (src, (r.stderr or r.stdout).strip())
        os.replace(tmp, dst)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    tmp = "%s.%d.tmp" % (marker, os.getpid())
    with open(tmp, "w") as f:
        f.write(build)
    os.replace(tmp, marker)
    return None


def main():
    for target in ARCHES:
        sizes = build(target, verbose="-v" in sys.argv)
        print(
            "mpy %-5s: %d modules, %d bytes in build/%s/"
            % (target, len(sizes), sum(sizes.values()), target)
        )


if __name__ == "__main__":
    main()
