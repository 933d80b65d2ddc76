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
import asyncio
import gc
import time

from plug import repl
from plug.config import ConfigManager, ConfigError
from plug.ledger import EnergyLedger, LedgerError
from plug.meter import Meter
from plug.store import Store
from plug.supervise import BootGuard, forever

STABLE_AFTER_MS = 60000  # a boot that ran this long resets the crash count
WATCHDOG_MS = 300000
_PAYMENT_GAS = 30000  # a native transfer with its memo (21000 + calldata)
_MAX_PAUSE_MS = 1000  # the longest pause after a stage that held the event loop


def log(msg):
    repl.log(msg)


class Plug:
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

    # ---- the money side, rebuilt whenever a new config is in force ----

    def _build_money(self):
        cfg = self.cfgm.config
        if self.wallet is None:
            self.wallet = self._load_wallet(cfg)
        from plug.supply import Supply  # the money side's: whether wallets can pay

        self.supply = Supply(log)
        self._install_money(cfg, self._make_money(cfg))

    def _make_money(self, cfg):
        """The money side for `cfg`, built from the flash without touching the one in use."""
        from plug.billing import Billing
        from plug.chain import Chain
        from plug.payments import Payments
        from plug.rpc import CALL_DEADLINE_S, CALL_TIMEOUT_S, RPC
        from plug.settle import Settlement
        from plug.tariff import Tariff

        ch = cfg["chain"]
        # one retry, all of a call within CALL_DEADLINE_S: a hung node stalls the event
        # loop for seconds, and then once per cooldown; the money loop tries again
        chain = Chain(RPC(ch["rpc_urls"], timeout_s=CALL_TIMEOUT_S, retries=1,
                          deadline_s=CALL_DEADLINE_S,
                          cooldown_ms=30000), ch["chain_id"], ch["eip1559"])
        tariff = Tariff(self.store, self.clock, cfg, log=log, token_decimals=chain.erc20_decimals)
        billing = Billing(self.store)
        return (chain, Payments(self.store, chain, self.wallet, cfg, self.clock, log=log), tariff,
                billing, Settlement(billing, tariff, cfg, account_of=self.wallet.account_of,
                                    log=log))

    def _install_money(self, cfg, money):
        self.wallet.configure(cfg)
        self.chain, self.payments, self.tariff, self.billing, self.settlement = money
        self._fee = None

    def _pay(self, invoice_id, payee, amount, token, memo):
        account = self.settlement.invoice(invoice_id).get("account", 0)
        key = None
        for k in self.ledger.keys():
            if self.wallet.account_of(k) == account:
                key = k
                break
        from plug.payments import SpendRefused
        from plug.rpc import ChainError

        try:
            r = self.payments.pay(invoice_id, payee, amount, token, memo, channel_key=key)
        except SpendRefused as e:  # the wallet cannot pay (or a limit): supply policy
            self.supply.refused(account, invoice_id, amount, str(e), self.clock.time())
            if "balance" in str(e):
                self.supply.node_ok()  # the node answered with the balance
            raise
        except Exception as e:  # node away, or no verdict on the wallet either way
            self.supply.unreachable(account, str(e))
            if isinstance(e, ChainError):
                self.supply.node_error("%s: %s" % (type(e).__name__, e), self.clock.time())
            raise
        self.supply.paid(account)
        self.supply.node_ok()
        return r

    def _accounts(self):
        """{wallet account: [channel keys it pays for]}."""
        out = {}
        for k in self.ledger.keys():
            out.setdefault(self.wallet.account_of(k), []).append(k)
        return out

    def supply_step(self):
        """Supply policy: cut the outputs of wallets that cannot pay (supply.py); the
        LED shows network trouble and supply at risk."""
        self.out.set_unpaid(self.supply.step(self.cfgm.config, self.clock.time(),
                                             self._accounts()))
        self.out.set_alert(self.supply.at_risk() or self.net.status()["link"] == "down")

    def money_step(self):
        """One pass of the money loop: rates, billing, settlement, payments."""
        for _ in self.money_steps():
            pass

    def money_steps(self):
        """money_step() one stage at a time: a generator that yields after each stage (a
        network operation or a few), so the event loop runs between them. A config put in
        force meanwhile ends the pass: the next one runs on the new money side."""
        pay = self.payments
        if pay is None:
            return
        now = self.clock.time()
        for _ in self.tariff.poll_steps(now):
            yield
            if self.payments is not pay:
                return
        gc.collect()
        self.billing.run(self.ledger, self.tariff)
        gc.collect()
        fee = self._fee_estimate()
        yield
        if self.payments is not pay:
            return
        for iid, err in self.settlement.settle(now, self._pay, fee=fee):
            if err:
                log("[app] invoice %s not paid yet: %s" % (iid, err))
        self.supply_step()
        yield
        if self.payments is not pay:
            return
        if self.payments.step():
            self._balances_at = None  # a payment moved: show the balance it left
        gc.collect()

    def _fee_estimate(self):
        """What one payment costs in gas, in the settlement currency's base units, so
        settlement waits until fees are under max_fee_share_pct of the amount. Known for
        the native coin only (a token's price in wei is not known to the plug: then only
        min_amount and max_period_s apply). Asked of the node every 10 minutes."""
        cur = self.tariff.current()
        if not cur or cur.get("token"):
            return None
        t = time.ticks_ms()
        if self._fee is None or time.ticks_diff(t, self._fee[1]) > 600000:
            from plug.rpc import ChainError

            try:
                f = self.chain.fees()
            except ChainError as e:  # node away: the last estimate, else the other rules
                log("[app] no fee estimate: %s" % e)
                return self._fee and self._fee[0]
            per_gas = f.get("maxFeePerGas", f.get("gasPrice", 0))
            self._fee = (per_gas * _PAYMENT_GAS, t)
        return self._fee[0]

    def refresh_balances(self):
        """Ask the node for the wallets' balances, at most once a minute."""
        t = time.ticks_ms()
        if self.wallet is None or (self._balances_at is not None and
                                   time.ticks_diff(t, self._balances_at) < 60000):
            return
        self._balances_at = t
        tok = (self.tariff.current() or {}).get("token") if self.payments else None
        for acct in sorted(set(self.wallet.account_of(k) for k in self.ledger.keys())):
            addr = self.wallet.address(acct)
            b = {"native": self.chain.balance(addr)}
            if tok:
                b["token"] = self.chain.erc20_balance(tok, addr)
            self.balances[addr] = b
        self.supply.node_ok()

    # ---- config ----

    def _check_config(self, cfg):
        """A new config must reach its chain and accept its provider, or it rolls back."""
        from plug.chain import Chain
        from plug.rpc import CALL_DEADLINE_S, CALL_TIMEOUT_S, RPC
        from plug.provider import check_descriptor, check_token_decimals, get_json, http_get

        ch = cfg["chain"]
        chain = Chain(RPC(ch["rpc_urls"], timeout_s=CALL_TIMEOUT_S, retries=1,
                          deadline_s=CALL_DEADLINE_S), ch["chain_id"], ch["eip1559"])
        chain.check_chain()
        if cfg["provider"]["url"]:
            d = get_json(http_get, cfg["provider"]["url"])  # bounded (plug/jsonlimit.py)
            check_token_decimals(check_descriptor(d, cfg["provider"], ch["chain_id"]),
                                 chain.erc20_decimals)

    def apply_config(self, envelope):
        """Apply a signed config envelope (JSON text or dict); returns its version. The new
        config must reach its chain, accept its provider and load the money side from the
        flash before it is put in force; otherwise it is rolled back."""
        built = []
        cal_before = self.cfgm.config["calibration"]

        def precheck(cfg):
            if cfg["calibration"] != cal_before:
                self.cal.check_config(cfg["calibration"])

        def check(cfg):
            self._check_config(cfg)
            if not self.safe_mode:
                gc.collect()
                built.append(self._make_money(cfg))
            # last, so nothing after it rolls the config back; saved before the config is
            if cfg["calibration"] != cal_before:
                self.cal.apply_config(cfg["calibration"])

        v = self.cfgm.apply(envelope, check=check, precheck=precheck)
        cfg = self.cfgm.config
        for key, ch in cfg["channels"].items():
            if key in self.ledger.keys():  # spikes: only beyond the chip's full scale
                self.ledger.add_channel(key, max(ch["max_current_a"],
                                                 self.meter.full_scale_a(key)))
        self.out.configure(cfg)
        self.meter.checkpoint_s = cfg["meter"]["checkpoint_s"]
        self.meter.interval_s = cfg["meter"]["read_interval_ms"] / 1000
        if built:
            self._install_money(cfg, built[0])
        return v

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
        ms = self.meter.status()
        chans = {}
        for key in self.ledger.keys():
            r = ms["channels"].get(key, {})
            imp, exp = self.ledger.totals(key)
            dev = key.split("/")[0]
            chans[key] = {
                "name": self.cfgm.config["channels"].get(key, {}).get("name", ""),
                "V": r.get("v", 0.0), "A": r.get("a", 0.0), "W": r.get("w", 0.0),
                "PF": r.get("pf", 0.0), "Hz": r.get("hz", 0.0),
                "import_uwh": imp, "export_uwh": exp,
                "import_wh": imp // 1000000, "export_wh": exp // 1000000,
                "unbilled_uwh": self.ledger.pending(key)[0],
                "fault": dev in ms["faulty"],
            }
        st = {
            "device": {
                "board": self.board.NAME, "time": self.clock.time(),
                "uptime_s": time.ticks_diff(time.ticks_ms(), self.boot_ms) // 1000,
                "free_heap": gc.mem_free(), "config_version": self.cfgm.version,
                "config_error": self.cfgm.fallback, "ledger_error": self.ledger_error,
                "owner": self.cfgm.owner, "safe_mode": self.safe_mode,
                "last_error": self.last_error, "late_reads": self.meter.late_reads,
                "network": self.net.status(),
                "temperature_c": self.out.temperature(),
            },
            "channels": chans,
            "outputs": self.out.status(),
            "faulty": ms["faulty"],
        }
        if self.wallet:
            wallets = {}  # account -> what status shows of it
            for key in self.ledger.keys():
                acct = self.wallet.account_of(key)
                w = wallets.get(acct)
                if w is None:
                    addr = self.wallet.address(acct)
                    w = wallets[acct] = {"account": acct, "address": addr, "channels": [],
                                         "balance": self.balances.get(addr)}
                w["channels"].append(key)
            st["wallets"] = list(wallets.values())
        if self.payments:
            st["provider"] = self.tariff.status()
            pays = {"accrued": dict(("%d/%s" % k, v)
                                    for k, v in self.settlement.accrued().items()),
                    "pending": [], "confirmed": [], "failed": []}
            for r in self.payments.records():
                pays[_PAY_STATE.get(r["st"], "pending")].append(_pay_view(r))
            st["payments"] = pays
            from plug.supply import money_alerts

            st["alerts"], st["runway"] = money_alerts(self)
        return st

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


_PAY_STATE = {"confirmed": "confirmed", "failed": "failed"}  # prepared, sent: pending


def _pay_view(r):
    return {"id": r["id"], "state": r["st"], "to": r["to"], "amount": r["amt"],
            "token": r["tok"], "hash": r["mined"] or r["hash"], "nonce": r["n"],
            "error": r["err"]}


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
