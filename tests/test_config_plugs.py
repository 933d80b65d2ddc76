"""Virtual plugs of one owner, through their interfaces: an envelope signed for one plug
is refused by the other, and state this firmware cannot use (a stored config that no
longer validates, an energy checkpoint of an unknown format) does not stop a plug from
booting; it says so in /status and leaves the files as they were."""

import os

import pytest
from ota_util import DAY_START, flash_load, wait_for

from tools.config_cli import sign_envelope
from tools.scenario import OWNER_KEY, World

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world():
    with World(DAY_START, log=lambda m: None) as w:
        yield w


def test_an_envelope_for_plug_a_is_refused_by_plug_b(world):
    a = world.add_plug("a", speed=60, deploy=False)
    b = world.add_plug("b", speed=60, deploy=False)
    a.provision()
    b.provision()  # same owner, both at config v1
    assert a.plug_address() != b.plug_address()
    cfg = dict(_config(world, a), wifi={"ssid": "flat-a"}, meter={"checkpoint_s": 120})
    env = sign_envelope(cfg, 2, OWNER_KEY, a.plug_address())
    before = flash_load(b.state, "config")
    code, body = b.post_config(env)
    assert code == 400, body
    assert body["error"] == "envelope.plug: signed for plug %s, this plug is %s" % (
        a.plug_address(), b.plug_address())
    assert b.status()["device"]["config_version"] == 1
    assert flash_load(b.state, "config") == before
    assert a.post_config(env) == (200, {"version": 2})


def _config(world, p):
    from tools.scenario import plug_config

    return plug_config(world.devnet.url, world.tariff.url, world.payee, world.chain_id,
                       server={"port": p.http_port})


def _reboot_with(p, seed):
    """Stop the plug, change its flash with seed(state_dir), boot it once (no supervisor:
    a boot that crashes stays down)."""
    p.stop()
    seed(os.path.join(p.state, "state"))
    p.vplug.start()
    return p.wait_http(60)


def _store(d):
    from plug.store import Store

    return Store(d)


def test_a_stored_config_this_firmware_refuses_does_not_stop_the_boot(world):
    p = world.add_plug("narrowed", speed=60, deploy=False)
    p.provision()
    addr = p.plug_address()
    # as if signed for an older firmware that allowed checkpoints every 5 s
    old = sign_envelope(dict(_config(world, p), meter={"checkpoint_s": 5}), 7, OWNER_KEY, addr)
    st = _reboot_with(p, lambda d: _store(d).save("config", old))
    dev = st["device"]
    assert dev["config_version"] == 7 and not dev["safe_mode"]
    assert "stored config v7 is not valid" in dev["config_error"]
    assert "meter.checkpoint_s" in dev["config_error"]
    assert flash_load(p.state, "config") == old  # kept for a firmware that accepts it
    # envelopes up to v7 stay refused; the owner's v8 goes in and clears the error
    code, body = p.post_config(sign_envelope(_config(world, p), 7, OWNER_KEY, addr))
    assert code == 400 and "not newer" in body["error"]
    assert p.post_config(sign_envelope(_config(world, p), 8, OWNER_KEY, addr)) == (
        200, {"version": 8})
    assert p.status()["device"]["config_error"] is None


@pytest.mark.parametrize("checkpoint, words", [
    ({"v": 99, "now": 0, "ch": {}}, "unknown format (version 99)"),
    ({"v": 1, "now": 0, "ch": {"M1/A": [1, 2]}}, "entry 'M1/A' is malformed"),
])
def test_an_energy_checkpoint_it_cannot_read_means_safe_mode_and_untouched_files(
        world, checkpoint, words):
    p = world.add_plug("ledger%d" % checkpoint["v"], speed=60, deploy=False)
    d = os.path.join(p.state, "state")

    def files():
        return {n: open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))
                if n.startswith("ledger.")}

    st = _reboot_with(p, lambda d: _store(d).save("ledger", checkpoint))
    evidence = files()
    dev = st["device"]
    assert dev["safe_mode"] is True and words in dev["ledger_error"], dev
    assert "payments" not in st
    # well past several checkpoint intervals (60 s of plug time is 1 s here), and a
    # clean stop, which checkpoints: the files are as they were
    t0 = dev["time"]
    wait_for(lambda: p.status()["device"]["time"] > t0 + 300, 30, "5 minutes of plug time")
    assert files() == evidence
    p.stop()
    assert files() == evidence
