# The virtual plug's "ROM": what a freshly flashed ESP32 does at power-on, on the
# MicroPython unix port. The working directory is the plug's flash, first on sys.path
# as on the board. Runs the script named by VPLUG_MAIN (the app under test) if set,
# otherwise boot.py and main.py from the flash if they are there; a traceback is printed
# as on the board. When that returns (or fails), the serial REPL (firmware/plug/repl.py)
# comes up, so `mpremote ... resume` and `plugctl deploy` work on an empty plug.
import os
import sys

sys.path[0] = ""  # the unix port put this script's directory here; the board has the flash


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _run(path):
    try:
        with open(path) as f:
            code = compile(f.read(), path, "exec")
        exec(code, {"__name__": "__main__", "__file__": path})
    except Exception as e:  # noqa: BLE001 - the board prints it and drops to the REPL
        sys.print_exception(e)


_main = os.getenv("VPLUG_MAIN")
if _main:
    _run(_main)
else:
    for _name in ("boot", "main"):
        if _exists(_name + ".py"):
            _run(_name + ".py")
        elif _exists(_name + ".mpy"):
            try:
                __import__(_name)
            except Exception as e:  # noqa: BLE001
                sys.print_exception(e)

try:
    from plug.repl import Repl
except ImportError:
    Repl = None
    print("no REPL: neither the flash nor the board's ROM has plug/repl")
if Repl is not None:
    import asyncio

    _reset = []

    async def _rom():
        # the REPL until someone calls reset(): then the process ends, and the host's
        # supervisor boots the plug again, as machine.reset() restarts a board
        asyncio.create_task(Repl({"reset": lambda: _reset.append(1)}, banner=(
            "MicroPython %s on the virtual plug; Type \"help()\" for more information.\r\n"
            % ".".join(str(v) for v in sys.implementation.version[:3]))).run())
        while not _reset:
            await asyncio.sleep_ms(50)
        await asyncio.sleep_ms(200)  # let the REPL finish answering

    try:
        asyncio.run(_rom())
    except KeyboardInterrupt:  # the host powers the plug off (simrun.power_off): quietly
        pass
