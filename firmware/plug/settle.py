# Settlement policy: when billed amounts become payments, and what each one says.
#
#   st = Settlement(billing, tariff, config, account_of=None)
#   st.prepare(now, fee=None) -> [invoice, ...]   new invoices, saved with the billing
#       state in one atomic write (the lines they cover leave the billing ledger)
#   st.settle(now, pay, fee=None) -> [(invoice_id, error or None), ...]
#       prepare(), then hand every open invoice to
#       pay(invoice_id, payee, amount, token, memo); an invoice pay() accepted is closed.
#       pay must be idempotent per invoice_id (payments.py writes ahead): after a power
#       cut between pay() and closing, the same invoice is handed over again.
#   st.invoice(invoice_id) -> dict;  st.open_invoices() -> [dict];  st.accrued() -> {...}
#
# Wallets: config["wallet"]["mode"] "single" pays every channel from account 0,
# "per_channel" pays channel K from config["channels"][K]["account"] (as wallet.py).
# One payment per (wallet account, provider) covers all its channels' lines.
#
# When: a group is settled once its amount reaches
#     max(settlement.min_amount, ceil(fee * 100 / settlement.max_fee_share_pct))
# where `fee` is the caller's estimate of the transaction fee in the settlement
# currency's base units (None, unknown: only min_amount counts, and with min_amount 0
# only the period rule applies, so an ERC-20 plug does not pay a token transfer every
# minute; a share of 0 % means only the period rule applies), or once
# settlement.max_period_s has passed since the start of its oldest unsettled line. A
# group whose amount is 0 at its period end is closed without a payment. A group whose
# amount is below 0 at its period end (energy at negative prices) carries its credit:
# its priced lines fold into one line per channel (so the billing state stays small),
# a new period starts (state "credit": {"<account>/<pid>": time}) and later energy pays
# the credit off; the payment that follows covers the whole span.
#
# Invoice ids are "<seq>-<account>" with seq a counter kept in the billing state: it
# is assigned in the same write that moves the lines, so an id never changes across
# reboots and is never reused.
#
# Memo (the transaction's data field for native payments; appended after the ERC-20
# transfer calldata for tokens), integers as LEB128 varints, rate and amount signed
# (zigzag: n >= 0 -> 2n, n < 0 -> -2n - 1), the others unsigned:
#     b"PLUG1" seq t_start t_end n { len code(ASCII "M1/A") energy_mwh rate amount } x n
#   seq       invoice sequence number (the id's first part)
#   t_start, t_end   the period covered, plug time (seconds since 2000-01-01 UTC)
#   code      device_code/channel_code
#   energy_mwh   energy of the channel in the period, milliwatt-hours (floor)
#   rate      energy-weighted mean of the quoted rates, base units per kWh (floor; lines
#             folded while in credit count at their floored mean)
#   amount    base units billed for the channel in this payment (below 0 for a channel
#             whose credit at negative prices exceeds what it cost; the sum is above 0)
#
# Bounds (the billing state is one store file, store.BOUNDS["billing"]): at most
# _MAX_OPEN_INV invoices wait for their payment; while that many are open, due groups
# wait (their lines stay in the billing ledger, nothing is lost) and the log says so
# once. A channel with more than _MAX_LINES billed lines (rates that change often while
# invoices wait) has its priced lines folded per provider, as for a credit: energy and
# amounts stay exact, the rate becomes their floored mean (which the memo states anyway).
# Paid invoices leave the billing state at once; their record is the payment's (its memo)
# in payments.py and then in the history on the flash (history.py).
MAGIC = b"PLUG1"
_MAX_ITEMS = 16
_MAX_OPEN_INV = 8
_MAX_LINES = 12


def _zigzag(n):
    return 2 * n if n >= 0 else -2 * n - 1


def _unzigzag(z):
    return -((z + 1) >> 1) if z & 1 else z >> 1


def _varint(n, out):
    if n < 0:
        raise ValueError("memo: negative value %d" % n)
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return


def encode_memo(seq, t_start, t_end, items):
    """items: [(code, energy_uwh, rate_per_kwh, amount), ...] -> bytes."""
    out = bytearray(MAGIC)
    for v in (seq, t_start, t_end, len(items)):
        _varint(v, out)
    for code, uwh, rate, amount in items:
        c = code.encode()
        if not 0 < len(c) < 128:
            raise ValueError("memo: channel code %r" % code)
        out.append(len(c))
        out.extend(c)
        for v in (uwh // 1000, _zigzag(rate), _zigzag(amount)):
            _varint(v, out)
    return bytes(out)


def decode_memo(data):
    """(seq, t_start, t_end, [(code, energy_mwh, rate, amount), ...]); ValueError if bad."""
    data = bytes(data)
    if data[:5] != MAGIC:
        raise ValueError("memo: not a PLUG1 memo")
    pos = [5]

    def uv():
        n = shift = 0
        while True:
            if pos[0] >= len(data):
                raise ValueError("memo: truncated")
            b = data[pos[0]]
            pos[0] += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    seq, t0, t1, n = uv(), uv(), uv(), uv()
    items = []
    for _ in range(n):
        ln = data[pos[0]] if pos[0] < len(data) else 0
        code = data[pos[0] + 1:pos[0] + 1 + ln].decode()
        if not ln or len(code) != ln:
            raise ValueError("memo: truncated")
        pos[0] += 1 + ln
        items.append((code, uv(), _unzigzag(uv()), _unzigzag(uv())))
    if pos[0] != len(data):
        raise ValueError("memo: trailing bytes")
    return seq, t0, t1, items


class Settlement:
    def __init__(self, billing, tariff, config, account_of=None, log=print):
        self.billing = billing
        self.tariff = tariff
        self.scfg = config["settlement"]
        self.mode = config.get("wallet", {}).get("mode", "single")
        self.channels = config.get("channels", {})
        self._account_of = account_of
        self.log = log
        self._full = False  # the open invoices are at their bound (logged once)

    def wallet_of(self, key):
        if self._account_of is not None:
            return self._account_of(key)
        if self.mode == "per_channel":
            return self.channels.get(key, {}).get("account", 0)
        return 0

    def _groups(self):
        """{(account, pid): {key: [line, ...]}} of everything billed and not invoiced."""
        groups = {}
        for key, lines in self.billing.lines().items():
            acct = self.wallet_of(key)
            for ln in lines:
                g = groups.setdefault((acct, ln[5]), {})
                g.setdefault(key, []).append(ln)
        return groups

    def accrued(self):
        """{(account, pid): amount} not yet invoiced."""
        out = {}
        for gk, g in self._groups().items():
            out[gk] = sum(ln[4] for lines in g.values() for ln in lines)
        return out

    def threshold(self, fee=None):
        """Amount at which a group settles before its period ends, or None (only the
        period rule settles)."""
        m = self.scfg.get("min_amount", 0)
        pct = self.scfg.get("max_fee_share_pct", 10)
        if fee is None and m <= 0:
            return None  # fee unknown and no minimum: no amount is known to be worth it
        if fee is not None and fee > 0:
            if pct <= 0:
                return None  # no fee share is acceptable: only the period rule settles
            m = max(m, (fee * 100 + pct - 1) // pct)
        return m

    def prepare(self, now, fee=None):
        thr = self.threshold(fee)
        period = self.scfg.get("max_period_s", 86400)
        st = self.billing.state
        made = []
        closed = []
        folded = False
        credit = st.setdefault("credit", {})
        for (acct, pid), g in sorted(self._groups().items()):
            lines = [ln for ls in g.values() for ln in ls]
            amount = sum(ln[4] for ln in lines)
            t0 = min(ln[0] for ln in lines)
            t1 = max(ln[1] for ln in lines)
            ck = "%d/%d" % (acct, pid)
            by_amount = thr is not None and amount > 0 and amount >= thr
            by_period = now - max(t0, credit.get(ck, t0)) >= period
            if not (by_amount or by_period):
                continue
            if amount < 0:
                self._fold(g, pid)
                credit[ck] = now
                folded = True
                continue
            if amount > 0 and len(st["inv"]) >= _MAX_OPEN_INV:
                if not self._full:
                    self._log("%d invoices wait for their payment, the most the plug keeps "
                              "open: account %d's next one waits" % (len(st["inv"]), acct))
                self._full = True
                continue
            self._full = False
            credit.pop(ck, None)
            if len(g) > _MAX_ITEMS:
                raise ValueError("settle: more than %d channels in one payment" % _MAX_ITEMS)
            for key in g:  # these lines leave the billing ledger
                keep = [ln for ln in st["lines"][key] if ln[5] != pid]
                st["lines"][key] = keep
            if amount == 0:
                closed.append((acct, pid, t0, t1))
                continue
            st["seq"] += 1
            seq = st["seq"]
            items = [(key,) + _sum_lines(g[key]) for key in sorted(g)]
            d = self.tariff.provider(pid)
            memo = encode_memo(seq, t0, t1, items)
            inv = {"id": "%d-%d" % (seq, acct), "seq": seq, "account": acct, "pid": pid,
                   "payee": d["payee"], "token": d["token"], "amount": amount,
                   "t0": t0, "t1": t1, "items": [list(x) for x in items],
                   "memo": _hex(memo)}
            st["inv"].append(inv)
            made.append(inv)
        folded = self._bound_lines() or folded
        if made or closed or folded:
            self.billing.save()
            for inv in made:
                self._log("invoice %s: %d to %s for %d..%d" % (inv["id"], inv["amount"],
                                                                inv["payee"], inv["t0"], inv["t1"]))
            for acct, _pid, t0, t1 in closed:
                self._log("period %d..%d of account %d closed at amount 0" % (t0, t1, acct))
        return made

    def _fold(self, g, pid):
        """A credit carries: each channel's priced lines of the group become one line
        with their span, energy, mean rate and amount (unpriced lines stay as they are)."""
        st = self.billing.state["lines"]
        for key, ls in g.items():
            ls = [ln for ln in ls if len(ln) == 6]
            if len(ls) > 1:
                one = [min(ln[0] for ln in ls), max(ln[1] for ln in ls)]
                st[key] = ([ln for ln in st[key] if ln[5] != pid or len(ln) > 6]
                           + [one + list(_sum_lines(ls)) + [pid]])

    def _bound_lines(self):
        """Fold the priced lines of a channel that has more than _MAX_LINES, per provider;
        True if any was folded."""
        folded = False
        for key in list(self.billing.state["lines"]):
            ls = self.billing.state["lines"][key]
            if len(ls) > _MAX_LINES:
                for pid in sorted(set(ln[5] for ln in ls)):
                    self._fold({key: [ln for ln in ls if ln[5] == pid]}, pid)
                folded = folded or len(self.billing.state["lines"][key]) < len(ls)
        return folded

    def _log(self, msg):
        if self.log:
            self.log("[settle] %s" % msg)

    def open_invoices(self):
        return list(self.billing.state["inv"])

    def invoice(self, invoice_id):
        for inv in self.billing.state["inv"]:
            if inv["id"] == invoice_id:
                return inv
        return None

    def settle(self, now, pay, fee=None):
        self.prepare(now, fee)
        results = []
        for inv in self.open_invoices():
            try:
                pay(inv["id"], inv["payee"], inv["amount"], inv["token"], memo_bytes(inv))
            except Exception as e:  # payments refused or the chain is away: retry later
                self._log("invoice %s not paid yet: %s" % (inv["id"], e))
                results.append((inv["id"], str(e)))
                continue
            st = self.billing.state
            st["inv"] = [x for x in st["inv"] if x["id"] != inv["id"]]
            self.billing.save()
            results.append((inv["id"], None))
        return results


def _sum_lines(ls):
    """(energy_uwh, energy-weighted mean rate, amount) of one channel's lines."""
    uwh = sum(ln[2] for ln in ls)
    return uwh, sum(ln[2] * ln[3] for ln in ls) // uwh if uwh else 0, sum(ln[4] for ln in ls)


def _hex(b):
    import binascii

    return binascii.hexlify(b).decode()


def memo_bytes(inv):
    import binascii

    return binascii.unhexlify(inv["memo"])

