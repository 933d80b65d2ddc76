"""Tasks that fail are restarted with backoff; crashes in a row lead to safe mode, power
cuts and deliberate resets do not (on MicroPython)."""


def test_failing_task_is_logged_and_restarted_with_backoff(micropython):
    out = micropython.eval("""
import asyncio, time
from plug.supervise import forever
runs, logs = [], []
async def flaky():
    runs.append(time.ticks_ms())
    if len(runs) < 3:
        raise ValueError("bad reply %d" % len(runs))
async def main():
    await forever("flaky", flaky, logs.append, first_backoff_ms=20, max_backoff_ms=100)
asyncio.run(main())
gaps = [time.ticks_diff(b, a) for a, b in zip(runs, runs[1:])]
print((len(runs), logs, gaps[0] >= 20, gaps[1] >= 40))
""")
    runs, logs, first_wait, doubled = out
    assert runs == 3 and first_wait and doubled
    assert logs[0] == "[app] task flaky failed: ValueError: bad reply 1; restart in 20 ms"


def test_boot_guard_counts_crashes_not_power_cuts_or_clean_resets(micropython, tmp_path):
    out = micropython.eval("""
from plug.store import Store
from plug.supervise import BootGuard
s = Store(%r)
seen = []
g = BootGuard(s); seen.append(g.safe_mode)              # first boot
g = BootGuard(s); seen.append(g.safe_mode)              # power cut: not a crash
for _ in range(3):
    g = BootGuard(s); g.crashed()                       # three crashes in a row
g = BootGuard(s); seen.append((g.crashes, g.safe_mode))
g.stable()
g = BootGuard(s); seen.append(g.safe_mode)              # a stable run clears it
g.clean_reset()
g = BootGuard(s, watchdog_reset=True); seen.append(g.crashes)   # asked-for reset
g = BootGuard(s, watchdog_reset=True); seen.append(g.crashes)   # a real watchdog reset
print(seen)
""" % str(tmp_path))
    assert out == [False, False, (3, True), False, 0, 1]


def test_on_an_esp32_a_crash_and_the_reset_after_it_count_once(micropython, tmp_path):
    # main.py calls machine.reset() after a crash; the chip then reports a hard reset
    out = micropython.eval("""
from plug.store import Store
from plug.supervise import BootGuard
s = Store(%r)
seen = []
g = BootGuard(s)
for _ in range(3):
    g.crashed()
    g = BootGuard(s, watchdog_reset=True)
    seen.append((g.crashes, g.safe_mode))
g = BootGuard(s, watchdog_reset=True)   # a real watchdog reset after that boot
seen.append(g.crashes)
print(seen)
""" % str(tmp_path))
    assert out == [(1, False), (2, False), (3, True), 4]
