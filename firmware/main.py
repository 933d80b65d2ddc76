# The plug's entry point: runs the app on this board with its state on the flash.
try:
    import board
except ImportError:  # on the host: boards/board_<PLUG_BOARD>.py
    import os

    board = __import__("board_" + (os.getenv("PLUG_BOARD") or "sim"))

from plug import app

app.main(board, state="state")
