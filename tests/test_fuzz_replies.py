"""Fuzzed rate replies and JSON-RPC replies, fed to the plug's own code on MicroPython.

Rates: 1200 replies (300 per format: native, octopus, awattar, energy-charts), each a
hypothesis-generated well-formed reply, a structural mutation of a real-shaped sample
from tests/data/ or a byte-level mutation of one. Each goes bytes -> tariff._get_json ->
Tariff.fetch_rates, in one MicroPython process per format. The rule: a reply either
parses into a valid schedule (sorted, disjoint, integer, under the owner's cap) or is
refused with TariffError / RateError (ValueError); never another exception, never a
crash of the process.

JSON-RPC: 1000 replies served by a real HTTP server on 127.0.0.1 to plug/rpc.py +
plug/chain.py calls on MicroPython, same rule with ChainError.

The counts (tried / accepted / refused) are printed for `make faults`.
"""

import binascii
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
def test_fuzzed_rate_replies_parse_or_are_refused(fmt):
    decimals, cap = FORMATS[fmt]
    bodies = rate_replies(fmt, PER_FORMAT, seed=sorted(FORMATS).index(fmt))
    # a small cap for every fifth reply, so above-cap refusals are exercised too
    lines = "".join(json.dumps({"fmt": fmt, "decimals": decimals,
                                "cap": cap if i % 5 else 10**3,
                                "hex": binascii.hexlify(b).decode()}) + "\n"
                    for i, b in enumerate(bodies))
    # 128k: the plug has ~100 KB free; the harness holds each case line (hex) on top
    r = mp.run(path=os.path.join(TESTS, "fuzz_rates_plug.py"), heap="128k", input=lines,
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
