# The plug's entry point: runs the app on this board with its state on the flash.
# An error that ends the app is printed and the plug restarts after a pause, as after a
# panic; app.main counts it, and after three in a row the plug boots in safe mode.
try:
    import board
except ImportError:  # on the host: boards/board_<PLUG_BOARD>.py
    import os

    board = __import__("board_" + (os.getenv("PLUG_BOARD") or "sim"))

from plug import app

try:
    app.main(board, state="state")
except Exception as e:  # noqa: BLE001 - anything that ended the app: report, then restart
    import sys
    import time

    sys.print_exception(e)
    print("[app] stopped by an error; restarting in 5 s")
    time.sleep(5)
    import machine

    try:
        machine.reset()
    except AttributeError:  # the unix port: the virtual plug's supervisor boots it again
        sys.exit(1)
