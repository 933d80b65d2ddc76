# Runs a list of ledger operations (JSON on stdin) on MicroPython and prints one JSON
# line per operation, for the property test in tests/test_ledger_props.py.
import json
import sys

from plug.ledger import EnergyLedger, LedgerError
from plug.store import Store


class Clock:
    t = 800000000

    def time(self):
        return self.t


root = sys.argv[1]
ops = json.loads(sys.stdin.read())
clock = Clock()
cfg = {"M1/A": {"max_current_a": 10.0}}
led = EnergyLedger(Store(root), clock, cfg, max_buckets=6, log=lambda m: None)
led.restore()
for op in ops:
    kind = op[0]
    out = None
    if kind == "add":
        clock.t += op[3]
        out = led.add("M1/A", op[1], op[2], clock.t, float(op[4]))
    elif kind == "clock":
        clock.t += op[1]
    elif kind == "bill":
        got = led.unbilled("M1/A")
        if got:
            upto = got[min(op[1], len(got) - 1)][1]
            out = list(led.mark_billed("M1/A", upto, checkpoint=False))
        else:
            out = [0, 0]
    elif kind == "bad_bill":
        upto = clock.t + op[1]
        closed = [0, 0]
        for b in led.unbilled("M1/A"):
            if b[1] <= upto:
                closed[0] += b[2]
                closed[1] += b[3]
        try:
            out = [list(led.mark_billed("M1/A", upto, checkpoint=False)), closed]
        except LedgerError:
            out = "refused"
    elif kind == "restart":
        led.checkpoint()
        led = EnergyLedger(Store(root), clock, cfg, max_buckets=6, log=lambda m: None)
        led.restore()
    b = led.unbilled("M1/A")
    print(json.dumps([out, list(led.totals("M1/A")), list(led.pending("M1/A")),
                      list(led.billed("M1/A")), [list(x) for x in b]]))
