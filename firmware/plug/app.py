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
# Tasks: the metering loop (meter.py), the HTTP server, the serial REPL, and one task for
# the periodic work (_upkeep: the watchdog, the network, the money loop's passes over
# tariff, billing, settlement and payments, the config pull), each task as few as
# possible since every one holds heap. Each runs under supervise.forever(): a failure is
# logged and the task restarted with backoff; inside _upkeep each job likewise.
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

from plug import iobuf, repl
from plug.config import ConfigManager, ConfigError
from plug.ledger import EnergyLedger, LedgerError
from plug.meter import Meter
from plug.money import MoneySide
from plug.store import Store
from plug.supervise import BootGuard, forever, unload

STABLE_AFTER_MS = 60000  # a boot that ran this long resets the crash count
WATCHDOG_MS = 300000
_MAX_PAUSE_MS = 1000  # the longest pause after a stage that held the event loop
# loaded to check and apply a new config, let go of once it is in force or refused
# the signing stack (a payment's signature, a quote's or a config's signer) and the rate
# parsers: loaded by the money pass or the config apply that needs them and let go of
# after it (about 3 KB)
_SIGNING = ("eth_tx", "eth_message", "eth_decode", "rlp", "bip32", "ecdsa_micro.rfc6979",
            "ecdsa_micro.gtable", "ecdsa_micro.curve", "ecdsa_micro._gtable_frozen",
            "ecdsa_micro", "plug.rates_native", "plug.rates_fiat")
_CONFIG_MODULES = ("plug.app_config", "plug.config_sig", "plug.cal_config",
                   "plug.schema") + _SIGNING


def log(msg):
    repl.log(msg)


class Plug(MoneySide):
    """Everything the plug is; at the REPL as `plug`."""

    def __init__(self, board, state="state"):
        iobuf.reserve()  # while the heap is whole (plug/iobuf.py)
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
        __import__("plug.tls_ca").tls_ca.boot(log)  # ca.der's https context, once, streamed
        self._address0 = None
        self.wallet = None
        self.cfgm = ConfigManager(self.store, log=log, factory=board.factory_config(),
                                  plug=self._plug_address)
        cfg = self.cfgm.config
        unload("plug.schema")
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
        unload("plug.calibration")  # back at the first cal.<anything> (_Cal)
        self.cal = _Cal(self)
        from plug.periods import Periods  # energy today, yesterday, this and last month

        self.periods = Periods(self.ledger, _HeldStore(self.store) if self.ledger_error
                               else self.store, self.clock, lambda: self.cfgm.config["time"],
                               log=log)
        self.payments = None
        self.balances = {}
        self._balances_at = None
        self.money_errors = 0
        self.money_busy = False  # a money pass is running: MQTT holds its state until it ends
        self.last_error = None
        self._reboot = False
        self._fee = None
        self._net_at = time.ticks_ms()  # no network stage blocks the loop before this
        self._pulled = [0, None]  # the config pull: [seconds to the next, version seen]
        self._upd = [0, None]  # the release pull: [seconds to the next, update.url seen]
        self.net = board.wifi_link(self.store, log)  # kept up by _upkeep's "network"
        if not self.safe_mode:  # its address names the plug on the network: plug-<4 hex>
            self.wallet = self._load_wallet(cfg)
            self.net.hostname = "plug-" + self.wallet.address(0)[-4:].lower()
        self.online = self.net.start(cfg["wifi"])
        if self.safe_mode:
            if not self.ledger_error:
                log("[app] SAFE MODE after %d crashes in a row: metering and REPL only, no "
                    "payments. It clears after a stable run." % self.guard.crashes)
                from plug.billing import Billing

                Billing(self.store).align(self.ledger)  # as _build_money does
                unload("plug.billing")
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

        try:
            return apply_config(self, envelope)
        finally:
            unload(*_CONFIG_MODULES)

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

        unload("plug.app_status")  # loaded per view: about 3.4 KB of heap otherwise
        return status(self)

    def __repr__(self):
        from plug.version import BUILD, VERSION

        return "<plug %s %s (%s), config v%d, %d channels%s>" % (
            self.board.NAME, VERSION, BUILD, self.cfgm.version, len(self.ledger.keys()),
            ", SAFE MODE" if self.safe_mode else "")

    # ---- running ----

    async def _money_pass(self):
        """One pass of the money loop, its stages apart (_net_turn); returns the ms until
        the next: 1 s, doubling after each failed pass up to a minute."""
        t = await self._net_turn()
        self.money_busy = True
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
        finally:
            self.money_busy = False
        unload("plug.history", "plug.strand", *_SIGNING)
        self._net_held(t)
        return min(60000, 1000 << min(self.money_errors, 6)) if self.money_errors else 1000

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

    async def _net_pass(self):
        """The Wi-Fi kept up: its settings read afresh, one step every NET_POLL_MS
        (lib/wifi_link.py)."""
        import wifi_link

        self.net.configure(self.cfgm.config["wifi"])
        self.net.step()
        return wifi_link.NET_POLL_MS

    async def _pull_pass(self):
        """The config pull, every 5 s. The pull settings are read afresh, so a config that
        sets or changes pull.url takes effect at once rather than at the next boot."""
        cfg = self.cfgm.config["pull"]
        if self._pulled[1] != self.cfgm.version:
            self._pulled = [0, self.cfgm.version]  # [seconds to the next pull, version]
        if cfg["url"] and self._pulled[0] <= 0:
            self._pulled[0] = cfg["interval_s"]
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
            self._pulled[1] = self.cfgm.version
        self._pulled[0] -= 5
        return 5000

    async def _update_pass(self):
        """The release pull (plug/update_pull.py, loaded only for a look) every
        update.interval_s; a config that sets or changes update.url is looked at at once."""
        cfg = self.cfgm.config["update"]
        if self._upd[1] != cfg["url"]:
            self._upd = [0, cfg["url"]]
        if cfg["url"] and self._upd[0] <= 0:
            self._upd[0] = cfg["interval_s"]
            t = await self._net_turn()
            try:
                await __import__("plug.update_pull").update_pull.pull(self, cfg["url"], log)
            finally:
                unload("plug.update_pull", "plug.update", "eth_message")
                self._net_held(t)
        self._upd[0] -= 5
        return 5000

    async def _upkeep(self):
        """The periodic work, one task for all of it (each task's frames cost heap): at
        least every second the watchdog is fed, the periods roll and a boot that ran
        STABLE_AFTER_MS clears the crash count; then each job that is due runs: the
        network (every wifi_link.NET_POLL_MS), a money pass (_money_pass), the config
        pull (_pull_pass) and the release pull (_update_pass), the last three not in
        safe mode. A job returns the ms until it
        is due again; one that fails is logged and tried again after a backoff that
        doubles up to a minute, as supervise.forever does, and the others go on. A money
        pass holds the rest for as long as it runs (its stages apart, seconds); the
        watchdog (generous: network calls block the loop, bounded by their deadlines, and
        a watchdog reset counts as a crash) allows far more."""
        wdt = self.board.watchdog(WATCHDOG_MS)
        stable = False
        jobs = (("network", self._net_pass),) if self.safe_mode else (
            ("network", self._net_pass), ("money", self._money_pass),
            ("config-pull", self._pull_pass), ("update-pull", self._update_pass))
        due = [time.ticks_ms()] * len(jobs)
        fails = [0] * len(jobs)
        while True:
            if wdt:
                wdt.feed()
            self.periods.roll()  # a local midnight: the periods shift (never raises)
            if not stable and time.ticks_diff(time.ticks_ms(), self.boot_ms) > STABLE_AFTER_MS:
                stable = True
                self.guard.stable()
            for i in range(len(jobs)):
                if time.ticks_diff(time.ticks_ms(), due[i]) < 0:
                    continue
                try:
                    wait = await jobs[i][1]()
                    fails[i] = 0
                except Exception as e:  # noqa: BLE001 - one job's failure ends no other
                    wait = min(60000, 1000 << min(fails[i], 6))
                    fails[i] += 1
                    log("[app] task %s failed: %s: %s; restart in %d ms"
                        % (jobs[i][0], type(e).__name__, e, wait))
                due[i] = time.ticks_add(time.ticks_ms(), wait)
            now = time.ticks_ms()
            await asyncio.sleep_ms(max(0, min([1000] + [time.ticks_diff(d, now) for d in due])))

    async def run(self, port=None, repl_on=True):
        from plug import web

        tasks = [asyncio.create_task(forever("meter", self.meter.run, log))]
        if repl_on:
            tasks.append(repl.start({"plug": self, "cal": self.cal, "board": self.board}))
        srv = web.build(self)
        await srv.start("0.0.0.0", port or self.cfgm.config["server"]["port"])
        try:  # a release installed over the air: its trial, or what a rollback did
            __import__("os").stat("slot.json")
            t = __import__("plug.slots").slots.start(self, srv)
            if t is not None:
                tasks.append(t)
            else:  # nothing on trial: not kept in the heap
                unload("plug.slots")
        except OSError:
            pass
        tasks.append(asyncio.create_task(forever("upkeep", self._upkeep, log)))
        if not self.safe_mode:
            if self.cfgm.config["mqtt"]["url"]:  # Home Assistant over MQTT
                tasks.append(__import__("plug.mqtt").mqtt.start(self))
        from plug.version import BUILD, VERSION

        log("[app] running %s (%s): %d channels, config v%d, http port %d"
            % (VERSION, BUILD, len(self.ledger.keys()), self.cfgm.version,
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


class _Cal:
    """`cal` at the REPL (and plug.cal): plug/calibration.py's Calibrator, which is loaded
    and built at its first use, since most boots never calibrate."""

    def __init__(self, plug):
        self._plug = plug
        self._c = None

    def __getattr__(self, name):
        if self._c is None:
            from plug.calibration import Calibrator

            p = self._plug
            self._c = Calibrator(p.meter, p.store, log=log, out=repl.log)
        return getattr(self._c, name)

    def __repr__(self):
        return "<cal: calibration helper, type cal.help()>"


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
