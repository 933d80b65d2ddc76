# Nonces and receipts: at which nonce a payment is signed, when the chain's word that it
# was mined is believed, and what becomes of a payment the chain can never mine. Part of
# plug.payments (Payments inherits Nonces); the contract is in payments.py's header.
#
# The chain's pending nonce is the authority, once it is believable. A read is believed
# at once when the plug's own records explain it: between the floor (one past the highest
# nonce of ours seen mined, "nf" in the store) and one past our highest unfinished nonce.
# Any other value (a node lying ahead, or a wallet used elsewhere) is believed only when
# the same value was read on _AGREE_STEPS steps over at least _AGREE_S seconds, with the
# chain id asked again; a value below the floor never is (a node behind, or lying: our
# own mined payments are there). Until then nothing is signed: NonceUnsettled, retried.
#
# Window: a new nonce is at most _WINDOW past the lowest one still in flight, so a lie
# believed cannot run the nonce away nor grow the unfinished records; beyond it pay()
# refuses with a clear message and the invoice waits.
#
# Stranded: unfinished records ahead of the chain's pending nonce with a gap below them
# (no unfinished tx of ours at some nonce in between) can never be mined. step() signs
# each such invoice again at the chain's nonce (the same record: exactly once per
# invoice, the old hashes kept in "old"), within the window. The stranded variants stay
# a hazard (they would be mined once the plug's own later payments fill the gap): their
# nonce is taken at once by a signed 0-value transfer to ourselves at a higher fee,
# written ("hz" in the store, at most 8 nonces) and broadcast so that it replaces them
# in the node's pool, sent again while the gap closes, and recorded as "<id>~cancel<n>"
# (the "cx" machinery below) when the plug's sequence reaches it: never two payments of
# one invoice that can both be mined without a cancel in flight.
#
# Receipts: one is believed only when the account's mined nonce has passed the payment's
# (a node can hand out a receipt for a transaction it swallowed). A confirmed payment is
# looked at again _REVERIFY times, 8 steps on, then 16 and 32 steps later: if its receipt has
# vanished and the account's nonce has not passed it, it is "sent" again (a reorg, or a
# lie), and the usual rules take it from there.
#
# Displaced: when the account's mined nonce has passed ours and none of our variants has
# a receipt, seen on _DISPLACED_STEPS steps over at least _DISPLACED_S (a node that lags
# behind answers "no receipt" for a while), the invoice is signed again with a new nonce;
# if an earlier variant is mined after all, the new nonce is cancelled ("cx"); should the
# payment win that race anyway, the cancel record ends "failed": PAID TWICE.
import binascii

from micropython import const
from plug.rpc import ChainError

_UNFINISHED = ("prepared", "sent")
_CANCEL = "~cancel"  # id suffix of a cancellation record (plug.strand)
_DISPLACED_STEPS = const(3)
_DISPLACED_S = const(120)
_WINDOW = const(4)  # nonces in flight past the lowest unfinished one, at most
_AGREE_STEPS = const(8)  # reads of an unexplained nonce, on distinct steps, to believe it
_AGREE_S = const(120)  # ... spanning at least this much plug time
_REVERIFY = const(3)  # re-checks of a confirmed payment's receipt
_REVERIFY_STEPS = const(8)  # steps before the first re-check (doubling)


class NonceUnsettled(ChainError):
    """The node's nonce is not believable yet: nothing was signed; try again later."""


def _hex(b):
    return "0x" + binascii.hexlify(b).decode()


def _unhex(s):
    return binascii.unhexlify(s[2:])


def _bump(v):
    return v + (v >> 3) + 1


class Nonces:
    def _nonce_init(self, st):
        self._nf = st.get("nf", {})  # address -> one past our highest nonce seen mined
        # stranded nonces (plug.strand): [address, account, nonce, [stranded variants'
        # hashes], cancellation's fees, invoice, cancellation's raw tx, its hash]
        self._hz = st.get("hz", [])
        self._stepno = 0
        self._nv = {}  # address -> [value, first plug time, reads, step of the last read]
        self._rvat = {}  # invoice id -> step of its next receipt re-check

    # ---- what the chain's nonce is -----------------------------------------------------

    def _mine(self, addr):
        return [r for r in self._recs.values()
                if r["from"] == addr and r["st"] in _UNFINISHED and r["n"] is not None]

    def _floor(self, addr):
        f = self._nf.get(addr, 0)
        for r in self._recs.values():
            if r.get("mined") and r["st"] != "sent" and r["from"] == addr:
                f = max(f, r["n"] + 1)  # confirmed, or failed (reverted: nonce used)
        return f

    def _chain_nonce(self, addr):
        """The chain's pending nonce for addr, if believable; NonceUnsettled otherwise."""
        v = self.chain.nonce(addr, "pending")
        lo = self._floor(addr)
        hi = lo
        for r in self._mine(addr):
            hi = max(hi, r["n"] + 1)
        if lo <= v <= hi or [h for h in self._hz if h[0] == addr and h[2] + 1 == v]:
            self._nv.pop(addr, None)
            return v
        now = self.clock.time()
        c = self._nv.get(addr)
        if c is None or c[0] != v:
            c = self._nv[addr] = [v, now, 1, self._stepno]
        elif c[3] != self._stepno:
            c[2] += 1
            c[3] = self._stepno
        if v < lo:
            raise NonceUnsettled("node's nonce %d is below %d, where our payments were "
                                 "mined (a node behind, or lying): waiting" % (v, lo))
        if c[2] < _AGREE_STEPS or now - c[1] < _AGREE_S:
            raise NonceUnsettled("node's nonce %d is not %d..%d as our payments explain: "
                                 "waiting until it holds (%d reads)" % (v, lo, hi, c[2]))
        if len(c) == 4:  # believed from now on (while it holds): say so once
            self.chain.check_chain(True)
            c.append(True)
            self._log("%s: the node's nonce %d held for %d reads: taking it" % (addr, v, c[2]))
        return v

    def _reach(self, addr, base, skip=None):
        """Nonces >= base that our unfinished transactions fill without a gap."""
        ns = set(r["n"] for r in self._mine(addr) if r is not skip)
        out = set()
        while base in ns:
            out.add(base)
            base += 1
        return out

    def _next_nonce(self, rec):
        addr = rec["from"]
        base = self._chain_nonce(addr)
        taken = self._reach(addr, base, rec)
        low = base  # the lowest nonce in flight: the window starts there
        lo = self._floor(addr)
        for r in self._mine(addr):
            if r is not rec and lo <= r["n"] < low:
                low = r["n"]
        n = base
        while True:
            if n in taken:
                n += 1
                continue
            if n >= low + _WINDOW:
                raise NonceUnsettled("nonce %d would be %d past the lowest in flight (%d), "
                                     "the most the plug signs ahead: waiting for earlier "
                                     "payments to be mined" % (n, n - low, low))
            hz = sorted([h for h in self._hz if h[0] == addr and n <= h[2] <= n + 1],
                        key=lambda h: h[2])
            if not hz:
                return n
            from plug import strand

            if hz[0][2] == n + 1:  # n fills the last gap below a stranded nonce: make sure
                strand.send_hazard(self, hz[0])  # its cancellation is in the pool
                return n
            strand.cancel_hazard(self, hz[0])
            n += 1

    def _heal(self):
        """Payments stranded ahead of the chain's nonce are signed again (plug.strand)."""
        for addr in set([r["from"] for r in self.unfinished()] + [h[0] for h in self._hz]):
            ns = sorted(set(r["n"] for r in self._mine(addr)))
            hz = [h for h in self._hz if h[0] == addr]
            if ns and ns[0] <= self._floor(addr) and ns[-1] - ns[0] + 1 == len(ns) and not hz:
                continue  # from the mined nonce up without a gap: none can be stranded
            try:
                base = self._chain_nonce(addr)
            except ChainError:
                continue
            reach = self._reach(addr, base)
            stuck = [r for r in self._mine(addr) if r["n"] >= base and r["n"] not in reach]
            if stuck or hz:
                from plug import strand

                stuck.sort(key=lambda r: r["n"])
                strand.heal(self, addr, base, stuck)

    # ---- advancing ----------------------------------------------------------------------

    def _find_receipt(self, rec):
        for h in [v["h"] for v in reversed(rec["v"])]:
            r = self.chain.receipt(h)
            if r is not None:
                return r
        for h in rec.get("old", ()):  # an earlier nonce that reverted paid nothing
            r = self.chain.receipt(h)
            if r is not None and r["status"] == 1:
                return r
        return None

    def _advance(self, rec):
        r = self._find_receipt(rec)
        mined_nonce = self.chain.nonce(rec["from"], "latest")
        # a receipt counts once the account's nonce passed ours (an earlier nonce's is
        # looked at again after confirming): a node may show one for a tx it swallowed
        if r is not None and (mined_nonce > rec["n"] or r["hash"] in rec.get("old", ())):
            self._mined(rec, r)
            return
        if r is not None:
            rec["err"] = "receipt %s not believed: nonce %d unused" % (r["hash"], rec["n"])
        if rec.get("cx"):  # its nonce is being cancelled: only a receipt moves it now
            return
        if mined_nonce > rec["n"]:
            if mined_nonce > max([x["n"] + 1 for x in self._mine(rec["from"])]):
                self._chain_nonce(rec["from"])  # more than ours explain: is it believable?
            # our nonce is used; a receipt may have appeared since we looked
            r = self._find_receipt(rec)
            if r is not None:
                self._mined(rec, r)
                return
            now = self.clock.time()
            gone = rec.get("gone")
            if gone is None:
                rec["gone"] = [now, 1]
            else:
                gone[1] += 1
                if gone[1] >= _DISPLACED_STEPS and now - gone[0] >= _DISPLACED_S:
                    from plug import strand

                    if "of" in rec:
                        strand.cancel_lost(self, rec)
                    else:
                        strand.displaced(self, rec)
            return
        rec.pop("gone", None)
        if rec["st"] == "prepared":
            if rec.get("under"):  # a pending tx holds our nonce at a higher fee
                self._replace(rec)
            else:
                self._broadcast(rec)
        elif self.clock.time() - rec["tb"] >= self.deadline_s:
            self._replace(rec)

    def _mined(self, rec, r):
        rec.pop("gone", None)
        if r["hash"] in rec.get("old", ()) and not rec.get("cx"):
            self._log("invoice %s: an earlier transaction %s was mined after all; cancelling "
                      "nonce %d" % (rec["id"], r["hash"], rec["n"]))
            try:
                from plug import strand

                strand.cancel(self, rec)
            except Exception as e:  # the payment is still confirmed; the risk stays shown
                rec["err"] = rec["cxerr"] = ("nonce %d NOT cancelled (%s): it may pay twice"
                                             % (rec["n"], e))
                self._log("invoice %s: %s" % (rec["id"], rec["err"]))
        moved = rec["blk"] != r["block"] or rec["mined"] != r["hash"]
        if moved:
            rec["blk"] = r["block"]
            rec["mined"] = r["hash"]
            rec["st"] = "sent"
        if self.confirmations > 1:
            if moved:
                self._save()  # mined, awaiting confirmations
            if self.chain.block_number() - r["block"] + 1 < self.confirmations:
                return
        if r["hash"] in [v["h"] for v in rec["v"]]:  # our nonce is used
            self._nf[rec["from"]] = max(self._nf.get(rec["from"], 0), rec["n"] + 1)
        if r["status"] == 1:
            rec["st"] = "confirmed"
            rec["err"] = rec.get("cxerr")
            rec["rv"] = _REVERIFY
            self._rvat[rec["id"]] = self._stepno + _REVERIFY_STEPS
            for v in rec["v"]:
                v.pop("raw", None)  # never broadcast again: keep the store (and heap) small
            self._log("invoice %s: confirmed in block %d" % (rec["id"], r["block"]))
        else:
            rec["st"] = "failed"
            rec["err"] = ("transaction reverted (receipt status 0); plug.retry_payment(%r) "
                          "pays it again" % rec["id"])
            self._today()
            key = rec["tok"] or "native"
            self._spent[key] = max(0, self._spent.get(key, 0) - rec["amt"])
            self._log("invoice %s: FAILED in block %d, invoice released" % (rec["id"], r["block"]))
        self._save()
        self._event(rec["st"], rec)

    def _reverify(self):
        """Look again at one recently confirmed payment whose re-check is due."""
        for rec in self._recs.values():
            if rec["st"] == "confirmed" and rec.get("rv") and self._rvat.setdefault(
                    rec["id"], self._stepno + _REVERIFY_STEPS) <= self._stepno:
                from plug import strand

                strand.reverify(self, rec, _REVERIFY_STEPS << (_REVERIFY - rec["rv"] + 1))
                return
