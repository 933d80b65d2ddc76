"""The faults run's load phase (`python -m tools.faults --only load`): N virtual plugs
metering and paying against one anvil and one tariff server at once."""

import time

from . import faults_audit as audit
from .faults import DAY, RATES, _money, provision, settle_pending, try_status
from .scenario import World


def load(plugs=20, speed=240, run_s=90, log=print):
    """`plugs` virtual plugs against one anvil and one tariff server. Returns (figures,
    problems)."""
    problems = []
    fig = {"plugs": plugs, "speed": speed}
    t0 = time.monotonic()
    with World(DAY, RATES, log=log) as w:
        ps = []
        for i in range(plugs):
            p = w.add_plug("load%02d" % i, speed=speed, deploy=False)
            provision(p)
            ps.append(p)
        fig["start_s"] = round(time.monotonic() - t0, 1)
        busy = []
        end = time.monotonic() + run_s
        while time.monotonic() < end:
            for p in ps:
                if try_status(p, 15) is None:
                    problems.append("%s: /status did not answer under load" % p.name)
            busy.append(_cpu_load())
            time.sleep(2)
        for p in ps:
            settle_pending(p, 30)
        fig.update(_money(w, ps, problems))
        fig["plugs_that_paid"] = len({t["from"] for t in audit.chain_payments(w.devnet, w.payee)
                                      if t["ok"]})
        if fig["plugs_that_paid"] < plugs:
            problems.append("only %d of %d plugs paid within %d s"
                            % (fig["plugs_that_paid"], plugs, run_s))
        fig["load_avg"] = round(max(busy), 1) if busy else None
        fig["run_s"] = round(time.monotonic() - t0, 1)
    return fig, problems


def _cpu_load():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError):
        return 0.0
