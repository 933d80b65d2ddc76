"""Config envelopes are bound to one plug, a stored config this firmware no longer
accepts does not stop the plug from booting, and `plugctl config sign` refuses what the
plug would refuse. The plug's side runs on MicroPython (tests/config_probe.py)."""

import json
import os
import subprocess
import sys

import pytest
from config_util import probe
from eth_account import Account
from eth_account.messages import encode_defunct

from tools.config_cli import canonical, sign_envelope

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OWNER_KEY = "0x" + "c3" * 32
OWNER = Account.from_key(OWNER_KEY).address
PLUG_A = Account.from_key("0x" + "0a" * 32).address  # two plugs of the same owner
PLUG_B = Account.from_key("0x" + "0b" * 32).address
FACTORY = {"server": {"port": 8080}}


def store(d):
    from plug.store import Store

    return Store(d)


def apply(tmp_path, d, env, plug, factory=None):
    path = tmp_path / "env.json"
    path.write_text(json.dumps(env))
    case = {"op": "apply", "dir": d, "owner": OWNER, "plug": plug, "path": str(path)}
    if factory:
        case["factory"] = factory
    return probe([case], heap="128k")[0]


def test_an_envelope_for_one_plug_is_refused_by_another(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    env = sign_envelope({"meter": {"checkpoint_s": 120}}, 3, OWNER_KEY, PLUG_A)
    out = apply(tmp_path, b, env, PLUG_B)
    assert out == {"err": "envelope.plug: signed for plug %s, this plug is %s"
                          % (PLUG_A, PLUG_B)}
    assert store(b).load("config") is None  # nothing changed on plug B
    # relabelled for B after signing: the signature covers the plug
    out = apply(tmp_path, b, dict(env, plug=PLUG_B), PLUG_B)
    assert "not signed by the owner" in out["err"]
    assert store(b).load("config") is None
    # plug A takes it
    assert apply(tmp_path, a, env, PLUG_A) == {"ok": 3}
    assert store(a).load("config") == env


def test_a_stored_config_this_firmware_refuses_boots_on_factory_settings(tmp_path):
    """E.g. after a firmware update narrowed a range: the plug boots (it used to raise
    ConfigError at every boot), keeps the version so older envelopes stay refused, and
    leaves the stored envelope on the flash."""
    from plug import config

    d = str(tmp_path / "state")
    s = store(d)
    s.save("owner", OWNER)
    old = sign_envelope({"meter": {"checkpoint_s": 5}, "wifi": {"ssid": "home"}}, 5,
                        OWNER_KEY, PLUG_A)
    s.save("config", old)
    version, why, cfg, logs = probe([{"op": "boot", "dir": d, "factory": FACTORY}])[0]["ok"]
    assert version == 5
    assert "stored config v5 is not valid" in why and "meter.checkpoint_s" in why
    assert any(why in line for line in logs)
    assert json.loads(cfg) == config.validate(FACTORY)  # factory settings, not the old Wi-Fi
    assert store(d).load("config") == old
    # an older envelope is still refused, a newer one goes in and clears the fallback
    out = apply(tmp_path, d, sign_envelope({}, 4, OWNER_KEY, PLUG_A), PLUG_A, FACTORY)
    assert "4 is not newer than the config in force (5)" in out["err"]
    new = sign_envelope({"meter": {"checkpoint_s": 30}}, 6, OWNER_KEY, PLUG_A)
    assert apply(tmp_path, d, new, PLUG_A, FACTORY) == {"ok": 6}
    version, why, cfg, _ = probe([{"op": "boot", "dir": d, "factory": FACTORY}])[0]["ok"]
    assert (version, why, json.loads(cfg)["meter"]["checkpoint_s"]) == (6, None, 30)


# ---- plugctl config sign ----

def plugctl(*args):
    return subprocess.run([sys.executable, "-m", "tools.plugctl"] + list(args),
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.fixture
def keyfile(tmp_path):
    p = tmp_path / "owner.key"
    p.write_text(OWNER_KEY + "\n")
    return str(p)


@pytest.mark.parametrize("cfg, version, plug, words", [
    ({"meter": {"checkpoint_s": 60.0}}, 2, PLUG_A, "meter.checkpoint_s: must be an integer"),
    ({"meter": {"checkpoint_s": 60}, "colour": "red"}, 2, PLUG_A, "colour: unknown key"),
    ({"chain": {"chainid": 5}}, 2, PLUG_A, "chain.chainid: unknown key"),
    ({"meter": {"checkpoint_s": 5}}, 2, PLUG_A, "meter.checkpoint_s: must be between 10"),
    ({}, 0, PLUG_A, "envelope.version: must be a positive integer"),
    ({}, -1, PLUG_A, "envelope.version: must be a positive integer"),
    ({}, 2, "0x1234", "--plug"),
    ({}, 2, PLUG_A[:-1] + ("a" if PLUG_A[-1] != "a" else "b"), "--plug"),  # a typo
])
def test_sign_refuses_what_the_plug_would_refuse(tmp_path, keyfile, cfg, version, plug, words):
    src, out = tmp_path / "config.json", tmp_path / "env.json"
    src.write_text(json.dumps(cfg))
    r = plugctl("config", "sign", "--key", keyfile, "--plug", plug, "--version", str(version),
                str(src), "--out", str(out))
    assert r.returncode != 0
    assert "not signed, the plug would refuse it" in r.stderr and words in r.stderr, r.stderr
    assert not out.exists()


def test_sign_needs_the_plug(tmp_path, keyfile):
    src = tmp_path / "config.json"
    src.write_text("{}")
    r = plugctl("config", "sign", "--key", keyfile, "--version", "2", str(src))
    assert r.returncode == 2 and "--plug" in r.stderr


def test_sign_writes_an_envelope_the_plug_takes(tmp_path, keyfile):
    src, out = tmp_path / "config.json", tmp_path / "env.json"
    cfg = {"meter": {"checkpoint_s": 90}, "channels": {"M1/A": {"name": "K\u00fcche"}}}
    src.write_text(json.dumps(cfg))
    r = plugctl("config", "sign", "--key", keyfile, "--plug", PLUG_A.lower(), "--version", "2",
                str(src), "--out", str(out))
    assert r.returncode == 0, r.stderr
    env = json.loads(out.read_text())
    assert env["plug"] == PLUG_A and env["version"] == 2 and env["config"] == cfg
    assert Account.recover_message(encode_defunct(canonical(2, cfg, PLUG_A)),
                                   signature=env["signature"]) == OWNER
    assert apply(tmp_path, str(tmp_path / "state"), env, PLUG_A) == {"ok": 2}
