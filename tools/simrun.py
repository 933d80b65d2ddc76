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
as a board restarts; killing the plug's process is a power cut. Ctrl-C or SIGTERM
stops all at once, as Ctrl-C at the plug's console would (power_off: the app saves its
energy first).

--rpc, --provider, --chain-id and --http-port are the factory settings the plug ships
with (config version 0); the owner's signed config replaces them.
"""

import argparse
import json
import os
import signal
import time

from .vplug import VirtualPlug, VirtualPlugError

# The app as .mpy in RAM needs ~340 KB of heap on the 64-bit unix port (objects are twice
# the ESP32's size; see make bench), plus room for its state files.
DEFAULT_HEAP = "1m"
SECOND_SIGINT_S = 2.0  # power_off: the ROM's REPL gets its SIGINT by then at the latest


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
    is deployed, here the serial REPL (plug/repl*.mpy, and iobuf.mpy it imports), so
    mpremote can deploy. The flash comes first on sys.path, so deployed modules always
    win."""
    import shutil

    from . import build_mpy
    from .paths import BUILD

    build_mpy.build("unix")
    src = os.path.join(BUILD, "unix", "firmware", "plug")
    dst = os.path.join(BUILD, "unix-rom", "plug")
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if name.startswith("repl") or name in ("__init__.mpy", "iobuf.mpy"):
            shutil.copy2(os.path.join(src, name), dst)
    return os.path.dirname(dst)


def make_plug(state, serial, heap=DEFAULT_HEAP):
    return VirtualPlug(state, serial_link=serial, heap=heap, path_dirs=(rom(),))


def power_off(plug, timeout=5.0):
    """Stop the plug as Ctrl-C at its console would, promptly: SIGINT ends the app (it
    checkpoints its energy as it stops) and main.py returns to the ROM's REPL, which a
    second SIGINT ends, sent once the ROM's banner shows (or after SECOND_SIGINT_S);
    SIGKILL (a power cut) if the process still runs after `timeout` seconds. The banner
    is looked for in what the plug wrote (heard_since), not on the screen: a terminal
    holding the port (`plugctl repl`, screen) may read it first."""
    if plug.alive:
        try:
            plug.attach()  # read the serial, so the plug never blocks on a full pty
        except (OSError, VirtualPlugError):
            pass
        seen = plug.heard_count()
        try:
            os.kill(plug.pid, signal.SIGINT)
        except ProcessLookupError:  # it ended on its own since plug.alive was read
            pass
        now = time.monotonic()
        deadline, second = now + timeout, now + SECOND_SIGINT_S
        while plug.alive and time.monotonic() < deadline:
            if second is not None and (time.monotonic() > second or
                                       "on the virtual plug" in plug.heard_since(seen)):
                try:
                    os.kill(plug.pid, signal.SIGINT)
                except (ProcessLookupError, TypeError):
                    pass
                second = None
            time.sleep(0.02)
    plug.kill()  # reaps it (SIGKILL only if it still runs) and closes the pty
    return plug.returncode


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
            log("sim: plug %s; booted again (pid %d)" % (
                "reset by its watchdog" if plug.last_reset == "watchdog" else
                "exited (%s)" % code, plug.pid))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="plugctl sim", description=__doc__.splitlines()[0]
                                 + " Runs until Ctrl-C or SIGTERM.")
    ap.add_argument("--state", required=True, metavar="DIR",
                    help="the plug's flash: a directory (created if new; a new one holds "
                         "only the REPL until `plugctl deploy`)")
    ap.add_argument("--board", default="sim", choices=("sim",),
                    help="board to simulate (only sim runs on this machine)")
    ap.add_argument("--load", metavar="SPEC",
                    help="per-channel loads, e.g. M1/A=8A,M1/B=fridge,M2/1=4A@0.9ind~h3,"
                         "M2/2=pv:6A,M2/3=0.5A@0.6cap (kept in DIR/sim.json)")
    ap.add_argument("--speed", type=float, default=1.0, metavar="N",
                    help="sim time runs N times real time (default 1)")
    ap.add_argument("--start-unix", type=int, metavar="T",
                    help="sim time at first boot, Unix seconds (default: now)")
    ap.add_argument("--rpc", metavar="URL",
                    help="factory JSON-RPC node, e.g. http://127.0.0.1:8545 (the owner's "
                         "config replaces it)")
    ap.add_argument("--chain-id", type=int, metavar="N", help="factory chain id")
    ap.add_argument("--provider", metavar="URL", help="factory provider descriptor URL")
    ap.add_argument("--http-port", type=int, metavar="N",
                    help="factory HTTP port of the plug's server (default 80)")
    ap.add_argument("--serial", metavar="PATH",
                    help="link the plug's serial port (a pty) at PATH, for plugctl repl, "
                         "deploy, wallet, owner")
    ap.add_argument("--heap", default=DEFAULT_HEAP, metavar="SIZE",
                    help="MicroPython heap, e.g. 64k, 1m (default %s: the whole app as .mpy "
                         "needs ~340 KB on this 64-bit port)" % DEFAULT_HEAP)
    ap.add_argument("--firmware", action="store_true",
                    help="put the firmware on the flash first (no deploy needed)")
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
    if a.http_port:
        from .devnet import PortTaken, check_port_free

        try:  # the plug would only log it, and serve nothing
            check_port_free(a.http_port, "0.0.0.0", "--http-port")
        except PortTaken as e:
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
        power_off(plug)
    return 0
