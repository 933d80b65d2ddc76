"""Faults and load on virtual plugs, checked only from the outside (`make faults`).

    python -m tools.faults [--cuts 50] [--plugs 20] [--day-s 80] [--update-cuts 20]
                           [--only cuts,network,load,inputs,slowloris,lying,update]

- power cuts: one plug, a simulated day, SIGKILLed at random moments (some while a
  payment is pending, some during a config apply, some while it writes its flash; where
  each cut really fell is read from its flash) and booted again on the same flash.
  Checked: each invoice paid at most once on chain, payee delta == sum of transfers ==
  confirmed records, no payment left unfinished, every bill priced at the quoted rates,
  billed + unbilled == metered energy, no cut losing more than one checkpoint interval
  plus one read of the meter (plus one more for a checkpoint write cut short), exactly
  one complete config in force (version and content), and no restored or reported
  total above what the channel's chip ever handed out (the sim's energy log, exact).
- network: the RPC node hangs (SIGSTOP) and is down (stopped, restarted on its port with
  its chain state), the tariff server answers 500 and is down, each for hours of plug
  time. Checked: energy keeps rising in /status throughout, billing and payments catch
  up afterwards, nothing paid twice.
- load: N plugs metering and paying against one anvil and one tariff server at once.
- inputs: runs the fuzz, config-envelope and garbage-HTTP tests and counts their cases.
- lying: the plug's RPC node lies for about a minute (nonces 1000 ahead and 3 behind,
  receipts for transactions it swallowed, another chain id, malformed replies), then
  answers honestly. Checked: every invoice made by then paid on chain exactly once within
  5 minutes, nothing to an unapproved address, the payments store under its bound.
- update: one plug pushed one signed release after another, each update cut short by a
  SIGKILL at a random moment (while the bundle streams in, around the switch, during the
  trial; where it fell read from the flash). Checked: the plug boots one whole version
  (/status's version is slot.json's, every file of the running slot is that bundle's),
  energy as for the cuts, and the money audit (tools/faults_update.py).
- slowloris: four clients trickle header lines at one plug's HTTP server for 25 s,
  reconnecting whenever cut off. Checked: /status answers at least 9 probes in 10, the
  owner's POST /config goes in during the attack, energy keeps rising.

Shared here: the world's dates and rates, the owner's config for these runs, provisioning,
/status probes, the money audit after a run and main(). The phases live in their own
modules: faults_power (cuts), faults_net (network, slowloris, lying), faults_load (load),
faults_update (update);
faults_audit reads a plug's flash and the chain.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from . import faults_audit as audit
from .paths import ROOT
from .scenario import ETH, plug_config

DAY = 1767225600  # 2026-01-01 00:00 UTC, a day that starts on a rate boundary
RATES = ((0, "0.0001"), (12, "0.0002"))
RATES_WEI = [10**14, 2 * 10**14]
KEYS = ("M1/A", "M1/B", "M2/1", "M2/2", "M2/3")
CHECKPOINT_S = 300
READ_S = 10


def fault_config(plug, version, **over):
    """The owner's config for these runs: payments every hour or two of plug time, the
    channel names carry the version so /status shows which config is in force."""
    w = plug.world
    cfg = plug_config(w.devnet.url, w.tariff.url, w.payee, w.chain_id,
                      settlement={"min_amount": 5 * 10**14, "max_period_s": 3 * 3600},
                      meter={"checkpoint_s": CHECKPOINT_S, "read_interval_ms": READ_S * 1000},
                      server={"port": plug.http_port},
                      channels={k: {"name": "v%d" % version, "max_current_a": 16}
                                for k in KEYS})
    for k, v in over.items():
        cfg.setdefault(k, {}).update(v)
    return cfg


def provision(plug, fund_eth=10):
    """Owner recorded over serial, config v1 over HTTP, wallet funded."""
    w = plug.world
    plug.mpremote("plug.provision_owner(%r)" % w.owner_address)
    code, body = plug.post_config(plug.sign(fault_config(plug, 1), 1))
    if code != 200:
        raise RuntimeError("%s: config refused (%s): %s" % (plug.name, code, body))
    plug.config_version = 1
    plug.address = plug.status()["wallets"][0]["address"]
    w.devnet.fund(plug.address, fund_eth * ETH)
    return plug.address


def try_status(plug, timeout=5):
    try:
        return json.loads(plug.get("/status", timeout=timeout))
    except (OSError, ValueError):
        return None


def wait_up(plug, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = try_status(plug, 2)
        if st is not None:
            return st
        time.sleep(0.02)
    raise RuntimeError("%s did not come back within %d s" % (plug.name, timeout))


def import_total(st):
    return sum(ch["import_uwh"] for ch in st["channels"].values())


def import_power(st):
    return sum(max(0.0, ch["W"]) for ch in st["channels"].values())


def config_problems(st, acked, attempted):
    """Exactly one complete config: version at least the last acknowledged, one that was
    pushed, and the content (channel names) of that same version."""
    v = st["device"]["config_version"]
    names = {ch["name"] for ch in st["channels"].values()}
    probs = []
    if v < acked or v not in attempted:
        probs.append("config v%d in force; pushed %s, last acknowledged v%d"
                     % (v, sorted(attempted), acked))
    if names != {"v%d" % v}:
        probs.append("config v%d in force but channels are named %s (a mix of configs)"
                     % (v, sorted(names)))
    return probs


def save_console(p, log):
    """Keep the plug's console output next to the run, for reading what went wrong."""
    path = os.path.join(ROOT, "build", "faults-%s.log" % p.name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(p.vplug.screen.replace("\x1b[K", ""))
    return path


def _post_into(out, p, env):
    out["r"] = _post(p, env)


def _post(p, env):
    """(status, body) of POST /config, or (None, why) when no whole reply came: a power
    cut mid-reply (a short body is http.client.IncompleteRead) is an outcome, not a crash."""
    import http.client

    try:
        return p.post_config(env)
    except (OSError, ValueError, http.client.HTTPException) as e:
        return None, "%s: %s" % (type(e).__name__, e)


def settle_pending(p, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = try_status(p, 5)
        if st and not st.get("payments", {}).get("pending"):
            return True
        time.sleep(0.5)
    return False


def _quiet(snap, txs):
    recs = snap["ledger"]["payments"]
    if any(r["st"] in ("prepared", "sent") for r in recs):
        return False
    addr = {x["address"].lower() for x in snap["status"].get("wallets", [])}
    mined = sum(1 for t in txs if t["ok"] and t["from"] in addr)
    # the ledger lists the history too: ids it lists and ids kept by number overlap
    confirmed = len({r["id"] for r in recs if r["st"] == "confirmed"}
                    | set(snap.get("paid_ids", [])))
    return mined == confirmed


def _money(w, plugs, problems, lost_uwh=0):
    for p in plugs:
        p.vplug.detach()
    # the plugs keep running and blocks keep coming: audit a moment when no payment is in
    # flight, neither in a plug's records nor between its records and the chain
    for _ in range(10):
        for p in plugs:
            settle_pending(p, 30)
        snaps = [audit.snapshot(p) for p in plugs]
        txs = audit.chain_payments(w.devnet, w.payee)
        if all(_quiet(s, txs) for s in snaps):
            break
        time.sleep(1)
    probs, fig = audit.check_money(w, snaps, txs, RATES_WEI, lost_uwh)
    problems += probs
    fig["metered_kwh"] = sum(import_total(s["status"]) for s in snaps) / 1e9
    return fig


# ---- processes ---------------------------------------------------------------------------


def signal_tree(pid, sig):
    """Signal a process and its children (anvil runs under a node launcher)."""
    pids, i = [pid], 0
    while i < len(pids):
        try:
            for tid in os.listdir("/proc/%d/task" % pids[i]):
                with open("/proc/%d/task/%s/children" % (pids[i], tid)) as f:
                    pids += [int(x) for x in f.read().split()]
        except OSError:
            pass
        i += 1
    for p in reversed(pids):
        try:
            os.kill(p, sig)
        except OSError:
            pass


# ---- bad inputs --------------------------------------------------------------------------


def bad_inputs(log=print):
    """Run the fuzz, config-envelope and attack tests and count the bad inputs they tried
    (each test prints its own counts)."""
    import glob
    import re

    files = sorted(glob.glob(os.path.join(ROOT, "tests", "test_fuzz*.py")))
    files += [os.path.join(ROOT, "tests", n) for n in ("test_security_plug.py",
                                                        "test_ota_config.py")]
    files = [f for f in files if os.path.exists(f)]
    # one process (no xdist), so the counts the tests print (-s) reach us
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider"]
                       + files, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    rates = sum(int(n) for n in re.findall(r"fuzz rates \S+\s+tried (\d+)", r.stdout))
    rpc = sum(int(n) for n in re.findall(r"fuzz rpc: replies tried (\d+)", r.stdout))
    crashed = sum(int(n) for n in re.findall(r"crashed (\d+)", r.stdout))
    envelopes = sum(int(n) for n in re.findall(r"config envelopes: bad tried (\d+)", r.stdout))
    garbage = sum(int(n) for n in re.findall(r"garbage http: requests tried (\d+)", r.stdout))
    summary = (r.stdout.strip().splitlines() or ["(no output)"])[-1]
    problems = [] if r.returncode == 0 else ["bad-input tests failed: %s" % summary]
    if crashed:
        problems.append("%d fuzzed replies crashed a parser" % crashed)
    if not envelopes or not garbage:
        problems.append("no counts from the config envelope or garbage HTTP tests")
    return {"rate_replies": rates, "rpc_replies": rpc, "config_envelopes": envelopes,
            "garbage_http": garbage, "crashed": crashed, "summary": summary}, problems


# ---- main --------------------------------------------------------------------------------


def _show(name, fig, problems, out):
    out("%-8s %s" % (name, ", ".join("%s=%s" % (k, round(v, 3) if isinstance(v, float) else v)
                                     for k, v in fig.items())))
    for pr in problems:
        out("  BROKEN: %s" % pr)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cuts", type=int, default=50)
    ap.add_argument("--day-s", type=float, default=80, help="real seconds per simulated day")
    ap.add_argument("--plugs", type=int, default=20)
    ap.add_argument("--load-speed", type=float, default=240)
    ap.add_argument("--load-s", type=float, default=90)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--update-cuts", type=int, default=20)
    ap.add_argument("--only", default="cuts,network,load,inputs,slowloris,lying,update")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    quiet = (lambda *x: None) if not a.verbose else print
    # the phases import this module's helpers, so they are imported here, not at the top
    from .faults_load import load
    from .faults_net import lying, network, slowloris
    from .faults_power import power_cuts
    from .faults_update import update_cuts

    runs = {
        "cuts": lambda: power_cuts(a.cuts, a.day_s, a.seed, quiet),
        "network": lambda: network(a.day_s, log=quiet),
        "load": lambda: load(a.plugs, a.load_speed, a.load_s, quiet),
        "inputs": lambda: bad_inputs(quiet),
        "slowloris": lambda: slowloris(log=quiet),
        "lying": lambda: lying(a.day_s, log=quiet),
        "update": lambda: update_cuts(a.update_cuts, seed=a.seed, log=quiet),
    }
    broken = 0
    for name in a.only.split(","):
        t = time.monotonic()
        try:
            fig, problems = runs[name]()
        except Exception as e:  # a run that cannot finish is a broken invariant too
            fig, problems = {}, ["%s run failed: %s: %s" % (name, type(e).__name__, e)]
        fig["took_s"] = round(time.monotonic() - t, 1)
        _show(name, fig, problems, print)
        sys.stdout.flush()
        broken += len(problems)
    print("faults: %s" % ("all invariants held" if not broken else "%d BROKEN" % broken))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
