"""Fuzzed rate replies and JSON-RPC replies, fed to the plug's own code on MicroPython.

Rates: 1200 replies (300 per format: native, octopus, awattar, energy-charts), each a
hypothesis-generated well-formed reply, a structural mutation of a real-shaped sample
from tests/data/ or a byte-level mutation of one. Each goes bytes -> provider.get_json ->
Tariff.fetch_rates, in one MicroPython process per format. The rule: a reply either
parses into a valid schedule (sorted, disjoint, integer, under the owner's cap) or is
refused with TariffError / RateError (ValueError); never another exception, never a
crash of the process.

JSON-RPC: 1000 replies served by a real HTTP server on 127.0.0.1 to plug/rpc.py +
plug/chain.py calls on MicroPython, same rule with ChainError.

The counts (tried / accepted / refused) are printed for `make faults`.
"""

import json
import os

import pytest
from fuzz_gen import rate_replies

from tools import mp

pytestmark = pytest.mark.slow

TESTS = os.path.dirname(os.path.abspath(__file__))
FORMATS = {"native": (18, 10**18), "octopus": (6, 10**6), "awattar": (6, 10**6),
           "energy-charts": (18, 10**18)}
PER_FORMAT = 300


def build_dirs():
    from paytest import build_dir

    return build_dir()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_fuzzed_rate_replies_parse_or_are_refused(fmt, tmp_path):
    decimals, cap = FORMATS[fmt]
    bodies = rate_replies(fmt, PER_FORMAT, seed=sorted(FORMATS).index(fmt))
    lines = []
    for i, b in enumerate(bodies):
        path = tmp_path / ("%d.json" % i)
        path.write_bytes(b)
        # a small cap for every fifth reply, so above-cap refusals are exercised too
        lines.append(json.dumps({"fmt": fmt, "decimals": decimals, "path": str(path),
                                 "cap": cap if i % 5 else 10**3}) + "\n")
    r = mp.run(path=os.path.join(TESTS, "fuzz_rates_plug.py"), heap="104k", input="".join(lines),
               path_dirs=build_dirs(), timeout=600, check=False)
    out = r.stdout.splitlines()
    assert r.returncode == 0 and out and out[-1] == "DONE %d" % PER_FORMAT, \
        (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    rows = out[:-1]
    crashes = [(bodies[i][:200], x) for i, x in enumerate(rows)
               if not x.startswith(("OK", "REFUSED", "VALUEERROR"))]
    accepted = sum(1 for x in rows if x.startswith("OK"))
    refused = len(rows) - accepted - len(crashes)
    print("fuzz rates %-13s tried %d / accepted %d / refused %d / crashed %d"
          % (fmt, len(rows), accepted, refused, len(crashes)))
    assert not crashes, crashes[:5]
    assert accepted > 0 and refused > 0  # the generator reaches both sides


class FuzzNode:
    """A JSON-RPC 'node' on 127.0.0.1 whose every reply is generated (fuzz_gen.rpc_reply)."""

    def __init__(self, seed, values):
        import random

        from hostile_rpc import serve

        self.rnd = random.Random(seed)
        self.values = values
        self.served = 0
        self.server = serve(self._handle)
        self.url = "http://127.0.0.1:%d/" % self.server.server_address[1]

    def _handle(self, sock):
        from fuzz_gen import rpc_reply
        from hostile_rpc import read_request

        try:
            path, body = read_request(sock)
            if path is None:
                return
            req = json.loads(body)
            self.served += 1
            sock.sendall(rpc_reply(req, self.rnd, self.values))
        except (OSError, ValueError, IndexError):
            pass
        finally:
            sock.close()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


RPC_CALLS = 1000


def test_fuzzed_rpc_replies_are_believed_only_when_valid():
    from fuzz_gen import rpc_values

    node = FuzzNode(seed=11, values=rpc_values(400, seed=11))
    try:
        r = mp.run(path=os.path.join(TESTS, "fuzz_rpc_plug.py"), args=[node.url, str(RPC_CALLS)],
                   heap="96k", path_dirs=build_dirs(), timeout=600, check=False)
    finally:
        node.close()
    out = r.stdout.splitlines()
    assert r.returncode == 0 and out and out[-1] == "DONE %d" % RPC_CALLS, \
        (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    rows = out[:-1]
    bad = [x for x in rows if not x.startswith(("OK", "REFUSED"))]
    accepted = sum(1 for x in rows if x.startswith("OK"))
    print("fuzz rpc: replies tried %d (%d calls) / calls accepted %d / refused %d / bad %d"
          % (node.served, len(rows), accepted, len(rows) - accepted - len(bad), len(bad)))
    assert not bad, bad[:10]
    assert node.served >= RPC_CALLS
    assert accepted > 50 and len(rows) - accepted > 300
