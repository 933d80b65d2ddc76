"""The faults run's power cuts (`python -m tools.faults --only cuts`): one plug, a simulated
day, SIGKILLed at random moments (some while a payment is pending, some during a config
apply, some while it writes its flash; where each cut really fell is read from its flash)
and booted again on the same flash. What is checked: tools/faults.py's docstring."""

import os
import random
import threading
import time

from . import faults_audit as audit
from .faults import (CHECKPOINT_S, DAY, KEYS, RATES, READ_S, _money, _post, _post_into,
                     config_problems, fault_config, import_power, import_total, provision,
                     save_console, settle_pending, try_status, wait_up)
from .scenario import World

MIN_REAL_MS = 20  # the meter reads at most every 20 ms of real time (meter.py)
SIM_PASSES = 16  # read times the sim's energy log keeps (boards/sim/chip.py _PASSES)


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
