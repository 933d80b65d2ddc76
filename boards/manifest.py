# ruff: noqa: F821 - include, module, package and options are the manifest API
# MicroPython manifest: the plug's firmware with the whole app frozen in, for a board
# without PSRAM (every supported board; README "Firmware for a board without PSRAM").
#
# Frozen, so bytecode and constants stay in flash and the heap holds only objects:
#   - lib/*.py as top-level modules (keccak, eth, ade7953, ...), viper ones compiled for
#     the port's CPU by the build's own mpy-cross;
#   - lib/ecdsa_micro/ with the secp256k1 table as a frozen bytes object (88 KB of flash,
#     none of it on the heap): staged in build/frozen/ by tools/gen_secp256k1_table.py;
#   - firmware/plug/ as the package `plug` (plug/version.py staged in build/frozen/version/
#     with BUILD = the short git hash), firmware/main.py as main.py (the firmware runs a
#     frozen main.py at boot, so the flash needs none);
#   - boards/board_<NAME>.py as the module `board` (staged as build/frozen/board_<NAME>/
#     board.py), and for the virtual board `sim` its simulated chips (boards/sim/);
#   - the port's own manifest (by default $(PORT_DIR)/boards/manifest.py: on the ESP32
#     its _boot.py, asyncio, ntptime, ...).
# The board comes from `board=` of an include, else the environment's PLUG_BOARD:
#   PLUG_BOARD=shelly_ade7953 make BOARD=ESP32_GENERIC FROZEN_MANIFEST=$PLUG/boards/manifest.py
#   include("$PLUG/boards/manifest.py", board="sim", port_manifest=None)   # own manifest
# Not frozen: the plug's state, board.json, ca.der and the page at / (www/index.html.gz,
# made by tools/build_mpy; README "Firmware for a board without PSRAM" says how to copy
# it) stay files on the flash.
# Runs under CPython in MicroPython's build (tools/makemanifest.py), with this folder as
# the current directory.
import os
import sys

_boards = os.getcwd()
_root = os.path.dirname(_boards)
_board = options.board or os.getenv("PLUG_BOARD")
_names = sorted(n[6:-3] for n in os.listdir(_boards)
                if n.startswith("board_") and n.endswith(".py"))
if _board not in _names:
    raise ValueError("boards/manifest.py: board %r unknown: set PLUG_BOARD (or board= of an "
                     "include) to one of %s" % (_board, ", ".join(_names)))
_stage = os.path.join(_root, "build", "frozen")


def _stale(dst, srcs):
    """True unless dst exists and is newer than every file in srcs."""
    if not os.path.exists(dst):
        return True
    t = os.path.getmtime(dst)
    return any(os.path.getmtime(s) > t for s in srcs)


# ecdsa_micro with the table frozen: the whole package from build/frozen (a frozen
# submodule is not found inside a package loaded from the filesystem)
_ecdsa = os.path.join(_root, "lib", "ecdsa_micro")
_gen = os.path.join(_root, "tools", "gen_secp256k1_table.py")
_srcs = [os.path.join(_ecdsa, n) for n in os.listdir(_ecdsa) if n.endswith(".py")] + [_gen]
if _stale(os.path.join(_stage, "ecdsa_micro", "_gtable_frozen.py"), _srcs):
    sys.path.insert(0, _root)
    try:
        from tools import gen_secp256k1_table as _g
    finally:
        sys.path.remove(_root)
    _g.stage_frozen_package(_stage, _g.table_bytes())
package("ecdsa_micro", base_path=_stage)

# the board module under the name main.py imports
_bdir = os.path.join(_stage, "board_" + _board)
_bsrc = os.path.join(_boards, "board_%s.py" % _board)
if _stale(os.path.join(_bdir, "board.py"), [_bsrc]):
    os.makedirs(_bdir, exist_ok=True)
    with open(_bsrc, "rb") as _f:
        _code = _f.read()
    with open(os.path.join(_bdir, "board.py"), "wb") as _f:
        _f.write(_code)
module("board.py", base_path=_bdir)
if _board == "sim":
    package("sim", base_path=_boards)

_lib = os.path.join(_root, "lib")
for _n in sorted(os.listdir(_lib)):
    if _n.endswith(".py"):
        module(_n, base_path=_lib)
    elif _n != "ecdsa_micro" and os.path.exists(os.path.join(_lib, _n, "__init__.py")):
        package(_n, base_path=_lib)
# the app, with plug/version.py staged with BUILD = the checkout's short git hash ("dev"
# outside a git checkout: tools/build_mpy.py source_build())
_fw = os.path.join(_root, "firmware")
_plug = os.path.join(_fw, "plug")
package("plug", files=sorted(os.path.relpath(os.path.join(_d, _n), _plug)
                             for _d, _ds, _ns in os.walk(_plug) for _n in _ns
                             if _n.endswith(".py") and "__pycache__" not in _d
                             and os.path.relpath(os.path.join(_d, _n), _plug) != "version.py"),
        base_path=_fw)
sys.path.insert(0, _root)
try:
    from tools import build_mpy as _bm
finally:
    sys.path.remove(_root)
_bm.stage_version(os.path.join(_plug, "version.py"), os.path.join(_stage, "version", "plug"))
package("plug", files=["version.py"], base_path=os.path.join(_stage, "version"))
module("main.py", base_path=os.path.join(_root, "firmware"))

options.defaults(port_manifest="$(PORT_DIR)/boards/manifest.py")
if options.port_manifest:
    include(options.port_manifest)
