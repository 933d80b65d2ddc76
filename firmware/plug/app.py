# The plug as a whole: boot, the tasks that meter, price, pay and serve, and the
# `plug` object a person uses at the REPL.
#
# Boot: state and config, board front ends, calibration, ledgers restored, wallet,
# unfinished payments reconciled, then the asyncio tasks. After three crashes in a row
# (an unhandled error or a watchdog reset; a power cut does not count) the plug boots
# in safe mode: metering, the REPL and the HTTP status only, no payments. An energy
# checkpoint that this firmware cannot read also means safe mode, with metering held
# and the checkpoint files left as they are (status: device.ledger_error).
#
# Tasks: the metering loop (meter.py), the money loop (tariff, billing, settlement,
# payments), the HTTP server, the serial REPL, the watchdog, the config pull. Each runs
# under supervise.forever(): a failure is logged and the task restarted with backoff.
# Network calls block the event loop while they wait (plug.http_client), so each is
# one operation with one total deadline: an RPC call (rpc.CALL_DEADLINE_S, retries
# and failover included), a provider, rates or config pull fetch
# (provider.FETCH_DEADLINE_S), 4 s each. The money loop runs one stage at a time
# (descriptor, rates, billing and the fee estimate, settlement, payments, balances)
# and after a stage that held the loop for t waits t/4 (at most 1 s), so the meter
# and the HTTP server get their turn between operations. While one waits the chips
# keep accumulating energy, so the next read loses nothing.
#
# Beside this file: money.py (the money side and one pass of the money loop, a mixin of
# Plug), app_config.py (a new config checked and put in force) and app_status.py (the
# /status view), the last two imported when first needed.
import asyncio
import gc
import time

from plug import repl
from plug.config import ConfigManager, ConfigError
from plug.ledger import EnergyLedger, LedgerError
from plug.meter import Meter
from plug.money import MoneySide
from plug.store import Store
from plug.supervise import BootGuard, forever

STABLE_AFTER_MS = 60000  # a boot that ran this long resets the crash count
WATCHDOG_MS = 300000
_MAX_PAUSE_MS = 1000  # the longest pause after a stage that held the event loop


def log(msg):
    repl.log(msg)


class Plug(MoneySide):
    """Everything the plug is; at the REPL as `plug`."""

    def __init__(self, board, state="state"):
        self.board = board
        self.boot_ms = time.ticks_ms()
        self.store = Store(state)
        self.clock = board.clock()
        self.guard = BootGuard(self.store, watchdog_reset=board.watchdog_reset())
        self.safe_mode = self.guard.safe_mode
        try:
            self._boot(board)
        except Exception:
            self.guard.crashed()
            raise

    def _boot(self, board):
        self._address0 = None
        self.wallet = None
        self.cfgm = ConfigManager(self.store, log=log, factory=board.factory_config(),
                                  plug=self._plug_address)
        cfg = self.cfgm.config
        try:
            self.front_ends = board.front_ends(self.clock)
        except Exception as e:  # noqa: BLE001 - in safe mode the REPL must come up regardless
            if not self.safe_mode:
                raise
            log("[app] safe mode: front ends not built: %s" % e)
            self.front_ends = []
        self.ledger = EnergyLedger(self.store, self.clock, cfg["channels"],
                                   nominal_v=cfg["meter"]["nominal_voltage_v"], log=log)
        self.ledger_error = None
        try:
            self.ledger.restore()
        except LedgerError as e:  # rebooting would only fail the same way
            self.ledger_error = str(e)
            self.safe_mode = True
            log("[app] SAFE MODE: %s. Metering is held until the energy checkpoint is "
                "repaired or moved away." % e)
            self.ledger = EnergyLedger(_HeldStore(self.store), self.clock, cfg["channels"],
                                       nominal_v=cfg["meter"]["nominal_voltage_v"], log=log)
        self.meter = Meter([] if self.ledger_error else self.front_ends, self.ledger, self.clock,
                           checkpoint_s=cfg["meter"]["checkpoint_s"],
                           interval_s=cfg["meter"]["read_interval_ms"] / 1000, log=log)
        from plug.outputs import Outputs


        self.out = Outputs(self.store, board, cfg, self.ledger.keys(), self.clock, log=log)
        self.meter.on_read = lambda t: self.out.check(self.meter, t)
        from plug import calibration

        calibration.restore(self.store, self.front_ends, log=log)
        self.cal = calibration.Calibrator(self.meter, self.store, log=log, out=repl.log)
        self.payments = None
        self.balances = {}
        self._balances_at = None
        self.money_errors = 0
        self.last_error = None
        self._reboot = False
        self._fee = None
        self._net_at = time.ticks_ms()  # no network stage blocks the loop before this
        self.net = board.wifi_link(self.store, log)  # kept up by the "network" task
        self.online = self.net.start(cfg["wifi"])
        if self.safe_mode:
            if not self.ledger_error:
                log("[app] SAFE MODE after %d crashes in a row: metering and REPL only, no "
                    "payments. It clears after a stable run." % self.guard.crashes)
        else:
            self._build_money()
        gc.collect()

    def _plug_address(self):
        """Wallet account 0: the address config envelopes are signed for. In safe mode
        the wallet is read for it only when an envelope arrives."""
        if self.wallet is not None:
            return self.wallet.address(0)
        if self._address0 is None:
            self._address0 = self._load_wallet(self.cfgm.config).address(0)
        return self._address0

    def _load_wallet(self, cfg):
        from plug.wallet import default_secret_store, load_wallet

        return load_wallet(default_secret_store(self.store), cfg, log=log)

    # ---- config ----

    def _check_config(self, cfg):
        """A new config must reach its chain and accept its provider, or it rolls back."""
        from plug.app_config import check_config

        check_config(cfg)

    def apply_config(self, envelope):
        """Apply a signed config envelope (JSON text or dict); returns its version. The new
        config must reach its chain, accept its provider and load the money side from the
        flash before it is put in force; otherwise it is rolled back (plug/app_config.py)."""
        from plug.app_config import apply_config

        return apply_config(self, envelope)

    def provision_owner(self, address):
        """Record the plug's first owner (only once; later owners come in signed configs)."""
        self.cfgm.set_owner(address)
        return self.cfgm.owner

    # ---- what a person asks at the REPL ----

    def address(self, account=0):
        return self.wallet.address(account) if self.wallet else None

    def channels(self):
        return self.status()["channels"]

    def switch(self, key, on, by="repl"):
        """Switch output `key` ("M1/A") on (True) or off (False); returns its state."""
        return self.out.switch(key, on, by)

    def outputs(self):
        """Every channel's output: relay or none, on, wanted, and the reason."""
        return self.out.status()

    def pending(self):
        if not self.payments:
            return []
        return [r for r in self.payments.records() if r["st"] in ("prepared", "sent")]

    def reboot(self):
        """Checkpoint and restart the plug (machine.reset() on the board)."""
        self.meter.checkpoint()
        self._reboot = True
        return "rebooting"

    def retry_payment(self, invoice_id):
        """Pay a failed invoice again (check on a block explorer first that it failed)."""
        return self.payments.retry(invoice_id)["st"]

    def export_wallet(self, confirm=None):
        """Prints the wallet's secret after a warning; needs confirm="EXPORT"."""
        return self.wallet.export_secret(confirm)

    def status(self):
        """What /status shows (plug/app_status.py)."""
        from plug.app_status import status

        return status(self)

    def __repr__(self):
        return "<plug %s, config v%d, %d channels%s>" % (
            self.board.NAME, self.cfgm.version, len(self.ledger.keys()),
            ", SAFE MODE" if self.safe_mode else "")

    # ---- running ----

    async def _money_loop(self):
        period = 1000
        while True:
            t = await self._net_turn()
            try:
                for _ in self.money_steps():
                    t = await self._net_turn(t)
                t = await self._net_turn(t)
                self.refresh_balances()
                self.money_errors = 0
            except MemoryError:
                raise
            except Exception as e:  # one bad reply never ends the loop
                self.money_errors += 1
                self.last_error = "%s: %s" % (type(e).__name__, e)
                log("[app] money: %s" % self.last_error)
            self._net_held(t)
            await asyncio.sleep_ms(period if not self.money_errors else
                                   min(60000, period << min(self.money_errors, 6)))

    def _net_held(self, t):
        """A stage that may block the event loop with network calls began at ticks t and
        has ended: after it held the loop for d ms, no task (money loop, config pull)
        blocks it again for d/4 ms (at most _MAX_PAUSE_MS), so the meter and the HTTP
        server get their turn."""
        now = time.ticks_ms()
        until = time.ticks_add(now, min(_MAX_PAUSE_MS, time.ticks_diff(now, t) // 4))
        if time.ticks_diff(until, self._net_at) > 0:
            self._net_at = until

    async def _net_turn(self, t=None):
        """_net_held(t) if t is given, then wait for the turn to block the loop again;
        returns the ticks the next stage begins at."""
        if t is not None:
            self._net_held(t)
        while True:
            wait = time.ticks_diff(self._net_at, time.ticks_ms())
            if wait <= 0:
                return time.ticks_ms()
            await asyncio.sleep_ms(wait)

    async def _watchdog(self):
        # generous: network calls block the loop (bounded by their timeouts and retries),
        # and a watchdog reset counts as a crash
        wdt = self.board.watchdog(WATCHDOG_MS)
        stable = False
        while True:
            if wdt:
                wdt.feed()
            if not stable and time.ticks_diff(time.ticks_ms(), self.boot_ms) > STABLE_AFTER_MS:
                stable = True
                self.guard.stable()
            await asyncio.sleep_ms(1000)

    async def _pull_config(self):
        # The pull settings are read afresh every few seconds, so a config that sets or
        # changes pull.url takes effect at once rather than at the next boot.
        left, seen = 0, None
        while True:
            cfg = self.cfgm.config["pull"]
            if seen != self.cfgm.version:
                seen, left = self.cfgm.version, 0
            if cfg["url"] and left <= 0:
                left = cfg["interval_s"]
                t = await self._net_turn()
                try:
                    from plug.provider import http_get

                    env = http_get(cfg["url"])
                    t = await self._net_turn(t)  # the fetch and the config's checks apart
                    self.apply_config(env)
                except ConfigError as e:
                    if "not newer" not in str(e):
                        log("[config] pulled config refused: %s" % e)
                except Exception as e:  # network: try again next interval
                    log("[config] pull failed: %s" % e)
                self._net_held(t)
                seen = self.cfgm.version
            await asyncio.sleep_ms(5000)
            left -= 5

    async def run(self, port=None, repl_on=True):
        from plug import web

        tasks = [asyncio.create_task(forever("meter", self.meter.run, log))]
        if repl_on:
            tasks.append(repl.start({"plug": self, "cal": self.cal, "board": self.board}))
        srv = web.build(self)
        await srv.start("0.0.0.0", port or self.cfgm.config["server"]["port"])
        tasks.append(asyncio.create_task(forever("watchdog", self._watchdog, log)))
        tasks.append(asyncio.create_task(forever(
            "network", lambda: self.net.run(lambda: self.cfgm.config["wifi"]), log)))
        if not self.safe_mode:
            tasks.append(asyncio.create_task(forever("money", self._money_loop, log)))
            tasks.append(asyncio.create_task(forever("config-pull", self._pull_config, log)))
        log("[app] running: %d channels, config v%d, http port %d"
            % (len(self.ledger.keys()), self.cfgm.version,
               port or self.cfgm.config["server"]["port"]))
        while not self._reboot:
            await asyncio.sleep_ms(100)
        for t in tasks:
            t.cancel()
        srv.close()
        self.meter.shutdown()
        self.guard.clean_reset()
        try:
            import machine

            machine.reset()
        except (ImportError, AttributeError):
            raise SystemExit(0)  # the unix port: the virtual plug's supervisor boots it again


class _HeldStore:
    """The store as a held ledger sees it: reads pass, writes are dropped, so the
    checkpoint this firmware could not read stays on the flash as it was."""

    def __init__(self, store):
        self._store = store

    def load(self, name, default=None):
        return self._store.load(name, default)

    def generation(self, name):
        return self._store.generation(name)

    def save(self, name, obj):
        return 0

def main(board, state="state", port=None):
    plug = Plug(board, state)
    try:
        asyncio.run(plug.run(port))
    except KeyboardInterrupt:
        log("[app] stopped")
    except Exception:
        plug.guard.crashed()
        raise
    finally:
        plug.meter.shutdown()
