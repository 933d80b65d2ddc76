"""boards/manifest.py, the MicroPython manifest of the frozen firmware (README "Firmware
for a board without PSRAM"), run as MicroPython's tools/makemanifest.py runs it: exec'd
with the manifest API (package, module, include, options) and the manifest's folder as
the working directory. What it freezes must be the whole app under the names the
firmware imports; the secp256k1 table staged for freezing must be the committed one and
must compile with mpy-cross. Building MicroPython itself is not done here."""

import os
import subprocess

import pytest

from tools.gen_secp256k1_table import TABLE_PATH
from tools.paths import BOARDS, BUILD, FIRMWARE, LIB, executable


class Options:
    """MicroPython's IncludeOptions: kwargs of include(), then defaults, else None."""

    def __init__(self, **kw):
        self._kw, self._defaults = kw, {}

    def defaults(self, **kw):
        self._defaults.update(kw)

    def __getattr__(self, name):
        return self._kw.get(name, self._defaults.get(name))


def run_manifest(monkeypatch, env_board=None, **kw):
    """{frozen name: source path} and the included manifests."""
    frozen, included = {}, []

    def package(path, files=None, base_path=".", opt=None):
        if files is not None:  # only these, relative to the package
            for f in files:
                frozen[os.path.join(path, f)] = os.path.join(base_path, path, f)
            return
        for d, _dirs, fs in os.walk(os.path.join(base_path, path)):
            for f in fs:
                if f.endswith(".py"):
                    src = os.path.join(d, f)
                    frozen[os.path.relpath(src, base_path)] = src

    def module(path, base_path=".", opt=None):
        frozen[path] = os.path.join(base_path, path)

    if env_board:
        monkeypatch.setenv("PLUG_BOARD", env_board)
    else:
        monkeypatch.delenv("PLUG_BOARD", raising=False)
    monkeypatch.chdir(BOARDS)
    with open(os.path.join(BOARDS, "manifest.py")) as f:
        code = compile(f.read(), "manifest.py", "exec")
    exec(code, {"package": package, "module": module, "include": included.append,
                "options": Options(**kw)})
    return frozen, included


def _sources(root, prefix=""):
    out = set()
    for d, dirs, fs in os.walk(root):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        for f in fs:
            if f.endswith(".py"):
                out.add(prefix + os.path.relpath(os.path.join(d, f), root))
    return out


def test_the_manifest_freezes_the_whole_app_under_the_names_the_firmware_imports(monkeypatch):
    frozen, included = run_manifest(monkeypatch, board="sim", port_manifest=None)
    assert included == []
    want = (_sources(LIB) | _sources(os.path.join(FIRMWARE, "plug"), "plug/")
            | _sources(os.path.join(BOARDS, "sim"), "sim/")
            | {"main.py", "board.py", "ecdsa_micro/_gtable_frozen.py"})
    assert set(frozen) == want
    with open(frozen["board.py"], "rb") as a, open(os.path.join(BOARDS, "board_sim.py"),
                                                  "rb") as b:
        assert a.read() == b.read()
    staged = frozen["ecdsa_micro/_gtable_frozen.py"]
    assert staged.startswith(os.path.join(BUILD, "frozen") + os.sep)
    for name in ("curve.py", "gtable.py"):  # the package frozen whole, from one place
        assert os.path.dirname(frozen["ecdsa_micro/" + name]) == os.path.dirname(staged)
    ns = {}
    with open(staged) as f:
        exec(f.read(), ns)
    with open(TABLE_PATH, "rb") as f:
        assert ns["TABLE"] == f.read()
    out = os.path.join(os.path.dirname(staged), "_check.mpy")
    try:  # the 88 KB bytes literal compiles for the ESP32
        subprocess.run([executable("mpy-cross"), "-march=xtensawin", "-o", out, staged],
                       check=True, capture_output=True, timeout=120)
    finally:
        if os.path.exists(out):
            os.remove(out)


def test_a_real_board_gets_its_module_and_the_ports_manifest_but_no_simulator(monkeypatch):
    frozen, included = run_manifest(monkeypatch, env_board="shelly_ade7953")
    assert included == ["$(PORT_DIR)/boards/manifest.py"]
    assert not [k for k in frozen if k.startswith("sim/")]
    with open(frozen["board.py"], "rb") as a, open(
            os.path.join(BOARDS, "board_shelly_ade7953.py"), "rb") as b:
        assert a.read() == b.read()


def test_an_unknown_or_missing_board_is_refused_naming_the_boards(monkeypatch):
    for kw in ({}, {"board": "nope"}):
        with pytest.raises(ValueError, match="PLUG_BOARD.*circuitsetup_6ch.*shelly_ade7953"):
            run_manifest(monkeypatch, **kw)


def test_the_frozen_version_module_names_the_build(monkeypatch):
    from tools.build_mpy import source_build

    frozen, _ = run_manifest(monkeypatch, board="sim", port_manifest=None)
    staged = frozen["plug/version.py"]
    assert staged.startswith(os.path.join(BUILD, "frozen") + os.sep)
    ns = {}
    with open(staged) as f:
        exec(f.read(), ns)
    assert ns["BUILD"] == source_build() != "dev" and ns["VERSION"] == "0.5.0"
