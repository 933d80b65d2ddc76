# Device side of tests/test_fuzz_replies.py: rate replies fed to the plug's tariff code on
# the MicroPython unix port. One case per stdin line: {"fmt", "decimals", "cap", "path"
# (a file holding the reply's bytes, so the harness itself needs no more heap than the
# plug's own HTTP buffer)}. Each reply goes the plug's real way: bytes ->
# provider.get_json -> Tariff.fetch_rates (format dispatch, parser, cap, Octopus pages).
# Prints one line per case: "OK <n intervals>", "REFUSED <Type>" for the module's own
# errors, or "CRASH <Type>: <msg>" for anything else (which the test fails on).
import gc
import json
import sys

from plug import rates
from plug.provider import TariffError
from plug.tariff import Tariff

QUOTE_SIGNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil #1, the quote key
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


class _Store:
    def load(self, name, default=None):
        return default

    def save(self, name, obj):
        pass


class _Clock:
    def time(self):
        return 820454400  # 2026-01-01 in plug time


def check_valid(sched, cap):
    """The schedule a parser accepted must be usable as is: sorted, disjoint, capped."""
    prev = -1
    for s, e, r in sched:
        if type(s) is not int or type(e) is not int or type(r) is not int:
            return "non-integer field"
        if not (prev <= s < e) or s < 0:
            return "unsorted or empty interval"
        if r > cap:
            return "rate above the cap"
        prev = e
    return None


def main():
    n = 0
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        case = json.loads(line)
        with open(case["path"], "rb") as f:
            body = f.read()
        cfg = {"provider": {"rate_cap_per_kwh": case["cap"], "refresh_s": 900},
               "chain": {"chain_id": 31337}}
        t = Tariff(_Store(), _Clock(), cfg, http=lambda url, b=body: b, log=None)
        d = {"format": case["fmt"], "decimals": case["decimals"], "rates_url": "http://p/r",
             "token": None if case["fmt"] == "native" else TOKEN, "signer": QUOTE_SIGNER}
        case = line = None
        gc.collect()
        try:
            sched, _issued = t.fetch_rates(_Clock().time(), d)
            bad = check_valid(sched, cfg["provider"]["rate_cap_per_kwh"])
            print("BADSCHED %s" % bad if bad else "OK %d" % len(sched))
        except (TariffError, rates.RateError) as e:
            print("REFUSED %s" % type(e).__name__)
        except ValueError as e:  # allowed by the rule, but reported so the test can count it
            print("VALUEERROR %s" % e)
        except Exception as e:
            print("CRASH %s: %s" % (type(e).__name__, e))
        n += 1
        body = t = None
        gc.collect()
    print("DONE %d" % n)


main()
