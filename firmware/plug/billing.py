# The billing ledger: energy priced per channel at the rate in force, exactly.
#
#   bil = Billing(store)                 loads the newest good copy (store name "billing")
#   bil.bill(key, chunks, segments) -> upto_t
#       chunks: the energy ledger's unbilled buckets [(t_start, t_end, import_uwh[, ...])],
#       oldest first; segments(t0, t1) -> [(start, end, rate_per_kwh, pid), ...] covering
#       [t0, t1) (Tariff.segments), or None when no rate is known (policy "hold"); a
#       rate of None is a closed rate gap: its energy is billed unpriced (see Lines).
#       Prices whole chunks in order and stops at the first one without a rate; saves
#       cursor and lines in one atomic store write; returns the billed-up-to time.
#   bil.run(ledger, tariff, keys=None)   bill every channel of an EnergyLedger and mark
#       what was billed there (after the billing state is durable). A pass that bills
#       writes the flash twice at most: the billing state once, then the ledger once.
#   bil.align(ledger)                    at boot, before the meter's first read: the
#       ledger catches up with the cursors (its checkpoint may predate the last pass).
#
# Exactness. A chunk of e uWh over [t0, t1) is split at rate boundaries pro rata in
# time with integer floors of the cumulative share (e * (b - t0) // (t1 - t0)), so the
# pieces sum to e exactly. A piece of u uWh at r base units per kWh is worth u * r / 1e9;
# per channel the numerator left below one base unit (`rem`) carries into the next
# piece, so the amounts billed on a channel always equal floor(sum(u * r) / 1e9).
#
# Negative prices (Octopus Agile, day-ahead markets) are credits: a line at a negative
# rate has a negative amount (the same floor carry, so `rem` stays in [0, 1e9)) and
# settle.py nets it against what the wallet owes; the plug never pays a negative amount.
#
# Never twice, never skipped: the per-channel cursor (end of the last billed chunk)
# and the lines are saved together; chunks that end at or before the cursor are
# skipped (a power cut between saving here and the ledger checkpoint that follows
# mark_billed re-lists them), and mark_billed(cursor) runs again on the next pass.
# align() at boot keeps the meter from opening a bucket across a cursor: a checkpoint
# older than the cursor would otherwise have the first reads after the reboot extend
# its last bucket back to before the cursor. A chunk that still starts before the
# cursor (the ledger merged a billed bucket into a later one: at max_buckets, before
# billing caught up) is billed for its pro-rata share after the cursor only.
#
# Lines, per channel: [t_start, t_end, energy_uwh, rate_per_kwh, amount, pid]; a piece
# contiguous with the previous line at the same rate and provider extends that line.
# Energy of a closed rate gap (no rate will ever come) is kept on an unpriced line
# [t_start, t_end, energy_uwh, 0, 0, pid, "unpriced"]: counted, never paid, never
# billed again.
# settle.py moves lines into invoices (same store file, same atomic write).

UWH_PER_KWH = 1000000000
UNPRICED = "unpriced"  # marks a line of energy that no rate will ever price


class BillingError(Exception):
    pass


def _fresh():
    # keys: {key: [cursor, rem, billed_uwh, billed_amount]}; lines: {key: [line, ...]}
    # inv: open invoices (settle.py); seq: last invoice number
    return {"v": 1, "keys": {}, "lines": {}, "inv": [], "seq": 0}


def split(t0, t1, energy_uwh, bounds):
    """Energy of [t0, t1) split pro rata at the times in `bounds` (sorted, inside (t0, t1)):
    a list of len(bounds) + 1 ints that sum to energy_uwh exactly."""
    d = t1 - t0
    out = []
    prev = 0
    for b in bounds:
        cum = energy_uwh * (b - t0) // d
        out.append(cum - prev)
        prev = cum
    out.append(energy_uwh - prev)
    return out


class Billing:
    def __init__(self, store, name="billing"):
        self.store = store
        self.name = name
        st = store.load(name)
        self.state = st if isinstance(st, dict) and st.get("v") == 1 else _fresh()

    # ---- durable ----

    def save(self):
        """Write the whole billing state atomically; on failure the in-memory state goes
        back to the last durable copy and the error propagates."""
        try:
            self.store.save(self.name, self.state)
        except Exception:
            st = self.store.load(self.name)
            self.state = st if isinstance(st, dict) and st.get("v") == 1 else _fresh()
            raise

    # ---- queries ----

    def cursor(self, key):
        k = self.state["keys"].get(key)
        return k[0] if k else None

    def totals(self, key):
        """(billed_uwh, billed_amount) of a channel since the plug's billing began."""
        k = self.state["keys"].get(key)
        return (k[2], k[3]) if k else (0, 0)

    def remainder(self, key):
        k = self.state["keys"].get(key)
        return k[1] if k else 0

    def lines(self, key=None):
        if key is not None:
            return self.state["lines"].get(key, [])
        return self.state["lines"]

    # ---- pricing ----

    def _price(self, key, k, lines, t0, t1, e, segs):
        if not segs or segs[0][0] != t0 or segs[-1][1] != t1:
            raise BillingError("%s: rates for %d..%d do not cover the chunk" % (key, t0, t1))
        for i in range(1, len(segs)):
            if segs[i][0] != segs[i - 1][1] or segs[i][0] >= segs[i][1]:
                raise BillingError("%s: rate segments for %d..%d have gaps" % (key, t0, t1))
        parts = split(t0, t1, e, [s[0] for s in segs[1:]])
        for j in range(len(segs)):
            s, en, r, pid = segs[j]
            u = parts[j]
            amt = 0
            unpriced = r is None
            if unpriced:
                r = 0
            elif u:
                acc = k[1] + u * r
                amt = acc // UWH_PER_KWH
                k[1] = acc - amt * UWH_PER_KWH
            k[2] += u
            k[3] += amt
            last = lines[-1] if lines else None
            if (last and last[1] == s and last[3] == r and last[5] == pid
                    and (len(last) > 6) == unpriced):
                last[1] = en
                last[2] += u
                last[4] += amt
            elif unpriced:
                lines.append([s, en, u, 0, 0, pid, UNPRICED])
            else:
                lines.append([s, en, u, r, amt, pid])

    def bill(self, key, chunks, segments):
        cur, billed = self._bill(key, chunks, segments)
        if billed:
            self.save()
        return cur

    def _bill(self, key, chunks, segments):
        """bill() without the save: (billed-up-to time, whether anything was billed)."""
        keys = self.state["keys"]
        k = keys.get(key)
        new_key = k is None
        if new_key:
            k = [None, 0, 0, 0]
        cur = k[0]
        lines = self.state["lines"].get(key)
        new_lines = lines is None
        if new_lines:
            lines = []
        before = (list(k), len(lines), [list(x) for x in lines[-1:]])
        billed = False
        try:
            for ch in chunks:
                t0, t1, e = ch[0], ch[1], ch[2]
                if (type(t0) is not int or type(t1) is not int or type(e) is not int
                        or e < 0 or t1 <= t0):
                    raise BillingError("%s: bad energy chunk %r" % (key, (t0, t1, e)))
                if cur is not None and t1 <= cur:
                    continue  # billed before a power cut; the ledger catches up below
                if cur is not None and t0 < cur:
                    # the ledger merged a billed bucket with a later one (power cut
                    # before mark_billed): bill only the share after the cursor
                    e -= e * (cur - t0) // (t1 - t0)
                    t0 = cur
                segs = segments(t0, t1)
                if segs is None:
                    break  # hold: no rate yet, the energy waits
                self._price(key, k, lines, t0, t1, e, segs)
                cur = k[0] = t1
                billed = True
        except Exception:
            # leave memory as durable state has it
            k[:] = before[0]
            del lines[before[1]:]
            if before[2]:
                lines[-1][:] = before[2][0]
            raise
        if billed:
            if new_key:
                keys[key] = k
            if new_lines:
                self.state["lines"][key] = lines
        return cur, billed

    def align(self, ledger):
        from plug.ledger import LedgerError

        for key in ledger.keys():
            cur = self.cursor(key)
            if cur is not None:
                try:
                    ledger.mark_billed(key, cur, checkpoint=False)
                except LedgerError:  # a merged bucket across the cursor: run() bills its share
                    pass

    def run(self, ledger, tariff, keys=None):
        """Bill every channel of `ledger`; returns {key: billed-up-to time}. A channel whose
        chunks are refused is reported through BillingError after the others are done.
        All channels billed in one pass are saved in one atomic write, before any
        ledger.mark_billed; the ledger is then checkpointed once for all of them."""
        done = {}
        order = []
        errors = []
        any_billed = False
        try:
            for key in (keys if keys is not None else ledger.keys()):
                try:
                    upto, billed = self._bill(key, ledger.unbilled(key), tariff.segments)
                except BillingError as e:
                    errors.append(str(e))
                    continue
                done[key] = upto
                order.append(key)
                any_billed = any_billed or billed
        finally:
            if any_billed:  # also when the ledger failed: what is priced becomes durable
                self.save()
        marked = False
        for key in order:
            upto = done[key]
            if upto is not None:
                try:
                    if ledger.mark_billed(key, upto, checkpoint=False) != (0, 0):
                        marked = True
                except Exception as e:  # billing is durable; the ledger catches up next pass
                    errors.append("%s: ledger mark_billed(%d) failed: %s" % (key, upto, e))
        if marked:
            try:
                ledger.checkpoint()  # one ledger write per pass, after the billing write
            except Exception as e:  # the cursor keeps it right; the meter checkpoints again
                errors.append("ledger checkpoint after billing failed: %s" % (e,))
        if errors:
            raise BillingError("; ".join(errors))
        return done
