"""A release that hangs is rolled back by the watchdog. The virtual board's watchdog
(boards/board_sim.py) is a heartbeat file its supervisor (tools/vplug.py) watches: a feed
missing for the timeout kills the plug's process, which boots again told it was a
watchdog reset, as an ESP32's chip resets. The root main.py arms it before it imports a
release on trial, so a release that hangs at import is caught as surely as one whose task
spins forever after the app armed it; each reset is a trial boot, the third brings the
previous slot back with the energy and payment records and the reason in /status, and the
crash count (safe mode) does not see the trial's resets.
"""

import os
import shutil
import time

import pytest
from ota_util import DAY_START, wait_for
from test_update_http import _compile, energy, paid_invoices, push, slot_record, \
    update_state, version_of

from tools import release
from tools.paths import FIRMWARE
from tools.scenario import OWNER_KEY, World
from tools.vplug import VirtualPlug

WDT_MAIN = """import time
import board_sim as board
print("BOOT watchdog_reset=%s" % board.watchdog_reset())
w = board.watchdog(1500)
assert board.watchdog(300000) is w  # one watchdog: started once, its timeout kept
for i in range(4):
    time.sleep(0.5)
    w.feed()
print("HANGING")
while True:
    pass
"""


def test_the_virtual_watchdog_resets_a_plug_that_stops_feeding_it(tmp_path):
    main = tmp_path / "wdt_main.py"
    main.write_text(WDT_MAIN)
    vp = VirtualPlug(str(tmp_path / "flash"), main_script=str(main))
    try:
        vp.start()
        vp.expect("BOOT watchdog_reset=False", 60)
        vp.expect("HANGING", 60)  # fed for 2 s: not reset meanwhile
        assert vp.alive and vp.watchdog_resets == 0
        wait_for(lambda: not vp.alive, timeout=60, what="the watchdog's reset")
        assert vp.returncode == -9 and vp.watchdog_resets == 1
        vp.kill()
        vp.start()  # what the supervisor does: the plug learns why it reset
        vp.expect("BOOT watchdog_reset=True", 60)
        assert vp.last_reset == "watchdog"
        vp.kill()  # a power cut is no watchdog reset
        vp.start()
        vp.expect("BOOT watchdog_reset=False", 60)
        assert vp.last_reset == "power_on"
    finally:
        vp.kill()
    assert not os.listdir(str(tmp_path / "flash"))  # the heartbeat is not on the flash


# the release's app: at its first trial boot it hangs at import (before the app could arm
# any watchdog), at the next ones 3 s after the app started (a task that never yields)
HANG = """

def _trial_boot():
    import json
    try:
        with open("slot.json") as f:
            return json.loads(f.read()).get("trial")
    except (OSError, ValueError):
        return None


if _trial_boot() == 1:
    print("[hang] at import")
    while True:
        pass

_run = Plug.run


async def _spin():
    await asyncio.sleep_ms(3000)
    print("[hang] in a task")
    while True:
        pass


async def _hung_run(self, *args, **kw):
    asyncio.create_task(_spin())
    await _run(self, *args, **kw)


Plug.run = _hung_run
"""


@pytest.mark.slow
def test_a_release_that_hangs_rolls_back_within_three_boots(tmp_path_factory, capsys):
    from tools.deploy import stage

    out = tmp_path_factory.mktemp("bundles")
    with World(DAY_START, log=lambda m: None) as w:
        p = w.add_plug("hang", speed=60, deploy=False)
        p.provision(config_over={"meter": {"checkpoint_s": 10}})
        with open(os.path.join(FIRMWARE, "plug", "app.py")) as f:
            app_src = f.read()
        flash = stage("sim")
        bundle = str(out / "hang.bin")
        try:
            release._stamp_version(flash, "sim", "0.6.0", "t3st")
            _compile(app_src + HANG, os.path.join(flash, "plug", "app.mpy"))
            release.make_bundle(OWNER_KEY, "0.6.0", "sim", [p.address], bundle, flash=flash,
                                build="t3st", trial_s=12)
        finally:
            shutil.rmtree(flash, ignore_errors=True)
        wait_for(lambda: energy(p.status()) > 0, timeout=60, what="metering")
        e0, n0 = energy(p.status()), paid_invoices(p)
        resets0 = p.vplug.watchdog_resets
        code, text = push(capsys, p, bundle)
        assert code == 0 and '"installed": "0.6.0"' in text, text
        t0 = time.monotonic()
        wait_for(lambda: update_state(p).get("state") == "rolled_back", timeout=600,
                 what="the hung 0.6.0 rolled back")
        took = time.monotonic() - t0
        assert version_of(p) == "0.5.0"
        # three trial boots, each ended by the watchdog (at import, then in a task)
        assert p.vplug.watchdog_resets - resets0 == 3
        u = update_state(p)
        assert u["version"] == "0.6.0" and "3 boots" in u["reason"], u
        assert "watchdog reset" in u["reason"] and "hung" in u["reason"], u
        rec = slot_record(p)
        assert rec["active"] == "" and rec["good"] is True and rec["rolled_back"] == "0.6.0"
        st = p.status()
        # the rolled-back plug runs normally: its crash count did not see the trial's
        # resets, so no safe mode; energy kept (at most one checkpoint re-metered) and no
        # invoice paid twice
        assert st["device"]["safe_mode"] is False
        wait_for(lambda: energy(p.status()) > e0, timeout=60, what="metering after rollback")
        assert paid_invoices(p) >= n0
        print("hang rolled back after %.0f s" % took)
