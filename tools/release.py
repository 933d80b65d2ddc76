"""Signed release bundles: the firmware for one board, bound to the owner's plugs.

    plugctl release --key owner.key --version X.Y.Z --board NAME --plug ADDR [--plug ADDR...]
                    [--min-config N] [--image firmware.bin] --out bundle.bin
    plugctl update push --url http://plug bundle.bin      POST /update, streamed

A bundle is one binary stream the plug can check and stage through a small buffer, never
holding it in RAM (firmware/plug/update.py reads it):

    b"PLUGUPD1"                       8 bytes, the format
    manifest length                   2 bytes, big-endian (at most MAX_MANIFEST)
    manifest                          canonical JSON (sorted keys, no spaces), below
    signature                         65 bytes: the owner's EIP-191 signature (r || s || v)
                                      over the manifest's bytes, as eth-account's
                                      sign_message(encode_defunct(manifest)) makes it
    file table                        one line per file: "<size> <sha256 hex> <path>\\n"
    the files' bytes                  one after another, in the table's order

The manifest: {"board", "build", "files" (how many), "format": 1, "min_config" (the
config version the release needs at least), "plugs" (the EIP-55 wallet addresses of the
plugs that may install it), "table": [size, sha256 hex] of the file table, "total" (the
files' bytes), "trial_s" (how long the release must run healthy on the plug before it
is kept; plug/slots.py), "version" ("X.Y.Z")}. The file table is bound to the signature by its
hash rather than listed in the manifest, so the signed part stays small (the set has
about 80 files) and the plug verifies the table before it uses any line of it.

An image bundle (`plugctl release --image firmware.bin`, for a plug whose code is frozen
into its firmware: README "Firmware for a board without PSRAM") has the same head and
signature; its manifest has "image": [size, sha256 hex] of the firmware image (the .bin
MicroPython's build makes with boards/manifest.py) and "total" (its size) in place of
"files" and "table", and the image's bytes follow the signature. The plug streams it into
its next OTA partition (firmware/plug/update_image.py).

The files are the board's flash without main.py (the root boot script, which a bundle
never changes) and ca.der: board.mpy, lib/ (with lib/sim/ for the virtual plug), plug/
and www/ (the owner's page), compiled by mpy-cross as `plugctl deploy` compiles them
(x64 for the virtual plug, xtensawin for the ESP32), with plug/version.mpy stamped with
the release's version and build hash.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile

MAGIC = b"PLUGUPD1"
MAX_MANIFEST = 1536  # bytes; firmware/plug/update.py reads it into a buffer this size
MAX_PLUGS = 16
FORMAT = 1
TRIAL_S = 300  # how long a release must run healthy before the plug keeps it
MIN_TRIAL_S, MAX_TRIAL_S = 5, 86400
SKIP = ("main.py", "ca.der")  # on the flash, never in a bundle
_VERSION = re.compile(r"^(0|[1-9][0-9]{0,4})\.(0|[1-9][0-9]{0,4})\.(0|[1-9][0-9]{0,4})$")


class ReleaseError(ValueError):
    pass


def check_version(v):
    """"X.Y.Z" (each part 0..99999, no leading zeros); ReleaseError otherwise."""
    if not isinstance(v, str) or not _VERSION.match(v):
        raise ReleaseError("--version: must be X.Y.Z with numbers (e.g. 0.6.0), got %r" % (v,))
    return v


def build_hash():
    """build_mpy.source_build() (the short commit hash, or "dev"), with "+" when device code
    has local changes."""
    from .build_mpy import source_build
    from .paths import ROOT

    h = source_build()
    if h == "dev":
        return h
    try:
        d = subprocess.run(["git", "status", "--porcelain", "--", "lib", "firmware", "boards"],
                           cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return h
    return h + ("+" if d.stdout.strip() else "")


def _stamp_version(flash, board, version, build):
    """Replace plug/version.mpy in the staged flash with one saying (version, build)."""
    from . import build_mpy
    from .deploy import VIRTUAL_BOARDS
    from .paths import executable

    march = build_mpy.ARCHES["unix" if board in VIRTUAL_BOARDS else "esp32"]
    d = tempfile.mkdtemp(prefix="plug-version-")
    try:
        src = os.path.join(d, "version.py")
        with open(src, "w") as f:
            f.write("# stamped by plugctl release\nVERSION = %r\nBUILD = %r\n" % (version, build))
        r = subprocess.run([executable("mpy-cross"), "-march=" + march, "-o",
                            os.path.join(flash, "plug", "version.mpy"), src],
                           capture_output=True, text=True)
        if r.returncode:
            raise ReleaseError("mpy-cross: %s" % (r.stderr or r.stdout).strip())
    finally:
        shutil.rmtree(d, ignore_errors=True)


def files_of(flash):
    """[(path, size, sha256 hex)] of a staged flash, sorted, without SKIP."""
    out = []
    for d, dirs, names in os.walk(flash):
        dirs.sort()
        for n in sorted(names):
            full = os.path.join(d, n)
            rel = os.path.relpath(full, flash).replace(os.sep, "/")
            if rel in SKIP:
                continue
            with open(full, "rb") as f:
                data = f.read()
            out.append((rel, len(data), hashlib.sha256(data).hexdigest()))
    out.sort()
    return out


def tree(d, paths=None):
    """{path: sha256} of the files under d (or only of `paths`, None for a missing one)."""
    out = {}
    if paths is not None:
        for p in paths:
            try:
                with open(os.path.join(d, p), "rb") as f:
                    out[p] = hashlib.sha256(f.read()).hexdigest()
            except OSError:
                out[p] = None
        return out
    for root, _dirs, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, d)] = hashlib.sha256(f.read()).hexdigest()
    return out


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def make_bundle(key, version, board, plugs, out, min_config=0, flash=None, build=None,
                trial_s=TRIAL_S, image=None):
    """Write the bundle to `out`; returns its manifest (a dict). `flash`: an already staged
    flash directory to take the files from (default: deploy.stage(board), stamped);
    `image`: a firmware image file to carry instead of files."""
    from eth_account import Account
    from eth_account.messages import encode_defunct
    from eth_utils import to_checksum_address

    check_version(version)
    if not plugs:
        raise ReleaseError("--plug: name at least one plug (its wallet address)")
    if len(plugs) > MAX_PLUGS:
        raise ReleaseError("--plug: at most %d plugs per bundle" % MAX_PLUGS)
    try:
        plugs = sorted(set(to_checksum_address(p) for p in plugs))
    except ValueError as e:
        raise ReleaseError("--plug: %s (a plug's wallet address: plugctl wallet address)" % e)
    if type(min_config) is not int or not 0 <= min_config < 2**31:
        raise ReleaseError("--min-config: must be a config version 0 or more")
    if type(trial_s) is not int or not MIN_TRIAL_S <= trial_s <= MAX_TRIAL_S:
        raise ReleaseError("--trial-s: must be %d to %d seconds" % (MIN_TRIAL_S, MAX_TRIAL_S))
    build = build or build_hash()
    if image is not None:
        return _image_bundle(key, version, board, plugs, out, min_config, build, trial_s,
                             image)
    own = flash is None
    if own:
        from .deploy import stage

        flash = stage(board)
        _stamp_version(flash, board, version, build)
    try:
        files = files_of(flash)
        table = "".join("%d %s %s\n" % (n, h, p) for p, n, h in files).encode()
        manifest = canonical({
            "board": board, "build": build, "files": len(files), "format": FORMAT,
            "min_config": min_config, "plugs": plugs,
            "table": [len(table), hashlib.sha256(table).hexdigest()],
            "total": sum(n for _p, n, _h in files), "trial_s": trial_s, "version": version})
        if len(manifest) > MAX_MANIFEST:
            raise ReleaseError("manifest of %d bytes; the plug reads at most %d (fewer "
                               "--plug)" % (len(manifest), MAX_MANIFEST))
        sig = bytes(Account.sign_message(encode_defunct(primitive=manifest), key).signature)
        tmp = out + ".tmp"
        with open(tmp, "wb") as f:
            f.write(MAGIC + len(manifest).to_bytes(2, "big") + manifest + sig + table)
            for p, _n, _h in files:
                with open(os.path.join(flash, p), "rb") as src:
                    shutil.copyfileobj(src, f)
        os.replace(tmp, out)
    finally:
        if own:
            shutil.rmtree(flash, ignore_errors=True)
    return json.loads(manifest)


def _image_bundle(key, version, board, plugs, out, min_config, build, trial_s, image):
    from eth_account import Account
    from eth_account.messages import encode_defunct

    try:
        size = os.path.getsize(image)
        h = hashlib.sha256()
        with open(image, "rb") as f:
            head = f.read(1)
            f.seek(0)
            for chunk in iter(lambda: f.read(65536), b""):
                h.update(chunk)
    except OSError as e:
        raise ReleaseError("--image: %s" % e)
    if not size or head != b"\xe9":
        raise ReleaseError("--image: %s is not an ESP32 app image (it must start with the "
                           "byte 0xE9: the firmware.bin of MicroPython's build)" % image)
    manifest = canonical({
        "board": board, "build": build, "format": FORMAT, "image": [size, h.hexdigest()],
        "min_config": min_config, "plugs": plugs, "total": size, "trial_s": trial_s,
        "version": version})
    if len(manifest) > MAX_MANIFEST:
        raise ReleaseError("manifest of %d bytes; the plug reads at most %d (fewer --plug)"
                           % (len(manifest), MAX_MANIFEST))
    sig = bytes(Account.sign_message(encode_defunct(primitive=manifest), key).signature)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC + len(manifest).to_bytes(2, "big") + manifest + sig)
        with open(image, "rb") as src:
            shutil.copyfileobj(src, f)
    os.replace(tmp, out)
    return json.loads(manifest)


def read_manifest(path):
    """(manifest dict, signer address) of a bundle file, for people and tests."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    with open(path, "rb") as f:
        head = f.read(len(MAGIC) + 2)
        if head[:len(MAGIC)] != MAGIC or len(head) < len(MAGIC) + 2:
            raise ReleaseError("%s: not a plug release bundle" % path)
        m = f.read(int.from_bytes(head[len(MAGIC):], "big"))
        sig = f.read(65)
    signer = Account.recover_message(encode_defunct(primitive=m), signature=sig)
    return json.loads(m), signer


def push(url, path, timeout=120, chunk=4096):
    """POST the bundle at `path` to the plug's /update, streamed from the file; returns
    (HTTP status, body text)."""
    import http.client
    import urllib.parse

    u = urllib.parse.urlsplit(url)
    size = os.path.getsize(path)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    try:
        conn.putrequest("POST", (u.path.rstrip("/") or "") + "/update")
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        try:
            with open(path, "rb") as f:
                while True:
                    data = f.read(chunk)
                    if not data:
                        break
                    conn.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the plug answered early and closed: its answer says why
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


def cli(cmd, argv):
    if cmd == "update":
        return update_cli(argv)
    return release_cli(argv)


def update_cli(argv):
    ap = argparse.ArgumentParser(prog="plugctl update", description="Send a signed release "
                                 "bundle (from `plugctl release`) to a plug.")
    sub = ap.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = sub.add_parser("push", help="POST a bundle to the plug's /update, streamed",
                       description="POST a bundle to the plug's /update, streamed from the "
                                   "file; the plug checks the owner's signature, the version "
                                   "and every file's hash as it stages it.")
    p.add_argument("--url", required=True, help="the plug's HTTP address, e.g. "
                                                "http://127.0.0.1:8081")
    p.add_argument("bundle", help="bundle file from `plugctl release`")
    a = ap.parse_args(argv)
    from .client import PlugUnreachable, check_url, unreachable

    if not os.path.isfile(a.bundle):
        raise SystemExit("bundle %s: no such file" % a.bundle)
    try:
        status, body = push(check_url(a.url), a.bundle)
    except PlugUnreachable as e:
        raise SystemExit(str(e))
    except OSError as e:
        raise SystemExit(str(unreachable(a.url, e)))
    print(status, body)
    return 0 if status == 200 else 1


def release_cli(argv):
    from .deploy import boards

    names = boards()
    ap = argparse.ArgumentParser(prog="plugctl release", description="Build a signed "
                                 "release bundle of the firmware for one board, bound to "
                                 "the plugs named (push it with `plugctl update push`).")
    ap.add_argument("--key", required=True, metavar="FILE", help="the owner's key file")
    ap.add_argument("--version", required=True, metavar="X.Y.Z",
                    help="the release's version: plugs take only a version above theirs")
    ap.add_argument("--board", required=True, choices=names, metavar="NAME",
                    help="the board it is for: %s" % ", ".join(names))
    ap.add_argument("--plug", required=True, action="append", metavar="ADDRESS",
                    help="a plug that may install it (its wallet address); repeat for more")
    ap.add_argument("--min-config", type=int, default=0, metavar="N",
                    help="the config version the release needs at least (default 0)")
    ap.add_argument("--trial-s", type=int, default=TRIAL_S, metavar="S",
                    help="seconds the release must run healthy (meter reading, ledger "
                         "checkpointed, HTTP up, chain answering) before the plug keeps it; "
                         "default %d" % TRIAL_S)
    ap.add_argument("--image", metavar="FILE",
                    help="for a plug whose code is frozen: carry this firmware image (the "
                         "firmware.bin of MicroPython's build with boards/manifest.py) "
                         "instead of .mpy files")
    ap.add_argument("--out", required=True, metavar="FILE", help="bundle file to write")
    a = ap.parse_args(argv)
    from .config_cli import read_key

    key = read_key(a.key)
    try:
        m = make_bundle(key, a.version, a.board, a.plug, a.out, min_config=a.min_config,
                        trial_s=a.trial_s, image=a.image)
    except ReleaseError as e:
        raise SystemExit(str(e))
    what = "an image of %d bytes" % m["total"] if a.image else "%d files" % m["files"]
    print("%s: version %s (build %s) for %s, %s, %d bytes, plugs %s"
          % (a.out, m["version"], m["build"], m["board"], what, os.path.getsize(a.out),
             ", ".join(m["plugs"])))
    return 0
