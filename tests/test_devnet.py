"""tools/devnet.py: the devnet command stops anvil on SIGTERM, funds exact amounts, and
a failed start leaves no anvil behind."""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tools.devnet import Devnet, free_port, fund_spec
from tools.paths import ROOT

pytestmark = pytest.mark.slow

ADDR = "0x7e7e7e7E7e7E7e7e7e7E7e7e7e7E7e7e7e7e7e7E"


def port_is_free(port):
    """Nothing listens on port any more (binding it would race the machine's other
    connections, which may take the number as an ephemeral port)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def descendants(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        kids = [int(c) for c in f.read().split()]
    return kids + [d for k in kids for d in descendants(k)]


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_sigterm_stops_anvil_and_frees_the_port():
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "tools.devnet", "--port", str(port),
                          "--fund", ADDR + "=1.000000000000000001"],
                         cwd=ROOT, stdout=subprocess.PIPE, text=True)
    anvil = []  # node's anvil launcher and the anvil binary
    try:
        assert p.stdout.readline().startswith("devnet: chain 31337 on http://127.0.0.1:%d" % port)
        anvil = descendants(p.pid)
        assert anvil
        assert Devnet(port=port).balance(ADDR) == 10**18 + 1
        p.send_signal(signal.SIGTERM)
        assert p.wait(15) == 0
        deadline = time.monotonic() + 5
        while any(map(alive, anvil)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(alive, anvil)), "anvil still running after SIGTERM to devnet"
        assert port_is_free(port)
    finally:
        for pid in [p.pid] + anvil:  # only if the test failed
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        p.wait()


def test_fund_amounts_are_exact_decimals():
    assert fund_spec(ADDR + "=1.000000000000000001") == (ADDR, 10**18 + 1)
    assert fund_spec(ADDR + "=12345678901.123456789012345678") == (
        ADDR, 12345678901123456789012345678)
    assert fund_spec(ADDR + "=0.3") == (ADDR, 3 * 10**17)
    assert fund_spec(ADDR) == (ADDR, 10 * 10**18)
    for bad in ("1e-19", "0.0000000000000000001", "-1", "nan", "inf", "ten", "1e80"):
        with pytest.raises(argparse.ArgumentTypeError, match="ETH"):
            fund_spec(ADDR + "=" + bad)


class WrongChain(Devnet):
    """anvil as if it answered another chain id than asked for."""

    def rpc(self, method, *params, **kw):
        self.seen = self.proc
        got = super().rpc(method, *params, **kw)
        return "0x1" if method == "eth_chainId" else got


def test_start_on_chain_id_mismatch_stops_its_anvil():
    d = WrongChain(chain_id=31337)
    with pytest.raises(RuntimeError, match="chain id 1, not 31337"):
        d.start()
    assert d.seen.poll() is not None, "anvil left running after a failed start"
    assert port_is_free(d.port)
