# The rare paths of plug.nonces, loaded only when one is taken (heap): a payment signed
# again with a new nonce (displaced, or stranded ahead of the chain's nonce), the
# stranded nonces kept as hazards, and cancellations (0-value transfers to ourselves
# that take a nonce an unwanted variant could be mined at). The rules are in nonces.py.
import eth
from micropython import const
from plug.nonces import _CANCEL, _bump, _hex
from plug.rpc import ChainError

_MAX_HAZARDS = const(8)  # stranded nonces remembered (each: its variants' hashes)
_HAZARD_HASHES = const(4)  # hashes kept per stranded nonce (the newest, highest fees)
_RESEND_NEAR = const(4)  # a stranded nonce this close to the chain's: cancel sent each step
_RESEND_STEPS = const(64)  # ... else every this many steps


def hazard_at(p, addr, n):
    for h in p._hz:
        if h[0] == addr and h[2] == n:
            return h
    return None


def add_hazard(p, addr, acct, n, hashes, fees, iid):
    """Remember stranded variants at nonce n and take n from them at once with a signed
    cancellation (written first, then broadcast: it replaces them in the node's pool, so
    the payment that fills the gap below does not also release them)."""
    h = hazard_at(p, addr, n)
    if h is None:
        if len(p._hz) >= _MAX_HAZARDS:
            p._hz.sort(key=lambda x: x[2])
            gone = p._hz.pop()
            p._log("too many stranded nonces: forgetting %d (invoice %s)" % (gone[2], gone[5]))
        h = [addr, acct, n, [], fees, iid, None, None]
        p._hz.append(h)
    h[3] = (h[3] + [x for x in hashes if x not in h[3]])[-_HAZARD_HASHES:]
    top = fees if h[6] is None or fees[0] > h[4][0] else h[4]  # above every variant
    if len(top) == 1:
        tx = {"gasPrice": _bump(top[0])}
        h[4] = [tx["gasPrice"]]
    else:
        tx = {"maxFeePerGas": _bump(top[0]), "maxPriorityFeePerGas": _bump(top[1])}
        h[4] = [tx["maxFeePerGas"], tx["maxPriorityFeePerGas"]]
    tx.update({"to": addr, "value": 0, "data": b"", "nonce": n, "chainId": p.chain.chain_id,
               "gas": 21000})
    raw = p.wallet.sign_transaction(tx, acct)
    h[6] = _hex(raw)
    h[7] = _hex(eth.transaction_hash(raw))
    p._save()
    send_hazard(p, h)


def send_hazard(p, h):
    try:
        p.chain.send_raw(h[6], h[7])
    except ChainError as e:  # a node that refuses a nonce gap: sent again later
        p._log("stranded nonce %d: cancellation not sent yet: %s" % (h[2], e))


def cancel_hazard(p, h):
    """Our sequence reached a stranded nonce: its cancellation becomes a record first."""
    p._hz.remove(h)
    p._log("nonce %d held a stranded payment of invoice %s: cancelled (%s)"
           % (h[2], h[5], h[7]))
    c = cancel_record(p, h[5], h[0], h[1], h[2])
    c["ov"] = h[3]  # the stranded variants this nonce must not mine
    c["v"].append({"h": h[7], "raw": h[6], "fee": h[4]})
    c["hash"] = h[7]
    p._recs[c["id"]] = c
    p._save()
    p._event("prepared", c)
    p._broadcast(c)


def heal(p, addr, base, stuck):
    """Sign again, at the chain's nonce, the payments stranded ahead of it (nonce order);
    keep the stranded nonces' cancellations in the node's pool; forget a stranded nonce
    once the chain shows what was mined there."""
    for h in [h for h in p._hz if h[0] == addr]:
        if h[2] >= base:
            if h[2] - base <= _RESEND_NEAR or not p._stepno % _RESEND_STEPS:
                send_hazard(p, h)
            continue
        r = None
        for x in [h[7]] + h[3]:
            r = p.chain.receipt(x)
            if r is not None:
                break
        if r is None or p.chain.nonce(addr, "latest") <= h[2]:
            continue  # no believable receipt yet: a node behind, or lying
        if r["hash"] != h[7] and r["status"] == 1:
            p._log("nonce %d was mined as invoice %s's stranded payment %s: the invoice was "
                   "PAID TWICE" % (h[2], h[5], r["hash"]))
        p._nf[addr] = max(p._nf.get(addr, 0), h[2] + 1)
        p._hz.remove(h)
        p._save()
    for r in stuck:
        try:
            if "of" in r:  # a cancellation stranded: its nonce is a hazard again
                strand_cancel(p, r)
            elif not r.get("cx"):
                p._log("invoice %s: nonce %d is past the chain's %d with a gap: stranded"
                       % (r["id"], r["n"], base))
                displaced(p, r, ahead=True)
        except ChainError as e:
            r["err"] = str(e)
            return


def strand_cancel(p, c):
    pay = p._recs.get(c["of"])
    hs = [v["h"] for v in pay["v"]] if pay and pay["n"] == c["n"] else []
    del p._recs[c["id"]]
    add_hazard(p, c["from"], c["acct"], c["n"], hs + c.get("ov", []) + [c["hash"]],
               c["v"][-1]["fee"], c["of"])


def cancel(p, rec):
    """Replace the transaction at rec's later nonce by a 0-value one to ourselves."""
    rec["cx"] = True
    for v in rec["v"]:
        v.pop("raw", None)  # the payment at this nonce is never sent again
    cancel_at(p, rec["id"], rec["from"], rec["acct"], rec["n"], rec["v"][-1]["fee"])


def cancel_record(p, iid, addr, acct, n):
    return {"id": "%s%s%d" % (iid, _CANCEL, n), "of": iid,
            "st": "prepared", "from": addr, "acct": acct, "to": addr,
            "amt": 0, "tok": None, "memo": "", "n": n, "gas": 21000, "v": [],
            "hash": None, "mined": None, "blk": None, "err": None, "att": 1,
            "t": p.clock.time(), "tb": 0, "ch": None}


def cancel_at(p, iid, addr, acct, n, last):
    if len(last) == 1:
        fees = {"gasPrice": _bump(last[0])}
    else:
        fees = {"maxFeePerGas": _bump(last[0]), "maxPriorityFeePerGas": _bump(last[1])}
    c = cancel_record(p, iid, addr, acct, n)
    tx = p._tx(c, fees)
    tx["gas"] = 21000
    p._add_variant(c, tx, capped=False)
    p._recs[c["id"]] = c
    p._save()
    p._event("prepared", c)
    p._broadcast(c)


def cancel_lost(p, rec):
    """The cancellation's nonce was used by another transaction: which one?"""
    pay = p._recs.get(rec["of"])
    hs = rec.get("ov") or ([v["h"] for v in pay["v"]] if pay else [])
    r = None
    for h in hs:
        r = p.chain.receipt(h)
        if r is not None:
            break
    if hs and r is None:
        rec.pop("gone", None)  # neither receipt yet: a node behind; look again
        return
    rec["st"] = "failed"
    if r is None:
        rec["err"] = "nonce %d was used by another transaction" % rec["n"]
    elif r["status"] == 1:
        rec["err"] = ("nonce %d was mined as invoice %s's payment %s: the invoice was "
                      "PAID TWICE" % (rec["n"], rec["of"], r["hash"]))
    else:
        rec["err"] = ("nonce %d was mined as invoice %s's payment %s, which reverted: "
                      "paid once" % (rec["n"], rec["of"], r["hash"]))
    p._save()
    p._log(rec["err"])
    p._event("failed", rec)


def displaced(p, rec, ahead=False):
    if not ahead:
        p._log("invoice %s: nonce %d was used by another transaction; signing again"
               % (rec["id"], rec["n"]))
    keep = (rec["n"], rec["v"], rec["hash"], rec["gas"])
    rec["v"] = []
    try:
        p._sign_new(rec, check_funds=False)
    except Exception:
        rec["n"], rec["v"], rec["hash"], rec["gas"] = keep
        raise
    p._log("invoice %s: signed again at nonce %d, %s" % (rec["id"], rec["n"], rec["hash"]))
    hs = [v["h"] for v in keep[1]]
    rec["old"] = (rec.get("old", []) + hs)[-2 * _HAZARD_HASHES:]
    if ahead:  # the stranded variants could still be mined if our nonce reached them
        add_hazard(p, rec["from"], rec["acct"], keep[0], hs, keep[1][-1]["fee"], rec["id"])
    rec.pop("gone", None)
    rec["st"] = "prepared"
    rec["under"] = False
    p._save()
    p._event("prepared", rec)
    p._broadcast(rec)


def reverify(p, rec, later):
    """A confirmed payment's receipt, looked at again (nonces.py): gone while its nonce is
    unused, the payment is "sent" again; else next look `later` steps on, or done."""
    r = p.chain.receipt(rec["mined"])
    if r is None and p.chain.nonce(rec["from"], "latest") <= rec["n"]:
        rec["st"] = "sent"
        rec["mined"] = rec["blk"] = None
        rec["tb"] = p.clock.time()
        rec.pop("rv", None)
        p._nf[rec["from"]] = min(p._nf.get(rec["from"], 0), rec["n"])
        rec["err"] = ("its receipt vanished and nonce %d is unused (a reorg, or a node that "
                      "lied): waiting for it again" % rec["n"])
        p._log("invoice %s: %s" % (rec["id"], rec["err"]))
    else:
        rec["rv"] -= 1
        if rec["rv"] > 0:
            p._rvat[rec["id"]] = p._stepno + later
            return
        rec.pop("rv", None)
    p._rvat.pop(rec["id"], None)
    p._save()
