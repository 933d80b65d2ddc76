"""plugctl sim: a virtual plug on this machine.

    plugctl sim --state DIR [--board sim] [--load SPEC] [--speed N] [--rpc URL]
                [--provider URL] [--chain-id N] [--http-port N] [--serial PATH]
                [--heap SIZE] [--firmware]

DIR is the plug's flash. The plug is the MicroPython unix port with a capped heap,
its serial REPL on a pty linked at PATH (connect with `plugctl repl --port PATH` or
`mpremote connect PATH resume ...`), its HTTP server on the port. A new DIR is a
freshly flashed plug with only MicroPython's REPL: `plugctl deploy --port PATH
--board sim` puts the firmware on it (or pass --firmware to start with it there).
When the process ends (machine.reset(), a soft reset) this supervisor boots it again,
as a board restarts; killing the plug's process is a power cut. Ctrl-C stops all.

--rpc, --provider, --chain-id and --http-port are the factory settings the plug ships
with (config version 0); the owner's signed config replaces them.
"""

import argparse
import json
import os
import signal
import time

from .vplug import VirtualPlug

# The app as .mpy in RAM needs ~300 KB of heap on the 64-bit unix port (objects are twice
# the ESP32's size; see make bench), plus room for its state files.
DEFAULT_HEAP = "1m"


def read_settings(state):
    path = os.path.join(state, "sim.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def save_settings(state, s):
    """Write sim.json on the flash as a new file renamed into place."""
    path = os.path.join(state, "sim.json")
    with open(path + ".tmp", "w") as f:
        json.dump(s, f)
    os.replace(path + ".tmp", path)


def write_settings(state, a):
    """sim.json on the flash: speed, loads and factory config, keeping the sim clock's
    start and anchor so sim time never goes back across restarts of this tool."""
    old = read_settings(state)
    now = time.time()
    s = {
        "speed": a.speed,
        "load": a.load or old.get("load", ""),
        "seed": old.get("seed", 1),
        "start": old.get("start", int(a.start_unix or now) - 946684800),
        "anchor": old.get("anchor", now),
    }
    if "start" in old and old.get("speed") != a.speed:
        # keep sim time continuous when the speed changes
        s["start"] = old["start"] + int((now - old["anchor"]) * old.get("speed", 1))
        s["anchor"] = now
    factory = old.get("factory", {})
    if a.rpc:
        factory.setdefault("chain", {})["rpc_urls"] = [a.rpc]
    if a.chain_id:
        factory.setdefault("chain", {})["chain_id"] = a.chain_id
    if a.provider:
        factory.setdefault("provider", {})["url"] = a.provider
    if a.http_port:
        factory.setdefault("server", {})["port"] = a.http_port
    s["factory"] = factory
    save_settings(state, s)
    return s


def check_load(spec):
    """ValueError with the sim board's own reason if it would refuse `spec` as it boots
    (boards/board_sim.py parse_spec, run here on CPython)."""
    import importlib
    import math
    import sys

    from .paths import BOARDS

    if BOARDS not in sys.path:
        sys.path.append(BOARDS)
    board = importlib.import_module("board_sim")
    from sim.load import Mains

    mains = Mains()
    if not spec.isascii():  # CPython's float() reads non-ASCII digits, MicroPython's does not
        raise ValueError("--load %r: only ASCII characters" % spec)
    try:
        loads = board.parse_spec(spec)
    except ValueError as e:
        raise ValueError("--load %r: %s" % (spec, e))
    for key, load in sorted(loads.items()):
        if not (math.isfinite(load.irms()) and math.isfinite(load.power(mains))):
            raise ValueError("--load %r: %s: current must be a finite number of amps"
                             % (spec, key))


def install_firmware(state, board):
    """Put the built firmware straight onto the flash (as if flashed at the factory)."""
    import shutil

    from .deploy import stage

    flash = stage(board)
    try:
        for name in os.listdir(flash):
            dst = os.path.join(state, name)
            if os.path.isdir(dst):
                shutil.rmtree(dst)
            src = os.path.join(flash, name)
            (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, dst)
    finally:
        shutil.rmtree(flash, ignore_errors=True)


def rom():
    """The virtual board's ROM: what MicroPython on a fresh board brings before anything
    is deployed, here the serial REPL (plug/repl*.mpy), so mpremote can deploy. The
    flash comes first on sys.path, so deployed modules always win."""
    import shutil

    from . import build_mpy
    from .paths import BUILD

    build_mpy.build("unix")
    src = os.path.join(BUILD, "unix", "firmware", "plug")
    dst = os.path.join(BUILD, "unix-rom", "plug")
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if name.startswith("repl") or name == "__init__.mpy":
            shutil.copy2(os.path.join(src, name), dst)
    return os.path.dirname(dst)


def make_plug(state, serial, heap=DEFAULT_HEAP):
    return VirtualPlug(state, serial_link=serial, heap=heap, path_dirs=(rom(),))


def supervise(plug, log=print, should_run=lambda: True):
    """Boot the plug, and boot it again whenever its process ends (a reset)."""
    plug.start()
    log("sim: plug booted (pid %d), serial %s" % (plug.pid, plug.serial_link or plug.port))
    while should_run():
        time.sleep(0.2)
        if not plug.alive:
            code = plug.returncode
            plug.kill()
            time.sleep(0.3)
            plug.start()
            log("sim: plug exited (%s); booted again (pid %d)" % (code, plug.pid))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="plugctl sim", description=__doc__.splitlines()[0])
    ap.add_argument("--state", required=True)
    ap.add_argument("--board", default="sim")
    ap.add_argument("--load", help="per-channel loads, e.g. M1/A=8A,M2/2=pv:6A")
    ap.add_argument("--speed", type=float, default=1.0)
    ap.add_argument("--start-unix", type=int, help="sim time at first boot (default: now)")
    ap.add_argument("--rpc")
    ap.add_argument("--chain-id", type=int)
    ap.add_argument("--provider")
    ap.add_argument("--http-port", type=int)
    ap.add_argument("--serial", help="path to link the plug's serial pty at")
    ap.add_argument("--heap", default=DEFAULT_HEAP)
    ap.add_argument("--firmware", action="store_true", help="start with the firmware on it")
    a = ap.parse_args(argv)
    if a.board != "sim":
        raise SystemExit("plugctl sim: only the sim board can run here (got %r)" % a.board)
    if a.speed <= 0:
        raise SystemExit("plugctl sim: --speed must be positive")
    if a.load:
        try:
            check_load(a.load)
        except ValueError as e:
            raise SystemExit("plugctl sim: %s" % e)
    os.makedirs(a.state, exist_ok=True)
    write_settings(a.state, a)
    if a.firmware:
        install_firmware(a.state, a.board)
    plug = make_plug(a.state, a.serial, a.heap)
    stop = []
    signal.signal(signal.SIGTERM, lambda *x: stop.append(1))
    try:
        supervise(plug, should_run=lambda: not stop)
    except KeyboardInterrupt:
        pass
    finally:
        plug.stop()
    return 0
