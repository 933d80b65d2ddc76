"""Over-the-air releases on a virtual plug, through its interfaces only (HTTP, the flash a
person could read on the bench): `plugctl update push` streams a signed bundle to POST
/update; the plug checks and stages it while it keeps metering, installs it in the other
slot and reboots into it on trial; the release marks itself good once it has run its
trial time healthy. A bundle it must not take (another signer's, a flipped byte, a stream
cut off mid-way, the same version again) gets 400 with the reason, one whose sender
stalls 408, and none leaves a staging folder; a power cut while one streams in or during
a trial boot leaves a plug that boots one whole version. A release that cannot start,
whose meter never reads, or whose board module raises at import, is rolled back by the
root main.py within three boots, with the energy and payment records intact and the
reason in /status. Refusals are shown in /status but never written to the flash.
"""

import json
import os
import shutil
import socket
import subprocess
import urllib.parse

import pytest
from ota_util import DAY_START, wait_for

from tools import plugctl, release
from tools.paths import FIRMWARE, executable
from tools.scenario import OWNER_KEY, World

# one story told in order on one plug (v1, v2, bad releases, cuts, a serial deploy): the
# module runs on one xdist worker (make test: --dist loadfile)
pytestmark = pytest.mark.slow

OTHER_KEY = "0x" + "a1" * 32


def _compile(src_text, dst):
    tmp = dst + ".py"
    with open(tmp, "w") as f:
        f.write(src_text)
    r = subprocess.run([executable("mpy-cross"), "-march=x64", "-o", dst, tmp],
                       capture_output=True, text=True)
    os.remove(tmp)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from tools.deploy import stage

    out = tmp_path_factory.mktemp("bundles")
    with World(DAY_START, log=lambda m: None) as w:
        p = w.add_plug("upd", speed=60, deploy=False)
        p.provision(config_over={"meter": {"checkpoint_s": 10}})
        b = {}

        def make(name, version, key=OWNER_KEY, trial_s=12, patch=None):
            flash = stage("sim")
            try:
                release._stamp_version(flash, "sim", version, "t3st")
                if patch:
                    patch(flash)
                b[name] = str(out / (name + ".bin"))
                release.make_bundle(key, version, "sim", [p.address], b[name], flash=flash,
                                    build="t3st", trial_s=trial_s)
            finally:
                shutil.rmtree(flash, ignore_errors=True)

        make("good", "0.6.0")
        make("stranger", "0.6.0", key=OTHER_KEY)
        make("broken", "0.7.0", patch=lambda fl: _compile(
            'raise RuntimeError("broken release")\n', os.path.join(fl, "plug", "app.mpy")))
        with open(os.path.join(FIRMWARE, "plug", "meter.py")) as f:
            meter_src = f.read()
        make("broken_board", "0.7.2", patch=lambda fl: _compile(
            'raise RuntimeError("broken board module")\n', os.path.join(fl, "board.mpy")))
        make("next", "0.8.0")
        make("dead_meter", "0.7.1", trial_s=120, patch=lambda fl: _compile(
            meter_src + "\n\nasync def _never(self):\n    while True:\n"
            "        await asyncio.sleep_ms(1000)\n\n\nMeter.run = _never\n",
            os.path.join(fl, "plug", "meter.mpy")))
        yield w, p, b


def push(capsys, p, path):
    code = plugctl.main(["update", "push", "--url", p.url, path])
    out = capsys.readouterr()
    return code, out.out + out.err


def cut_push(p, data, keep):
    """Send the head promising all of `data`, then only `keep` bytes of it, and close."""
    u = urllib.parse.urlsplit(p.url)
    with socket.create_connection((u.hostname, u.port), timeout=30) as s:
        s.sendall(b"POST /update HTTP/1.1\r\nHost: plug\r\nContent-Length: %d\r\n\r\n"
                  % len(data) + data[:keep])
        s.shutdown(socket.SHUT_WR)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass


def status(p):
    try:
        return p.status()
    except (OSError, ValueError):
        return None  # rebooting


def version_of(p):
    st = status(p)
    return st and st["device"]["firmware"]["version"]


def energy(st):
    return sum(c["import_uwh"] for c in st["channels"].values())


def update_state(p):
    st = status(p)
    return st and st.get("update") or {}


def paid_invoices(p):
    led = p.ledger()
    paid = [(i["t_start"], i["t_end"], i["payee"]) for i in led.get("invoices", ())
            if i.get("payment")]
    assert len(paid) == len(set(paid)), "an invoice paid twice: %r" % paid
    return len(paid)


def refusal(p):
    return update_state(p).get("refused") or {}


def update_files(p):
    """The update record's files on the flash, bytes and all."""
    d = os.path.join(p.state, "state")
    return {n: open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))
            if n.startswith("update.")}


def stage_dir(p):
    return os.path.join(p.state, "stage")


def slot_record(p):
    with open(os.path.join(p.state, "slot.json")) as f:
        return json.load(f)


def test_refused_bundles_leave_nothing_and_v2_replaces_v1(env, capsys):
    _w, p, b = env
    assert version_of(p) == "0.5.0"
    assert not os.path.exists(os.path.join(p.state, "slot.json"))  # deployed the old way
    # a stranger's bundle: 400 with the reason, nothing on the flash
    code, out = push(capsys, p, b["stranger"])
    assert code == 1 and out.startswith("400") and "not by the plug's owner" in out, out
    assert not os.path.exists(stage_dir(p))
    # a flipped byte in the last file: refused once it has streamed, no stage left
    with open(b["good"], "rb") as f:
        data = bytearray(f.read())
    data[-3] ^= 0x40
    flipped = b["good"] + ".flipped"
    with open(flipped, "wb") as f:
        f.write(data)
    code, out = push(capsys, p, flipped)
    assert code == 1 and "SHA-256 differs from the file table's" in out, out
    assert not os.path.exists(stage_dir(p))
    u = refusal(p)
    assert u["version"] == "0.6.0" and "SHA-256" in u["reason"]
    # cut off mid-stream: no stage, the reason shown
    cut_push(p, bytes(data), len(data) // 2)
    wait_for(lambda: "truncated" in refusal(p).get("reason", ""), timeout=60,
             what="the cut-off bundle's refusal in /status")
    assert not os.path.exists(stage_dir(p))
    # a sender that stalls mid-way is cut off (408) once no byte came for the server's
    # timeout: no stage, the reason recorded
    u = urllib.parse.urlsplit(p.url)
    with socket.create_connection((u.hostname, u.port), timeout=60) as s:
        s.sendall(b"POST /update HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(data)
                  + bytes(data[:len(data) // 3]))
        answer = s.recv(4096)  # waits for the plug to give up on us
    assert answer.startswith(b"HTTP/1.1 408"), answer
    wait_for(lambda: "cut off" in refusal(p).get("reason", ""), timeout=60,
             what="the stalled bundle's refusal in /status")
    assert not os.path.exists(stage_dir(p))
    assert version_of(p) == "0.5.0"
    # the owner's v2: installed, the plug reboots into it and keeps metering
    e0 = energy(p.status())
    code, out = push(capsys, p, b["good"])
    assert code == 0 and out.startswith("200") and '"installed": "0.6.0"' in out, out
    wait_for(lambda: version_of(p) == "0.6.0", timeout=120, what="the plug running 0.6.0")
    assert not os.path.exists(stage_dir(p))
    assert slot_record(p)["active"] == "slot/a"
    wait_for(lambda: update_state(p).get("state") == "good", timeout=120,
             what="0.6.0 marked good after its trial")
    assert slot_record(p)["good"] is True
    wait_for(lambda: energy(p.status()) > e0, timeout=60, what="metering going on in 0.6.0")
    paid_invoices(p)
    # the same bundle again, and junk: refused, 0.6.0 keeps running; refusals (anyone can
    # POST /update) are shown but never written to the flash, so the record of the
    # install stays and the flash is not worn
    before = update_files(p)
    code, out = push(capsys, p, b["good"])
    assert code == 1 and "not newer than the running 0.6.0" in out, out
    junk = b["good"] + ".junk"
    with open(junk, "wb") as f:
        f.write(b"\x00" * 300)
    for _ in range(5):
        code, out = push(capsys, p, junk)
        assert code == 1 and out.startswith("400"), out
    assert version_of(p) == "0.6.0"
    u = update_state(p)
    assert (u["state"], u["version"]) == ("good", "0.6.0") and u["refused"]["reason"], u
    assert update_files(p) == before


@pytest.mark.parametrize("name, why", [
    ("broken", "RuntimeError: broken release"),
    # failed at each boot once its meter had not read for 30 s, not after 2 x trial_s
    # (240 s: energy flowing all that time would not be counted)
    ("dead_meter", "the meter is not reading (none for 30 s)"),
    # raised in main.py's import of the release's board module, before any app code
    ("broken_board", "RuntimeError: broken board module"),
])
def test_a_bad_release_rolls_back_within_three_boots(name, why, env, capsys):
    _w, p, b = env
    wait_for(lambda: version_of(p) == "0.6.0" and slot_record(p)["good"], timeout=120,
             what="0.6.0 running and kept")
    st0 = p.status()
    e0, n0 = energy(st0), paid_invoices(p)
    boots = p.boots
    code, out = push(capsys, p, b[name])
    assert code == 0 and '"installed"' in out, out
    wait_for(lambda: update_state(p).get("state") == "rolled_back" and
             version_of(p) == "0.6.0", timeout=480, what="%s rolled back to 0.6.0" % name)
    u = update_state(p)
    assert u["version"] == {"broken": "0.7.0", "dead_meter": "0.7.1",
                            "broken_board": "0.7.2"}[name]
    assert why in u["reason"] and "3 boots" in u["reason"], u
    assert 3 <= p.boots - boots <= 5  # the install's reboot, 3 on trial, the rollback's
    rec = slot_record(p)
    assert rec["active"] == "slot/a" and rec["good"] is True
    # energy kept (at most one checkpoint's worth is re-metered, none lost), and no
    # invoice paid twice
    wait_for(lambda: energy(p.status()) > e0, timeout=60, what="metering after rollback")
    assert paid_invoices(p) >= n0


def test_power_cuts_during_download_and_trial(env, capsys):
    _w, p, b = env
    wait_for(lambda: version_of(p) == "0.6.0" and slot_record(p)["good"], timeout=120,
             what="0.6.0 running and kept")
    e0 = energy(p.status())
    rec0 = slot_record(p)
    # the power goes while the bundle streams in: the plug boots 0.6.0 as before
    with open(b["next"], "rb") as f:
        data = f.read()
    u = urllib.parse.urlsplit(p.url)
    with socket.create_connection((u.hostname, u.port), timeout=30) as s:
        s.sendall(b"POST /update HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(data)
                  + data[:len(data) // 2])
        wait_for(lambda: os.path.exists(os.path.join(stage_dir(p), "lib")), timeout=60,
                 what="files being staged")
        p.kill()
    wait_for(lambda: version_of(p) == "0.6.0", timeout=120, what="0.6.0 after the cut")
    assert slot_record(p) == rec0
    # the next push clears what the cut left and installs; a cut during its trial
    # boot only counts one more trial boot, and the release is kept
    code, out = push(capsys, p, b["next"])
    assert code == 0 and '"installed": "0.8.0"' in out, out
    wait_for(lambda: version_of(p) == "0.8.0", timeout=120, what="the plug running 0.8.0")
    p.kill()
    wait_for(lambda: version_of(p) == "0.8.0", timeout=120, what="0.8.0 after the cut")
    assert slot_record(p)["trial"] == 2
    wait_for(lambda: slot_record(p)["good"], timeout=120, what="0.8.0 kept after its trial")
    rec = slot_record(p)
    assert (rec["active"], rec["previous"], rec["version"]) == ("slot/b", "slot/a", "0.8.0")
    assert update_state(p)["state"] == "good"
    wait_for(lambda: energy(p.status()) > e0, timeout=60, what="metering in 0.8.0")
    paid_invoices(p)


def test_a_serial_deploy_takes_over_from_a_release(env):
    """`plugctl deploy` over serial after an over-the-air release boots what it copied."""
    from tools.deploy import deploy

    _w, p, _b = env
    wait_for(lambda: version_of(p) == "0.8.0", timeout=120, what="0.8.0 running")
    boots = p.boots
    deploy(p.serial, "sim", log=lambda m: None)
    wait_for(lambda: p.boots > boots and version_of(p) == "0.5.0", timeout=180,
             what="the deployed 0.5.0 running")
    assert not os.path.exists(os.path.join(p.state, "slot.json"))
