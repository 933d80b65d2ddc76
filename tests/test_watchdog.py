"""The app's watchdog task on a real board file: Plug.run() on the fake ESP32 hardware
(tests/fakehw) starts one hardware watchdog, feeds it while the plug runs, and clears the
crash count once the boot has run for STABLE_AFTER_MS (shortened here to 2.5 s)."""

from test_boards import APP_HEAP, CIRCUITSETUP, run
from iface_util import free_port

RUN = "EXTRA = []\n" + CIRCUITSETUP.replace("fes = board.front_ends(board.clock())", "") + """
import asyncio, time
from plug import app
from plug.app import Plug
from plug.store import Store
Store("state").save("boots", {"crashes": 1})
machine.hw.reset_cause = machine.WDT_RESET  # this boot follows a second crash in a row
clk.speed = 1  # the chips and the app share a clock running in real time
board.clock = lambda: clk
app.STABLE_AFTER_MS = 2500
plug = Plug(board, state="state")
boot = (plug.guard.crashes, plug.safe_mode, len(machine.hw.wdts))
seen = []
async def probe():
    for _ in range(9):
        await asyncio.sleep_ms(500)
        seen.append((time.ticks_diff(time.ticks_ms(), plug.boot_ms),
                     Store("state").load("boots")["crashes"],
                     [(w.timeout, w.feeds) for w in machine.hw.wdts]))
    plug._reboot = True
asyncio.create_task(probe())
try:
    asyncio.run(plug.run(port=%d, repl_on=False))
    end = "returned"
except SystemExit as e:
    end = str(e)
energy = sum(c["import_uwh"] for c in plug.status()["channels"].values())
print((boot, seen, end, energy > 0))
"""


def test_running_plug_starts_and_feeds_one_watchdog_and_clears_crashes_when_stable(tmp_path):
    boot, seen, end, metered = run(tmp_path, RUN % free_port(), heap=APP_HEAP)
    crashes, safe_mode, wdts_at_boot = boot
    assert (crashes, safe_mode, wdts_at_boot) == (2, False, 0)
    # exactly one watchdog, at the app's timeout, fed about once a second while running
    assert all(len(s[2]) == 1 and s[2][0][0] == 300000 for s in seen)
    feeds = [s[2][0][1] for s in seen]
    assert feeds[0] > 0 and feeds == sorted(feeds) and feeds[-1] >= feeds[0] + 2
    # the crash count stays until the boot has run STABLE_AFTER_MS, then it is cleared
    early = [c for ms, c, _ in seen if ms < 2500]
    late = [c for ms, c, _ in seen if ms > 4000]
    assert early and set(early) == {2}
    assert late and set(late) == {0}
    assert end == "machine.reset()" and metered


# the periodic jobs share one task (app.Plug._upkeep): one that keeps failing is logged and
# retried with a backoff that grows, while the watchdog is fed and the other jobs go on
PLUG = 'plug = Plug(board, state="state")\n'
FAILING_JOB = RUN.replace(PLUG, PLUG + """
logs = []
app.log = logs.append
steps = []
def broken_step(now=None):
    steps.append(time.ticks_ms())
    raise OSError("radio gone")
plug.net.step = broken_step
passes = []
_money_pass = plug._money_pass
async def counted_pass():
    passes.append(time.ticks_ms())
    return await _money_pass()
plug._money_pass = counted_pass
""").replace("print((boot, seen, end, energy > 0))", """
failed = [m for m in logs if m.startswith("[app] task network failed: OSError: radio gone")]
print((len(steps), len(passes), [s[2][0][1] for s in seen], failed[:3], energy > 0))""")


def test_a_failing_job_backs_off_and_the_watchdog_and_money_passes_go_on(tmp_path):
    steps, passes, feeds, failed, metered = run(tmp_path, FAILING_JOB % free_port(),
                                                heap=APP_HEAP)
    # 4.5 s of running: the network step failed at 0, ~1, ~3 s (backoff 1 s, 2 s, 4 s)
    assert 2 <= steps <= 4 and len(failed) >= 2
    assert failed[0].endswith("restart in 1000 ms") and failed[1].endswith("restart in 2000 ms")
    # the money passes (every second) and the watchdog feeds went on regardless
    assert passes >= 3 and feeds == sorted(feeds) and feeds[-1] >= feeds[0] + 2 and metered
