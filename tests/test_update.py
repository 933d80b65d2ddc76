"""Signed release bundles (tools/release.py, `plugctl release`) and the plug's check and
staging of one as it streams in (firmware/plug/update.py) on the MicroPython unix port at
a 68 KB heap (64 KB until the image path's names filled the unix port's qstr pool, whose
next growth is 3.6 KB; frozen, those names stay in flash): a good bundle lands in the
staging folder byte for byte; a bundle the plug must not take (older or equal version,
another plug's, another board's, another signer's, sent while a release is on trial, one
rolled back, a flipped byte anywhere, a truncated or overlong stream) is refused with its reason and
leaves nothing in staging; a refusal from the bundle's head leaves a stage it finds as it
was, and what a power cut left of a stage is cleared first.
"""

import os
import shutil

import pytest
from eth_account import Account

from tools import mp, plugctl, release
from tools.paths import ROOT

OWNER_KEY = "0x" + "c3" * 32
OTHER_KEY = "0x" + "a1" * 32
PLUG = "0x" + "11" * 20
OTHER_PLUG = "0x" + "22" * 20
RUNNING = "0.5.0"
DRIVER = os.path.join(ROOT, "tests", "update_stage.py")


@pytest.fixture(scope="module")
def flash_src(mpy_dirs):
    """The virtual plug's flash as `plugctl deploy --board sim` would write it."""
    from tools.deploy import stage

    d = stage("sim")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def bundles(flash_src, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles")

    def make(name, version="0.6.0", key=OWNER_KEY, plugs=(PLUG,), board="sim", min_config=0):
        path = str(out / (name + ".bin"))
        if not os.path.exists(path):
            release._stamp_version(flash_src, "sim", version, "t3st")
            release.make_bundle(key, version, board, list(plugs), path, min_config=min_config,
                                flash=flash_src, build="t3st")
        return path

    return make


def owner():
    return Account.from_key(OWNER_KEY).address


def stage(mpy_dirs, flash, bundle, length="full", data=None, running=RUNNING, cfgv=1,
          on_trial=None, rolled_back=None):
    """Run the plug's staging on `bundle` (or on `data`, bytes) with `flash` as the flash;
    returns (outcome line, figures)."""
    if data is not None:
        bundle = os.path.join(str(flash), "..", os.path.basename(str(flash)) + ".in")
        with open(bundle, "wb") as f:
            f.write(data)
    size = os.path.getsize(bundle)
    n = "-" if length is None else str(size if length == "full" else length)
    out = mp.run(path=DRIVER, args=[bundle, owner(), PLUG, "sim", running, str(cfgv), n],
                 path_dirs=mpy_dirs, cwd=str(flash), heap="68k",
                 extra_env=dict((k, v) for k, v in (("UPDATE_ON_TRIAL", on_trial),
                                                    ("UPDATE_ROLLED_BACK", rolled_back)) if v))
    lines = out.strip().splitlines()
    figures = dict((ln.split()[0], int(ln.split()[1])) for ln in lines
                   if ln.split()[0] in ("MODULE", "STREAM_PEAK"))
    outcome = [ln for ln in lines if ln.startswith(("STAGED", "REFUSED"))]
    assert outcome, out
    return outcome[-1], figures


def test_bundle_layout_and_signer(bundles, flash_src):
    path = bundles("good")
    m, signer = release.read_manifest(path)
    assert signer == owner()
    assert (m["version"], m["board"], m["plugs"]) == ("0.6.0", "sim", [PLUG])
    files = release.files_of(flash_src)
    assert m["files"] == len(files) and m["total"] == sum(n for _p, n, _h in files)
    assert not [p for p, _n, _h in files if p in ("main.py", "ca.der")]
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == release.MAGIC
    assert len(data) == 10 + int.from_bytes(data[8:10], "big") + 65 + m["table"][0] + m["total"]
    assert int.from_bytes(data[8:10], "big") <= release.MAX_MANIFEST


def test_cli_release_writes_a_bundle_and_refuses_bad_input(tmp_path, capsys, mpy_dirs):
    key = tmp_path / "owner.key"
    key.write_text(OWNER_KEY + "\n")
    out = tmp_path / "b.bin"
    assert plugctl.main(["release", "--key", str(key), "--version", "1.2.3", "--board", "sim",
                         "--plug", PLUG, "--out", str(out)]) == 0
    m, signer = release.read_manifest(str(out))
    assert (m["version"], signer) == ("1.2.3", owner())
    assert "version 1.2.3" in capsys.readouterr().out
    assert plugctl.main(["release", "--key", str(key), "--version", "1.2", "--board", "sim",
                         "--plug", PLUG, "--out", str(tmp_path / "x.bin")]) == 1
    assert "X.Y.Z" in capsys.readouterr().err
    assert plugctl.main(["release", "--key", str(key), "--version", "1.2.4", "--board", "sim",
                         "--plug", "0x1234", "--out", str(tmp_path / "x.bin")]) == 1
    assert "--plug" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x.bin")


def test_a_good_bundle_is_staged_byte_for_byte(bundles, flash_src, mpy_dirs, tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    outcome, fig = stage(mpy_dirs, flash, bundles("good"))
    assert outcome == "STAGED 0.6.0"
    got = release.tree(str(flash / "stage"))
    want = {p: h for p, _n, h in release.files_of(flash_src)}
    assert {p: got[p] for p in want} == want
    assert set(got) - set(want) == {".table", ".manifest"}
    # the heap the updater needs beyond the app (printed for the report)
    print("update.mpy module %d B; staging's live heap while streaming %d B"
          % (fig["MODULE"], fig["STREAM_PEAK"]))
    assert fig["STREAM_PEAK"] < 8192
    # a bundle refused from its head (signed by someone else, or sent while a release is
    # on trial) leaves a stage it finds as it was
    outcome, _ = stage(mpy_dirs, flash, bundles("stranger", key=OTHER_KEY))
    assert "not by the plug's owner" in outcome
    assert release.tree(str(flash / "stage")) == got
    outcome, _ = stage(mpy_dirs, flash, bundles("good"), on_trial="0.5.9")
    assert outcome == ("REFUSED release 0.5.9 is on trial; send 0.6.0 once it is kept or "
                       "rolled back")
    assert release.tree(str(flash / "stage")) == got
    # a release that failed its trial is not taken again, pushed by whoever kept a copy
    outcome, _ = stage(mpy_dirs, flash, bundles("good"), rolled_back="0.6.0")
    assert outcome == ("REFUSED release 0.6.0 is not newer than 0.6.0, which was rolled back: "
                       "sign a newer version")
    assert release.tree(str(flash / "stage")) == got
    # what a power cut left of an earlier stage goes before the next bundle is staged
    os.remove(str(flash / "stage" / ".manifest"))
    with open(str(flash / "stage" / "plug" / "app.mpy"), "r+b") as f:
        f.truncate(100)
    (flash / "stage" / "junk").write_bytes(b"x" * 1000)
    outcome, _ = stage(mpy_dirs, flash, bundles("good"))
    assert outcome == "STAGED 0.6.0"
    assert release.tree(str(flash / "stage")) == got


@pytest.mark.parametrize("case, reason", [
    ("older", "release 0.4.9 is not newer than the running 0.5.0"),
    ("same", "release 0.5.0 is not newer than the running 0.5.0"),
    ("other_plug", "release 0.6.0 is bound to other plugs, not " + PLUG),
    ("stranger", "signed by %s, not by the plug's owner" % Account.from_key(OTHER_KEY).address),
    ("other_board", "release 0.6.0 is for board shelly_ade7953; this plug is sim"),
    ("min_config", "release 0.6.0 needs config version 5 or later; this plug has 1"),
])
def test_header_refusals(case, reason, bundles, mpy_dirs, tmp_path):
    kw = {"older": {"version": "0.4.9"}, "same": {"version": "0.5.0"},
          "other_plug": {"plugs": (OTHER_PLUG,)}, "stranger": {"key": OTHER_KEY},
          "other_board": {"board": "shelly_ade7953"}, "min_config": {"min_config": 5}}[case]
    flash = tmp_path / "flash"
    flash.mkdir()
    outcome, _ = stage(mpy_dirs, flash, bundles(case, **kw))
    assert outcome == "REFUSED " + reason
    assert os.listdir(str(flash)) == []


def _table_end(data):
    mlen = int.from_bytes(data[8:10], "big")
    import json

    m = json.loads(data[10:10 + mlen])
    start = 10 + mlen + 65
    return mlen, start, start + m["table"][0], m


@pytest.mark.parametrize("where", ["manifest", "signature", "table", "first file",
                                   "middle", "last byte"])
def test_a_flipped_byte_anywhere_is_refused_and_leaves_nothing(where, bundles, mpy_dirs,
                                                                tmp_path):
    with open(bundles("good"), "rb") as f:
        data = bytearray(f.read())
    mlen, t0, t1, m = _table_end(data)
    at = {"manifest": 10 + mlen // 2, "signature": 10 + mlen + 10, "table": t0 + 100,
          "first file": t1 + 5, "middle": t1 + m["total"] // 2,
          "last byte": len(data) - 1}[where]
    data[at] ^= 0x01
    flash = tmp_path / "flash"
    flash.mkdir()
    outcome, _ = stage(mpy_dirs, flash, None, data=bytes(data))
    # a flipped signature byte recovers another signer, or none
    want = {"manifest": "not by the plug's owner", "signature": "REFUSED sign",
            "table": "file table: SHA-256 differs", "first file": "SHA-256 differs from the "
            "file table's", "middle": "SHA-256 differs from the file table's",
            "last byte": "SHA-256 differs from the file table's"}[where]
    assert outcome.startswith("REFUSED") and want in outcome, outcome
    assert os.listdir(str(flash)) == []


@pytest.mark.parametrize("case", ["cut mid-file", "cut in the table", "length says more",
                                  "length says less", "not a bundle"])
def test_truncated_or_mislabelled_streams_are_refused(case, bundles, mpy_dirs, tmp_path):
    with open(bundles("good"), "rb") as f:
        data = f.read()
    _mlen, t0, t1, m = _table_end(data)
    length = "full"
    if case == "cut mid-file":
        data, length = data[:t1 + m["total"] // 3], None  # the stream just ends
    elif case == "cut in the table":
        data, length = data[:t0 + 50], len(data)  # Content-Length promised it all
    elif case == "length says more":
        length = len(data) + 1
    elif case == "length says less":
        length = len(data) - 1
    else:
        data = b"GET / HTTP/1.0\r\n" + data[16:]
    flash = tmp_path / "flash"
    flash.mkdir()
    outcome, _ = stage(mpy_dirs, flash, None, data=data, length=length)
    want = {"cut mid-file": "truncated: the stream ended", "cut in the table":
            "truncated: the stream ended", "length says more": "its manifest says",
            "length says less": "its manifest says",
            "not a bundle": "not a release bundle"}[case]
    assert outcome.startswith("REFUSED") and want in outcome, outcome
    assert os.listdir(str(flash)) == []
