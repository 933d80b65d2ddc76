# Runs a list of operations on the ledger and the energy-by-period counters (on stdin,
# one JSON list a line) on MicroPython with the real store, and prints one JSON line per
# operation:
# [result, {key: energy(key) as lists}, {key: ledger totals}, periods.date()].
# For tests/test_periods.py. argv: state directory, utc_offset_min, dst[, channels
# metered from boot, comma-separated (default M1/A)].
#   ["at", t]                  the clock reads plug time t from now on
#   ["add", key, imp, exp]     a read of imp/exp uWh ending now
#   ["roll"]                   periods.roll() (the app: every second)
#   ["restart"]                clean reboot: ledger checkpointed, everything built again
#   ["cut"]                    power cut: built again from what the flash holds
#   ["torn", name]             the newest slot of state file `name` loses its tail
#   ["channel", key[, i, e]]   a channel the plug meters from now on (added later), with
#                              totals of its own before periods sees it
#   ["set_total", key, i, e]   ledger.set_total (a meter swap, a reset)
#   ["tz", off_min, dst]       the owner signs a config with another offset or rule
#   ["save_fails", n]          the next n saves of "periods" raise OSError (flash full)
#   ["heap"]                   bytes the Periods object holds (gc.mem_free before/after)
import gc
import json
import sys

from plug.ledger import EnergyLedger
from plug.periods import Periods
from plug.store import Store


class Clock:
    t = 86400  # not set yet (2000-01-02); a ledger bucket must not start before 0

    def time(self):
        return self.t


class FlakyStore(Store):
    fail = 0

    def save(self, name, obj):
        if name == "periods" and FlakyStore.fail > 0:
            FlakyStore.fail -= 1
            raise OSError(28)  # ENOSPC
        return Store.save(self, name, obj)


root = sys.argv[1]
tz = {"utc_offset_min": int(sys.argv[2]), "dst": sys.argv[3]}
clock = Clock()
logs = []
cfg = {}
for _k in (sys.argv[4] if len(sys.argv) > 4 else "M1/A").split(","):
    cfg[_k] = {"max_current_a": 1000.0}


def log(msg):
    logs.append(msg)


def cur_tz():  # the config in force: the "tz" op replaces it
    return tz


def boot():
    store = FlakyStore(root)
    led = EnergyLedger(store, clock, cfg, log=log)
    led.restore()
    return led, Periods(led, store, clock, cur_tz, log=log)


def newest_slot(name):
    best = None
    for slot in (0, 1):
        p = "%s/%s.%d" % (root, name, slot)
        try:
            with open(p, "rb") as f:
                gen = int(f.readline().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if best is None or gen > best[0]:
            best = (gen, p)
    return best[1]


led, per = boot()
while True:  # one op a line: the list of ops is not held (the heap is the plug's 64 KB)
    line = sys.stdin.readline()
    if not line.strip():
        break
    op = json.loads(line)
    kind = op[0]
    out = None
    if kind == "at":
        clock.t = op[1]
    elif kind == "add":
        out = led.add(op[1], op[2], op[3], clock.t, 3600)
    elif kind == "roll":
        out = per.roll()
    elif kind == "restart":
        led.checkpoint()
        per = led = None
        gc.collect()
        led, per = boot()
    elif kind == "cut":
        per = led = None
        gc.collect()
        led, per = boot()
    elif kind == "torn":
        p = newest_slot(op[1])
        with open(p, "rb") as f:
            data = f.read()
        with open(p, "wb") as f:
            f.write(data[:len(data) - 5])
    elif kind == "channel":  # [, imp, exp]: with totals of its own before it is seen
        cfg[op[1]] = {"max_current_a": 1000.0}
        led.add_channel(op[1], 1000.0)
        if len(op) > 2:
            led.set_total(op[1], op[2], op[3], "test")
    elif kind == "set_total":
        led.set_total(op[1], op[2], op[3], "test")
    elif kind == "tz":
        tz = {"utc_offset_min": op[1], "dst": op[2]}
    elif kind == "save_fails":
        FlakyStore.fail = op[1]
    elif kind == "heap":
        store = FlakyStore(root)
        gc.collect()
        free = gc.mem_free()
        p2 = Periods(led, store, clock, cur_tz, log=log)
        gc.collect()
        out = free - gc.mem_free()
        p2 = None
    energy = {}
    totals = {}
    for key in led.keys():
        e = per.energy(key)
        energy[key] = [list(e["today"]), list(e["yesterday"]), list(e["month"]),
                       list(e["last_month"])]
        totals[key] = list(led.totals(key))
    print(json.dumps([out, energy, totals, per.date(), logs]))
    logs = []
