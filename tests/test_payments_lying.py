"""A node that lies about the chain, on a real anvil behind a lying proxy, under
MicroPython: nonces far ahead or behind, receipts for transactions it swallowed, another
chain id, malformed replies. It may delay payments, never stop them or pay one twice:
once it answers honestly every invoice is paid on chain exactly once, and the payments
store stays small throughout."""

import json

import pytest
from hostile_rpc import HostileRPC

from paytest import PAYEE, Plug, config, wait_for

pytestmark = pytest.mark.slow

AMOUNT = 10**12
WINDOW = 4  # plug.nonces._WINDOW
STORE_MAX = 32768  # bytes: the payments store's bound (README, "Bounded state")
HEAP = "256k"  # paytest.Plug's default too

# The plug's money loop, as app.money_step runs it: every open invoice is handed to pay()
# (refused ones stay open), then step(); one pass per tick, plug time 30 s apart. At each
# phase the plug prints "PHASE <name>" and waits for the test to switch the node.
DRIVER = """
import os, json
clock = ManualClock()
p = make(ST, clock, urls=[%(url)r])
OPEN = []
SEQ = [0]
STATS = {'unfinished': 0, 'store': 0}
def store_size():
    n = 0
    for f in os.listdir(ST):
        if f.startswith('payments'):
            n = max(n, os.stat(ST + '/' + f)[6])
    return n
def tick(new=False):
    if new:
        OPEN.append(SEQ[0])
        SEQ[0] += 1
    for i in list(OPEN):
        try:
            p.pay('I-%%d' %% i, %(payee)r, %(amount)d + i)
            OPEN.remove(i)
        except Exception as e:
            print('PAYERR', i, repr(e))
    try:
        p.step()
    except Exception as e:
        print('STEP RAISED', repr(e))
    clock.t += 30
    u = p.unfinished()
    STATS['unfinished'] = max(STATS['unfinished'], len(u))
    STATS['store'] = max(STATS['store'], store_size())
    time.sleep_ms(%(pause)d)
def phase(name):
    print('PHASE', name)
    sys.stdin.readline()
def done():
    return not OPEN and not p.unfinished()
"""


# What an older firmware did: no window, a nonce is whatever the node says (records made
# this way are what a lie left on the flash of a plug updated since).
_OLD_FIRMWARE = """
p = make(ST, urls=[%r])
def nn(rec):
    return p.chain.nonce(rec['from'], 'pending') + len(p.unfinished())
p._next_nonce = nn
"""


REPORT = """
print('STATS', json.dumps(STATS))
print('OPEN', json.dumps(OPEN))
print('STATES', json.dumps([(p.get('I-%d' % i) or {}).get('st') for i in range(SEQ[0])]))
for r in p.records():
    show(r)
"""


def _start(plug, url, body, pause=20):
    code = DRIVER % {"url": url, "payee": PAYEE, "amount": AMOUNT, "pause": pause}
    return plug.start(code + body + REPORT)


def _phases(proc, h, lies):
    """Answer the plug's PHASE lines: lies[name] is what the node does from then on."""
    for name, lie in lies:
        wait_for(proc, "PHASE %s" % name, timeout=180)
        h.lie = lie
        proc.stdin.write("\n")
        proc.stdin.flush()


def _result(proc):
    out, err = proc.communicate(timeout=300)
    if proc.returncode != 0:
        raise AssertionError("plug exited %d: %s %s" % (proc.returncode, out[-3000:],
                                                       err[-3000:]))
    out = proc.__dict__.get("_pending", [""])[0] + out
    lines = proc.__dict__.get("lines", []) + out.splitlines()
    stats = json.loads([ln for ln in lines if ln.startswith("STATS ")][-1][6:])
    still_open = json.loads([ln for ln in lines if ln.startswith("OPEN ")][-1][5:])
    recs = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    states = json.loads([ln for ln in lines if ln.startswith("STATES ")][-1][7:])
    return stats, still_open, (states, recs), "\n".join(lines)


def _paid_on_chain(d, plug, n_invoices):
    """Amounts the plug's wallet sent to PAYEE, per invoice (amounts are AMOUNT + i)."""
    paid = {}
    latest = int(d.rpc("eth_blockNumber"), 16)
    for b in range(latest + 1):
        for tx in d.rpc("eth_getBlockByNumber", hex(b), True)["transactions"]:
            if tx["from"].lower() != plug.address.lower():
                continue
            to = (tx.get("to") or "").lower()
            assert to in (PAYEE.lower(), plug.address.lower()), "paid an unapproved %s" % to
            rc = d.receipt(tx["hash"])
            if to == PAYEE.lower() and int(rc["status"], 16) == 1:
                i = int(tx["value"], 16) - AMOUNT
                paid[i] = paid.get(i, 0) + 1
    return paid


def _check_all_paid_once(d, plug, stats, still_open, recs, n_invoices, out):
    states, recs = recs
    assert still_open == [], out[-3000:]
    # every invoice confirmed (live or in the history), every live record finished well
    assert states == ["confirmed"] * n_invoices, out[-3000:]
    assert all(r["st"] == "confirmed" for r in recs), out[-3000:]
    paid = _paid_on_chain(d, plug, n_invoices)
    assert paid == {i: 1 for i in range(n_invoices)}, "paid per invoice: %s" % paid
    assert d.balance(PAYEE) == sum(AMOUNT + i for i in range(n_invoices))
    assert stats["store"] < STORE_MAX


def test_nonces_a_node_lied_far_ahead_heal_and_every_invoice_is_paid_once(tmp_path, devnet):
    plug = Plug(tmp_path / "s", config(devnet.url), heap=HEAP)
    devnet.fund(plug.address, 10**18)
    with HostileRPC(upstream=devnet.url) as h:
        body = """
for i in range(3):
    tick(new=True)
phase('lie')
for i in range(24):
    tick(new=(i % 2 == 0))
print('LIED', json.dumps(STATS), max(r['n'] or 0 for r in p.records()))
phase('honest')
for i in range(150):
    tick()
    if done():
        break
"""
        proc = _start(plug, h.base, body)
        _phases(proc, h, [("lie", "ahead"), ("honest", None)])
        stats, still_open, recs, out = _result(proc)
        assert h.lied > 0
    lied, top = [ln for ln in out.splitlines() if ln.startswith("LIED ")][-1][5:].rsplit(" ", 1)
    # while the node lied: at most WINDOW payments signed ahead of the chain
    assert json.loads(lied)["unfinished"] <= WINDOW, out[-3000:]
    assert int(top) < 1000 + 3 + WINDOW
    _check_all_paid_once(devnet, plug, stats, still_open, recs, 15, out)


def test_nonces_a_node_lied_behind_do_not_replace_or_pay_twice(tmp_path, devnet):
    plug = Plug(tmp_path / "s", config(devnet.url), heap=HEAP)
    devnet.fund(plug.address, 10**18)
    with HostileRPC(upstream=devnet.url) as h:
        body = """
for i in range(4):
    tick(new=True)
phase('lie')
for i in range(16):
    tick(new=(i % 2 == 0))
phase('honest')
for i in range(100):
    tick()
    if done():
        break
"""
        proc = _start(plug, h.base, body)
        _phases(proc, h, [("lie", "behind"), ("honest", None)])
        stats, still_open, recs, out = _result(proc)
        assert h.lied > 0
    _check_all_paid_once(devnet, plug, stats, still_open, recs, 12, out)


def test_a_receipt_for_a_swallowed_transaction_does_not_close_the_payment(tmp_path, devnet):
    plug = Plug(tmp_path / "s", config(devnet.url), heap=HEAP)
    devnet.fund(plug.address, 10**18)
    with HostileRPC(upstream=devnet.url) as h:
        body = """
tick(new=True)
phase('lie')
for i in range(10):
    tick(new=(i % 3 == 0))
print('FAKED', json.dumps([(r['id'], r['st']) for r in p.records()]))
phase('honest')
for i in range(100):
    tick()
    if done():
        break
"""
        proc = _start(plug, h.base, body)
        _phases(proc, h, [("lie", "fake_receipt"), ("honest", None)])
        stats, still_open, recs, out = _result(proc)
        assert h.swallowed, "the node swallowed no transaction"
    faked = json.loads([ln for ln in out.splitlines() if ln.startswith("FAKED ")][-1][6:])
    # nothing swallowed was taken for paid while the node lied
    assert [i for i, st in faked if st == "confirmed"] == ["I-0"], out[-3000:]
    _check_all_paid_once(devnet, plug, stats, still_open, recs, 5, out)


def test_every_lie_in_turn_then_honesty_pays_every_invoice_once(tmp_path, devnet):
    plug = Plug(tmp_path / "s", config(devnet.url), heap=HEAP)
    devnet.fund(plug.address, 10**18)
    with HostileRPC(upstream=devnet.url) as h:
        lies = ["ahead", "fake_receipt", "behind", "wrong_chain", "malformed", "ahead"]
        body = "tick(new=True)\n"
        for k, _ in enumerate(lies):
            body += "phase('lie%d')\nfor i in range(10):\n    tick(new=(i %% 3 == 0))\n" % k
        body += "phase('honest')\nfor i in range(150):\n    tick()\n    if done():\n" \
                "        break\n"
        proc = _start(plug, h.base, body)
        _phases(proc, h, [("lie%d" % k, lie) for k, lie in enumerate(lies)]
                + [("honest", None)])
        stats, still_open, recs, out = _result(proc)
    _check_all_paid_once(devnet, plug, stats, still_open, recs, 1 + 4 * len(lies), out)


def test_a_store_left_with_payments_stranded_far_ahead_heals(tmp_path, devnet):
    # what an older firmware left on the flash after a nonce lie: payments signed at nonces
    # the chain can never reach, and a later one on top of them
    plug = Plug(tmp_path / "s", config(devnet.url), heap=HEAP)
    devnet.fund(plug.address, 10**18)
    with HostileRPC(upstream=devnet.url) as h:
        h.lie = "ahead"
        # the old firmware had no window: three signed at the lied nonces
        plug.run(_OLD_FIRMWARE % h.base + "for i in range(3):\n"
                 "    p.pay('I-%%d' %% i, %r, %d + i)\n" % (PAYEE, AMOUNT))
    recs = plug.records("p = make(ST)\n")
    assert sorted(r["n"] for r in recs) == [1000, 1001, 1002]
    out = plug.run("""
clock = ManualClock()
p = make(ST, clock)
for i in range(60):
    p.step()
    clock.t += 30
    if not p.unfinished():
        break
    time.sleep_ms(20)
for r in p.records():
    show(r)
""")
    recs = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    assert all(r["st"] == "confirmed" for r in recs), out[-3000:]
    assert sorted(r["n"] for r in recs) == [0, 1, 2]  # each signed again once
    assert _paid_on_chain(devnet, plug, 3) == {0: 1, 1: 1, 2: 1}
    # the stranded nonces stay taken by the plug's cancellations, on its flash
    hz = plug.run("p = make(ST)\nprint('HZ', sorted(h[2] for h in p._hz))\n")
    assert "HZ [1000, 1001, 1002]" in hz


def test_a_stranded_payment_the_node_keeps_is_cancelled_before_its_nonce_is_reached(
        tmp_path, devnet, monkeypatch):
    # a lie of +2: the payment waits in anvil's pool at nonce 2, and would be mined as soon
    # as the plug's own payments fill nonces 0 and 1
    import hostile_rpc

    monkeypatch.setattr(hostile_rpc, "AHEAD", 2)
    plug = Plug(tmp_path / "s", config(devnet.url), heap=HEAP)
    devnet.fund(plug.address, 10**18)
    with HostileRPC(upstream=devnet.url) as h:
        h.lie = "ahead"
        plug.run(_OLD_FIRMWARE % h.base + "p.pay('I-0', %r, %d)\n" % (PAYEE, AMOUNT))
    assert [r["n"] for r in plug.records("p = make(ST)\n")] == [2]
    out = plug.run("""
import json
clock = ManualClock()
p = make(ST, clock)
for i in range(3):  # healed first: I-0 signed again at nonce 0
    p.step()
    clock.t += 30
print('HEALED', json.dumps([(r['id'], r['n'], r['st']) for r in p.records()]), len(p._hz))
OPEN = [1, 2]
for i in range(40):
    for k in list(OPEN):
        try:
            p.pay('I-%%d' %% k, %r, %d + k)
            OPEN.remove(k)
        except Exception as e:
            print('PAYERR', k, repr(e))
    p.step()
    clock.t += 30
    if not OPEN and not p.unfinished() and not p._hz:
        break
    time.sleep_ms(20)
print('LEFT', json.dumps([OPEN, len(p.unfinished()), p._hz]))
""" % (PAYEE, AMOUNT))
    assert 'HEALED [["I-0", 0, "confirmed"]] 1' in out, out[-3000:]
    assert 'LEFT [[], 0, []]' in out, out[-3000:]
    assert _paid_on_chain(devnet, plug, 3) == {0: 1, 1: 1, 2: 1}
    # nonce 2 went to the plug's cancellation (0 to itself), not to invoice I-0 again
    assert devnet.nonce(plug.address) == 4, out[-3000:]
    txs = [devnet.rpc("eth_getBlockByNumber", hex(b), True)["transactions"]
           for b in range(int(devnet.rpc("eth_blockNumber"), 16) + 1)]
    at2 = [t for blk in txs for t in blk if t["from"].lower() == plug.address.lower()
           and int(t["nonce"], 16) == 2]
    assert at2[0]["to"].lower() == plug.address.lower() and int(at2[0]["value"], 16) == 0
