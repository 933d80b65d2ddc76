"""Faults and load on virtual plugs, checked only from the outside (`make faults`).

    python -m tools.faults [--cuts 50] [--plugs 20] [--day-s 80] [--only cuts,network,load,inputs]

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
- slowloris: four clients trickle header lines at one plug's HTTP server for 25 s,
  reconnecting whenever cut off. Checked: /status answers at least 9 probes in 10, the
  owner's POST /config goes in during the attack, energy keeps rising.

Prints the figures in a few lines; exits 1 if an invariant broke.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

from . import faults_audit as audit
from .devnet import Devnet
from .paths import ROOT
from .scenario import ETH, World, plug_config

DAY = 1767225600  # 2026-01-01 00:00 UTC, a day that starts on a rate boundary
RATES = ((0, "0.0001"), (12, "0.0002"))
RATES_WEI = [10**14, 2 * 10**14]
KEYS = ("M1/A", "M1/B", "M2/1", "M2/2", "M2/3")
CHECKPOINT_S = 300
READ_S = 10
MIN_REAL_MS = 20  # the meter reads at most every 20 ms of real time (meter.py)
SIM_PASSES = 16  # read times the sim's energy log keeps (boards/sim/chip.py _PASSES)


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


# ---- power cuts --------------------------------------------------------------------------


def power_cuts(cuts=50, day_s=80, seed=1, log=print):
    """One plug, a simulated day in `day_s` seconds, `cuts` SIGKILLs. Returns figures and
    the list of problems found."""
    rnd = random.Random(seed)
    speed = 86400 / day_s
    # one read of the meter in plug time: its interval, or 20 ms of real time when faster
    read_s = max(READ_S, speed * MIN_REAL_MS / 1000)
    fig = {"cuts": 0, "cuts_after_pending": 0, "cuts_in_config_apply": 0, "cuts_mid_write": 0,
           "read_s": round(read_s, 1), "max_checkpoint_age_s": 0, "max_read_gap_s": 0,
           "lost_wh": 0.0, "max_loss_intervals": 0.0, "late_reads": 0, "totals_checked": 0}
    problems = []
    # blocks every second, so a payment stays pending long enough to cut power under it
    with World(DAY, RATES, log=log, block_time=1) as w:
        p = w.add_plug("cuts", speed=speed, deploy=False)
        provision(p)
        flash = os.path.join(p.state, "state")
        acked, attempted = 1, {1}
        kinds = ["random"] * cuts
        for kind in ("config", "pending", "write"):
            free = [i for i in range(cuts) if kinds[i] == "random"]
            for i in rnd.sample(free, cuts // 5):
                kinds[i] = kind
        gap = day_s / (cuts + 2)
        t_end = time.time() + day_s
        booted = time.time()
        for k, kind in enumerate(kinds):
            time.sleep(max(0.0, rnd.uniform(0.3, 1.7) * gap - 0.6))
            post = None
            if kind == "pending":
                deadline = time.monotonic() + 3 * gap
                while time.monotonic() < deadline:
                    st = try_status(p, 2)
                    if st and st.get("payments", {}).get("pending"):
                        break
                    time.sleep(0.03)
            elif kind == "config":
                st = try_status(p, 2)  # not during the apply: it holds the plug's loop
                v = max(attempted) + 1
                attempted.add(v)
                env = p.sign(fault_config(p, v), v)
                post = {}
                th = threading.Thread(target=_post_into, args=(post, p, env), daemon=True)
                th.start()
                # the cut falls at a random moment of the apply, once it has begun
                _wait_for(lambda: _has_file(flash, "config_next"), 3)
                time.sleep(rnd.uniform(0.0, 0.004))
            if kind != "config":
                st = try_status(p, 2)
            if kind == "write":  # the cut falls while the plug writes a file
                _wait_for(lambda b=booted: _tmp_files(flash, b), 3 * gap, poll=0.0005)
            p.kill()
            since, booted = booted, time.time()
            fig["cuts"] += 1
            # where the cut really fell, from the plug's flash
            landed = []
            if audit.unfinished_payments(p.state):
                fig["cuts_after_pending"] += 1
                landed.append("payment pending")
            if audit.flash_load(p.state, "config_next") is not None:
                fig["cuts_in_config_apply"] += 1
                landed.append("config apply")
            # a write cut short, not one left from before; a checkpoint write cut short also
            # loses what was metered during that turn of the meter (checksum pass and write)
            write_s = 0.0
            if _tmp_files(flash, since):
                fig["cuts_mid_write"] += 1
                landed.append("file write")
                write_s = read_s
            ck, _ = audit.read_checkpoint(p.state)
            t_ck = _last_read_in_checkpoint(p.state)  # its "now" moves with billing too
            handed, passes = read_sim_energy(p.state)  # the plug is dead: final
            if ck is not None:  # exact: what the dead plug's chips ever handed it
                problems += _invented(k + 1, "restored", {c: (v, None) for c, v in ck.items()},
                                      handed)
                fig["totals_checked"] += len(ck)
            if post is not None:
                th.join(5)
                code = post.get("r", (None,))[0]
                if code == 200:
                    acked = max(acked, max(attempted))
            st2 = wait_up(p)
            # read after st2, so it holds everything that st2's totals can come from
            problems += _invented(k + 1, "/status after the reboot shows",
                                  {c: (ch["import_uwh"], ch["export_uwh"])
                                   for c, ch in st2["channels"].items()},
                                  read_sim_energy(p.state)[0])
            fig["totals_checked"] += 2 * len(st2["channels"])
            p.vplug.attach()  # keep the plug's console log (detached for mpremote)
            problems += config_problems(st2, acked, attempted)
            if st is None or ck is None or not passes:
                continue
            fig["late_reads"] += st["device"].get("late_reads", 0)
            # How old the restored checkpoint was at the plug's last read (the energy
            # log's times of its last passes, exact). The meter checkpoints at its first
            # pass an interval after the last checkpoint, so the age is at most one interval
            # plus two passes: the one that checkpointed (its read and the check after it)
            # and the read in flight, whose checkpoint the cut may have torn. A pass is
            # normally one read_s; a loaded host (or an ESP32's blocked loop) stretches it,
            # and the bound follows the longest pass the plug really took since that
            # checkpoint's read (a reboot in between: the time it was off). +1: whole seconds.
            after = [t for t in passes if t >= t_ck]
            pass_s = max([read_s] + [b - a for a, b in zip(after, after[1:])])
            age = passes[-1] - t_ck
            allowed_s = CHECKPOINT_S + 2 * pass_s + 1
            # what the cut cost (a figure): the energy of that age at the power seen before
            pw = import_power(st)
            restored = sum(ck.values())
            lost = max(0.0, pw * age / 0.0036)
            fig["lost_wh"] += lost / 1e6
            fig["max_checkpoint_age_s"] = max(fig["max_checkpoint_age_s"], int(age))
            fig["max_read_gap_s"] = max(fig["max_read_gap_s"], int(pass_s))
            # in checkpoint intervals, not counting a write cut short
            loss_iv = (lost / pw * 0.0036 - write_s) / CHECKPOINT_S if pw > 0 else 0.0
            fig["max_loss_intervals"] = max(fig["max_loss_intervals"], loss_iv)
            log("cut %d (%s, landed: %s): checkpoint %.0f s old at the last read (passes up "
                "to %.0f s), %.1f Wh lost (%.2f intervals)"
                % (k + 1, kind, ", ".join(landed) or "-", age, pass_s, lost / 1e6, loss_iv))
            if age > allowed_s:  # the energy since that checkpoint is what was lost
                problems.append("cut %d (%s): restored checkpoint %.0f s older than the last "
                                "read, %.1f Wh lost (allowed: one %d s checkpoint interval + two "
                                "passes of up to %.0f s)"
                                % (k + 1, kind, age, lost / 1e6, CHECKPOINT_S, pass_s))
            if import_total(st2) < restored:
                problems.append("cut %d: after the reboot /status shows %d uWh, the checkpoint "
                                "held %d" % (k + 1, import_total(st2), restored))
        # no more cuts: let the rest of the day run and pending payments land
        time.sleep(max(0.0, t_end - time.time()))
        settle_pending(p, 30)
        fig["boots"] = p.vplug.boots
        last = max(attempted) + 1
        code, _ = _post(p, p.sign(fault_config(p, acked), acked))
        if code == 200:
            problems.append("a replayed config (v%d) was accepted" % acked)
        code, body = _post(p, p.sign(fault_config(p, last), last))
        if code != 200:
            problems.append("after the cuts a new config v%d was refused: %s" % (last, body))
        attempted.add(last)
        problems += config_problems(p.status(), last, attempted)
        fig.update(_money(w, [p], problems, int(fig["lost_wh"] * 1e6)))
        save_console(p, log)
    return fig, problems


def read_sim_energy(state):
    """The virtual plug's energy log (boards/board_sim.py ENERGY_LOG, sim/chip.py
    record_to), written inside each energy register read before the plug sees the value:
    ({channel key: (import, export, true import, true export)} uWh, what each channel's
    energy registers ever handed the plug and what its load drew, summed over every boot;
    [plug times of the plug's last passes over its first chip, oldest first])."""
    import struct

    out, passes = {}, []
    for dev in sorted({key.split("/")[0] for key in KEYS}):
        codes = [key for key in KEYS if key.startswith(dev + "/")]
        with open(os.path.join(state, "sim_energy_%s.bin" % dev), "rb") as f:
            v = struct.unpack("<%dd%di" % (4 * len(codes), SIM_PASSES), f.read())
        for i, key in enumerate(codes):
            out[key] = tuple(v[4 * i:4 * i + 4])
        if not passes:
            passes = [t for t in v[4 * len(codes):] if t]
    return out, passes


def _last_read_in_checkpoint(state):
    """Plug time of the last read the energy checkpoint holds (its channels' last-read
    times; the checkpoint's own "now" also moves when billing reads the clock)."""
    data = audit.flash_load(state, "ledger")
    return max(rec[2] for rec in data["ch"].values()) if data else None


def _invented(cut, what, totals, handed):
    """Problems for every total (import, export or None) above what that channel's chip
    ever handed the plug: energy the plug would have invented. Exact: the plug converts
    register LSBs to uWh rounding down, so only float rounding (< 1 uWh) separates them."""
    probs = []
    for key in sorted(totals):
        for d, name in ((0, "import"), (1, "export")):
            got = totals[key][d]
            if got is not None and got > handed[key][d] + 1:
                probs.append("cut %d: %s %s %s %d uWh, more than the %.1f uWh its chip ever "
                             "handed out" % (cut, what, key, name, got, handed[key][d]))
    return probs


def _wait_for(cond, timeout, poll=0.002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        if poll:
            time.sleep(poll)
    return False


def _has_file(flash, name):
    return any(os.path.exists(os.path.join(flash, "%s.%s" % (name, s))) for s in ("0", "1"))


def _tmp_files(flash, since):
    """Files the plug was writing (store.py's `<name>.tmp`) last modified after `since`."""
    try:
        return [e.name for e in os.scandir(flash)
                if e.name.endswith(".tmp") and e.stat().st_mtime > since]
    except OSError:
        return []


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


# ---- network -----------------------------------------------------------------------------


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


# ---- load --------------------------------------------------------------------------------


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
    ap.add_argument("--only", default="cuts,network,load,inputs,slowloris,lying")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    quiet = (lambda *x: None) if not a.verbose else print
    runs = {
        "cuts": lambda: power_cuts(a.cuts, a.day_s, a.seed, quiet),
        "network": lambda: network(a.day_s, log=quiet),
        "load": lambda: load(a.plugs, a.load_speed, a.load_s, quiet),
        "inputs": lambda: bad_inputs(quiet),
        "slowloris": lambda: slowloris(log=quiet),
        "lying": lambda: lying(a.day_s, log=quiet),
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
