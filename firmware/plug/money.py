# The money side of the plug, rebuilt whenever a new config is in force: chain, tariff,
# billing, settlement and payments built from the flash, and the money loop's pass over
# them one stage at a time (money_steps: rates, billing and the fee estimate, settlement,
# payments), the supply policy and the wallets' balances. A mixin of app.Plug, whose
# attributes (wallet, ledger, clock, out, net, store) it uses; not built in safe mode.
import gc
import time

from plug import repl

_PAYMENT_GAS = 30000  # a native transfer with its memo (21000 + calldata)


def log(msg):
    repl.log(msg)


class MoneySide:
    """Plug's money side (see app.Plug)."""

    def _build_money(self):
        cfg = self.cfgm.config
        if self.wallet is None:
            self.wallet = self._load_wallet(cfg)
        from plug.supply import Supply  # the money side's: whether wallets can pay

        self.supply = Supply(log)
        self._install_money(cfg, self._make_money(cfg))
        self.billing.align(self.ledger)  # before the meter's first read

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
