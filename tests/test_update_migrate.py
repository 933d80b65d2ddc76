"""A release that changes a state file's format (plug/store.py `migrate`) on the MicroPython
unix port, booted by the real root main.py from folder slots (slot/a: the old release,
slot/b: the new one; both with the real plug/store and plug/slots, and a small app that
loads, meters into and saves the ledger): the new release migrates the ledger at its first
boot and keeps the old copy (ledger.pre-<version>) until its trial ends; kept, the copy
goes; rolled back by main.py after its trial boots (also after a power cut in the middle of
the restore), the old release reads the old copy, as it wrote it. An image's rollback
(the bootloader's; plug/slots.image_boot) restores the copies the same way.
"""

import json
import os
import shutil

import pytest

from tools import mp
from tools.paths import FIRMWARE

V1_APP = '''import json
from plug.store import Store


def main(board, state="state"):
    s = Store(state)
    led = s.load("ledger")
    if led is None:
        led = {"uwh": 100}
        s.save("ledger", led)
    print("V1", json.dumps(led))
    raise SystemExit
'''

V2_APP = '''import json
import os

from plug import store


def _up(obj, fmt):  # format 1 {"uwh": n} -> 2 {"energy": {"uwh": n}}
    return {"energy": {"uwh": obj["uwh"]}}


def _down(obj, fmt):  # 2 -> 1, so a rollback keeps what was metered on trial
    return {"uwh": obj["energy"]["uwh"]}


store.migrate("ledger", 2, _up, _down if os.getenv("DOWN") else None)


def main(board, state="state"):
    s = store.Store(state)
    led = s.load("ledger")
    led["energy"]["uwh"] += 5  # metered on
    s.save("ledger", led)
    print("V2", json.dumps(led))
    if os.getenv("KEEP"):  # the trial passed
        from plug import slots

        slots.keep(slots.load(), state)
    raise SystemExit
'''

BOARD = '''NAME = "sim"


def watchdog_reset():
    return False


def watchdog(ms):
    pass
'''


@pytest.fixture
def flash(tmp_path, mpy_dirs):
    plug_build = os.path.join([d for d in mpy_dirs if d.endswith("firmware")][0], "plug")
    for slot, version, app in (("a", "0.5.0", V1_APP), ("b", "0.6.0", V2_APP)):
        d = tmp_path / "slot" / slot / "plug"
        d.mkdir(parents=True)
        for m in ("__init__.mpy", "store.mpy", "iobuf.mpy", "slots.mpy"):
            shutil.copy(os.path.join(plug_build, m), str(d / m))
        (d / "version.py").write_text("VERSION = %r\nBUILD = 't3st'\n" % version)
        (d / "app.py").write_text(app)
    (tmp_path / "board.py").write_text(BOARD)
    shutil.copy(os.path.join(FIRMWARE, "main.py"), str(tmp_path / "main.py"))
    return tmp_path


def boot(flash, keep=False, down=False):
    env = dict({"KEEP": "1"} if keep else {}, **({"DOWN": "1"} if down else {}))
    out = mp.run(path=str(flash / "main.py"), path_dirs=(), cwd=str(flash), heap="128k",
                 extra_env=env)
    led = [ln for ln in out.splitlines() if ln.startswith(("V1 ", "V2 "))]
    assert led, out
    return out, led[-1][:2], json.loads(led[-1][3:])


def write_slot(flash, rec):
    (flash / "slot.json").write_text(json.dumps(rec))


def read_slot(flash):
    return json.loads((flash / "slot.json").read_text())


def state(flash):
    return sorted(os.listdir(str(flash / "state")))


def header(flash):
    """The fields of the newest ledger slot's header line."""
    best = None
    for n in ("ledger.0", "ledger.1"):
        p = flash / "state" / n
        if p.exists():
            f = p.read_bytes().split(b"\n", 1)[0].split()
            if best is None or int(f[0]) > int(best[0]):
                best = f
    return [int(x) for x in best]


def v1_then_v2_on_trial(flash, down=False):
    write_slot(flash, {"active": "slot/a", "previous": "", "version": "0.5.0", "good": True})
    _, who, led = boot(flash)
    assert (who, led) == ("V1", {"uwh": 100})
    assert len(header(flash)) == 3  # format 1: the header as before
    write_slot(flash, {"active": "slot/b", "previous": "slot/a", "version": "0.6.0",
                       "previous_version": "0.5.0", "good": False, "trial": 0,
                       "trial_s": 30})
    out, who, led = boot(flash, down=down)
    assert (who, led) == ("V2", {"energy": {"uwh": 105}}), out
    assert "ledger: format 1 -> 2" in out
    assert "ledger.pre-0.6.0" in state(flash)
    assert header(flash)[3] == 2
    with open(str(flash / "state" / "ledger.pre-0.6.0"), "rb") as f:
        pre = f.read()
    # a second boot on trial: migrated once; the old copy unchanged, or (with a down
    # converter) following what the trial writes, in format 1
    out, who, led = boot(flash, down=down)
    assert (who, led) == ("V2", {"energy": {"uwh": 110}}) and "format 1 -> 2" not in out
    with open(str(flash / "state" / "ledger.pre-0.6.0"), "rb") as f:
        kept = f.read()
    if down:
        assert len(kept.split(b"\n", 1)[0].split()) == 3
        assert json.loads(kept.split(b"\n", 1)[1]) == {"uwh": 110}
    else:
        assert kept == pre


def test_kept_release_drops_the_old_copy(flash):
    v1_then_v2_on_trial(flash)
    _, who, led = boot(flash, keep=True)
    assert (who, led) == ("V2", {"energy": {"uwh": 115}})
    assert read_slot(flash)["good"] is True
    assert not [n for n in state(flash) if ".pre-" in n]
    _, who, led = boot(flash)
    assert (who, led) == ("V2", {"energy": {"uwh": 120}})


@pytest.mark.parametrize("cut, down", [(False, False), (True, False), (False, True),
                                       (True, True)])
def test_rollback_restores_the_old_copy_and_the_old_release_reads_it(flash, cut, down):
    v1_then_v2_on_trial(flash, down)
    rec = read_slot(flash)
    rec["trial"] = 3  # three boots on trial and never kept: the next goes back
    write_slot(flash, rec)
    if cut:  # a power cut in the restore, after it removed one slot, before the rename
        gen = int((flash / "state" / "ledger.pre-0.6.0").read_bytes().split()[0])
        os.remove(str(flash / "state" / ("ledger.%d" % (1 - (gen & 1)))))
        write_slot(flash, rec)
    out, who, led = boot(flash)
    assert "[slot] 0.6.0 rolled back to 0.5.0" in out and "restored" in out, out
    # without a down converter the trial's writes are lost; with one, none is
    uwh = 110 if down else 100
    assert (who, led) == ("V1", {"uwh": uwh})
    assert len(header(flash)) == 3
    assert not [n for n in state(flash) if ".pre-" in n]
    rec = read_slot(flash)
    assert (rec["active"], rec["good"], rec["rolled_back"]) == ("slot/a", True, "0.6.0")
    _, who, led = boot(flash)
    assert (who, led) == ("V1", {"uwh": uwh})
