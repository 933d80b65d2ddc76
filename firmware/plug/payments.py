# Payments: a signed transfer from the plug's wallet, onto the chain exactly once.
#
#   p = Payments(store, chain, wallet, config, clock)    # restores unfinished payments
#   rec = p.pay(invoice_id, payee, amount, token=None, memo=b"", channel_key=None)
#   p.step()          advance every unfinished payment (a few RPCs each; never raises
#                     ChainError: problems land in rec["err"] and are retried next step)
#   p.get(invoice_id) -> record or None      p.records() -> [live record, ...]
#   p.history         the finished records moved out of the store (history.py)
#   p.spent_today(token=None) -> int
#
# A record is a plain dict (JSON in the store); billing reads these keys:
#   "id" invoice id (str), "st" state, "to" payee, "amt" amount, "tok" token or None,
#   "from" paying address, "n" nonce, "hash" hash of the newest signed variant,
#   "mined" hash that was mined (confirmed or failed), "blk" its block, "err" the last
#   problem (text) or None, "att" attempt number (1, 2 after a failed one).
# States: "prepared" (signed and written, maybe not broadcast) -> "sent" -> "confirmed"
#   (receipt status 1 with chain.confirmations blocks) or "failed" (status 0: the
#   invoice is released, pay() with the same id signs a new attempt).
#
# Exactly once: the signed bytes, nonce and invoice id are written to the store before
# any broadcast. pay() with an invoice id that has a record returns that record and
# signs nothing (unless it "failed"). A payment not mined within chain.tx_deadline_s
# is replaced by a variant with the same nonce and both fees raised by 12.5% + 1 (the
# node needs 10%), so at most one variant can ever be mined; every variant's hash is
# kept and a receipt for any of them counts. After a reboot the restored records are
# reconciled by step(): receipt of any variant, else re-broadcast of the same bytes.
# Only when the account's mined nonce has passed ours and none of our variants has a
# receipt, seen on _DISPLACED_STEPS steps over at least _DISPLACED_S (a node that lags
# behind answers "no receipt" for a while), is the invoice signed again with a new
# nonce (someone else used ours); receipts (status 1) of the earlier variants still
# count. If one of them is mined after all (the node had lied or lagged), the
# transaction at the new nonce is cancelled: the payment's own variants are never sent
# again, and record "<id>~cancel<nonce>" replaces them with a 0-value transfer to the
# plug's own address at that nonce and higher fees (above chain.max_fee_per_gas if need
# be: it costs 21000 gas), advanced by step() like a payment. Should the payment win
# that race anyway, the cancel record ends "failed" and says the invoice was PAID TWICE.
# Nonces and receipts from a node that lies (plug/nonces.py, plug/strand.py): a nonce
# is taken from the node only when the plug's records explain it or it holds over time,
# at most _WINDOW (4) nonces past the lowest in flight (beyond: pay() refuses, the
# invoice waits); payments stranded ahead of the chain's nonce are signed again there,
# once; a receipt counts only once the account's nonce passed the payment's.
# Replacement fees stop rising at chain.max_fee_per_gas (when set) and at
# _MAX_FEE_GROWTH (replace.py) times the first variant's, and a replacement the balance
# cannot cover (amount + gas x fee + gas floor) is not signed: the last variant is sent again.
# A payment that failed (status 0) is never signed again by itself: a node that lies
# about receipts would have the plug pay twice. retry(invoice_id), at the owner's word
# (plug.retry_payment at the REPL), signs a new attempt of the same request.
#
# Before signing: invoice not already paid, payee (and token) approved by the owner's
# config when those lists are set, amount <= limits.per_payment, today's spend +
# amount <= limits.per_day (per asset, UTC day of the plug clock), chain id checked,
# and the balance covers amount + gas x max fee + limits.gas_floor_wei.
#
# Bounded store: at most _MAX_OPEN unfinished payments and _MAX_LIVE records (pay()
# refuses more, nothing signed: the invoice stays open). Every save first moves the
# oldest finished records beyond _KEEP_DONE (failed ones beyond _KEEP_FAILED) into the
# history on the flash (appended there, then dropped here; history.archive). A confirmed
# invoice stays refused after it moved: get() finds it in the ids of the last _KEEP_IDS
# moved, else in the history (scanned only for ids up to the highest invoice number
# moved); retry() finds a failed payment in the history too.
import eth
from micropython import const
from plug.nonces import Nonces, _hex, _unhex
from plug.rpc import ChainError, InsufficientFunds, NonceTooLow, ReplacementUnderpriced

_NAME = "payments"
_KEEP_DONE = const(8)  # finished records kept live (status shows them); older: history
_KEEP_FAILED = const(4)  # failed payments kept live for retry_payment; older: history
_MAX_OPEN = const(8)  # unfinished payments at once: pay() refuses more (the store's bound)
_MAX_LIVE = const(20)  # records in the store at once: pay() refuses more
_KEEP_IDS = const(32)  # ids of confirmed invoices moved to the history, kept to refuse
                       # paying them again without a history scan (heap: ~36 B each on
                       # the ESP32; 256 of them held 9 KB)
_MAX_MEMO = 256
_UNFINISHED = ("prepared", "sent")


class PaymentError(Exception):
    pass


class SpendRefused(PaymentError):
    """A limit or the balance forbids this payment; nothing was signed."""


def intrinsic_gas(data):
    """Gas of a plain transfer carrying `data` (EIP-2028 and the EIP-7623 floor)."""
    nz = 0
    for b in data:
        if b:
            nz += 1
    z = len(data) - nz
    return max(21000 + 16 * nz + 4 * z, 21000 + 40 * nz + 10 * z)


def _share(recs):
    """Equal strings of the live records made one object, with nothing allocated: a
    record's mined hash and variants' hashes with its hash, and its addresses with the
    record before's. Each is its own copy when read from the flash or a receipt (about
    300 bytes a record on the ESP32)."""
    prev = None
    for r in recs.values():
        h, m = r.get("hash"), r.get("mined")
        if m is not None and m == h:
            r["mined"] = h
        for v in r.get("v", ()):
            if v["h"] == h:
                v["h"] = h
            elif v["h"] == m:
                v["h"] = m
        if prev is not None:
            for k in ("from", "to", "tok"):
                s = r.get(k)
                if s is not None and s == prev.get(k):
                    r[k] = prev[k]
        prev = r


class Payments(Nonces):
    def __init__(self, store, chain, wallet, config, clock, log=print):
        self.store = store
        self.log = log
        self.chain = chain
        self.wallet = wallet
        self.clock = clock
        chain_cfg = config.get("chain", {})
        self.confirmations = chain_cfg.get("confirmations", 1)
        self.deadline_s = chain_cfg.get("tx_deadline_s", 300)
        self.max_fee_cap = chain_cfg.get("max_fee_per_gas") or None  # wei per gas
        self.limits = config.get("limits", {})
        prov = config.get("provider", {})
        self.payees = prov.get("approved_payees") or ()
        self.tokens = prov.get("approved_tokens") or ()
        self.hook = None  # hook(event, rec) after each durable step; tests crash here
        self._dirty = False  # the last save failed: nothing is broadcast until one succeeds
        st = store.load(_NAME) or {}
        self._recs = st.get("recs", {})
        _share(self._recs)
        self._paid = st.get("paid", [])[-_KEEP_IDS:]  # a file may hold more (older firmware)
        self._hi = st.get("hi", 0)  # highest invoice seq moved to the history
        self._arch = st.get("arch", 0)  # records ever moved to the history
        self._day = st.get("day", 0)
        self._spent = st.get("spent", {})
        self._nonce_init(st)

    # ---- durable state ----------------------------------------------------

    def _log(self, msg):
        self.log("[pay] " + msg)

    def _save(self):
        self._archive()
        _share(self._recs)
        self._dirty = True
        self.store.save(_NAME, {"recs": self._recs, "paid": self._paid, "day": self._day,
                                "spent": self._spent, "hi": self._hi, "arch": self._arch,
                                "nf": self._nf, "hz": self._hz})  # nf, hz: nonces.py
        self._dirty = False

    @property
    def history(self):
        """The finished records moved out of the live state (history.py), read from the
        flash afresh, its module let go of at once: neither is kept between uses, since
        they hold about 3 KB of heap."""
        from plug.history import History
        from plug.supervise import unload

        unload("plug.history")
        return History(self.store, log=self.log)

    def _archive(self):
        """Move the oldest finished records beyond _KEEP_DONE (failed: _KEEP_FAILED) into
        the history (history.archive: appended there first, dropped here by the save
        that follows; a power cut between the two leaves the record in both, and the
        history does not take it twice)."""
        done = failed = 0
        for r in self._recs.values():
            if r["st"] == "failed" and "of" not in r:
                failed += 1
            elif r["st"] not in _UNFINISHED:
                done += 1
        if done > _KEEP_DONE or failed > _KEEP_FAILED:
            from plug.history import archive

            archive(self, _KEEP_DONE, _KEEP_FAILED, _KEEP_IDS)

    def _event(self, name, rec):
        if self.hook:
            self.hook(name, rec)

    # ---- status -------------------------------------------------------------

    def get(self, invoice_id):
        """The record of an invoice: live, else confirmed by id, else from the history
        (scanned only for an id no higher than the highest archived invoice number)."""
        iid = str(invoice_id)
        rec = self._recs.get(iid)
        if rec is None and iid in self._paid:
            return {"id": iid, "st": "confirmed"}
        if rec is None and self._arch:
            from plug.history import seq_of

            seq = seq_of(iid)
            if seq is None or seq <= self._hi:
                rec = self.history.find(iid)
        return rec

    def records(self):
        """The live records (unfinished, and the last finished ones); older ones are in
        self.history."""
        return list(self._recs.values())

    def unfinished(self):
        return [r for r in self._recs.values() if r["st"] in _UNFINISHED]

    def _today(self):
        day = self.clock.time() // 86400
        if day > self._day:  # a clock set back must not grant a fresh allowance
            self._day = day
            self._spent = {}
        return day

    def spent_today(self, token=None):
        self._today()
        return self._spent.get(token or "native", 0)

    # ---- paying ---------------------------------------------------------------

    def _check_request(self, invoice_id, payee, amount, token, memo):
        if not isinstance(invoice_id, (str, int)) or not 0 < len(str(invoice_id)) <= 64:
            raise PaymentError("invoice id must be a non-empty string of up to 64 characters")
        if not isinstance(payee, str) or not eth.is_address(payee):
            raise PaymentError("payee %r is not an address" % (payee,))
        if type(amount) is not int or amount <= 0:
            raise PaymentError("amount must be an int > 0 in base units")
        if token is not None and (not isinstance(token, str) or not eth.is_address(token)):
            raise PaymentError("token %r is not an address" % (token,))
        if not isinstance(memo, (bytes, bytearray)) or len(memo) > _MAX_MEMO:
            raise PaymentError("memo must be bytes, at most %d" % _MAX_MEMO)
        payee = eth.to_checksum_address(payee)
        if self.payees and payee not in self.payees:
            raise SpendRefused("payee %s is not approved in the owner's config" % payee)
        if token is not None:
            token = eth.to_checksum_address(token)
            if self.tokens and token not in self.tokens:
                raise SpendRefused("token %s is not approved in the owner's config" % token)
        return payee, token

    def _check_limits(self, amount, token):
        per = self.limits.get("per_payment")
        if per is not None and amount > per:
            raise SpendRefused("amount %d is over the per-payment limit %d" % (amount, per))
        per_day = self.limits.get("per_day")
        spent = self.spent_today(token)
        if per_day is not None and spent + amount > per_day:
            raise SpendRefused("amount %d would take today's spend to %d, over the daily "
                               "limit %d" % (amount, spent + amount, per_day))

    def _check_room(self):
        """The payments store's bound: refuse new work rather than outgrow it."""
        n = len(self.unfinished())
        if n >= _MAX_OPEN:
            raise PaymentError("%d payments are unfinished, the most the plug keeps: new "
                               "invoices wait until those are mined" % n)
        if len(self._recs) >= _MAX_LIVE:
            raise PaymentError("%d payment records wait to move to the history (the most "
                               "the plug keeps): is the flash full?" % len(self._recs))

    def pay(self, invoice_id, payee, amount, token=None, memo=b"", channel_key=None):
        """Sign, record and broadcast one payment; returns its record. Raises
        PaymentError/SpendRefused (nothing signed) or ChainError (nothing signed)."""
        payee, token = self._check_request(invoice_id, payee, amount, token, memo)
        iid = str(invoice_id)
        old = self.get(iid)
        if old is not None and old["st"] != "failed":
            if self._dirty:
                self._save()  # the caller closes the invoice on return: make it durable
            return old
        self._check_limits(amount, token)
        self._check_room()
        account = self.wallet.account_of(channel_key) if channel_key else 0
        sender = self.wallet.address(account)
        rec = {"id": iid, "st": "prepared", "from": sender, "acct": account, "to": payee,
               "amt": amount, "tok": token, "memo": _hex(memo), "n": None, "gas": 0,
               "v": [], "hash": None, "mined": None, "blk": None, "err": None,
               "att": (old.get("att", 1) + 1) if old else 1, "t": self.clock.time(),
               "tb": 0, "ch": channel_key}
        self._sign_new(rec, check_funds=True)
        self._today()
        key = token or "native"
        self._spent[key] = self._spent.get(key, 0) + amount
        self._recs[iid] = rec
        self._save()
        self._log("invoice %s: signed nonce %d, %s" % (iid, rec["n"], rec["hash"]))
        self._event("prepared", rec)
        self._broadcast(rec)
        return rec

    def _tx(self, rec, fees):
        memo = _unhex(rec["memo"])
        if rec["tok"]:
            tx = {"to": rec["tok"], "value": 0,
                  "data": eth.erc20_transfer_data(rec["to"], rec["amt"]) + memo}
        else:
            tx = {"to": rec["to"], "value": rec["amt"], "data": memo}
        tx["nonce"] = rec["n"]
        tx["chainId"] = self.chain.chain_id
        tx.update(fees)
        return tx

    def _sign_new(self, rec, check_funds):
        """Give rec a fresh nonce and its first signed variant (not yet saved)."""
        c = self.chain
        c.check_chain(True)  # asked again before each signing: a node may switch chains
        rec["n"] = self._next_nonce(rec)
        if check_funds and rec["tok"]:
            tb = c.erc20_balance(rec["tok"], rec["from"])
            if tb < rec["amt"]:
                raise SpendRefused("token balance of %s is %d, payment needs %d"
                                   % (rec["from"], tb, rec["amt"]))
        fees = c.fees()
        tx = self._tx(rec, fees)
        if rec["tok"]:
            gas = c.estimate_gas({"from": rec["from"], "to": tx["to"], "data": tx["data"]})
            gas = gas + gas // 5
        else:
            gas = intrinsic_gas(tx["data"])
        tx["gas"] = gas
        rec["gas"] = gas
        if check_funds:
            self._check_funds(rec, tx)
        self._add_variant(rec, tx)

    def _check_funds(self, rec, tx):
        fee = tx["gas"] * tx.get("maxFeePerGas", tx.get("gasPrice", 0))
        floor = self.limits.get("gas_floor_wei", 0)
        bal = self.chain.balance(rec["from"])
        need = fee + floor + (0 if rec["tok"] else rec["amt"])
        if bal < need:
            raise SpendRefused("balance of %s is %d wei, needs %d (amount + gas + floor %d)"
                               % (rec["from"], bal, need, floor))

    def _add_variant(self, rec, tx, capped=True):
        cap = self.max_fee_cap
        fee = tx.get("maxFeePerGas", tx.get("gasPrice"))
        if capped and cap is not None and fee > cap:
            raise SpendRefused("fee %d wei/gas is over the configured cap %d" % (fee, cap))
        raw = self.wallet.sign_transaction(tx, rec["acct"])
        h = _hex(eth.transaction_hash(raw))
        if "gasPrice" in tx:
            fees = [tx["gasPrice"]]
        else:
            fees = [tx["maxFeePerGas"], tx["maxPriorityFeePerGas"]]
        for i, v in enumerate(rec["v"]):  # only the newest is ever broadcast again, and
            v.pop("raw", None)  # only the first's fees (the ceiling) and the newest's matter
            if i:
                v.pop("fee", None)
        rec["v"].append({"h": h, "raw": _hex(raw), "fee": fees})
        rec["hash"] = h

    def _broadcast(self, rec):
        if self._dirty:
            # write-ahead: a variant a reboot would not know must never reach the chain
            # (its invoice would be signed again with a new nonce)
            self._save()
        try:
            self.chain.send_raw(rec["v"][-1]["raw"], rec["v"][-1]["h"])
        except (InsufficientFunds, ReplacementUnderpriced, NonceTooLow) as e:
            rec["err"] = str(e)
            rec["under"] = isinstance(e, ReplacementUnderpriced)
            self._save()
            self._log("invoice %s: broadcast refused: %s" % (rec["id"], e))
            return False
        except ChainError as e:
            rec["err"] = str(e)
            self._log("invoice %s: broadcast failed, will retry: %s" % (rec["id"], e))
            return False
        self._event("broadcast", rec)
        rec["st"] = "sent"
        rec["tb"] = self.clock.time()
        rec["err"] = None
        rec["under"] = False
        self._save()
        self._event("sent", rec)
        return True

    # ---- advancing ------------------------------------------------------------

    def retry(self, invoice_id):
        """Sign a new attempt of a failed payment (same payee, amount, token, memo)."""
        rec = self._recs.get(str(invoice_id))
        if rec is None and self._arch:
            rec = self.history.find(invoice_id)
        if rec is None or rec["st"] != "failed":
            raise PaymentError("invoice %s has no failed payment to retry" % invoice_id)
        return self.pay(rec["id"], rec["to"], rec["amt"], rec.get("tok"),
                        _unhex(rec.get("memo") or "0x"), rec.get("ch"))

    def step(self):
        """Advance every unfinished payment once; returns the records that changed state."""
        changed = []
        self._stepno += 1
        try:
            self._heal()  # stranded ahead of the chain's nonce: signed again (nonces.py)
        except (ChainError, PaymentError) as e:
            self._log("nonces: %s" % e)
        for rec in self.unfinished():
            before = rec["st"]
            try:
                self._advance(rec)
            except ChainError as e:
                rec["err"] = str(e)
                self._log("invoice %s: %s" % (rec["id"], e))
            except PaymentError as e:
                rec["err"] = str(e)
                self._save()
                self._log("invoice %s: %s" % (rec["id"], e))
            if rec["st"] != before:
                changed.append(rec)
        try:
            self._reverify()  # a recently confirmed payment's receipt, looked at again
        except ChainError as e:
            self._log("receipt re-check: %s" % e)
        return changed

    def _replace(self, rec):
        """Not mined within tx_deadline_s: a variant with raised fees (plug/replace.py)."""
        from plug.replace import replace

        replace(self, rec)
