"""The plug's wallet from the host with plugctl: a new seed file, provisioned onto a
virtual plug over its serial port (the plug then pays from eth-account's address for that
seed or key), and export, which warns and needs its confirmation. The secret never shows
in the tool's output, the plug's serial log or its status."""

import calendar
import json
import os
import stat
import subprocess
import sys
import time

import pytest
from eth_account import Account
from eth_account.hdaccount.deterministic import HDPath

from plug.wallet import provisioning_text
from tools.scenario import World

pytestmark = pytest.mark.slow

PLUGCTL = [sys.executable, "-m", "tools.plugctl", "wallet"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def plugctl(*args, ok=True):
    r = subprocess.run(PLUGCTL + list(args), capture_output=True, text=True, timeout=120,
                       cwd=ROOT)
    assert (r.returncode == 0) == ok, r.stdout + r.stderr
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def plug():
    day = calendar.timegm(time.gmtime()[:3] + (0, 0, 0))
    with World(day) as w:
        yield w.add_plug("wallet", speed=60, deploy=False)


def provision(plug, path, *extra):
    """plugctl wallet provision; returns the plug's serial log of the boot that follows."""
    vp = plug.vplug
    vp.settle()
    vp.detach()
    seen = len(vp.screen)
    boots = plug.boots
    out = plugctl("provision", "--port", plug.serial, "--file", str(path), *extra)
    assert "provisioned" in out
    deadline = time.monotonic() + 60
    while plug.boots == boots:
        assert time.monotonic() < deadline, "the plug did not reboot"
        time.sleep(0.1)
    plug.wait_http()
    vp.expect("[wallet] address", timeout=30)
    vp.settle(quiet=0.5)
    log = vp.screen[seen:]
    vp.detach()  # leave the port to mpremote
    return log


def status_address(plug):
    return plug.status()["wallets"][0]["address"]


def test_new_seed_provisioned_and_exported(plug, tmp_path):
    first = status_address(plug)  # the wallet the plug made itself at first boot
    path = tmp_path / "wallet.json"
    out = plugctl("new", "--out", str(path), "--accounts", "2")
    rec = json.loads(path.read_text())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert rec["kind"] == "seed" and rec["replace"] is False
    seed = bytes.fromhex(rec["secret"])
    want = [Account.from_key(HDPath("m/44'/60'/0'/0/%d" % i).derive(seed)).address
            for i in (0, 1)]
    assert out.split() == ["account", "0:", want[0], "account", "1:", want[1]]
    assert "exists; not overwritten" in plugctl("new", "--out", str(path), ok=False)
    assert json.loads(path.read_text()) == rec

    # the plug already has a wallet: without --replace the import is refused
    log = provision(plug, path)
    assert "[wallet] import refused" in log and status_address(plug) == first
    log = provision(plug, path, "--replace")
    assert "[wallet] imported a provisioned seed" in log
    assert plugctl("address", "--port", plug.serial).strip() == want[0]
    assert status_address(plug) == want[0]
    for text in (out, log, json.dumps(plug.status()), plug.get("/metrics")):
        assert rec["secret"] not in text.lower()

    # export: a warning, and nothing without the confirmation
    out = plugctl("export", "--port", plug.serial, ok=False)
    assert "WARNING" in out and "Nothing exported" in out and rec["secret"] not in out
    out = plug.mpremote("plug.export_wallet()")  # the same at the REPL
    assert "WARNING" in out and "Nothing exported" in out and rec["secret"] not in out
    out = plugctl("export", "--port", plug.serial, "--confirm", "EXPORT")
    assert "WARNING" in out
    got = json.loads([x for x in out.splitlines() if x.startswith("{")][0])
    assert got == {"v": 1, "kind": "seed", "secret": rec["secret"]}


def test_private_key_provisioned(plug, tmp_path):
    key = os.urandom(32)
    path = tmp_path / "key.json"
    path.write_text(provisioning_text(private_key=key))
    log = provision(plug, path, "--replace")
    assert "[wallet] imported a provisioned key" in log
    assert plugctl("address", "--port", plug.serial).strip() == Account.from_key(key).address
    assert status_address(plug) == Account.from_key(key).address
    assert key.hex() not in log.lower() and key.hex() not in json.dumps(plug.status())
