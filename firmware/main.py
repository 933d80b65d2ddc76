# The plug's entry point: runs the app on this board with its state on the flash.
# An error that ends the app is printed and the plug restarts after a pause, as after a
# panic; app.main counts it, and after three in a row the plug boots in safe mode.
#
# Software slots (plug/slots.py installs a release): when the flash holds slot.json, the
# app runs from the slot it names (slot/a or slot/b: plug/, lib/, board.mpy, www/; "" is
# the flash's own root, as `plugctl deploy` lays it out). A release that is not yet marked
# good is on trial: each boot of it is counted, an error that ends it is noted, and at its
# fourth boot the plug goes back to the slot it came from, saying why. This file never
# changes with a release; without slot.json the plug boots exactly as it always has.
import sys

_REC = "slot.json"
_TRIAL_BOOTS = 3


def _save(rec):
    import json
    import os

    with open(_REC + ".tmp", "w") as f:
        f.write(json.dumps(rec))
    os.rename(_REC + ".tmp", _REC)  # a power cut leaves the old record or the new


def _slot():
    try:
        with open(_REC) as f:
            rec = __import__("json").loads(f.read())
        rec["active"]  # noqa: B018 - a record without it is no record
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not rec.get("good"):
        if rec.get("trial", 0) >= _TRIAL_BOOTS:
            rec = {"active": rec.get("previous", ""), "previous": rec["active"], "good": True,
                   "trial": 0, "version": rec.get("previous_version"),
                   "previous_version": rec.get("version"),
                   "rolled_back": rec.get("version"),
                   "why": "not marked good after %d boots on trial%s" % (
                       _TRIAL_BOOTS, ": " + rec["why"] if rec.get("why") else "")}
            print("[slot] %s rolled back to %s: %s" % (rec["rolled_back"], rec["version"],
                                                       rec["why"]))
        else:
            rec["trial"] = rec.get("trial", 0) + 1
        _save(rec)
    if rec["active"]:
        sys.path.insert(0, rec["active"] + "/lib")
        sys.path.insert(0, rec["active"])
    return rec


def _failed(e):
    # an error ended a release on trial: note it for the rollback's reason
    try:
        with open(_REC) as f:
            rec = __import__("json").loads(f.read())
        if not rec.get("good"):
            rec["why"] = ("%s: %s" % (type(e).__name__, e))[:160]
            _save(rec)
    except (OSError, ValueError):
        pass


_rec = _slot()
try:
    import board
except ImportError:  # on the host: boards/board_<PLUG_BOARD>.py
    import os

    board = __import__("board_" + (os.getenv("PLUG_BOARD") or "sim"))

try:
    from plug import app
except Exception as e:  # noqa: BLE001 - a release on trial that cannot start
    if _rec is None or _rec.get("good"):
        raise
    app = e

try:
    if not hasattr(app, "main"):
        raise app
    app.main(board, state="state")
except Exception as e:  # noqa: BLE001 - anything that ended the app: report, then restart
    import time

    sys.print_exception(e)
    if _rec is not None:
        _failed(e)
    print("[app] stopped by an error; restarting in 5 s")
    time.sleep(5)
    import machine

    try:
        machine.reset()
    except AttributeError:  # the unix port: the virtual plug's supervisor boots it again
        sys.exit(1)
