# Software slots on the file flash: installing a staged release, its trial, and what the
# root main.py did about it. main.py (which never changes with a release) reads slot.json
# at every boot:
#   {"active": "slot/b", "previous": "slot/a" or "" (the flash's root, a plug deployed
#    with `plugctl deploy`), "version", "previous_version", "good": false, "trial": boots
#    so far, "trial_s": seconds of health the release must show, "why": its last failure}
# and runs the active slot; a release not marked good within three boots is rolled back
# by main.py ("rolled_back": its version, "why").
#
#   install(plug, manifest)   staged release (update.py's STAGE) -> the other slot, record
#                             written (one rename: the switch), plug rebooted into it a
#                             second later (after the answer); returns the slot
#   start(plug, srv)          at boot: records what main.py did (trial, rollback) in the
#                             store's "update" record; on trial, a task that marks the
#                             release good once it has run trial_s with the meter reading,
#                             a ledger checkpoint done, the HTTP server up and (if it pays)
#                             the chain answering, or reboots it (a failed trial boot) if
#                             it has not by 2 x trial_s, or at once when the meter has not
#                             read for 30 s (energy not counted)
# A firmware image (plug/update_image.py, a frozen plug) is recorded the same way with
# "image": the OTA partition written, "previous_image": the one it came from; main.py
# counts no boots for it: the bootloader runs it once on trial and goes back by itself at
# a reset before it is kept, which start() notices (the running partition is not the
# record's) and records as a rollback. Keeping it calls mark_app_valid_cancel_rollback().
# State (state/) stays where it is, shared by both slots: a rollback keeps every energy
# and payment record. Imported at boot only when slot.json exists.
import json
import os
import time

import asyncio

RECORD = "slot.json"
TRIAL_S = 300  # default; a release's manifest sets its own "trial_s"
_METER_STALL_MS = 30000  # 3 x the longest meter.read_interval_ms


def load():
    try:
        with open(RECORD) as f:
            rec = json.loads(f.read())
        rec["active"]  # noqa: B018
        return rec
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(rec):
    with open(RECORD + ".tmp", "w") as f:
        f.write(json.dumps(rec))
    os.rename(RECORD + ".tmp", RECORD)


def _log(msg):
    __import__("plug.app").app.log(msg)


def note(plug, state, version, reason):
    rec = {"state": state, "version": version, "reason": reason[:200], "at": plug.clock.time()}
    try:
        plug.store.save("update", rec)
    except Exception as e:  # noqa: BLE001 - the outcome stands; only its record is lost
        _log("[update] record not saved: %r" % e)


def install(plug, m):
    """Put the staged release `m` (its manifest) in the slot not running and make it the
    one main.py boots, on trial; then reboot."""
    from plug.update import STAGE, rmtree
    from plug.version import VERSION

    rec = load() or {"active": ""}
    target = "slot/b" if rec["active"] == "slot/a" else "slot/a"
    try:
        os.mkdir("slot")
    except OSError:
        pass
    rmtree(target)
    os.rename(STAGE, target)
    save({"active": target, "previous": rec["active"], "version": m["version"],
          "previous_version": VERSION, "good": False, "trial": 0,
          "trial_s": m.get("trial_s") or TRIAL_S})
    note(plug, "installed", m["version"], "")
    _log("[update] %s installed in %s; rebooting into it (on trial)" % (m["version"], target))
    asyncio.create_task(_reboot_soon(plug))  # after the answer has gone
    return target


async def _reboot_soon(plug):
    await asyncio.sleep_ms(1000)
    plug.reboot()


def start(plug, srv):
    """What main.py did at this boot, recorded; the trial's task if on trial, else None."""
    rec = load()
    if rec is None:
        return None
    if rec.get("image") and not rec.get("good"):
        rec = image_boot(rec, __import__("plug.update_image").update_image.partition_api())
    if rec.get("rolled_back") and not rec.get("told"):
        note(plug, "rolled_back", rec["rolled_back"], rec.get("why") or "")
        rec["told"] = True
        save(rec)
    if rec.get("good"):
        return None
    note(plug, "trial", rec.get("version"), "boot %d of %d" % (rec.get("trial", 0), 3))
    return asyncio.create_task(_trial(plug, srv, rec))


def image_boot(rec, P):
    """An image on trial, at boot: `rec` if its partition is the one running, else the
    record of the bootloader having gone back (saved)."""
    running = P(P.RUNNING).info()[4] if P else None
    if running == rec["image"]:
        return rec
    try:  # its state migrations undone (plug/store.py)
        __import__("plug.store").store.restore_pre("state", rec.get("version"))
    except (OSError, ValueError) as e:
        _log("[update] copies from before %s not restored: %r" % (rec.get("version"), e))
    rec = {"active": "", "previous": "", "image": running, "previous_image": rec["image"],
           "good": True, "trial": 0, "version": rec.get("previous_version"),
           "previous_version": rec.get("version"), "rolled_back": rec.get("version"),
           "why": "the bootloader booted %s again: %s was not kept before a reset%s" % (
               running, rec["image"], ": " + rec["why"] if rec.get("why") else "")}
    save(rec)
    return rec


def keep(rec, state="state"):
    """Mark the release on trial good (an image: ESP-IDF's rollback cancelled first); the
    state copies kept from before its migrations (plug/store.py) go once it is."""
    if rec.get("image"):
        P = __import__("plug.update_image").update_image.partition_api()
        P.mark_app_valid_cancel_rollback()
    rec["good"], rec["trial"] = True, 0
    rec.pop("why", None)
    save(rec)
    try:
        __import__("plug.store").store.drop_pre(state, rec.get("version"))
    except OSError as e:  # kept all the same; the copies are only litter
        _log("[update] copies from before %s not removed: %r" % (rec.get("version"), e))
    return rec


def _unhealthy(plug, srv, reads):
    """Why the release is not healthy yet, or None."""
    if plug.safe_mode:
        return "safe mode"
    if plug.meter.reads <= reads:
        return "the meter is not reading"
    if plug.meter.checkpoints < 1:
        return "no ledger checkpoint yet"
    if srv._sock is None or [t for t in srv._tasks if t.done()]:
        return "the HTTP server is not running"
    if plug.payments and not plug.balances:
        return "the chain has not answered"
    return None


async def _trial(plug, srv, rec):
    t0 = read_at = time.ticks_ms()
    trial_ms = int(rec.get("trial_s") or TRIAL_S) * 1000
    reads = plug.meter.reads
    why = "starting"
    while True:
        await asyncio.sleep_ms(2000)
        why = _unhealthy(plug, srv, reads)
        now = time.ticks_ms()
        if plug.meter.reads != reads:
            read_at = now
        reads = plug.meter.reads
        up = time.ticks_diff(now, t0)
        stalled = time.ticks_diff(now, read_at) >= _METER_STALL_MS
        if stalled:  # energy flowing now is not counted: fail at once, not at 2 x trial_s
            why = "the meter is not reading (none for %d s)" % (_METER_STALL_MS // 1000)
        if why is None and up >= trial_ms:
            rec = keep(load() or rec, plug.store.root)
            note(plug, "good", rec.get("version"), "")
            _log("[update] %s marked good after %d s of trial" % (rec.get("version"),
                                                                  up // 1000))
            __import__("plug.supervise").supervise.unload("plug.slots")
            return
        if stalled or up >= 2 * trial_ms:
            rec = load() or rec
            rec["why"] = why or "not healthy"
            save(rec)
            _log("[update] %s failed its trial (%s); rebooting" % (rec.get("version"),
                                                                   rec["why"]))
            plug.reboot()
            return
