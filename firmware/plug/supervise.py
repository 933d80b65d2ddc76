# Keeping the app's tasks alive, knowing when the plug keeps crashing, and letting go of
# modules a one-off job loaded.
import asyncio
import sys
import time


def unload(*names):
    """Forget modules imported for a rare job (a config's checks, calibration at boot), so
    their functions, classes and tables leave the heap; frozen, their code stays in flash
    and the next import runs it again. Whatever still holds one of their objects keeps
    just that object."""
    for name in names:
        if sys.modules.pop(name, None) is not None:
            pkg, _, sub = name.rpartition(".")
            m = sys.modules.get(pkg)
            if m is not None and sub in m.__dict__:
                delattr(m, sub)


async def forever(name, make, log=print, first_backoff_ms=1000, max_backoff_ms=60000):
    """Run the coroutine from make() again and again; a failure is logged and restarted
    after a backoff that doubles up to max_backoff_ms, so one bad task never ends the app."""
    backoff = first_backoff_ms
    while True:
        started = time.ticks_ms()
        try:
            await make()
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the task failed: log it, keep the others running
            log("[app] task %s failed: %s: %s; restart in %d ms"
                % (name, type(e).__name__, e, backoff))
        if time.ticks_diff(time.ticks_ms(), started) > 10 * max_backoff_ms:
            backoff = first_backoff_ms  # it ran well for a long time: start over gently
        await asyncio.sleep_ms(backoff)
        backoff = min(backoff * 2, max_backoff_ms)


class BootGuard:
    """Counts crashes in a row: an unhandled exception that ended the app (`crashed()`)
    or a watchdog reset (`watchdog_reset` at boot). A power cut is not a crash. After
    `limit` crashes in a row the plug boots in safe mode (metering and the REPL only)
    until a boot has run long enough to call `stable()`."""

    def __init__(self, store, watchdog_reset=False, limit=3):
        self.store = store
        rec = store.load("boots", {}) or {}
        self.crashes = rec.get("crashes", 0)
        # a reset the app asked for (plug.reboot(), a deploy) is not a crash, even where the
        # chip reports it like a panic
        if watchdog_reset and not rec.get("clean"):
            self.crashes += 1
        if watchdog_reset or rec.get("clean"):
            store.save("boots", {"crashes": self.crashes})
        self.safe_mode = self.crashes >= limit

    def clean_reset(self):
        """Record that the coming reset is deliberate."""
        self.store.save("boots", {"crashes": self.crashes, "clean": True})

    def crashed(self):
        # counted here: the reset that main.py then asks for is not another crash
        self.crashes += 1
        self.store.save("boots", {"crashes": self.crashes, "clean": True})

    def stable(self):
        if self.crashes:
            self.crashes = 0
            self.store.save("boots", {"crashes": 0})
