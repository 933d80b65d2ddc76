"""What `make faults` checks after a run, from the outside: the chain, /status, /ledger.

    txs = chain_payments(devnet, payee)          every transfer to the payee, memo decoded,
                                                 up to block txs.block
    snaps = [snapshot(p) for p in plugs]         /status + /ledger at one instant (REPL)
    problems, figures = check_money(world, snaps, txs)   no double payment, chain ==
                                                 records == bills == metered energy

The payee's balance is read at txs.block, the block the scan ended on, so a payment mined
while the audit runs cannot make the balance and the transfers disagree; once audited,
the chain is scanned again a little later (late_transfers) so that a transaction the plug
signed earlier and the node mines late -- an invoice paid twice -- cannot hide after the
audit's snapshot.

Independent of the firmware: the PLUG1 memo (documented in firmware/plug/settle.py) is
decoded here again, so a memo the plug encodes wrongly shows up as a problem.
"""

import json
import os
from types import SimpleNamespace

UWH_PER_KWH = 10**9
BUCKET_S = 60  # the energy ledger's bucket
LATE_S = 5  # how long after the audit the chain is scanned again for late transfers


_MODULES = {}


def _plug_module(name):
    """firmware/plug/<name>.py loaded by path: the plug's own code (store, settle), without
    putting firmware/ on the host's import path."""
    if name not in _MODULES:
        import importlib.util

        from .paths import FIRMWARE, shim_micropython

        shim_micropython()
        spec = importlib.util.spec_from_file_location(
            "_plug_" + name, os.path.join(FIRMWARE, "plug", name + ".py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _MODULES[name] = mod
    return _MODULES[name]


def decode_memo(data):
    """(seq, t_start, t_end, [(code, energy_mwh, rate, amount), ...]) of a PLUG1 memo, decoded
    by the plug's own settle.decode_memo; ValueError if it is not one."""
    return _plug_module("settle").decode_memo(data)


class Payments(list):
    """chain_payments' answer: a list, plus `block`, the last block it scanned."""
    block = None


def chain_payments(devnet, payee, first=0, last=None):
    """Every transaction to `payee` in blocks `first`..`last` (default: the latest), oldest
    first, as dicts with from, value, nonce, hash, block, ok (receipt status 1) and memo
    (decoded, or the error text). The list's `block` is the last block scanned."""
    out = Payments()
    payee = payee.lower()
    latest = int(devnet.rpc("eth_blockNumber"), 16) if last is None else last
    out.block = latest
    for n in range(first, latest + 1):
        blk = devnet.rpc("eth_getBlockByNumber", hex(n), True)
        for tx in blk["transactions"]:
            if (tx.get("to") or "").lower() != payee:
                continue
            rc = devnet.receipt(tx["hash"])
            data = bytes.fromhex(tx["input"][2:])
            try:
                memo = decode_memo(data)
            except ValueError as e:
                memo = str(e)
            out.append({"from": tx["from"].lower(), "value": int(tx["value"], 16),
                        "nonce": int(tx["nonce"], 16), "hash": tx["hash"], "block": n,
                        "ok": int(rc["status"], 16) == 1, "memo": memo})
    return out


SNAPSHOT = """
import json
from plug import web
import sys
sys.stdout.write('SNAP{"status": ')
json.dump(plug.status(), sys.stdout)
sys.stdout.write(', "paid_ids": ')
json.dump(list(plug.payments._paid) if plug.payments else [], sys.stdout)
sys.stdout.write(', "ledger": ')
for chunk in web.ledger_chunks(web.Page(plug, 0, None)):  # the whole ledger, streamed
    sys.stdout.write(chunk)
print("}")
"""


def snapshot(p, timeout=60):
    """/status and /ledger of a plug taken at one instant (one exec at its REPL, so no
    read or billing step runs in between): {"status": ..., "ledger": ..., "paid_ids": the
    invoice ids of confirmed payments whose records the plug no longer keeps in full}."""
    out = p.mpremote(SNAPSHOT, timeout=timeout)
    line = [ln for ln in out.splitlines() if ln.startswith("SNAP")]
    if not line:
        raise RuntimeError("%s: no snapshot from the REPL: %s" % (p.name, out[-500:]))
    snap = json.loads(line[-1][4:])
    snap["name"] = p.name
    return snap


def check_money(world, snaps, txs, rates_wei=None, lost_uwh=0, late_s=LATE_S):
    """Problems (list of text) with the money, checked only from the outside:
    - each invoice (sender, memo seq) paid at most once on chain;
    - the payee's balance delta == sum of the successful transfers to it, both at txs.block;
    - per plug: transfers from its wallet == its confirmed payment records (hash, amount),
      each memo's amounts add up to the value, each item is priced at the quoted rates;
    - no payment left prepared or sent (signed, not confirmed) once the plug settled;
    - the energy the plug billed + what it has not yet billed == the energy it metered;
      billed ahead of metered only by what power cuts took from the ledger (`lost_uwh`,
      energy billed before a cut whose ledger checkpoint the cut then lost);
    - `late_s` later, no transfer mined after txs.block pays an invoice already paid or
      known to a plug at the snapshot (late_transfers).
    Returns (problems, figures)."""
    problems = []
    ok = [t for t in txs if t["ok"]]
    seen = {}
    for t in ok:
        if isinstance(t["memo"], str):
            problems.append("tx %s to the payee has no valid memo: %s" % (t["hash"], t["memo"]))
            continue
        k = (t["from"], t["memo"][0])
        if k in seen:
            problems.append("DOUBLE PAYMENT: invoice %d of %s paid by %s and %s"
                            % (k[1], k[0], seen[k], t["hash"]))
        seen[k] = t["hash"]
        if sum(it[3] for it in t["memo"][3]) != t["value"]:
            problems.append("tx %s pays %d but its memo items add up to %d"
                            % (t["hash"], t["value"], sum(it[3] for it in t["memo"][3])))
        problems += _check_pricing(t, rates_wei)
    chain_sum = sum(t["value"] for t in ok)
    delta = _payee_delta(world, txs)
    if delta != chain_sum:
        problems.append("payee balance grew by %d but transfers to it add up to %d (block %s)"
                        % (delta, chain_sum, getattr(txs, "block", "latest")))
    records_sum = 0
    ahead = 0
    for snap in snaps:
        probs, s, a = _check_plug(snap, ok, lost_uwh)
        problems += probs
        records_sum += s
        ahead += a
    if records_sum != chain_sum:
        problems.append("confirmed payment records add up to %d, the chain shows %d"
                        % (records_sum, chain_sum))
    figures = {"payments": len(ok), "reverted": len(txs) - len(ok), "paid_wei": chain_sum,
               "payee_delta_wei": delta, "billed_ahead_wh": round(ahead / 1e6, 1)}
    if late_s is not None and getattr(txs, "block", None) is not None \
            and getattr(world, "devnet", None) is not None:
        late, probs = late_transfers(world.devnet, world.payee, snaps, txs, late_s)
        problems += probs
        figures["late_transfers"] = len(late)
    return problems, figures


def _payee_delta(world, txs):
    """The payee's balance growth at txs.block (the block the transfer scan ended on), or
    now when the scan does not say (a world without a node: payee_received())."""
    block = getattr(txs, "block", None)
    devnet = getattr(world, "devnet", None)
    if block is None or devnet is None:
        return world.payee_received()
    return int(devnet.rpc("eth_getBalance", world.payee, hex(block)), 16) - world.payee_start


def late_transfers(devnet, payee, snaps, txs, wait_s=LATE_S):
    """Wait `wait_s`, then scan the blocks after txs.block: (the late transfers from the
    plugs' wallets, problems). A plug that keeps billing pays new invoices later, so a late
    transfer is a problem when its invoice was already paid on chain at the audit or known
    to the plug then (a payment record or a kept paid id: the audit required none of them
    in flight), or when it carries no valid memo: a transaction signed earlier and mined
    late, i.e. an invoice paid twice."""
    import time

    time.sleep(wait_s)
    later = chain_payments(devnet, payee, first=txs.block + 1)
    wallets = set()
    known = set()  # (wallet, invoice seq) the plugs had paid at the snapshot
    for snap in snaps:
        addr = {w["account"]: w["address"].lower() for w in snap["status"].get("wallets", [])}
        wallets |= set(addr.values())
        ids = [r["id"] for r in snap["ledger"]["payments"] if r["st"] == "confirmed"]
        for iid in ids + list(snap.get("paid_ids", [])):
            if "~" not in iid:  # "<seq>-<account>"; not a cancellation ("<id>~cancel<n>")
                seq, acct = iid.split("-")
                known.add((addr.get(int(acct)), int(seq)))
    paid = {(t["from"], t["memo"][0]) for t in txs
            if t["ok"] and not isinstance(t["memo"], str)}
    late, probs = [], []
    for t in later:
        if t["from"] not in wallets:
            continue
        late.append(t)
        if not t["ok"]:
            continue  # reverted: moved no money
        what = "late transfer %s (nonce %d, block %d) to the payee after the audit (block %d)" \
            % (t["hash"], t["nonce"], t["block"], txs.block)
        if isinstance(t["memo"], str):
            probs.append("%s: no valid memo: %s" % (what, t["memo"]))
        elif (t["from"], t["memo"][0]) in paid:
            probs.append("DOUBLE PAYMENT: %s pays invoice %d, paid at the audit"
                         % (what, t["memo"][0]))
        elif (t["from"], t["memo"][0]) in known:
            probs.append("DOUBLE PAYMENT: %s pays invoice %d, which the plug had recorded "
                         "paid at the audit" % (what, t["memo"][0]))
    return late, probs


def _check_pricing(t, rates_wei):
    """Each memo item: amount == energy x mean rate within rounding; rate among the quoted."""
    probs = []
    if not rates_wei:
        return probs
    lo, hi = min(rates_wei), max(rates_wei)
    for code, e_mwh, rate, amount in t["memo"][3]:
        if e_mwh and not lo <= rate <= hi:
            probs.append("tx %s: %s priced at %d per kWh, outside the quoted %d..%d"
                         % (t["hash"], code, rate, lo, hi))
        want = e_mwh * rate // 10**6
        # floors: energy to the mWh (< rate/1e6), the mean rate to the unit (< e_kwh), carry 1
        tol = hi // 10**6 + e_mwh // 10**6 + 2
        if abs(amount - want) > tol:
            probs.append("tx %s: %s billed %d for %d mWh at %d/kWh (expected %d +- %d)"
                         % (t["hash"], code, amount, e_mwh, rate, want, tol))
    return probs


def _check_plug(snap, ok_txs, lost_uwh=0):
    """(problems, sum of its confirmed payments, uWh billed ahead of its metered totals)."""
    probs = []
    st, led = snap["status"], snap["ledger"]
    p = SimpleNamespace(name=snap["name"])
    accounts = {w["address"].lower(): w["account"] for w in st.get("wallets", [])}
    mine = [t for t in ok_txs if t["from"] in accounts]
    memos = [t for t in mine if not isinstance(t["memo"], str)]
    recs = [r for r in led["payments"] if r["st"] == "confirmed"]
    hashes = {t["hash"].lower(): t for t in mine}
    for r in recs:
        t = hashes.get((r["mined"] or r["hash"] or "").lower())
        if t is None:
            probs.append("%s: confirmed payment %s (%s) is not on chain" % (p.name, r["id"],
                                                                          r["mined"]))
        elif t["value"] != r["amt"]:
            probs.append("%s: payment %s records %d, chain shows %d" % (p.name, r["id"], r["amt"],
                                                                     t["value"]))
    # the plug knows every invoice it paid: in its ledger (live and history) or by id
    paid_ids = snap.get("paid_ids", [])
    known = {r["id"] for r in led["payments"]} | set(paid_ids)
    oldest = min((int(i.split("-")[0]) for i in paid_ids), default=0)
    for t in memos:
        iid = _invoice_id(t, accounts)
        if iid not in known and not (len(paid_ids) >= KEEP_IDS and t["memo"][0] < oldest):
            probs.append("%s: on-chain payment %s (invoice %s) unknown to the plug"
                         % (p.name, t["hash"], iid))
    for r in led["payments"]:
        if r["st"] == "failed":
            probs.append("%s: payment %s failed: %s" % (p.name, r["id"], r["err"]))
        elif r["st"] in ("prepared", "sent"):
            probs.append("%s: payment %s still %s after settling (nonce %s, %s)"
                         % (p.name, r["id"], r["st"], r["n"], r["hash"]))
    # invoices paid on chain tile time per channel without overlap
    spans = {}
    for t in sorted(memos, key=lambda t: t["memo"][1]):
        for code, _e, _rate, _amt in t["memo"][3]:
            spans.setdefault(code, []).append((t["memo"][1], t["memo"][2], t["hash"]))
    for code, sp in spans.items():
        for a, b in zip(sp, sp[1:]):
            # a memo's period spans all channels of its wallet, whose billing cursors differ,
            # so consecutive periods may overlap for one channel; energy billed twice shows
            # in the balance below. An invoice starting before the previous one is wrong.
            if b[0] < a[0]:
                probs.append("%s: %s billed twice: [%d, %d) in %s overlaps [%d, %d) in %s"
                             % (p.name, code, a[0], a[1], a[2], b[0], b[1], b[2]))
    # metered energy == billed (invoices the plug lists + paid ones it no longer lists, from
    # their memos on chain + unsettled lines) + unbilled
    billed = {}
    listed = set()
    n_items = 0
    for inv in led["invoices"]:
        listed.add(inv["id"])
        for it in inv["items"]:
            billed[it["channel"]] = billed.get(it["channel"], 0) + it["energy_mwh"] * 1000
            n_items += 1
    for t in memos:
        if _invoice_id(t, accounts) not in listed:
            for code, e_mwh, _rate, _amt in t["memo"][3]:
                billed[code] = billed.get(code, 0) + e_mwh * 1000
                n_items += 1
    for ln in led["unsettled"]:
        billed[ln["channel"]] = billed.get(ln["channel"], 0) + ln["energy_uwh"]
    ahead = 0
    for key, ch in st["channels"].items():
        got = billed.get(key, 0) + ch["unbilled_uwh"]
        tol = 1000 * (n_items + 1)
        over = got - ch["import_uwh"]
        if over > tol:
            ahead += over
        if -over > tol or over > tol + lost_uwh:
            probs.append("%s: %s metered %d uWh but billed + unbilled is %d uWh"
                         % (p.name, key, ch["import_uwh"], got))
    if lost_uwh and ahead > lost_uwh:
        probs.append("%s: billed %d uWh more than metered, more than the power cuts lost (%d)"
                     % (p.name, ahead, lost_uwh))
    return probs, sum(r["amt"] for r in recs) + _pruned_sum(led, mine), ahead


KEEP_IDS = 32  # payments.py keeps the ids of this many older confirmed invoices


def _invoice_id(t, accounts):
    """The plug's id of the invoice a transfer pays: "<memo seq>-<wallet account>"."""
    return "%d-%d" % (t["memo"][0], accounts[t["from"]])


def _pruned_sum(led, mine):
    known = {(r["mined"] or r["hash"] or "").lower() for r in led["payments"]}
    return sum(t["value"] for t in mine if t["hash"].lower() not in known)


def flash_load(state_dir, name):
    """What the plug's flash holds under `name` (None if nothing), read with the plug's own
    store code, as its next boot will read it."""
    root = os.path.join(state_dir, "state")
    if not os.path.isdir(root):
        return None
    return _plug_module("store").Store(root).load(name)


def read_checkpoint(state_dir):
    """The energy checkpoint a plug restores at boot: ({key: import_uwh}, ledger time of the
    last read in it) or (None, None)."""
    data = flash_load(state_dir, "ledger")
    if not data:
        return None, None
    return {k: v[0] for k, v in data["ch"].items()}, data.get("now")


def unfinished_payments(state_dir):
    """Ids of the payments the flash holds as prepared or sent (signed, not yet confirmed)."""
    recs = (flash_load(state_dir, "payments") or {}).get("recs", {})
    return sorted(r["id"] for r in recs.values() if r.get("st") in ("prepared", "sent"))


def sim_now(state_dir, at=None):
    """The plug's clock (plug seconds) at host time `at`, from its sim.json."""
    import time

    with open(os.path.join(state_dir, "sim.json")) as f:
        s = json.load(f)
    return s["start"] + ((time.time() if at is None else at) - s["anchor"]) * s["speed"]
