# Replacing a payment that was not mined in time (payments.py's header has the contract):
# a new variant at the same nonce with both fees raised by 12.5% + 1 (the node needs
# 10%), at least to the market's. Fees stop rising at chain.max_fee_per_gas (when set)
# and at _MAX_FEE_GROWTH times the first variant's; a replacement the balance cannot
# cover (amount + gas x fee + gas floor) is not signed: the last variant is sent again.
# Used by Payments._replace, imported the first time a payment is late.
from plug.nonces import _bump
from plug.payments import SpendRefused

_MAX_FEE_GROWTH = 4


def fee_ceiling(p, rec):
    """The highest fee per gas a replacement of `rec` may offer."""
    top = rec["v"][0]["fee"][0] * _MAX_FEE_GROWTH
    return top if p.max_fee_cap is None else min(top, p.max_fee_cap)


def replace(p, rec):
    """A payment not mined within chain.tx_deadline_s: a variant at the same nonce with
    both fees raised, or, when fees may not rise or the balance cannot cover them, the
    last variant sent again."""
    p.chain.check_chain()
    last = rec["v"][-1]["fee"]
    market = p.chain.fees()
    top = fee_ceiling(p, rec)
    if len(last) == 1:
        fee = min(top, max(_bump(last[0]), market.get("gasPrice", 0)))
        fees = {"gasPrice": fee}
        raised = fee >= _bump(last[0])
    else:
        fee = min(top, max(_bump(last[0]), market.get("maxFeePerGas", 0)))
        tip = min(fee, max(_bump(last[1]), market.get("maxPriorityFeePerGas", 0)))
        fees = {"maxFeePerGas": fee, "maxPriorityFeePerGas": tip}
        raised = fee >= _bump(last[0]) and tip >= _bump(last[1])
    tx = p._tx(rec, fees)
    tx["gas"] = rec["gas"]
    why = None if raised else "fee ceiling %d wei/gas reached" % top
    if why is None:
        try:
            p._check_funds(rec, tx)
        except SpendRefused as e:
            why = str(e)
    if why is not None:  # keep waiting on the last variant; send it again
        if rec["v"][-1].get("raw"):
            p._broadcast(rec)
        rec["tb"] = p.clock.time()
        rec["err"] = "not replaced: " + why
        p._save()
        p._log("invoice %s: not mined in %ds, not replaced: %s"
               % (rec["id"], p.deadline_s, why))
        return
    p._add_variant(rec, tx)
    rec["st"] = "prepared"
    p._save()
    p._log("invoice %s: not mined in %ds, replaced by %s" % (rec["id"], p.deadline_s,
                                                            rec["hash"]))
    p._event("replaced", rec)
    p._broadcast(rec)
