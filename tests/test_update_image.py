"""Image releases for a plug whose code is frozen (`plugctl release --image`,
firmware/plug/update_image.py), on the MicroPython unix port at a 128 KB heap (the
updater, the signature check, slots and the stand-in as .mpy: 61 KB of code) with the
ESP32's OTA partitions played by the file-backed stand-in boards/sim/partition.py (the
same methods and rules as esp32.Partition: 4096-byte blocks, writes only into erased
bytes, ESP-IDF's app rollback at the next reset): an image bundle lands byte for byte in
the next partition and only then is it set to boot; a flipped byte, a cut stream or an
image too big leaves the boot partition as it was; the image boots on trial, is kept by
mark_app_valid_cancel_rollback, or, not kept before a reset, the bootloader goes back and
the plug records the rollback. The unix port cannot boot an image: what runs after a
"reset" is the same code, which is all this proves about the switch.
"""

import hashlib
import json
import os
import random
import zlib

import pytest
from eth_account import Account

from tools import mp, plugctl, release
from tools.paths import ROOT

OWNER_KEY = "0x" + "c3" * 32
PLUG = "0x" + "11" * 20
RUNNING = "0.5.0"
SIZE = 262144  # the stand-in's partitions
DRIVER = os.path.join(ROOT, "tests", "update_image_drv.py")


def owner():
    return Account.from_key(OWNER_KEY).address


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    rnd = random.Random(12)
    data = b"\xe9" + bytes(rnd.getrandbits(8) for _ in range(100 * 1024 + 122))
    path = str(tmp_path_factory.mktemp("img") / "firmware.bin")
    with open(path, "wb") as f:
        f.write(data)
    return path, data


@pytest.fixture(scope="module")
def bundle(image, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("bundles") / "img.bin")
    m = release.make_bundle(OWNER_KEY, "0.6.0", "sim", [PLUG], path, build="t3st",
                            image=image[0], trial_s=30)
    return path, m


def run(mpy_dirs, flash, *args):
    out = mp.run(path=DRIVER, args=[str(a) for a in args], path_dirs=mpy_dirs,
                 cwd=str(flash), heap="128k")
    lines = out.strip().splitlines()
    d = json.loads([ln for ln in lines if ln.startswith("OTADATA ")][-1][8:])
    return out, d


def stage(mpy_dirs, flash, path, length="full", frozen=1):
    n = "-" if length is None else str(os.path.getsize(path) if length == "full" else length)
    return run(mpy_dirs, flash, "stage", path, owner(), PLUG, RUNNING, n, frozen)


def part(flash, label):
    with open(os.path.join(str(flash), "ota", label + ".bin"), "rb") as f:
        return f.read()


def slot(flash):
    p = os.path.join(str(flash), "slot.json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


@pytest.fixture
def flash(tmp_path, mpy_dirs):
    run(mpy_dirs, tmp_path, "setup", SIZE)
    return tmp_path


VALID = {"boot": "ota_0", "state": "valid", "previous": None}


def test_bundle_layout(bundle, image):
    path, m = bundle
    m2, signer = release.read_manifest(path)
    assert signer == owner() and m2 == m
    assert m["image"] == [len(image[1]), hashlib.sha256(image[1]).hexdigest()]
    assert m["total"] == len(image[1]) and "files" not in m and "table" not in m
    with open(path, "rb") as f:
        data = f.read()
    mlen = int.from_bytes(data[8:10], "big")
    assert data[10 + mlen + 65:] == image[1]


def test_cli_release_image(tmp_path, capsys, image, mpy_dirs):
    key = tmp_path / "owner.key"
    key.write_text(OWNER_KEY + "\n")
    out = tmp_path / "b.bin"
    assert plugctl.main(["release", "--key", str(key), "--version", "1.2.3", "--board", "sim",
                         "--plug", PLUG, "--image", image[0], "--out", str(out)]) == 0
    assert "an image of %d bytes" % len(image[1]) in capsys.readouterr().out
    bad = tmp_path / "notes.txt"
    bad.write_bytes(b"hello")
    assert plugctl.main(["release", "--key", str(key), "--version", "1.2.4", "--board", "sim",
                         "--plug", PLUG, "--image", str(bad), "--out",
                         str(tmp_path / "x.bin")]) == 1
    assert "not an ESP32 app image" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x.bin")


def test_an_image_lands_byte_exact_then_boots_on_trial_and_is_kept(bundle, image, flash,
                                                                   mpy_dirs):
    # what an earlier, cut-off image left in the partition: the writer erases before it
    # writes (a write into it unerased would raise OSError in the stand-in)
    with open(os.path.join(str(flash), "ota", "ota_1.bin"), "r+b") as f:
        f.write(b"\x00" * 20000)
    out, d = stage(mpy_dirs, flash, bundle[0])
    assert "STAGED 0.6.0 image" in out and "INSTALLED ota_1" in out, out
    got = part(flash, "ota_1")
    assert got[:len(image[1])] == image[1]
    assert got[len(image[1]):] == b"\xff" * (SIZE - len(image[1]))
    assert part(flash, "ota_0") == b"\xff" * SIZE  # the running one untouched
    assert d == {"boot": "ota_1", "state": "new", "previous": "ota_0"}
    rec = slot(flash)
    assert (rec["image"], rec["previous_image"], rec["version"], rec["previous_version"],
            rec["good"]) == ("ota_1", "ota_0", "0.6.0", RUNNING, False)
    # the reset: the bootloader runs the new image once, pending; the plug is on trial
    # (a reset now would send it back: next test) and passes it
    out, d = run(mpy_dirs, flash, "boot", "keep")
    assert "RUNNING ota_1" in out
    assert d == {"boot": "ota_1", "state": "valid", "previous": "ota_0"}, out
    assert slot(flash)["good"] is True
    # kept: the next reset boots it again
    out, d = run(mpy_dirs, flash, "boot")
    assert "RUNNING ota_1" in out and d["state"] == "valid"


def _slot_file(gen, body, fmt=1):
    body = json.dumps(body).encode()
    head = b"%d %d %d" % (gen, zlib.crc32(body), len(body))
    return head + (b" %d" % fmt if fmt > 1 else b"") + b"\n" + body


def test_an_image_not_kept_before_a_reset_is_rolled_back(bundle, flash, mpy_dirs):
    out, _ = stage(mpy_dirs, flash, bundle[0])
    assert "INSTALLED ota_1" in out
    out, d = run(mpy_dirs, flash, "boot")  # on trial, never kept (a hang, a crash ...)
    assert "RUNNING ota_1" in out
    # what the image did on trial: it migrated the ledger (plug/store.py), keeping the old
    # copy, and saved twice since
    st = flash / "state"
    st.mkdir()
    old = _slot_file(1, {"uwh": 100})
    (st / "ledger.pre-0.6.0").write_bytes(old)
    (st / "ledger.0").write_bytes(_slot_file(2, {"energy": {"uwh": 105}}, fmt=2))
    (st / "ledger.1").write_bytes(_slot_file(3, {"energy": {"uwh": 110}}, fmt=2))
    out, d = run(mpy_dirs, flash, "boot")
    assert "RUNNING ota_0" in out and d["state"] == "aborted" and d["boot"] == "ota_0"
    rec = slot(flash)
    assert (rec["image"], rec["version"], rec["rolled_back"], rec["good"]) == (
        "ota_0", RUNNING, "0.6.0", True)
    assert "booted ota_0 again: ota_1 was not kept" in rec["why"]
    # the old release reads the ledger as it wrote it
    assert sorted(os.listdir(str(st))) == ["ledger.1"]
    assert (st / "ledger.1").read_bytes() == old


@pytest.mark.parametrize("case", ["first byte", "middle", "last byte", "cut", "cut, length "
                                  "known", "too big"])
def test_a_bad_image_leaves_the_boot_partition_unchanged(case, bundle, image, flash,
                                                         mpy_dirs, tmp_path):
    with open(bundle[0], "rb") as f:
        data = bytearray(f.read())
    start = len(data) - len(image[1])
    length = "full"
    if case == "first byte":
        data[start] ^= 0x01
    elif case == "middle":
        data[start + len(image[1]) // 2] ^= 0x80
    elif case == "last byte":  # every block written: only the hash can tell
        data[-1] ^= 0x01
    elif case == "cut":
        data, length = data[:start + 50000], None
    elif case == "cut, length known":
        length = len(data)
        data = data[:start + 50000]
    bad = str(tmp_path / "bad.bin")
    if case == "too big":
        big = tmp_path / "big.bin"
        big.write_bytes(b"\xe9" + b"\x00" * SIZE)
        release.make_bundle(OWNER_KEY, "0.6.0", "sim", [PLUG], bad, build="t3st",
                            image=str(big))
    else:
        with open(bad, "wb") as f:
            f.write(data)
    out, d = stage(mpy_dirs, flash, bad, length=length)
    want = {"first byte": "image: SHA-256 differs", "middle": "image: SHA-256 differs",
            "last byte": "image: SHA-256 differs", "cut": "truncated",
            "cut, length known": "truncated", "too big": "partition ota_1 holds 262144"}[case]
    assert "REFUSED" in out and want in out, out
    assert d == VALID
    assert slot(flash) is None
    assert part(flash, "ota_0") == b"\xff" * SIZE


def test_writing_an_unerased_block_is_caught(flash, mpy_dirs):
    out, _ = run(mpy_dirs, flash, "unerased")
    assert "OSERROR offset" in out and "not erased: block 1" in out, out
    assert "WROTE simple" in out  # MicroPython's simple form erases first
    lines = [ln for ln in out.splitlines() if ln.startswith("BLOCK ")]
    assert lines[0] == "BLOCK " + "56" * 16 + "ff" * 24


def test_the_kind_of_bundle_must_match_how_the_plug_runs(bundle, flash, mpy_dirs, tmp_path):
    # a plug running from .mpy files takes no image ...
    out, d = stage(mpy_dirs, flash, bundle[0], frozen=0)
    assert "REFUSED release 0.6.0 is a firmware image; this plug runs its code from files" \
        in out, out
    assert d == VALID and part(flash, "ota_1") == b"\xff" * SIZE
    # ... and a frozen one no .mpy files
    src = tmp_path / "src"
    (src / "plug").mkdir(parents=True)
    (src / "plug" / "x.mpy").write_bytes(b"M")
    files = str(tmp_path / "files.bin")
    release.make_bundle(OWNER_KEY, "0.6.0", "sim", [PLUG], files, flash=str(src),
                        build="t3st")
    out, d = stage(mpy_dirs, flash, files, frozen=1)
    assert "is .mpy files; this plug's code is frozen" in out, out
    assert d == VALID and not os.path.exists(os.path.join(str(flash), "stage"))
