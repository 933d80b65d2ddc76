"""Power cuts during over-the-air updates (tools/faults_update.py; `make faults` runs 20):
a virtual plug pushed one signed release after another, each update cut short at a random
moment while the bundle streams in, around the switch or during the trial, ends in a plug
that boots one whole version with its energy and money intact. And the check itself: a
slot with a file from another release, or a version /status and slot.json disagree on,
is a problem."""

import hashlib
import json
import os

import pytest

from tools import faults_update


@pytest.mark.slow
def test_six_cuts_during_updates_leave_one_whole_version_and_the_ledgers_intact():
    fig, problems = faults_update.update_cuts(cuts=6, seed=2, log=lambda *a: None)
    assert problems == []
    assert fig["cuts"] == 6
    # where the cuts fell, read from the flash: mid-stream, around the switch, in a trial
    # (seed 2 aims 2 cuts at each; one aimed at the switch may fall in the trial's boot)
    assert fig["landed_download"] >= 1
    assert fig["landed_switch"] + fig["landed_staged"] + fig["landed_trial"] >= 3
    assert fig["landed_trial"] >= 1
    assert fig["installed"] >= 2 and fig["kept"] + fig["rolled_back"] >= 2
    assert fig["totals_checked"] >= 6 * 15
    assert fig["paid_wei"] == fig["payee_delta_wei"]


class _Plug:
    """What whole_version reads of a plug: its flash and its /status."""

    def __init__(self, state, version):
        self.state = str(state)
        self.version = version

    def get(self, path, timeout=5):
        return json.dumps({"device": {"firmware": {"version": self.version}}})


def test_a_slot_mixing_releases_or_a_wrong_version_is_a_problem(tmp_path):
    files = {"plug/app.mpy": b"app 0.7", "plug/version.mpy": b"0.7.0", "board.mpy": b"b"}
    slot = tmp_path / "slot" / "b"
    for path, data in files.items():
        (slot / os.path.dirname(path)).mkdir(parents=True, exist_ok=True)
        (slot / path).write_bytes(data)
    (tmp_path / "slot.json").write_text(json.dumps({"active": "slot/b", "version": "0.7.0",
                                                    "good": True}))
    rel = type("Rel", (), {})()
    rel.root_files = {}
    rel.trees = {"0.7.0": {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}}
    p = _Plug(tmp_path, "0.7.0")
    assert faults_update.whole_version(p, rel, "0.5.0", "x") == []
    (slot / "plug" / "app.mpy").write_bytes(b"app 0.6")  # a file of another release
    (slot / "plug" / "stray.mpy").write_bytes(b"?")
    probs = faults_update.whole_version(p, rel, "0.5.0", "x")
    assert len(probs) == 2 and "plug/app.mpy" in probs[0] and "stray.mpy" in probs[1]
    p.version = "0.6.0"
    probs = faults_update.whole_version(p, rel, "0.5.0", "x")
    assert "/status says 0.6.0, slot.json names 0.7.0" in probs[0]
