"""The faults run's network phases (`python -m tools.faults --only network,slowloris,lying`):
the RPC node and tariff server hanging, erroring and down for hours of plug time; slow
clients trickling headers at the plug's HTTP server; an RPC node that lies. What each
checks: tools/faults.py's docstring."""

import os
import signal
import sys
import threading
import time

from . import faults_audit as audit
from .devnet import Devnet
from .faults import (DAY, RATES, READ_S, _money, config_problems, fault_config, import_total,
                     provision, save_console, settle_pending, signal_tree, try_status)
from .paths import ROOT
from .scenario import ETH, World

# ---- network -----------------------------------------------------------------------------


def _watch(p, seconds, fig, what, problems):
    """Poll /status for `seconds`: energy must keep rising. Returns the last status."""
    end = time.monotonic() + seconds
    last = None
    stalls = 0
    while time.monotonic() < end:
        st = try_status(p, 15)
        if st is None:
            stalls += 1
        elif last is not None:
            if import_total(st) <= import_total(last) and st["device"]["time"] > \
                    last["device"]["time"] + 2 * READ_S:
                problems.append("%s: energy stopped rising (%d uWh at plug time %d and %d)"
                                % (what, import_total(st), last["device"]["time"],
                                   st["device"]["time"]))
            fig["polls"] += 1
        last = st or last
        time.sleep(0.25)
    if stalls:
        problems.append("%s: /status did not answer %d times" % (what, stalls))
    return last


def network(day_s=80, outage_s=8, log=print):
    """RPC node hung, RPC node down, tariff server erroring, tariff server down: each for
    `outage_s` real seconds (hours of plug time); the plug meters throughout and catches
    up. Returns (figures, problems)."""
    speed = 86400 / day_s
    fig = {"polls": 0, "outage_h": round(4 * outage_s * speed / 3600, 1)}
    problems = []
    chain_state = None
    with World(DAY, RATES, log=log) as w:
        # the node keeps its chain across a restart on the same port, as a real one does
        chain_state = os.path.join(w.tmp, "anvil-state.json")
        port = w.devnet.port
        w.devnet.stop()
        w.devnet = Devnet(w.chain_id, port=port, extra_args=["--state", chain_state]).start()
        w.payee_start = w.devnet.balance(w.payee)
        p = w.add_plug("net", speed=speed, deploy=False)
        provision(p)
        _watch(p, outage_s, fig, "before the outages", problems)
        paid_before = len(audit.chain_payments(w.devnet, w.payee))
        t_out = p.status()["device"]["time"]

        signal_tree(w.devnet.proc.pid, signal.SIGSTOP)  # the node hangs: calls time out
        try:
            _watch(p, outage_s, fig, "RPC node hung", problems)
        finally:
            signal_tree(w.devnet.proc.pid, signal.SIGCONT)
        w.devnet.stop()  # the node is down: connections refused
        _watch(p, outage_s, fig, "RPC node down", problems)
        w.devnet = Devnet(w.chain_id, port=port, extra_args=["--state", chain_state]).start()

        w.tariff.control(misbehave=["500"])
        _watch(p, outage_s, fig, "tariff server answering 500", problems)
        w.tariff.control(misbehave=[])
        schedule = w.tariff.state.schedule
        tport = w.tariff.port
        w.tariff.stop()
        _watch(p, outage_s, fig, "tariff server down", problems)
        from .tariff_server import TariffServer

        w.tariff = TariffServer(schedule, port=tport).start()
        t_back = p.status()["device"]["time"]

        # catching up: energy metered during the outages gets billed and paid
        deadline = time.monotonic() + max(30, day_s)
        caught = False
        while time.monotonic() < deadline:
            txs = audit.chain_payments(w.devnet, w.payee)
            ends = [t["memo"][2] for t in txs if t["ok"] and not isinstance(t["memo"], str)]
            if ends and max(ends) > t_back:
                caught = True
                break
            _watch(p, 2, fig, "after the outages", problems)
        if not caught:
            problems.append("no payment covering energy after the outages (plug time %d..%d) "
                            "landed within %d s" % (t_out, t_back, max(30, day_s)))
        settle_pending(p, 30)
        p.vplug.detach()
        fig.update(_money(w, [p], problems))
        fig["payments_after_outage"] = fig["payments"] - paid_before
        save_console(p, log)
    return fig, problems


# ---- slowloris ---------------------------------------------------------------------------


def slowloris(seconds=25, clients=4, log=print):
    """`clients` slow clients trickle header lines at the plug's HTTP server for `seconds`
    (reconnecting as soon as they are cut off) while /status is probed twice a second and
    the owner pushes a new config half-way. Returns (figures, problems)."""
    from .slowloris import Slowloris, probe

    problems = []
    with World(DAY, RATES, log=log) as w:
        p = w.add_plug("lan", speed=240, deploy=False)
        provision(p)
        e0 = import_total(p.status())
        posted = {}

        def owner_posts():
            time.sleep(seconds / 2)
            posted["code"], posted["body"] = p.post_config(p.sign(fault_config(p, 2), 2))

        with Slowloris("127.0.0.1", p.http_port, clients=clients, period_s=0.5) as atk:
            time.sleep(1)
            owner = threading.Thread(target=owner_posts, daemon=True)
            owner.start()
            fig = probe(p.url + "/status", seconds, interval_s=0.5)
            owner.join(60)
        fig["config_post"] = posted.get("code")
        fig["attack_connections"] = atk.stats["connections"]
        fig["attack_cut"] = atk.stats["cut"]
        if fig["answered"] < 0.9 * fig["probes"]:
            problems.append("/status answered %d of %d probes during the attack"
                            % (fig["answered"], fig["probes"]))
        if posted.get("code") != 200:
            problems.append("the owner's POST /config during the attack got %s: %s"
                            % (posted.get("code"), posted.get("body")))
        st = try_status(p, 15)
        if st is None or import_total(st) <= e0:
            problems.append("energy did not rise through the attack")
        elif posted.get("code") == 200:
            problems += config_problems(st, 2, {1, 2})
    return fig, problems


# ---- lying node --------------------------------------------------------------------------

# what the node does in turn, real seconds each (tests/hostile_rpc.py LIES)
LIES = (("ahead", 20), ("fake_receipt", 10), ("behind", 10), ("wrong_chain", 5),
        ("malformed", 5), ("ahead", 10))
PAYMENTS_MAX_BYTES = 32768  # the payments store's bound (README, "Bounded state")


def lying(day_s=80, lies=LIES, heal_s=300, log=print):
    """A JSON-RPC node that lies, `lies` in turn (nonces 1000 ahead and 3 behind, receipts
    for transactions it swallowed, another chain id, malformed replies), then answers
    honestly. Checked: every invoice the plug made by then is paid on chain exactly once
    within `heal_s` of honesty, nothing paid twice or to an address the owner did not
    approve, the payments store under its bound throughout, and the usual money audit.
    Returns (figures, problems)."""
    if os.path.join(ROOT, "tests") not in sys.path:
        sys.path.insert(0, os.path.join(ROOT, "tests"))
    from hostile_rpc import HostileRPC

    fig = {"lie_s": sum(s for _, s in lies)}
    problems = []
    with World(DAY, RATES, log=log) as w, HostileRPC(upstream=w.devnet.url) as node:
        p = w.add_plug("lying", speed=86400 / day_s, deploy=False)
        p.mpremote("plug.provision_owner(%r)" % w.owner_address)
        env = p.sign(fault_config(p, 1, chain={"rpc_urls": [node.base]}), 1)
        code, body = p.post_config(env)
        if code != 200:
            raise RuntimeError("config refused (%s): %s" % (code, body))
        p.config_version = 1
        addr = p.status()["wallets"][0]["address"].lower()
        w.devnet.fund(addr, 10 * ETH)
        flash = os.path.join(p.state, "state")
        top = [0]

        def watch(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                top[0] = max([top[0]] + [e.stat().st_size for e in os.scandir(flash)
                                         if e.name.startswith("payments.")])
                time.sleep(0.2)

        deadline = time.monotonic() + 60
        while not audit.chain_payments(w.devnet, w.payee) and time.monotonic() < deadline:
            watch(1)  # honest first, until a payment lands
        paid_before = len(audit.chain_payments(w.devnet, w.payee))
        for lie, seconds in lies:
            node.lie = lie
            watch(seconds)
        node.lie = None
        honest = time.monotonic()
        during = len(audit.chain_payments(w.devnet, w.payee)) - paid_before
        made = (audit.flash_load(p.state, "billing") or {}).get("seq", 0)
        paid = set()
        while time.monotonic() - honest < heal_s:
            paid = {t["memo"][0] for t in audit.chain_payments(w.devnet, w.payee)
                    if t["ok"] and t["from"] == addr and not isinstance(t["memo"], str)}
            if paid >= set(range(1, made + 1)):
                break
            watch(2)
        fig.update({"lies_told": node.lied, "swallowed": len(node.swallowed),
                    "invoices_at_honesty": made, "paid_during_lies": during,
                    "healed_s": round(time.monotonic() - honest, 1),
                    "store_max_bytes": top[0]})
        missing = sorted(set(range(1, made + 1)) - paid)
        if missing:
            problems.append("invoices %s not paid on chain %d s after the node turned honest"
                            % (missing, heal_s))
        if top[0] > PAYMENTS_MAX_BYTES:
            problems.append("the payments store reached %d bytes (bound %d)"
                            % (top[0], PAYMENTS_MAX_BYTES))
        for t in _sent_by(w.devnet, addr):
            if t not in (w.payee.lower(), addr):
                problems.append("the plug sent a transaction to %s, not an approved payee" % t)
        p.vplug.detach()
        fig.update(_money(w, [p], problems))
        save_console(p, log)
    return fig, problems


def _sent_by(devnet, addr):
    """The `to` of every transaction `addr` has on chain."""
    out = []
    for n in range(int(devnet.rpc("eth_blockNumber"), 16) + 1):
        for tx in devnet.rpc("eth_getBlockByNumber", hex(n), True)["transactions"]:
            if tx["from"].lower() == addr:
                out.append((tx.get("to") or "").lower())
    return out
