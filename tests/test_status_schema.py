"""GET /status is a document a client can trust: the live answer of a virtual plug with
real anvil validates against tools/status.schema.json (JSON Schema 2020-12) unprovisioned,
after a payment, and in safe mode; times come as Unix time too; every money amount has
an exact decimal-string twin (a balance above 2**53 survives a client that reads JSON
numbers as doubles); the firmware names its version and build and the plug its hostname."""

import json
import os

import jsonschema
import pytest

from tools.build_mpy import source_build
from tests.iface_util import wait_for, yesterdays_world

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_PATH = os.path.join(ROOT, "tools", "status.schema.json")
UNIX_2000 = 946684800

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def schema():
    with open(SCHEMA_PATH) as f:
        s = json.load(f)
    jsonschema.Draft202012Validator.check_schema(s)
    return s


def validate(schema, st):
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(st), key=str)
    assert not errors, "\n".join("%s: %s" % (list(e.absolute_path), e.message)
                                 for e in errors[:10])


def _described(node, path="#"):
    """Every property of the schema, with where it is: (path, subschema)."""
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            yield "%s/%s" % (path, name), sub  # path: the JSON path, "properties" left out
        for k, v in node.items():
            if isinstance(v, (dict, list)):
                for x in _described(v, "%s/%s" % (path, k)):
                    yield x
    elif isinstance(node, list):
        for i, v in enumerate(node):
            for x in _described(v, "%s/%d" % (path, i)):
                yield x


def test_the_schema_describes_every_field(schema):
    missing = [p for p, sub in _described(schema)
               if not (isinstance(sub, dict) and sub.get("description"))]
    assert not missing, missing
    # money: every amount in base units has its string twin documented beside it (the
    # balances by asset inside wallets[].balance: wallets[].balance_str beside it)
    paths = set(p for p, _ in _described(schema))
    money = [p for p, sub in _described(schema) if "base units" in sub.get("description", "")
             and not p.endswith("_str") and "/balance/" not in p and "/balance_str/" not in p]
    assert len(money) >= 8, money
    for p in money:
        assert p + "_str" in paths, p


@pytest.fixture(scope="module")
def world():
    with yesterdays_world() as w:
        yield w


@pytest.fixture(scope="module")
def plug(world):
    return world.add_plug("status", speed=1440, deploy=False)


def test_unprovisioned_status_is_valid_and_names_the_plug(plug, schema):
    st = plug.status()
    validate(schema, st)
    dev = st["device"]
    assert dev["config_version"] == 0
    assert dev["time_unix"] == dev["time"] + UNIX_2000
    assert dev["firmware"]["version"] == "0.5.0"
    assert dev["firmware"]["build"] == source_build() != "dev"  # this checkout's hash
    assert "sim 0.5.0 (%s)" % source_build() in plug.repl_eval("repr(plug)")  # at the REPL
    addr = plug.plug_address()
    assert dev["hostname"] == "plug-" + addr[-4:].lower()
    assert dev["ip"] == "127.0.0.1" and dev["mac"] is None and dev["rssi"] is None
    for ch in st["channels"].values():
        assert set(ch["energy"]) == {"today", "yesterday", "month", "last_month"}
        assert ch["energy"]["today"]["import_uwh"] <= ch["import_uwh"]


def test_a_balance_above_2_53_is_exact_in_its_string_twin(plug, world, schema):
    addr = plug.plug_address()
    wei = 2**63 + 10**18 + 12345  # no double holds it: a JavaScript client rounds it
    assert float(wei) != wei
    world.devnet.fund(addr, wei)
    plug.reboot()  # the balance is read at boot, then once a minute

    def balance():
        st = plug.status()
        w = st["wallets"][0]
        return st if w["balance"] and w["balance"]["native"] == wei else None

    st = wait_for(balance, 90, "new balance in /status")
    validate(schema, st)
    assert st["wallets"][0]["balance_str"] == {"native": str(wei)}
    (r,) = st["runway"]
    assert r["balance_str"] == str(wei)
    # as a client with double-precision numbers reads the body: the number is rounded,
    # the string twin is not
    as_js = json.loads(plug.get("/status"), parse_int=float)
    w = as_js["wallets"][0]
    assert int(w["balance"]["native"]) != wei and int(w["balance_str"]["native"]) == wei


def test_status_after_a_payment_is_valid_and_its_totals_add_up(plug, world, schema):
    plug.provision()
    st = wait_for(lambda: (lambda s: s if s["payments"]["confirmed"] else None)(plug.status()),
                  90, "confirmed payment")
    validate(schema, st)
    pays = st["payments"]
    for p in pays["confirmed"] + pays["pending"] + pays["failed"]:
        assert p["amount_str"] == str(p["amount"])
    for k, v in pays["accrued"].items():
        assert pays["accrued_str"][k] == str(v)
    assert st["provider"]["rate_per_kwh_str"] == str(st["provider"]["rate_per_kwh"])
    inv = st["invoices"]
    assert inv["unpaid_amount_str"] == str(inv["unpaid_amount"]) and inv["open"] >= 0

    # everything confirmed equals what the payee received on chain, once nothing is
    # in flight
    def settled():
        s = plug.status()
        p = s["payments"]
        if p["pending"] or p["paid_total"] != world.payee_received():
            return None
        return s

    st = wait_for(settled, 90, "paid_total equal to the payee's receipts")
    assert st["payments"]["paid_total_str"] == str(world.payee_received())
    validate(schema, st)


def test_safe_mode_status_is_valid(plug, world, schema):
    from plug.store import Store

    plug.stop()
    Store(os.path.join(plug.state, "state")).save("ledger", {"v": 99, "now": 0, "ch": {}})
    plug.vplug.start()
    st = plug.wait_http(60)
    assert st["device"]["safe_mode"] is True and "payments" not in st
    validate(schema, st)
    assert st["device"]["hostname"] is None  # the wallet is not read in safe mode


PAID_TOTAL = """
import json, sys
import plug.history as H
from plug.history import History
from plug.store import Store
from plug import app_status

TOK = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
store = Store(sys.argv[1])
opened = [0]
_open = open


def counting_open(path, *a):
    opened[0] += 1
    return _open(path, *a)


H.open = counting_open  # every file history.py opens: its segments


class Pays:  # what app_status reads of plug.payments
    _arch = 1
    def __init__(self):
        self.history = History(store, segs=3, seg_bytes=1024)

pays = Pays()
live = [{"id": "L-0", "st": "confirmed", "amt": 7, "tok": None, "att": 1},
        {"id": "P-0", "st": "sent", "amt": 1000, "tok": None, "att": 1}]
want = {"native": 7, TOK: 0}
out = []
n = 0
for batch in (3, 1, 0, 5, 12, 2, 20, 1):
    for _ in range(batch):
        tok = TOK if n % 4 == 3 else None
        st = "failed" if n % 5 == 4 else "confirmed"
        amt = 2**60 + n
        pays.history.add({"id": "%d-0" % n, "st": st, "att": 1, "amt": amt, "tok": tok})
        if st == "confirmed":
            want[tok or "native"] += amt
        n += 1
    opened[0] = 0
    got = dict((a, app_status._paid_total(pays, live, a)) for a in ("native", TOK))
    out.append([got == want, pays.history.carried()["n"], opened[0]])
    # a reboot: the history built again from the flash, then the paid totals
    opened[0] = 0
    pays = None
    pays = Pays()
    got = dict((a, app_status._paid_total(pays, live, a)) for a in ("native", TOK))
    out.append([got == want, pays.history.carried()["n"], opened[0]])
print(json.dumps(out))
"""


def test_paid_total_comes_from_the_history_index_without_reading_a_segment(tmp_path):
    # in 72 KB of heap, the .mpy code in it (the plug's 64 KB holds none: frozen):
    # amounts past 2**60 (big ints on 32 bits), the history
    # rotating segments into its carried totals between looks, two assets; after every
    # batch of appends and after every reboot the paid totals are right and no history
    # segment was opened to find them (a wrapper counts history.py's opens)
    from paytest import build_dir  # the compiled tree, as the plug runs it

    from tools import mp

    script = tmp_path / "paid_total.py"
    script.write_text(PAID_TOTAL)
    (tmp_path / "flash").mkdir()
    out = mp.run(path=str(script), args=[str(tmp_path / "flash")], heap="72k",
                 path_dirs=build_dir())
    rows = json.loads(out.strip().splitlines()[-1])
    assert all(ok for ok, _, _ in rows), rows
    assert all(opens == 0 for _, _, opens in rows), rows
    assert rows[-1][1] > 0  # segments rotated out meanwhile

