"""The faults run's power cuts during over-the-air updates (`python -m tools.faults --only
update`): one plug, pushed one signed release after another (each bundle of `update push`
streamed to POST /update), SIGKILLed at a random moment of each update: while the bundle
streams in and is staged, around the switch (stage moved into the other slot, slot.json
written, the reboot) or during the new release's trial. Where each cut really fell is read
from its flash. After every cut, and again once the release is kept or rolled back:
- the plug boots one whole version: /status's version is the one slot.json names (the
  old or the new, never another), and every file of the running slot (slot/a, slot/b, or
  the flash's root before the first release) is byte for byte that version's bundle
  file, and a slot holds nothing else;
- energy: no restored or reported total above what the chips ever handed out (the sim's
  energy log, exact), and a checkpoint at most one interval (plus the passes in flight)
  older than the last read;
and at the end the money audit of tools/faults.py (each invoice paid at most once, payee
delta == transfers == confirmed records).
"""

import os
import random
import shutil
import socket
import threading
import time
import urllib.parse

from . import faults_audit as audit, release
from .faults import (CHECKPOINT_S, DAY, RATES, READ_S, _money, import_power, provision,
                     save_console, try_status, wait_up)
from .faults_power import MIN_REAL_MS, _invented, _last_read_in_checkpoint, read_sim_energy
from .scenario import OWNER_KEY, World

TRIAL_S = 6
KINDS = ("download", "switch", "trial")


class Releases:
    """Bundles 0.6.0, 0.7.0, ... for one plug, made as they are needed; {version: {path:
    sha256}} of each, and of what the flash's root was deployed with."""

    def __init__(self, plug, tmp):
        from .deploy import stage

        self.plug, self.tmp = plug, tmp
        self.paths, self.trees = {}, {}
        flash = stage("sim")  # what install_firmware put on the flash's root
        try:
            self.root_files = {p: h for p, _n, h in release.files_of(flash)}
        finally:
            shutil.rmtree(flash, ignore_errors=True)

    def bundle(self, version):
        from .deploy import stage

        if version not in self.paths:
            flash = stage("sim")
            try:
                release._stamp_version(flash, "sim", version, "fault")
                path = os.path.join(self.tmp, "v%s.bin" % version)
                release.make_bundle(OWNER_KEY, version, "sim", [self.plug.address], path,
                                    flash=flash, build="fault", trial_s=TRIAL_S)
                self.trees[version] = {p: h for p, _n, h in release.files_of(flash)}
                self.paths[version] = path
            finally:
                shutil.rmtree(flash, ignore_errors=True)
        return self.paths[version]


def _slot(state):
    import json

    try:
        with open(os.path.join(state, "slot.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def whole_version(p, rel, root_version, where):
    """Problems if the plug does not run one whole version."""
    st = try_status(p, 5)
    if st is None:
        return ["%s: no /status" % where]
    running = st["device"]["firmware"]["version"]
    rec = _slot(p.state)
    active = rec["active"] if rec else ""
    want = (rec.get("version") if rec else None) or root_version
    probs = []
    if running != want:
        probs.append("%s: /status says %s, slot.json names %s (%r)" % (where, running, want,
                                                                       active))
    files = rel.trees.get(running) if active else rel.root_files
    if files is None:
        return probs + ["%s: running %s, which no bundle made" % (where, running)]
    d = os.path.join(p.state, active) if active else p.state
    got = release.tree(d, list(files))
    bad = sorted(k for k in files if got[k] != files[k])
    if bad:
        probs.append("%s: %s in %r differs from its bundle: %s" % (where, running, active,
                                                                   ", ".join(bad[:5])))
    if active:
        extra = sorted(set(release.tree(d)) - set(files) - {".table", ".manifest"})
        if extra:
            probs.append("%s: %r holds files no bundle had: %s" % (where, active, extra[:5]))
    return probs


def _push(p, path, out):
    """POST /update with the bundle, as `plugctl update push` streams it; the answer's
    status line (or the error) into out."""
    u = urllib.parse.urlsplit(p.url)
    with open(path, "rb") as f:
        data = f.read()
    try:
        with socket.create_connection((u.hostname, u.port), timeout=60) as s:
            s.sendall(b"POST /update HTTP/1.1\r\nHost: plug\r\nContent-Length: %d\r\n\r\n"
                      % len(data))
            for i in range(0, len(data), 4096):
                s.sendall(data[i:i + 4096])
            out["answer"] = s.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
    except OSError as e:
        out["answer"] = "%s: %s" % (type(e).__name__, e)


def _wait(cond, timeout, poll=0.002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(poll)
    return None


def _staged_bytes(state):
    n = 0
    for root, _dirs, names in os.walk(os.path.join(state, "stage")):
        for name in names:
            try:
                n += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return n


def _landed(state, version):
    """Where a cut fell during the update to `version`, read from the flash."""
    rec = _slot(state)
    if rec and rec.get("version") == version and not rec.get("good"):
        return "trial" if rec.get("trial", 0) >= 1 else "switch"
    if rec and rec.get("version") == version:
        return "kept"
    if os.path.exists(os.path.join(state, "stage", ".manifest")):
        return "staged"
    if os.path.isdir(os.path.join(state, "stage")):
        return "download"
    return "before"


def _settled(p, timeout=240):
    """The plug up and no release on trial (kept or rolled back)."""
    def done():
        rec = _slot(p.state)
        return try_status(p, 3) is not None and (rec is None or rec.get("good"))
    return _wait(done, timeout, poll=0.3)


def _energy(p, k, fig, read_s, st):
    """After a cut: the restored checkpoint and the reboot's totals against the sim's
    energy log; the checkpoint's age against one interval plus the passes in flight."""
    probs = []
    ck, _ = audit.read_checkpoint(p.state)
    t_ck = _last_read_in_checkpoint(p.state)
    handed, passes = read_sim_energy(p.state)
    if ck is not None:
        probs += _invented(k, "restored", {c: (v, None) for c, v in ck.items()}, handed)
        fig["totals_checked"] += len(ck)
    st2 = wait_up(p, 120)
    probs += _invented(k, "/status after the reboot shows",
                       {c: (ch["import_uwh"], ch["export_uwh"])
                        for c, ch in st2["channels"].items()}, read_sim_energy(p.state)[0])
    fig["totals_checked"] += 2 * len(st2["channels"])
    if ck is not None and passes and t_ck is not None:
        after = [t for t in passes if t >= t_ck]
        pass_s = max([read_s] + [b - a for a, b in zip(after, after[1:])])
        age = passes[-1] - t_ck
        fig["max_checkpoint_age_s"] = max(fig["max_checkpoint_age_s"], int(age))
        if st is not None:  # what the cut cost: that age at the power seen before it
            fig["lost_wh"] += import_power(st) * max(0.0, age) / 0.0036 / 1e6
        if age > CHECKPOINT_S + 2 * pass_s + 1:
            probs.append("cut %d: restored checkpoint %.0f s older than the last read "
                         "(allowed: one %d s interval + two passes of up to %.0f s)"
                         % (k, age, CHECKPOINT_S, pass_s))
    return probs


def update_cuts(cuts=20, day_s=240, seed=1, log=print):
    """One plug, `cuts` updates each cut short by a SIGKILL at a random moment. Returns
    figures and the list of problems found."""
    import tempfile

    rnd = random.Random(seed)
    speed = 86400 / day_s
    read_s = max(READ_S, speed * MIN_REAL_MS / 1000)
    fig = {"cuts": 0, "landed_download": 0, "landed_staged": 0, "landed_switch": 0,
           "landed_trial": 0, "landed_other": 0, "installed": 0, "kept": 0,
           "rolled_back": 0, "max_checkpoint_age_s": 0, "lost_wh": 0.0,
           "totals_checked": 0}
    problems = []
    tmp = tempfile.mkdtemp(prefix="faults-update-")
    try:
        with World(DAY, RATES, log=log) as w:
            p = w.add_plug("update", speed=speed, deploy=False)
            provision(p)
            rel = Releases(p, tmp)
            root_version = p.status()["device"]["firmware"]["version"]
            minor = 6
            for k in range(1, cuts + 1):
                kind = rnd.choice(KINDS)
                st = try_status(p, 5)
                running = st["device"]["firmware"]["version"] if st else root_version
                while (0, minor, 0) <= tuple(int(x) for x in running.split(".")):
                    minor += 1
                version = "0.%d.0" % minor
                path = rel.bundle(version)
                out = {}
                th = threading.Thread(target=_push, args=(p, path, out), daemon=True)
                th.start()
                if kind == "download":  # once a random share of it is on the flash
                    share = rnd.uniform(0.0, 1.0) * os.path.getsize(path)
                    _wait(lambda s=share, v=version: _staged_bytes(p.state) >= s
                          or _landed(p.state, v) not in ("before", "download"), 60,
                          poll=0.001)
                elif kind == "switch":
                    _wait(lambda v=version: _landed(p.state, v) not in ("before", "download"),
                          120, poll=0.001)
                    time.sleep(rnd.uniform(0.0, 1.5))
                else:
                    _wait(lambda v=version: (try_status(p, 2) or {}).get("device", {}).get(
                        "firmware", {}).get("version") == v, 180, poll=0.2)
                    time.sleep(rnd.uniform(0.0, TRIAL_S))
                p.kill()
                landed = _landed(p.state, version)
                fig["cuts"] += 1
                fig["landed_" + (landed if landed in ("download", "staged", "switch",
                                                      "trial") else "other")] += 1
                th.join(5)
                problems += _energy(p, k, fig, read_s, st)
                where = "cut %d (%s, landed: %s)" % (k, kind, landed)
                problems += whole_version(p, rel, root_version, where + ", at the reboot")
                if not _settled(p):
                    problems.append("%s: still on trial after 4 minutes" % where)
                    continue
                rec = _slot(p.state) or {}
                if rec.get("version") == version:
                    fig["kept"] += 1
                if rec.get("rolled_back") == version:
                    fig["rolled_back"] += 1
                if landed in ("switch", "trial", "kept"):
                    fig["installed"] += 1
                problems += whole_version(p, rel, root_version, where + ", settled")
                log("%s: %s running" % (where, (try_status(p, 5) or {}).get(
                    "device", {}).get("firmware", {}).get("version")))
            fig["boots"] = p.vplug.boots
            fig.update(_money(w, [p], problems, int(fig["lost_wh"] * 1e6)))
            save_console(p, log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return fig, problems
