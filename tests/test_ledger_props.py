"""Property test: any sequence of reads (normal, spikes, negative), clock jumps both
ways, billing and restarts keeps the ledger's promises, on MicroPython.

Promises: totals never decrease and equal the sum of accepted reads; a read is
accepted exactly when it is non-negative and under the channel's power limit;
billed + pending == everything accepted (no energy lost or double counted by the
buckets, merges or restarts); unbilled buckets are contiguous, ordered and at most
max_buckets; billing never bills a bucket of the open minute.
"""

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools import mp
from tools.paths import DEVICE_DIRS

TESTS = os.path.dirname(os.path.abspath(__file__))
LIMIT_W = 10.0 * 230.0 * 1.5

add = st.tuples(st.just("add"), st.integers(-10, 4_000_000), st.integers(-10, 400_000),
                st.integers(1, 90), st.integers(1, 90))
ops = st.lists(st.one_of(
    add, add, add, add,
    st.tuples(st.just("clock"), st.integers(-4000, 4000)),
    st.tuples(st.just("bill"), st.integers(0, 8)),
    st.tuples(st.just("bad_bill"), st.integers(0, 30)),
    st.tuples(st.just("restart")),
), min_size=1, max_size=60)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=ops)
def test_ledger_promises_hold_for_any_sequence(tmp_path_factory, seq):
    root = tmp_path_factory.mktemp("props")
    out = mp.run(path=os.path.join(TESTS, "ledger_ops.py"), args=[str(root)], heap="64k",
                 path_dirs=(TESTS,) + DEVICE_DIRS, input=json.dumps(seq))
    rows = [json.loads(x) for x in out.splitlines()]
    assert len(rows) == len(seq)
    accepted_imp = accepted_exp = 0
    prev_totals = [0, 0]
    for op, (res, totals, pending, billed, buckets) in zip(seq, rows):
        if op[0] == "add":
            _, imp, exp, _, dt = op
            plausible = imp >= 0 and exp >= 0 and imp + exp <= LIMIT_W * dt / 3600 * 1e6
            assert res is plausible, (op, res)
            if plausible:
                accepted_imp += imp
                accepted_exp += exp
        if op[0] == "bad_bill":  # up to a time in the open minute: refused, or only closed
            assert res == "refused" or res[0] == res[1], (op, res)  # buckets were billed
        assert totals[0] >= prev_totals[0] and totals[1] >= prev_totals[1], "went backwards"
        prev_totals = totals
        assert totals == [accepted_imp, accepted_exp]
        assert [billed[0] + pending[0], billed[1] + pending[1]] == totals
        assert len(buckets) <= 6
        for a, b in zip(buckets, buckets[1:]):
            assert a[1] == b[0] and a[0] < a[1], buckets
