"""Signed over-the-air configuration on a virtual plug, through its interfaces only:
HTTP POST /config, serial (`plugctl config push --port`, `plugctl owner provision`) and
the pull URL. A config is accepted only when the owner signed a higher version; every
refusal says why and changes nothing (config version, config on the flash, owner,
payments, energy totals). A new config that does not work rolls back (409), and a power
cut in the middle of an apply leaves exactly one complete config in force.
"""

import http.client
import json
import random
import threading
import time
from types import SimpleNamespace

import pytest
from ota_util import (DAY_START, NEW_OWNER_KEY, OTHER_KEY, EnvelopeServer, Signer, address,
                      flash_has, flash_load, raw_post, wait_for)

from tools import plugctl
from tools.scenario import OWNER_KEY, World

pytestmark = pytest.mark.slow

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.fixture(scope="module")
def env():
    with World(DAY_START, log=lambda m: None) as w:
        p = w.add_plug("ota", speed=60, deploy=False)
        signer = Signer(w, p.plug_address())
        # before provisioning: nobody's envelope is accepted
        before = p.post_config(signer.envelope(version=1))
        p.provision()  # owner over serial, config v1 over HTTP
        signer.version = 1
        pull = EnvelopeServer()
        try:
            yield SimpleNamespace(w=w, p=p, signer=signer, pull=pull, unprovisioned=before)
        finally:
            pull.close()


def snapshot(p):
    """What must not change when a config is refused."""
    st = p.status()
    led = p.ledger()
    return {
        "version": st["device"]["config_version"],
        "owner": st["device"]["owner"],
        "flash_config": flash_load(p.state, "config"),
        "flash_owner": flash_load(p.state, "owner"),
        "payments": led["payments"],
        "energy": {k: c["import_uwh"] for k, c in st["channels"].items()},
    }


def assert_unchanged(before, after):
    assert after["version"] == before["version"]
    assert after["owner"] == before["owner"]
    assert after["flash_config"] == before["flash_config"]
    assert after["flash_owner"] == before["flash_owner"]
    assert after["payments"] == before["payments"]
    for k, e in before["energy"].items():  # metering went on; nothing was reset
        assert after["energy"][k] >= e, k


def in_force(p):
    return p.status()["device"]["config_version"]


def test_a_plug_without_owner_refuses_every_envelope(env):
    code, body = env.unprovisioned
    assert code == 400 and "no owner yet" in body["error"], body


def test_the_owners_newer_config_is_applied_and_kept_on_the_flash(env):
    p, s = env.p, env.signer
    e = s.envelope(s.config(meter={"checkpoint_s": 120}))
    code, body = p.post_config(e)
    assert (code, body) == (200, {"version": e["version"]})
    assert in_force(p) == e["version"]
    assert flash_load(p.state, "config") == e  # kept exactly as signed
    assert not flash_has(p.state, "config_next")
    assert p.status()["device"]["owner"] == address(OWNER_KEY)


def _flip(sig, i):
    b = bytearray.fromhex(sig[2:])
    b[i] ^= 0x01
    return "0x" + b.hex()


def _high_s(sig):
    b = bytes.fromhex(sig[2:])
    s = int.from_bytes(b[32:64], "big")
    v = 27 + 28 - b[64]
    return "0x" + (b[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([v])).hex()


def _refusals(env):
    """(name, body bytes, expected status, words in the reason)."""
    s, p = env.signer, env.p
    cur = in_force(p)
    good = s.envelope()  # a fresh, valid envelope to spoil
    attacker = "0x000000000000000000000000000000000000dEaD"
    tampered = dict(good, config=json.loads(json.dumps(good["config"])))
    tampered["config"]["provider"]["approved_payees"] = [attacker]
    cases = [
        ("bad signature", dict(good, signature=_flip(good["signature"], 5)), 400,
         "envelope.signature"),
        ("signature v byte", dict(good, signature=_flip(good["signature"], 64)), 400,
         "envelope.signature"),
        ("high-s twin of the owner's signature", dict(good, signature=_high_s(good["signature"])),
         400, "envelope.signature"),
        ("payee swapped after signing", tampered, 400, "not signed by the owner"),
        ("version raised after signing", dict(good, version=good["version"] + 100), 400,
         "not signed by the owner"),
        ("foreign signer", s.envelope(key=OTHER_KEY), 400, "not signed by the owner"),
        ("foreign signer naming himself owner",
         s.envelope(dict(s.config(), owner=address(OTHER_KEY)), key=OTHER_KEY),
         400, "not signed by the owner"),
        ("replay of the config in force", flash_load(p.state, "config"), 400, "not newer"),
        ("same version, other content", s.envelope(s.config(meter={"checkpoint_s": 30}),
                                                   version=cur), 400, "not newer"),
        ("older version", s.envelope(version=max(1, cur - 1)), 400, "not newer"),
        ("schema: unknown key", s.envelope(s.config(chain={"chainid": 5})), 400,
         "chain.chainid: unknown key"),
        ("schema: out of range", s.envelope(s.config(meter={"checkpoint_s": 5})), 400,
         "meter.checkpoint_s: must be between 10 and 3600"),
        ("schema: wrong type", s.envelope(s.config(limits={"per_day": "lots"})), 400,
         "limits.per_day: must be an integer"),
        ("schema: unchecksummed payee",
         s.envelope(s.config(provider={"approved_payees": [attacker.lower()]})), 400,
         "provider.approved_payees[0]"),
        ("signed for another plug of the owner", s.envelope(plug=address(OTHER_KEY)), 400,
         "envelope.plug: signed for plug %s, this plug is %s" % (address(OTHER_KEY), s.plug)),
        ("plug named after signing", dict(s.envelope(plug=address(OTHER_KEY)), plug=s.plug),
         400, "not signed by the owner"),
        ("no plug named", {k: v for k, v in good.items() if k != "plug"}, 400,
         "envelope.plug: missing"),
        ("wrong envelope keys", dict(good, extra=1), 400, "envelope.extra: unknown key"),
        ("missing signature", {"version": good["version"], "config": good["config"]}, 400,
         "envelope.signature"),
        ("version as a string", dict(good, version=str(good["version"])), 400,
         "envelope.version"),
    ]
    out = [(n, json.dumps(b).encode(), c, w) for n, b, c, w in cases]
    out += [
        ("malformed JSON", b'{"version": 9, "config": {', 400, "not valid JSON"),
        ("not an object", b"[1, 2, 3]", 400, "must be an object"),
        ("binary garbage", bytes(range(256)) * 4, 400, ""),
        ("oversize body", json.dumps(dict(good, pad="x" * 20000)).encode(), 413, ""),
        ("empty body", b"", 400, ""),
        ("deeply nested JSON", b"[" * 2000 + b"]" * 2000, 400, "envelope"),
        ("config nested deeply", b'{"version": 99, "config": ' + b"[" * 1500 + b"]" * 1500
         + b', "signature": "0x"}', 400, "envelope"),
    ]
    return out


def test_refused_envelopes_say_why_and_change_nothing(env):
    p = env.p
    before = snapshot(p)
    failures = []
    cases = _refusals(env)
    for name, body, want, words in cases:
        code, reply = raw_post(p.url, "/config", body)
        reason = reply.get("error", "") if isinstance(reply, dict) else str(reply)
        if code != want or words not in reason:
            failures.append("%s: got %s %r" % (name, code, reason))
    after = snapshot(p)
    print("config envelopes: bad tried %d / refused as expected %d"
          % (len(cases), len(cases) - len(failures)))
    assert not failures, "\n".join(failures)
    assert_unchanged(before, after)
    assert not flash_has(p.state, "config_next")
    # and the owner's next config still goes in
    e = env.signer.envelope()
    assert p.post_config(e) == (200, {"version": e["version"]})


def test_serial_push_with_plugctl(env, tmp_path, capsys):
    p, s = env.p, env.signer
    good = tmp_path / "env.json"
    e = s.envelope(s.config(meter={"checkpoint_s": 90}))
    good.write_text(json.dumps(e))
    assert plugctl.main(["config", "push", "--port", p.serial, str(good)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(e["version"])
    assert in_force(p) == e["version"]
    before = snapshot(p)
    for bad, words in ((s.envelope(key=OTHER_KEY), "not signed by the owner"),
                       (e, "not newer"),
                       (s.envelope(s.config(server={"port": 0})), "server.port")):
        good.write_text(json.dumps(bad))
        assert plugctl.main(["config", "push", "--port", p.serial, str(good)]) == 1
        err = capsys.readouterr().err
        assert "ConfigError" in err and words in err, err[-500:]
    assert_unchanged(before, snapshot(p))


def test_provisioning_the_owner_twice_is_refused(env, capsys):
    p = env.p
    before = snapshot(p)
    assert plugctl.main(["owner", "provision", "--port", p.serial, "--address",
                         address(OTHER_KEY)]) == 1
    assert "already set" in capsys.readouterr().err
    # nor is there any HTTP way to set an owner
    assert raw_post(p.url, "/owner", json.dumps({"owner": address(OTHER_KEY)}).encode())[0] \
        == 404
    assert_unchanged(before, snapshot(p))


def test_ownership_passes_only_in_a_config_the_owner_signed(env):
    p, s = env.p, env.signer
    old, new = address(OWNER_KEY), address(NEW_OWNER_KEY)
    hand_over = s.envelope(dict(s.config(), owner=new))
    assert p.post_config(hand_over)[0] == 200
    assert p.status()["device"]["owner"] == new
    assert flash_load(p.state, "owner") == new
    # the old owner's envelopes are refused from now on
    code, body = p.post_config(s.envelope())
    assert code == 400 and "not signed by the owner %s" % new in body["error"]
    # it survives a power cut
    p.kill()
    p.wait_http()
    assert p.status()["device"]["owner"] == new
    s.key = NEW_OWNER_KEY
    e = s.envelope()
    assert p.post_config(e) == (200, {"version": e["version"]})
    assert p.status()["device"]["owner"] == new  # a config without "owner" keeps the owner
    # hand it back, so the rest of the module runs as before
    assert p.post_config(s.envelope(dict(s.config(), owner=old)))[0] == 200
    s.key = OWNER_KEY
    assert p.status()["device"]["owner"] == old


def test_pull_url_applies_the_owners_config_and_refuses_others(env):
    p, s, pull = env.p, env.signer, env.pull
    pull_cfg = {"url": pull.url, "interval_s": 3600}
    nxt = s.envelope(s.config(pull=pull_cfg, meter={"checkpoint_s": 150}))
    pulled = s.envelope(s.config(pull=pull_cfg, meter={"checkpoint_s": 180}))
    pull.serve(pulled)
    n = pull.requests
    assert p.post_config(nxt)[0] == 200  # this config names the pull URL
    wait_for(lambda: in_force(p) == pulled["version"], 30, "the pulled config in force")
    assert pull.requests > n
    assert flash_load(p.state, "config") == pulled
    # refused pulls: a stranger's, a schema error, garbage; each push of a new config
    # makes the plug pull again at once
    for bad in (s.envelope(s.config(pull=pull_cfg), key=OTHER_KEY),
                s.envelope(s.config(pull=pull_cfg, wifi={"ssid": "x" * 40})),
                b"\x00garbage" * 10, b"{}" + b" " * 20000):
        pull.serve(bad)
        trigger = s.envelope(s.config(pull=pull_cfg))
        n = pull.requests
        assert p.post_config(trigger)[0] == 200
        pull.wait_requests(n + 1)
        before = snapshot(p)
        assert before["version"] == trigger["version"]
        assert flash_load(p.state, "config") == trigger
    # stop pulling, for the tests after this one
    pull.serve(b"{}")
    assert p.post_config(s.envelope())[0] == 200


def test_a_config_that_does_not_work_rolls_back(env):
    p, s, w = env.p, env.signer, env.w
    before = snapshot(p)
    cases = [
        (s.config(chain={"chain_id": 999}), "node is on chain %d, config says 999" % w.chain_id),
        (s.config(provider={"approved_payees": [address(OTHER_KEY)]}), "is not approved"),
        (s.config(provider={"url": "http://127.0.0.1:9/provider.json"}), "no reply"),
        (s.config(chain={"rpc_urls": ["http://127.0.0.1:9"]}), "no node answered"),
    ]
    for cfg, words in cases:
        e = s.envelope(cfg)
        code, body = p.post_config(e)
        assert code == 409, (code, body)
        assert "config version %d rolled back" % e["version"] in body["error"], body
        assert words in body["error"], body
        assert not flash_has(p.state, "config_next")
    assert_unchanged(before, snapshot(p))
    # the config in force still works: the owner's next config goes in
    e = s.envelope()
    assert p.post_config(e) == (200, {"version": e["version"]})


def _post_in_background(p, e):
    out = {}

    def run():
        try:
            out["reply"] = p.post_config(e)
        except (OSError, http.client.HTTPException) as ex:  # the plug lost power mid-request
            out["reply"] = ex

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def test_power_cut_while_an_apply_is_checking_leaves_the_old_config(env):
    p, s, w = env.p, env.signer, env.w
    old = flash_load(p.state, "config")
    e = s.envelope(s.config(meter={"checkpoint_s": 240}))
    w.tariff.control(misbehave=["slow"], target="provider", delay_s=8)
    try:
        t, _ = _post_in_background(p, e)
        wait_for(lambda: flash_has(p.state, "config_next"), 10, "the apply to start")
        p.kill()  # power cut while the check waits for the provider
        t.join(30)
    finally:
        w.tariff.control(misbehave=[])
    p.wait_http()
    assert in_force(p) == old["version"]
    assert flash_load(p.state, "config") == old
    assert not flash_has(p.state, "config_next")
    # the cut apply never took, so the same envelope is still new and goes in
    assert p.post_config(e) == (200, {"version": e["version"]})


def test_power_cuts_at_random_moments_of_applies_leave_one_complete_config(env):
    p, s = env.p, env.signer
    rnd = random.Random(7)
    outcomes = []
    for i in range(6):
        old = flash_load(p.state, "config")
        e = s.envelope(s.config(meter={"checkpoint_s": 60 + 10 * i}))
        t, _ = _post_in_background(p, e)
        time.sleep(rnd.uniform(0.0, 0.15))  # an apply takes ~0.1 s
        p.kill()
        t.join(30)
        p.wait_http()
        now = flash_load(p.state, "config")
        assert now in (old, e), "a config that is neither the old nor the new one"
        assert in_force(p) == now["version"]
        assert not flash_has(p.state, "config_next")
        outcomes.append("new" if now == e else "old")
    print("power cuts during applies: %s" % " ".join(outcomes))
    e = s.envelope()
    assert p.post_config(e) == (200, {"version": e["version"]})
