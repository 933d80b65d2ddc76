"""Calibration in the owner's signed config, on a virtual plug through its interfaces only
(HTTP POST /config, /status, the serial REPL): a pushed calibration changes the readings
and survives a reboot, cal.undo() goes back to the one before, a config whose calibration
section did not change leaves a later REPL calibration alone, and a bad channel or value
is refused with the field's path and changes nothing (config, readings, stored
calibration)."""

import time
from types import SimpleNamespace

import pytest
from ota_util import DAY_START, Signer, flash_load

from tools import plugctl
from tools.scenario import World

pytestmark = pytest.mark.slow


def watts(p, key="M1/A", n=6):
    """Mean of a few fresh readings of the channel's power (a steady 8 A resistive load)."""
    out = []
    for _ in range(n):
        time.sleep(0.4)
        out.append(p.status()["channels"][key]["W"])
    return sum(out) / n


def stored_p_gain(p, key="M1/A"):
    dev, code = key.split("/")
    return flash_load(p.state, "calibration")["devices"][dev][code]["p_gain"]


@pytest.fixture(scope="module")
def env():
    with World(DAY_START, log=lambda m: None) as w:
        p = w.add_plug("calcfg", speed=60, deploy=False)
        p.provision()
        signer = Signer(w, p.plug_address())
        signer.version = p.config_version
        raw = watts(p)  # chip default gains: p_gain 1.0
        assert raw > 1000, raw
        yield SimpleNamespace(w=w, p=p, s=signer, raw=raw)


def push(env, calibration=None, **over):
    s = env.s
    cfg = s.config(server={"port": env.p.http_port}, **over)
    if calibration is not None:
        cfg["calibration"] = calibration
    e = s.envelope(cfg)
    return e, env.p.post_config(e)


def near(got, want, tol=0.004):
    return abs(got / want - 1) <= tol


def test_schema_printer_shows_the_calibration_fields(capsys):
    assert plugctl.main(["config", "schema"]) == 0
    out = capsys.readouterr().out
    for field in ("v_gain_ppm", "i_gain_ppm", "p_gain_ppm", "phase_mdeg", "i_offset_ua",
                  "p_offset_mw"):
        assert "calibration.<DEVICE/CHANNEL>.%s" % field in out, out


def test_pushed_calibration_changes_readings_survives_reboot_and_undoes(env):
    p = env.p
    e, (code, body) = push(env, {"M1/A": {"p_gain_ppm": 1020000}})
    assert (code, body) == (200, {"version": e["version"]})
    w = watts(p)
    assert near(w, 1.02 * env.raw), (w, env.raw)
    assert abs(stored_p_gain(p) - 1.02) < 1e-5
    other = watts(p, "M2/1")

    p.reboot()
    assert near(watts(p), 1.02 * env.raw)
    assert near(watts(p, "M2/1"), other, 0.01)  # a channel not listed keeps its calibration

    # saved the way cal.save() saves: cal.undo() goes back to the calibration before
    assert "back to the calibration saved before" in p.mpremote("cal.undo()")
    assert near(watts(p), env.raw)
    p.mpremote("cal.save()")


def test_an_unchanged_calibration_section_leaves_a_repl_calibration_alone(env):
    p, raw = env.p, env.raw
    section = {"M1/A": {"p_gain_ppm": 1010000}, "M2/1": {"phase_mdeg": 0}}
    assert push(env, section)[1][0] == 200
    assert near(watts(p), 1.01 * raw)

    # later, a technician calibrates M1/A at the REPL against a reference reading 3 % lower
    p.mpremote('cal.power("M1/A", %.2f)' % (0.97 * raw))
    p.mpremote("cal.save()")
    repl_gain = stored_p_gain(p)
    assert abs(repl_gain - 0.97) < 0.005, repl_gain
    assert near(watts(p), 0.97 * raw)

    # the owner pushes unrelated changes: same section, then none at all
    e, (code, _) = push(env, section, meter={"checkpoint_s": 120})
    assert code == 200
    e, (code, _) = push(env, meter={"checkpoint_s": 180})
    assert code == 200 and "calibration" not in e["config"]
    assert p.status()["device"]["config_version"] == e["version"]
    assert near(watts(p), 0.97 * raw)
    assert stored_p_gain(p) == repl_gain

    # a changed section is applied again
    assert push(env, {"M1/A": {"p_gain_ppm": 1030000}})[1][0] == 200
    assert near(watts(p), 1.03 * raw)


def test_a_bad_channel_or_value_is_refused_with_its_path_and_changes_nothing(env):
    p = env.p
    chips = "[(fe.calibration(), fe.p_offsets) for fe in plug.front_ends]"
    before = (p.status()["device"]["config_version"], flash_load(p.state, "config"),
              flash_load(p.state, "calibration"), p.repl_eval(chips), watts(p))
    cases = [
        ({"M9/Z": {"p_gain_ppm": 1010000}}, 400,
         "calibration.M9/Z: this plug has no channel M9/Z (channels: M1/A, M1/B, M2/1"),
        ({"M1/A": {"p_gain_ppm": 2500000}}, 400,
         "calibration.M1/A.p_gain_ppm: must be between 500000 and 2000000"),
        ({"M1/A": {"phase_mdeg": "0.4"}}, 400, "calibration.M1/A.phase_mdeg: must be an integer"),
        ({"M1/A": {"gain": 1}}, 400, "calibration.M1/A.gain: unknown key"),
        ({"M2/1": {"p_offset_mw": 90000}}, 409, "calibration.M2/1: power offset 90.000 W"),
        # M1/A is set first, then the chip refuses M1/B's offset: M1/A is put back
        ({"M1/A": {"p_gain_ppm": 1100000}, "M1/B": {"i_offset_ua": 900000}}, 409,
         "calibration.M1/B: i_offset 0.9000 A of M1/B outside 0..0.800 A"),
    ]
    for section, status, words in cases:
        e, (code, body) = push(env, section)
        assert code == status and words in body["error"], (section, code, body)
        if status == 409:
            assert "config version %d rolled back" % e["version"] in body["error"], body
    # channel settings for a channel the plug lacks (a typo) are refused too, not ignored
    _, (code, body) = push(env, channels={"M9/Z": {"power_on": "off"}})
    assert code == 400 and body["error"].startswith(
        "channels.M9/Z: this plug has no channel M9/Z (channels: M1/A, M1/B, M2/1"), body
    after = (p.status()["device"]["config_version"], flash_load(p.state, "config"),
             flash_load(p.state, "calibration"), p.repl_eval(chips), watts(p))
    assert after[:4] == before[:4]
    assert near(after[4], before[4]), (before, after)
