"""The payment history on the flash (firmware/plug/history.py), on MicroPython with the
64 KB heap: append-only CRC-checked records rotated over a bounded set of segment files,
carried totals of what rotated out, torn tails and corrupt records skipped, paging; and
the move of finished payments from the live state into it survives a power cut at any
point without losing a record or listing one twice."""

import json
import os

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tools import mp

TESTS = os.path.dirname(os.path.abspath(__file__))
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def run_ops(root, ops, segs=3, seg_bytes=1024):
    from paytest import build_dir  # the compiled tree, as the plug runs it

    out = mp.run(path=os.path.join(TESTS, "history_ops.py"), args=[str(root), str(segs),
                                                                   str(seg_bytes)],
                 heap="64k", path_dirs=build_dir(), input=json.dumps(ops))
    return [json.loads(x) for x in out.splitlines()]


def test_rotation_bounds_the_files_and_carries_the_totals(tmp_path):
    ops = [["add", 30, 40, "confirmed", None], ["add", 10, 0, "failed", None],
           ["add", 20, 10, "confirmed", TOKEN], ["restart"], ["read", 0, 1000]]
    rows = run_ops(tmp_path, ops)
    held, carried, got, sizes, dup, paid = rows[-1]
    assert len(sizes) <= 3 and max(sizes) <= 1024 and not dup
    assert held + carried["n"] == 60 and carried["n"] > 0  # it rotated
    # what is held is the newest records, in order
    assert got == ["%d-0" % i for i in range(60 - held, 60)]
    # carried + held reconcile: confirmed count and the sums per asset
    all_conf = [i for i in range(60) if i < 30 or i >= 40]
    held_ids = set(range(60 - held, 60))
    assert carried["confirmed"] == len([i for i in all_conf if i not in held_ids])
    native = sum(i for i in range(30) if i not in held_ids)
    token = sum(i for i in range(40, 60) if i not in held_ids)
    assert carried["paid"].get("native", 0) == native
    assert carried["paid"].get(TOKEN, 0) == token
    # the index's sums: every confirmed record ever appended, carried or held
    assert paid == [sum(range(30)), sum(range(40, 60))]
    assert rows[-2][:2] == rows[-1][:2]  # a restart reads back the same


def test_a_torn_tail_is_skipped_and_never_breaks_later_appends(tmp_path):
    rows = run_ops(tmp_path, [["add", 5, 0, "confirmed", None], ["tear", 7],
                              ["add", 2, 0, "confirmed", None], ["restart"],
                              ["read", 0, 100]], segs=4, seg_bytes=4096)
    assert [r[0] for r in rows] == [5, 4, 6, 6, 6]
    assert rows[-1][2] == ["0-0", "1-0", "2-0", "3-0", "5-0", "6-0"]
    seg = (tmp_path / "history" / "0").read_bytes()
    assert seg.count(b"\n") == 7  # the torn fragment ended on its own line


def test_a_corrupt_record_is_skipped_and_the_others_stay(tmp_path):
    rows = run_ops(tmp_path, [["add", 6, 0, "confirmed", None], ["flip", 100],
                              ["add", 1, 0, "confirmed", None], ["read", 0, 100]],
                   segs=4, seg_bytes=4096)
    got = rows[-1][2]
    assert len(got) == 6 and "6-0" in got  # readers skip the spoiled record
    # the index counted it when it was appended (and paid): it is not read back at start
    assert rows[1][0] == 6 and rows[-1][0] == 7 and rows[-1][5][0] == sum(range(7))
    assert got == sorted(got, key=lambda i: int(i.split("-")[0]))


add_op = st.tuples(st.just("add"), st.integers(1, 12), st.integers(0, 150),
                   st.sampled_from(["confirmed", "failed"]), st.sampled_from([None, TOKEN]))
ops_st = st.lists(st.one_of(
    add_op, add_op, add_op,
    st.tuples(st.just("tear"), st.integers(1, 8)),
    st.tuples(st.just("lag"), st.integers(1, 5), st.integers(0, 150),
              st.sampled_from(["confirmed", "failed"]), st.sampled_from([None, TOKEN])),
    st.tuples(st.just("restart")),
    st.tuples(st.just("read"), st.integers(0, 60), st.integers(1, 25)),
), min_size=1, max_size=25)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops_st, segs=st.integers(1, 4), seg_bytes=st.sampled_from([400, 700, 1500]))
# found in CI: a tear of only the newline, then an append, revived the torn record
@example(ops=[("add", 1, 0, "confirmed", None)] * 2 + [("tear", 1), ("add", 1, 0, "confirmed",
                                                                     None), ("tear", 1)],
         segs=1, seg_bytes=400)
def test_history_promises_hold_for_any_sequence(tmp_path_factory, ops, segs, seg_bytes):
    """Held + carried == every record appended but those a tear cut off; what is held is
    the newest of them, in order, paged exactly; carried sums are what rotated out; the
    index's sums are those of every confirmed record alive, also when its saves were lost
    (lag); at most `segs` files of at most `seg_bytes`; nothing twice."""
    root = tmp_path_factory.mktemp("hist")
    ops = [list(o) for o in ops]
    rows = run_ops(root, ops, segs, seg_bytes)
    assert len(rows) == len(ops)
    alive = []  # (number, state, token, amount) of every record not torn off, in order
    nxt = 0
    added_since_tear = False
    prev_held = 0
    for op, (held, carried, got, sizes, dup, paid) in zip(ops, rows):
        if op[0] in ("add", "lag"):
            for _ in range(op[1]):
                alive.append((nxt, op[3], op[4] or "native"))
                nxt += 1
            added_since_tear = True
        elif op[0] == "tear":
            # the cut lands in the newest record, unless no record was appended since the
            # last tear (it cuts the fragment) or the newest segment holds none
            if added_since_tear and prev_held:
                alive.pop()
            added_since_tear = False
        assert not dup
        assert len(sizes) <= segs and all(s <= seg_bytes for s in sizes), sizes
        assert held + carried["n"] == len(alive), (op, held, carried)
        gone = alive[:carried["n"]]
        assert carried["confirmed"] == len([a for a in gone if a[1] == "confirmed"])
        for asset in ("native", TOKEN):
            assert carried["paid"].get(asset, 0) == sum(a[0] for a in gone if a[1] ==
                                                         "confirmed" and a[2] == asset)
        # the index's sums: every confirmed record alive, carried or held
        assert paid == [sum(a[0] for a in alive if a[1] == "confirmed" and a[2] == asset)
                        for asset in ("native", TOKEN)], (op, paid)
        if op[0] == "read":
            want = alive[carried["n"]:][op[1]:op[1] + op[2]]
            assert got == ["%d-0" % a[0] for a in want], (op, got)
        prev_held = held


# ---- the move from the live payments state into the history, cut at every point ----------

MOVE = r"""
import json, os
import plug.history as H
import plug.store as S
from plug.payments import Payments
from plug.web import Page

ROOT = %r
TOTAL = 14


class Crash(Exception):
    pass


budget = [None]  # steps (writes, renames, removes) until the power cut; None: no cut


def step():
    if budget[0] is not None:
        budget[0] -= 1
        if budget[0] < 0:
            raise Crash()


class F:
    def __init__(self, f):
        self.f = f

    def write(self, b):
        if budget[0] == 0:  # the cut lands in this write: half of it reaches the flash
            self.f.write(bytes(b)[:len(b) // 2])
        step()
        return self.f.write(b)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.f.close()


def copen(path, mode="r"):
    f = open(path, mode)
    return F(f) if "w" in mode or "a" in mode else f


class O:
    def rename(self, a, b):
        step()
        os.rename(a, b)

    def remove(self, p):
        step()
        os.remove(p)

    def stat(self, p):
        return os.stat(p)

    def mkdir(self, p):
        return os.mkdir(p)

    def listdir(self, p):
        return os.listdir(p)


S.open = H.open = copen
S.os = H.os = O()


class SmallHistory(H.History):  # two small segments: it rotates during the moves
    def __init__(self, store, log=None):
        super().__init__(store, segs=2, seg_bytes=600, log=log)


H.History = SmallHistory  # what Payments.history builds


class Clock:
    def time(self):
        return 1000


def rec(i):
    return {"id": "%%d-0" %% i, "st": "confirmed", "att": 1, "from": "0x01", "to": "0x02",
            "amt": 1000 + i, "tok": None, "n": i, "hash": "0x%%064x" %% i, "mined": None,
            "blk": i, "err": None, "memo": "", "t": 100 + i, "v": [{"h": "0x%%064x" %% i}]}


def payments(store):
    return Payments(store, None, None, {}, Clock(), log=lambda m: None)


class Plug:
    pass


results = []
k = 0
while True:
    root = ROOT + "/%%d" %% k
    store = S.Store(root)
    store.save("payments", {"recs": dict((r["id"], r) for r in map(rec, range(TOTAL))),
                            "paid": [], "day": 0, "spent": {}})
    p = payments(store)
    budget[0] = k
    cut = False
    try:
        p._save()  # moves the 6 oldest of the 14 finished records
    except Crash:
        cut = True
    budget[0] = None
    store = S.Store(root)  # the plug boots again
    p = payments(store)
    p._save()  # the next save finishes the move
    plug = Plug()
    plug.payments = p
    ids = [r["id"] for r in Page(plug, 0, None).records()]
    hist = [r["id"] for r in p.history.read()]
    c = p.history.carried()
    listed_sum = sum(r["amt"] for r in Page(plug, 0, None).records())
    results.append([k, cut, len(ids), len(set(ids)), len(hist), len(set(hist)), c["n"],
                    c["paid"].get("native", 0) + listed_sum, len(p.records())])
    if not cut:
        break
    k += 1
print(json.dumps(results))
"""


def test_a_power_cut_anywhere_in_the_move_loses_nothing_and_lists_nothing_twice(tmp_path):
    from paytest import build_dir  # the compiled tree, as the plug runs it

    out = mp.run(MOVE % str(tmp_path), heap="1m", path_dirs=build_dir())
    rows = json.loads(out.strip().splitlines()[-1])
    total, total_sum = 14, sum(1000 + i for i in range(14))
    assert len(rows) > 10 and rows[-1][1] is False  # every step cut once, then a clean run
    for k, _cut, n_listed, n_unique, n_hist, n_hist_unique, carried, amount, live in rows:
        assert n_listed == n_unique and n_hist == n_hist_unique, ("listed twice", k)
        assert n_listed + carried == total, ("lost", k)
        assert amount == total_sum, ("sums", k)
        assert live == 8, k


REFUSE = r"""
import json
from plug.payments import Payments
from plug.store import Store

PAYEE = "0x2546BcD3c84621e976D8185a91A922aE77ECEc30"


class Clock:
    def time(self):
        return 1000


def rec(i, st):
    return {"id": "%%d-0" %% i, "st": st, "att": 1, "from": PAYEE, "to": PAYEE, "amt": 5,
            "tok": None, "n": i, "hash": "0x%%064x" %% i, "mined": "0x%%064x" %% i, "blk": i,
            "err": None, "memo": "0x504c5547", "t": i, "v": []}


store = Store(%r)
recs = [rec(i, "confirmed") for i in range(1, 21)] + [rec(i, "failed") for i in range(21, 29)]
store.save("payments", {"recs": dict((r["id"], r) for r in recs), "paid": [], "day": 0,
                        "spent": {}})
p = Payments(store, None, None, {}, Clock(), log=lambda m: None)
p._save()
p._paid = []  # as if its id had left the list of the last confirmed ids
p._save()
p = Payments(Store(%r), None, None, {}, Clock(), log=lambda m: None)  # a reboot
live = sorted(int(r["id"].split("-")[0]) for r in p.records())
again = p.pay("3-0", PAYEE, 5)  # the chain (None) is never asked: nothing is signed
print(json.dumps([live, p.history.count(), again["st"], again.get("mined"),
                  p.get("22-0")["st"], p.get("99-0")]))
"""


def test_an_invoice_in_the_history_is_never_paid_again(tmp_path):
    from paytest import build_dir

    out = mp.run(REFUSE % (str(tmp_path), str(tmp_path)), heap="256k", path_dirs=build_dir())
    live, held, st, mined, failed_st, unknown = json.loads(out.strip().splitlines()[-1])
    assert live == list(range(13, 21)) + list(range(25, 29))  # 8 newest done, 4 failed
    assert held == 16 and st == "confirmed" and mined == "0x%064x" % 3
    assert failed_st == "failed" and unknown is None


IDS = """
import gc, sys
from plug.payments import Payments
from plug.store import Store

store = Store(%r)
if sys.argv[-1] == "save":  # what a plug that paid 256 invoices since they moved holds
    store.save("payments", {"recs": {}, "paid": ["%%d-0" %% i for i in range(1, 257)],
                            "day": 0, "spent": {}, "hi": 256, "arch": 256})
else:
    gc.collect()
    a = gc.mem_alloc()
    p = Payments(store, None, None, {}, None, log=lambda m: None)
    gc.collect()
    print(gc.mem_alloc() - a, p.get("256-0")["st"])
"""


def test_the_ids_of_paid_invoices_kept_in_the_heap_are_bounded(tmp_path):
    # a plug that has paid for weeks keeps the ids of its last confirmed invoices to refuse
    # paying one again; 256 of them held 9 KB of an ESP32's heap (16 KB here on 64 bits)
    from paytest import build_dir

    mp.run(IDS % str(tmp_path), heap="256k", path_dirs=build_dir(), args=["save"])
    held, st = mp.run(IDS % str(tmp_path), heap="256k", path_dirs=build_dir()).split()[-2:]
    assert st == "confirmed"  # the newest is still refused without a history scan
    assert int(held) < 4096, held


RECS = """
import gc, json, sys
from plug.payments import Payments
from plug.store import Store

store = Store(%r)


def rec(i, st):
    h = "0x%%064x" %% (0xabc0 + i)
    return {"id": "%%d-0" %% i, "st": st, "from": "0xD03a51Cc524E3b607b7334f5f888ff2962338d88",
            "acct": 0, "to": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            "amt": 314001406100000 + i, "tok": None, "memo": "0x%%08x" %% i, "n": i,
            "gas": 21192, "v": [{"h": h, "fee": [2000000000, 1000000000]}], "hash": h,
            "mined": h, "blk": 100 + i, "err": None if st == "confirmed" else "reverted",
            "att": 1, "t": 849000000 + i, "tb": 849000010 + i, "ch": "M1/A", "under": False}


if sys.argv[-1] == "save":  # the most a plug keeps live once it has paid for a while
    recs = dict((r["id"], r) for r in [rec(i, "confirmed") for i in range(1, 9)] +
                [rec(i, "failed") for i in range(9, 13)])
    store.save("payments", {"recs": recs, "paid": [], "day": 0, "spent": {}, "hi": 0,
                            "arch": 0})
    print(json.dumps(recs))
else:
    gc.collect()
    a = gc.mem_alloc()
    p = Payments(store, None, None, {}, None, log=lambda m: None)
    gc.collect()
    held = gc.mem_alloc() - a
    print(json.dumps(dict((r["id"], r) for r in p.records())))
    print(held)
"""


def test_the_finished_payments_kept_live_share_their_strings(tmp_path):
    # a plug keeps its last 8 confirmed and 4 failed payments live; read from the flash,
    # each hash and address was its own string: 972 bytes a record on 32 bits (663
    # shared), 18,208 bytes for the twelve here on 64 bits (13,024 shared)
    from paytest import build_dir

    saved = json.loads(mp.run(RECS % str(tmp_path), heap="256k", path_dirs=build_dir(),
                              args=["save"]).splitlines()[-1])
    out = mp.run(RECS % str(tmp_path), heap="256k", path_dirs=build_dir()).splitlines()
    assert json.loads(out[-2]) == saved  # the same records
    assert int(out[-1]) < 15500, out[-1]
