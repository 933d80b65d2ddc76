"""Failing over between RPC nodes never trusts a node on another chain: each node's
eth_chainId is asked before its first answer is used (once), a node on another chain is
skipped, and with only such nodes the plug refuses before signing."""

import json
import signal

import pytest

from hostile_rpc import HostileRPC
from paytest import PAYEE, Plug, config, finish, signal_tree, wait_for

pytestmark = pytest.mark.slow

AMOUNT = 777 * 10**9


@pytest.fixture
def chain1(devnet_factory):
    """A node on chain 1 behind a proxy that counts the requests it gets."""
    d = devnet_factory(chain_id=1)
    with HostileRPC(upstream=d.url) as proxy:
        yield d, proxy


def test_node_on_another_chain_listed_first_is_skipped(tmp_path, devnet, chain1):
    other, proxy = chain1
    plug = Plug(tmp_path / "s", config([proxy.url("proxy"), devnet.url]))
    devnet.fund(plug.address, 10**18)
    other.fund(plug.address, 10**18)
    out = plug.run("p = make(ST)\nfor i in ('c-1', 'c-2'):\n    p.pay(i, %r, %d)\n"
                   "print('left', settle(p))\n" % (PAYEE, AMOUNT))
    assert "left 0" in out
    assert devnet.balance(PAYEE) == 2 * AMOUNT and devnet.nonce(plug.address) == 2
    assert other.balance(PAYEE) == 0 and other.nonce(plug.address, "pending") == 0
    assert proxy.requests == 1  # asked its chain id once, then never used


def test_failover_mid_payment_does_not_act_on_another_chain(tmp_path, devnet_factory, chain1):
    other, proxy = chain1
    d = devnet_factory(automine=False)
    plug = Plug(tmp_path / "s", config([d.url, proxy.url("proxy")]))
    d.fund(plug.address, 10**18)
    other.fund(plug.address, 10**18)
    d.mine()
    proc = plug.start(
        "import sys\nclock = ManualClock()\n"
        "p = make(ST, clock, rpc_kw={'timeout_s': 0.5, 'retries': 0})\n"
        "r = p.pay('c-3', %r, %d)\nprint('WAIT', r['st'])\nsys.stdin.readline()\n"
        "clock.t += 3600\np.step()\nshow(r)\n"
        "print('WAIT2')\nsys.stdin.readline()\nsettle(p)\nshow(r)\n" % (PAYEE, AMOUNT))
    assert wait_for(proc, "WAIT") == "WAIT sent"
    signal_tree(d.proc.pid, signal.SIGSTOP)  # the plug's node hangs; the next is chain 1
    try:
        proc.stdin.write("\n")
        proc.stdin.flush()
        rec = json.loads(wait_for(proc, "{"))
        assert rec["st"] == "sent" and len(rec["hashes"]) == 1, rec  # nothing signed again
        assert "node is on chain 1, config says 31337" in rec["err"], rec
    finally:
        signal_tree(d.proc.pid, signal.SIGCONT)
    assert proxy.requests == 1
    wait_for(proc, "WAIT2")
    d.mine()
    proc.stdin.write("\n")
    proc.stdin.flush()
    last = finish(proc).strip().splitlines()[-1]
    assert '"st": "confirmed"' in last
    assert d.balance(PAYEE) == AMOUNT and d.nonce(plug.address) == 1
    assert other.balance(PAYEE) == 0 and other.nonce(plug.address, "pending") == 0


def test_only_nodes_on_another_chain_refuse_before_signing(tmp_path, chain1):
    other, proxy = chain1
    plug = Plug(tmp_path / "s", config([proxy.url("proxy")]))
    other.fund(plug.address, 10**18)
    out = plug.run("p = make(ST)\nfor i in ('c-4', 'c-5'):\n    try:\n"
                   "        p.pay(i, %r, %d)\n    except ChainError as e:\n"
                   "        print('refused', type(e).__name__, e)\n"
                   "print('recs', len(p.records()))\n" % (PAYEE, AMOUNT))
    assert out.count("refused WrongChain node is on chain 1, config says 31337") == 2, out
    assert "recs 0" in out
    assert other.nonce(plug.address, "pending") == 0 and other.balance(PAYEE) == 0
    assert proxy.requests == 2  # one question per attempt, nothing else asked
