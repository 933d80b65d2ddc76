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
# Going back also puts back the state copies the release kept before it migrated a file's
# format (plug/store.py: state/<name>.pre-<version>), so the old release reads its own.
# A release on trial runs under the board's watchdog from before its app is imported (2 x
# its trial time, 60 to 300 s; the app feeds that one), so one that hangs, even at import,
# is reset and the reset counted as a trial boot; one whose board module raises at import
# fails its trial boot like one whose app does. A watchdog reset of a release on trial
# is the trial's to count: the app's crash count (safe mode) does not see it.
import sys

_REC = "slot.json"
_TRIAL_BOOTS = 3
_WDT_MIN_MS = 60000
_WDT_MAX_MS = 300000
_trial = []


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
        _trial.append(1)  # this boot is a trial's, or the rollback after one
        # an image (a frozen plug) is rolled back by the bootloader (plug/slots.py)
        if rec.get("trial", 0) >= _TRIAL_BOOTS and not rec.get("image"):
            _restore_pre(rec.get("version"))
            rec = {"active": rec.get("previous", ""), "previous": rec["active"], "good": True,
                   "trial": 0, "version": rec.get("previous_version"),
                   "previous_version": rec.get("version"),
                   "rolled_back": rec.get("version"),
                   "why": _rolled_why(rec.get("why"))}
            print("[slot] %s rolled back to %s: %s" % (rec["rolled_back"], rec["version"],
                                                       rec["why"]))
        else:
            rec["trial"] = rec.get("trial", 0) + 1
        _save(rec)
    if rec["active"]:
        sys.path.insert(0, rec["active"] + "/lib")
        sys.path.insert(0, rec["active"])
    return rec


def _restore_pre(version):
    # a rollback: each state file the release migrated (plug/store.py) gets back the copy
    # kept before, as its newest slot; a power cut midway: the next boot does the rest
    import os

    end = ".pre-%s" % version
    try:
        names = [e[0] for e in os.ilistdir("state") if e[0].endswith(end)]
    except OSError:
        return
    for n in names:
        name = "state/" + n[:-len(end)]
        try:
            with open("state/" + n, "rb") as f:
                gen = int(f.readline(64).split()[0])
        except (OSError, ValueError, IndexError):
            continue
        for suffix in ("tmp", str(1 - (gen & 1))):
            try:
                os.remove("%s.%s" % (name, suffix))
            except OSError:
                pass
        os.rename("state/" + n, "%s.%d" % (name, gen & 1))
        print("[slot] %s: the copy from before %s restored" % (name, version))


def _rolled_why(why):
    return "not marked good after %d boots on trial%s" % (_TRIAL_BOOTS,
                                                          ": " + why if why else "")


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
try:  # what a release brings, its board module and its app: an error fails a trial boot
    try:
        import board
    except ImportError:  # on the host: boards/board_<PLUG_BOARD>.py
        import os

        board = __import__("board_" + (os.getenv("PLUG_BOARD") or "sim"))

    if _trial:
        if board.watchdog_reset():  # the boot before, on trial, hung
            _why = "watchdog reset: the release stopped feeding it (hung)"
            _rec["why"] = _rolled_why(_why) if _rec.get("good") else _why
            _save(_rec)
        board.watchdog_reset = lambda: False  # the trial counts it (see the top)
        if not _rec.get("good"):
            try:
                board.watchdog(min(_WDT_MAX_MS, max(_WDT_MIN_MS, 2000 * int(
                    _rec.get("trial_s") or 300))))
            except Exception as e:  # noqa: BLE001 - a board without one: the trial goes on
                print("[slot] no watchdog for the trial: %r" % e)

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
