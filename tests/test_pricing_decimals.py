"""A provider cannot set the token's decimals by its word: the plug (MicroPython unix
port) reads decimals() of the real test token (tests/contracts/TestToken.sol, 6
decimals) on anvil through its own chain client before it accepts a descriptor. A
descriptor claiming 18 would price every fiat rate 10**12 too high: it is refused and
the last approved provider stays."""

import json
import os

import pytest

from tests.contracts import deploy_token
from tools import mp
from tools.devnet import FAUCET
from tools.paths import ROOT
from tools.tariff_server import TariffServer

pytestmark = pytest.mark.slow

DATA = os.path.join(os.path.dirname(__file__), "data")
PAYEE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"




def schedule(token, decimals):
    with open(os.path.join(DATA, "tariff_schedule.json")) as f:
        s = json.load(f)
    s["provider"].update(currency={"address": token, "decimals": decimals, "symbol": "PTT"},
                         format="awattar")
    s["signer_key"] = None
    return s


CODE = """
import json
from plug.store import Store
from plug.tariff import Tariff
from plug.rpc import RPC
from plug.chain import Chain
import requests
class Clock:
    t = 820540800
    def time(self):
        return self.t
clock = Clock()
chain = Chain(RPC([%(rpc)r], timeout_s=3, retries=1), 31337)
tf = Tariff(Store(%(store)r), clock, json.loads(%(cfg)r), log=None,
            token_decimals=chain.erc20_decimals)
tf.timeout = 2
def serve(decimals):
    s = json.loads(%(sched)r)
    s['provider']['currency']['decimals'] = decimals
    r = requests.post(%(url)r + '/_control', data=json.dumps({'schedule': s}))
    r.close()
def step(decimals):
    serve(decimals)
    clock.t += 1000
    tf.next_desc = 0
    tf.poll(clock.t)
    d = tf.current()
    return [d and d['decimals'], tf.reports[-1][1] if tf.reports else None]
out = [chain.erc20_decimals(%(token)r)]
out.append(step(18))     # the descriptor claims 18: refused, no provider at all
out.append(step(6))      # what the token says: accepted
out.append(step(18))     # a change to 18 later: refused, the 6-decimal provider stays
out.append(len(tf.providers))
print(json.dumps(out))
"""


def test_token_decimals_are_read_from_the_chain_and_a_mismatch_is_refused(mpy_dirs, tmp_path,
                                                                         devnet):
    token = deploy_token(devnet, FAUCET, 10**12)
    s = schedule(token, 18)
    with TariffServer(s) as ts:
        cfg = {"provider": {"url": ts.url + "/provider.json", "approved_payees": [PAYEE],
                            "approved_tokens": [token], "rate_cap_per_kwh": 10**15,
                            "fallback": "hold", "refresh_s": 900},
               "chain": {"chain_id": 31337}}
        os.makedirs(str(tmp_path / "plug"))
        code = CODE % {"rpc": devnet.url, "store": str(tmp_path / "plug"), "cfg": json.dumps(cfg),
                       "sched": json.dumps(s), "url": ts.url, "token": token}
        out = mp.run(code, heap="128k", path_dirs=mpy_dirs, timeout=120, cwd=ROOT)
    on_chain, first, second, third, n_providers = json.loads(out.strip().splitlines()[-1])
    assert on_chain == 6
    refused = ("provider refused: descriptor: token %s has 6 decimals on chain, the "
               "descriptor says 18" % token)
    assert first == [None, refused]
    assert second[0] == 6
    assert third == [6, refused]
    assert n_providers == 1
