"""The plug controls its outlets (issue 13): switching at the REPL and over HTTP with the
control token, restore_last across power cuts, overload protection that still bills the
overload, over-temperature with hysteresis. All on virtual plugs through their interfaces
(HTTP, the serial REPL, sim.json) with a real anvil."""

import hashlib
import json
import time
import urllib.error
import urllib.request

import pytest

from tests.iface_util import wait_for, yesterdays_world
from tools.simrun import read_settings, save_settings

pytestmark = pytest.mark.slow

TOKEN = "correct horse battery staple"
TOKEN_SHA = hashlib.sha256(TOKEN.encode()).hexdigest()
KEYS = ("M1/A", "M1/B", "M2/1", "M2/2", "M2/3")
SPEED = 240  # sim s per real s; reads every 10 sim s (scenario's plug_config)


def post_switch(p, body, token=None, auth=None):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    if auth is not None:
        headers["Authorization"] = auth
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(p.url + "/switch", data, headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def outputs(p):
    return json.loads(p.get("/switch"))["outputs"]


def on_states(p):
    return {k: v["on"] for k, v in outputs(p).items()}


def sim_set(p, **kw):
    s = read_settings(p.state)
    s.update(kw)
    save_settings(p.state, s)


@pytest.fixture(scope="module")
def world():
    with yesterdays_world(log=lambda *a: None) as w:
        yield w


@pytest.fixture(scope="module")
def plug(world):
    p = world.add_plug("out", speed=SPEED, deploy=False)
    p.provision({"control": {"token_sha256": TOKEN_SHA},
                 "channels": {"M1/A": {"max_current_a": 10},
                              "M2/3": {"power_on": "off"}},
                 "protect": {"max_power_w": 3000, "hold_s": 60}})
    return p


def test_switching_needs_the_token_and_an_open_relay_stops_the_energy(plug):
    st = outputs(plug)
    assert set(st) == set(KEYS) and all(v["relay"] for v in st.values())
    before = on_states(plug)
    assert before["M1/A"] is True
    # no token, a wrong one, a token in the wrong scheme: 401 and nothing changes
    for tok in (None, "wrong", TOKEN[:-1], TOKEN + "x"):
        code, body = post_switch(plug, {"channel": "M1/A", "on": False}, tok)
        assert code == 401 and "token" in body["error"], (tok, code, body)
    for auth in ("Basic " + TOKEN, TOKEN, "bearer"):
        assert post_switch(plug, {"channel": "M1/A", "on": False}, auth=auth)[0] == 401
    assert on_states(plug) == before
    # the right token with a bad body or an unknown channel: 400, nothing changes
    for bad in (b"not json", {"channel": "M1/A"}, {"channel": "M1/A", "on": "no"},
                {"channel": "M9/Z", "on": False}, [1]):
        code, body = post_switch(plug, bad, TOKEN)
        assert code == 400, (bad, code, body)
    assert on_states(plug) == before

    code, body = post_switch(plug, {"channel": "M1/A", "on": False}, TOKEN)
    assert code == 200 and body["on"] is False and body["reason"] == "off", body
    assert body["detail"] == "http"
    # at the REPL
    out = plug.mpremote("print(plug.switch('M1/B', False)['on']); print(plug.outputs()['M1/B'])")
    lines = [ln for ln in out.splitlines() if not ln.startswith("[")]
    assert lines[0].strip() == "False" and "'reason': 'off'" in lines[1], out
    assert "[out] M1/B switched off (repl)" in out

    # the simulated load stops drawing: its true energy stands still, the ledger follows
    true0 = plug.repl_eval("board.true_energy_uwh('M1/A')")[0]
    led0 = plug.status()["channels"]["M1/A"]["import_uwh"]
    time.sleep(2)  # ~8 sim minutes
    true1 = plug.repl_eval("board.true_energy_uwh('M1/A')")[0]
    ch = plug.status()["channels"]["M1/A"]
    assert true1 == true0
    assert ch["import_uwh"] - led0 < 2000 and ch["A"] < 0.1, ch  # only the chip's creep
    # on again: the energy flows and is metered
    code, body = post_switch(plug, {"channel": "M1/A", "on": True}, TOKEN)
    assert code == 200 and body["on"] is True
    wait_for(lambda: plug.status()["channels"]["M1/A"]["import_uwh"] > ch["import_uwh"] + 10**6,
             what="energy on M1/A after switching it on")
    plug.mpremote("plug.switch('M1/B', True)")


def test_restore_last_across_power_cuts_with_mixed_states(plug):
    want = {"M1/A": False, "M1/B": True, "M2/1": False, "M2/2": True}
    for k, on in want.items():
        assert post_switch(plug, {"channel": k, "on": on}, TOKEN)[0] == 200
    # M2/3 powers on "off" whatever it was before the cut
    assert post_switch(plug, {"channel": "M2/3", "on": True}, TOKEN)[0] == 200
    for cut in range(10):
        boots = plug.boots
        plug.kill()
        wait_for(lambda b=boots: plug.boots > b, what="reboot after cut %d" % cut)
        plug.wait_http()
        st = outputs(plug)
        assert {k: st[k]["on"] for k in want} == want, (cut, st)
        assert st["M1/A"]["detail"] == "restored" and st["M2/3"]["on"] is False
        assert st["M2/3"]["detail"] == "power_on"
    # and the relays really are as shown: no true energy on the open ones
    e0 = plug.repl_eval("[board.true_energy_uwh(k)[0] for k in ('M1/A', 'M2/1', 'M1/B')]")
    time.sleep(1)
    e1 = plug.repl_eval("[board.true_energy_uwh(k)[0] for k in ('M1/A', 'M2/1', 'M1/B')]")
    assert e1[0] == e0[0] and e1[1] == e0[1] and e1[2] > e0[2]
    for k in KEYS:
        post_switch(plug, {"channel": k, "on": True}, TOKEN)


def test_an_overload_is_billed_and_trips_after_the_hold(plug):
    """M1/A is configured for 10 A: a 16 A load (3.7 kW) used to be dropped as a spike
    (above 10 A x 230 V x 1.5); now it is metered, and over-power trips it."""
    repl = ("from sim.load import Load\n"
            "e0 = (board.true_energy_uwh('M1/A')[0], plug.ledger.totals('M1/A')[0])\n"
            "board.hardware()['chips']['M1'].set_load(0, Load(16.0))\n"
            "print(repr((board.clock().time(), e0)))")
    out = plug.mpremote(repl).strip().splitlines()[-1]
    t_ramp, (true0, led0) = eval(out)
    st = wait_for(lambda: (lambda s: s if s["M1/A"]["reason"] == "over_power" else None)(
        outputs(plug)), what="over-power trip")["M1/A"]
    assert st["on"] is False and "above 3000 W" in st["detail"], st
    interval = 10
    # the first read over the limit comes within one interval of the ramp; it trips
    # hold_s after that, at the read that finds the hold over (+1 s: whole plug seconds)
    assert t_ramp < st["since"] <= t_ramp + 60 + 2 * interval + 1, (t_ramp, st)
    true1, led1 = plug.repl_eval("(board.true_energy_uwh('M1/A')[0], "
                                 "plug.ledger.totals('M1/A')[0])")
    # the overload up to the trip is in the ledger (factory gain errors: a few %)
    assert true1 - true0 > 3000 * 60 / 3600 * 1e6
    assert abs((led1 - led0) - (true1 - true0)) < 0.1 * (true1 - true0), (led1 - led0,
                                                                          true1 - true0)
    log = plug.mpremote("print(1)")  # the plug is still answering at its REPL
    assert "1" in log
    # it stays off (no auto-retry configured) until switched on
    time.sleep(1)
    assert outputs(plug)["M1/A"]["on"] is False
    plug.mpremote("board.hardware()['chips']['M1'].set_load(0, Load(8.0))")
    code, body = post_switch(plug, {"channel": "M1/A", "on": True}, TOKEN)
    assert code == 200 and body["on"] is True and body["reason"] == "on", body
    time.sleep(1)
    assert outputs(plug)["M1/A"]["on"] is True


def test_over_temperature_switches_everything_off_with_hysteresis(plug):
    assert all(on_states(plug).values())
    sim_set(plug, temp_c=95)
    st = wait_for(lambda: (lambda s: s if all(v["reason"] == "over_temperature"
                                              for v in s.values()) else None)(outputs(plug)),
                  what="over-temperature cut")
    assert not any(v["on"] for v in st.values())
    assert plug.status()["device"]["temperature_c"] == 95
    assert plug.repl_eval("board.led_state()") == "alert"
    sim_set(plug, temp_c=80)  # cooler, but not below 90 - 15
    time.sleep(2)
    assert not any(on_states(plug).values())
    sim_set(plug, temp_c=70)
    wait_for(lambda: all(on_states(plug).values()), what="outputs back after cooling")
    wait_for(lambda: plug.repl_eval("board.led_state()") == "on", what="LED back on")


def test_a_button_press_toggles_its_output(plug):
    assert outputs(plug)["M2/2"]["on"] is True
    sim_set(plug, buttons={"M2/2": True})  # pressed and held: one toggle
    st = wait_for(lambda: (lambda o: o if not o["on"] else None)(outputs(plug)["M2/2"]),
                  what="button press")
    assert st["reason"] == "off" and st["detail"] == "button"
    time.sleep(1)
    assert outputs(plug)["M2/2"]["on"] is False
    sim_set(plug, buttons={})
    time.sleep(0.5)
    sim_set(plug, buttons={"M2/2": True})
    wait_for(lambda: outputs(plug)["M2/2"]["on"], what="second press")
    sim_set(plug, buttons={})

