# Device side of the payment tests: the plug's payment stack, built under MicroPython
# exactly as the firmware builds it (store, wallet, RPC, chain client, payments).
# The tests write <state>/cfg.json and run snippets that `from payplug import *`.
import json
import sys
import time

from plug.chain import Chain
from plug.payments import PaymentError, Payments, SpendRefused  # noqa: F401
from plug.rpc import ChainError  # noqa: F401
from plug.rpc import RPC
from plug.store import Store
from plug.wallet import FileSecretStore, load_wallet


class ManualClock:
    """Plug time that a test moves forward by hand (clock.t += 600)."""

    def __init__(self, t=None):
        if t is None:
            from plug.clock import SystemClock

            t = SystemClock().time()
        self.t = t

    def time(self):
        return self.t

    def ticks_ms(self):
        return time.ticks_ms()


def load_cfg(state):
    with open(state + "/cfg.json") as f:
        return json.load(f)


def make(state, clock=None, rpc_kw=None, urls=None):
    cfg = load_cfg(state)
    store = Store(state)
    wallet = load_wallet(FileSecretStore(store), cfg)
    c = cfg["chain"]
    kw = {"timeout_s": 2, "retries": 1, "backoff_ms": 50}
    kw.update(rpc_kw or {})
    rpc = RPC(urls or c["rpc_urls"], **kw)
    chain = Chain(rpc, c["chain_id"], c.get("eip1559", True))
    return Payments(store, chain, wallet, cfg, clock or ManualClock())


def wait_at(event):
    """A hook that stops at `event`: prints a marker, then waits for a line on stdin
    (the test answers, or SIGKILLs the process right there)."""

    def hook(name, rec):
        if name == event:
            print("AT %s %s" % (name, rec["hash"]))
            sys.stdin.readline()

    return hook


def settle(p, steps=60, pause_ms=50):
    """step() until nothing is unfinished (or give up); returns the unfinished count."""
    for _ in range(steps):
        p.step()
        if not p.unfinished():
            return 0
        time.sleep_ms(pause_ms)
    return len(p.unfinished())


def show(rec):
    out = {k: rec.get(k) for k in ("id", "st", "n", "hash", "mined", "err", "att", "from", "to",
                                   "amt", "tok")}
    out["hashes"] = [v["h"] for v in rec.get("v", ())]
    print(json.dumps(out))
