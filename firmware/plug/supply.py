# Supply that follows payment: which channels the owner's policy cuts because their
# wallet cannot pay, and the money alerts /status shows.
#
#   s = Supply(log)
#   s.refused(account, invoice_id, amount, err, now)   payments refused it (SpendRefused)
#   s.unreachable(account, err)                        node or provider away: no verdict
#   s.paid(account)                                    an invoice of this account paid
#   s.step(cfg, now, accounts) -> keys to cut          accounts: {account: [keys]}
#   s.alerts(accounts, due=None) -> [{"kind", "account", "amount_due", "since", "supply", ...}]
#       amount_due: due[account] (the wallet's open invoices) if given, else the sum of
#       the invoices refused since the account last paid
#   s.balance(account, unit, since_ms) -> the balance the last refusal was made on
#       ("native" or "token"), if it is newer than ticks_ms since_ms (None: any), else None
#   s.node_error(err, now) / s.node_ok()               the node alert
#
# Only a wallet that cannot pay counts: a refusal because the balance is below the
# invoice plus gas ("balance"), or because the owner's spend limit is reached ("limit").
# A node or provider that cannot be reached gives no verdict: the account's state is
# held, never cut while the last attempt was inconclusive. With supply.on_unpaid "cut",
# an account refused for longer than supply.grace_s has its channels cut (outputs.py
# opens their relays); supply.warn_s before that it is "at risk" (status, log). The first
# invoice paid clears it and the outputs close by themselves. Held in RAM: after a reboot
# the grace time starts again with the next refused attempt.
# Runway (money_alerts): what the wallet can spend, its balance less limits.gas_floor_wei
# (for a token, 0 while the native balance is at or below the floor), at the last 24
# hours' spend; 0 when nothing is spendable.
import time

_KIND, _SINCE, _INV, _AMT, _MSG, _OPEN, _STAGE, _DUE, _BAL = 0, 1, 2, 3, 4, 5, 6, 7, 8


def kind_of(err):
    """"balance" or "limit" for a refusal that means the wallet cannot pay, else None."""
    if "balance" in err:
        return "balance"
    if "limit" in err:
        return "limit"
    return None


def balance_in(err):
    """(unit, value) of the balance a "balance" refusal states, else None."""
    i = err.find("balance of ")
    j = err.find(" is ", i)
    if i < 0 or j < 0:
        return None
    k = j = j + 4
    while k < len(err) and err[k] in "0123456789":
        k += 1
    if k == j:
        return None
    return ("token" if err.startswith("token ") else "native"), int(err[j:k])


class Supply:
    def __init__(self, log=print):
        self.log = log
        # account -> [kind, since, invoice, amount, message, verdict, stage,
        #             {refused invoice: amount}, (unit, balance, ticks_ms) or None]
        self._acct = {}
        self._node = None  # [since, error] while the node does not answer

    def refused(self, account, invoice_id, amount, err, now):
        kind = kind_of(err)
        if kind is None:
            return
        a = self._acct.get(account)
        if a is None:
            a = self._acct[account] = [kind, now, invoice_id, amount, err, True, 0, {}, None]
            self.log("[supply] wallet %d cannot pay invoice %s (%d): %s"
                     % (account, invoice_id, amount, err))
        a[_KIND], a[_INV], a[_AMT], a[_MSG], a[_OPEN] = kind, invoice_id, amount, err, True
        a[_DUE][invoice_id] = amount
        b = balance_in(err) if kind == "balance" else None
        if b is not None:
            a[_BAL] = (b[0], b[1], time.ticks_ms())

    def balance(self, account, unit, since_ms=None):
        a = self._acct.get(account)
        b = a and a[_BAL]
        if not b or b[0] != unit or (since_ms is not None and
                                     time.ticks_diff(b[2], since_ms) < 0):
            return None
        return b[1]

    def unreachable(self, account, err):
        a = self._acct.get(account)
        if a is not None:
            a[_OPEN] = False

    def paid(self, account):
        a = self._acct.pop(account, None)
        if a is not None:
            self.log("[supply] wallet %d paid again%s" % (
                account, ": supply restored" if a[_STAGE] == 2 else ""))

    def step(self, cfg, now, accounts):
        """The channel keys to cut now; logs when an account becomes at risk or cut."""
        sup = cfg["supply"]
        cut = []
        for account, a in self._acct.items():
            stage = 0
            if sup["on_unpaid"] == "cut" and a[_OPEN]:
                late = now - a[_SINCE]
                stage = 2 if late >= sup["grace_s"] else 1 if late >= sup["grace_s"] - \
                    sup["warn_s"] else 0
            if stage != a[_STAGE] and stage:
                keys = ", ".join(accounts.get(account, ()))
                if stage == 1:
                    self.log("[supply] AT RISK: wallet %d has not paid for %d s; %s cut in "
                             "%d s unless it is funded" % (account, now - a[_SINCE], keys,
                                                           sup["grace_s"] - (now - a[_SINCE])))
                else:
                    self.log("[supply] CUT: wallet %d cannot pay (%s); %s off until it pays"
                             % (account, a[_MSG], keys))
            a[_STAGE] = stage
            if stage == 2:
                cut.extend(accounts.get(account, ()))
        return cut

    def at_risk(self):
        """Whether any wallet's supply is at risk or cut (the LED's alert)."""
        for a in self._acct.values():
            if a[_STAGE]:
                return True
        return False

    def node_error(self, err, now):
        if self._node is None:
            self._node = [now, err]
        self._node[1] = err

    def node_ok(self):
        self._node = None

    def alerts(self, accounts, due=None):
        out = []
        if self._node is not None:
            out.append({"kind": "node_unreachable", "since": self._node[0],
                        "error": self._node[1]})
        for account, a in sorted(self._acct.items()):
            out.append({"kind": "wallet_cannot_pay" if a[_KIND] == "balance" else
                        "limit_reached", "account": account, "invoice": a[_INV],
                        "amount_due": due.get(account, a[_AMT]) if due is not None
                        else sum(a[_DUE].values()),
                        "since": a[_SINCE], "error": a[_MSG],
                        "verdict": a[_OPEN],
                        "supply": ("kept", "at_risk", "cut")[a[_STAGE]],
                        "channels": accounts.get(account, [])})
        return out


def money_alerts(plug):
    """The plug's (alerts, runway) for /status: what the wallets cannot pay (amount_due:
    all their open invoices in the alert's currency), and per wallet how long its
    spendable balance lasts at the last 24 hours' spend (runway_s None: nothing spent, or
    the balance not known yet). A balance a refusal was made on after the last refresh
    is the one shown."""
    accts = plug._accounts()
    tok = (plug.tariff.current() or {}).get("token")
    floor = plug.cfgm.config["limits"]["gas_floor_wei"]
    due = {}
    for inv in plug.settlement.open_invoices():
        if inv.get("token") == tok:
            a = inv.get("account", 0)
            due[a] = due.get(a, 0) + inv["amount"]
    alerts = plug.supply.alerts(accts, due)
    now = plug.clock.time()
    since = plug._balances_at
    runway = []
    for acct in sorted(accts):
        addr = plug.wallet.address(acct)
        b = plug.balances.get(addr) or {}
        nat = plug.supply.balance(acct, "native", since)
        nat = b.get("native") if nat is None else nat
        if tok:
            bal = plug.supply.balance(acct, "token", since)
            bal = b.get("token") if bal is None else bal
            spendable = None if bal is None else 0 if nat is not None and nat <= floor \
                else bal
        else:
            bal = nat
            spendable = None if bal is None else bal - floor
        spent = sum(r["amt"] for r in plug.payments.records()
                    if r["from"] == addr and r["st"] != "failed" and r["tok"] == tok and
                    now - r.get("t", 0) <= 86400)
        runway.append({"account": acct, "balance": bal, "spendable": spendable,
                       "spent_24h": spent,
                       "runway_s": None if spendable is None else 0 if spendable <= 0
                       else spendable * 86400 // spent if spent else None})
        for a in alerts:
            if a.get("account") == acct:
                a["balance"] = bal
    return alerts, runway
