"""Outputs, protection, control token and supply policy as rules, on MicroPython with a
board of plain relay functions and a meter whose readings the test sets (the virtual
plug end to end: test_outputs.py, test_supply.py)."""

SETUP = """
import json
from plug.config import validate
from plug.outputs import Outputs
from plug.store import Store

class Board:
    TEMP_LIMIT_C = 80
    TEMP_HYST_C = 10
    def __init__(self):
        self.relay = {"M1/A": None, "M1/B": None}
        self.temp = 30.0
    def relays(self):
        return {k: self._set(k) for k in self.relay}
    def _set(self, k):
        def f(on):
            self.relay[k] = on
        return f
    def temperature(self):
        return self.temp

class Meter:
    def __init__(self):
        self.r = {}
    def reading(self, key):
        v, a, w = self.r.get(key, (230.0, 0.0, 0.0))
        return v, a, w, 1.0, 50.0, 0

class Clock:
    t = 1000
    def time(self):
        return self.t

logs = []
def boot(store, cfg, board):
    return Outputs(store, board, validate(cfg), ["M1/A", "M1/B", "M2/1"], Clock(), logs.append)
"""


def test_power_on_states_and_restore_last_across_boots(micropython, mpy_dirs, tmp_path):
    out = micropython.eval(SETUP + """
st = Store(%r)
b = Board()
cfg = {"channels": {"M1/B": {"power_on": "off"}}}
o = boot(st, cfg, b)
first = (dict(b.relay), o.status()["M2/1"]["reason"], o.status()["M1/B"]["detail"])
o.switch("M1/A", False)
o.switch("M1/B", True)
b = Board()
o = boot(st, cfg, b)                                   # a power cut
second = (dict(b.relay), o.status()["M1/A"]["detail"])
o = boot(st, {"channels": {"M1/A": {"power_on": "on"}}}, Board())
third = o.status()["M1/A"]["on"]
errs = []
for k, v in (("M2/1", False), ("M9/Z", False), ("M1/A", 0)):
    try:
        o.switch(k, v)
    except ValueError as e:
        errs.append(str(e))
print((first, second, third, errs))
""" % str(tmp_path / "s"), path_dirs=mpy_dirs, heap="256k")
    first, second, third, errs = out
    assert first == ({"M1/A": True, "M1/B": False}, "measurement only", "power_on")
    # restore_last brings M1/A back off; M1/B powers on "off" whatever it was
    assert second == ({"M1/A": False, "M1/B": False}, "restored")
    assert third is True
    assert "measurement only" in errs[0] and "outputs: M1/A, M1/B" in errs[1]
    assert "true or false" in errs[2]


def test_over_current_trips_after_the_hold_and_retries_at_most_m_times(micropython, mpy_dirs,
                                                                       tmp_path):
    out = micropython.eval(SETUP + """
st = Store(%r)
b = Board()
m = Meter()
cfg = {"protect": {"max_current_a": 10, "hold_s": 5, "retry_s": 30, "retry_max": 2}}
o = boot(st, cfg, b)
seen = []
t = 1000
def run(seconds, amps):
    global t
    for _ in range(seconds):
        t += 1
        m.r["M1/A"] = (230.0, amps if b.relay["M1/A"] else 0.0, 0.0)
        o.check(m, t)
        seen.append((t, b.relay["M1/A"]))
run(4, 12.0)
before_hold = b.relay["M1/A"]
run(2, 12.0)                     # over for 5 s: tripped
trip = o.status()["M1/A"]
run(200, 12.0)                   # retried twice, tripping again each time; then stays off
ons = [t for t, on in seen if on]
final = o.status()["M1/A"]
o.switch("M1/A", True)           # a person switches it on: trip and retries cleared
after = (b.relay["M1/A"], o.status()["M1/A"]["reason"])
print((before_hold, trip["reason"], trip["detail"], trip["on"], final["on"], final["reason"],
       len([1 for i in range(1, len(seen)) if seen[i][1] and not seen[i - 1][1]]), after,
       [ln for ln in logs if "TRIPPED" in ln][:1]))
""" % str(tmp_path / "s"), path_dirs=mpy_dirs, heap="256k")
    before, reason, detail, on, final_on, final_reason, reclosed, after, log = out
    assert before is True and reason == "over_current" and on is False
    assert detail == "12.0 A above 10 A for 5 s"
    assert final_on is False and final_reason == "over_current" and reclosed == 2
    assert after == (True, "on")
    assert "M1/A TRIPPED over_current" in log[0] and "retried in 30 s" in log[0]


def test_over_temperature_opens_every_output_with_hysteresis(micropython, mpy_dirs, tmp_path):
    out = micropython.eval(SETUP + """
import time
st = Store(%r)
b = Board()
m = Meter()
o = boot(st, {}, b)
res = []
for temp in (85.0, 75.0, 69.0):
    b.temp = temp
    o._temp_at = None             # the sensor is read at most once a second
    o.check(m, 2000)
    res.append((dict(b.relay), o.status()["M1/A"]["reason"]))
print(res)
""" % str(tmp_path / "s"), path_dirs=mpy_dirs, heap="256k")
    assert out[0] == ({"M1/A": False, "M1/B": False}, "over_temperature")
    assert out[1] == ({"M1/A": False, "M1/B": False}, "over_temperature")  # 75 > 80 - 10
    assert out[2] == ({"M1/A": True, "M1/B": True}, "on")


def test_control_token_is_checked_by_its_hash(micropython, mpy_dirs):
    out = micropython.eval("""
import hashlib, binascii
from plug.control import authorized, same
h = binascii.hexlify(hashlib.sha256(b"s3cret").digest()).decode()
print([authorized(h, "Bearer s3cret"), authorized(h, "Bearer s3cre"),
       authorized(h, "Basic s3cret"), authorized(h, None), authorized("", "Bearer "),
       same(b"abc", b"abc"), same(b"abc", b"abd"), same(b"abc", b"ab")])
""", path_dirs=mpy_dirs, heap="256k")
    assert out == [True, False, False, False, False, True, False, False]


def test_supply_cuts_only_a_wallet_that_cannot_pay_after_the_grace(micropython, mpy_dirs):
    out = micropython.eval("""
from plug.config import validate
from plug.supply import Supply, kind_of
cfg = validate({"supply": {"on_unpaid": "cut", "grace_s": 100, "warn_s": 40}})
keep = validate({})
accts = {0: ["M1/A"], 1: ["M1/B"]}
s = Supply(lambda m: None)
s.refused(0, "3-0", 500, "balance of 0xab is 0 wei, needs 600 (amount + gas + floor 1)", 1000)
s.refused(1, "4-1", 500, "payee 0x12 is not approved in the owner's config", 1000)
res = [s.step(cfg, t, accts) for t in (1050, 1070, 1100)]
stage = [a["supply"] for a in s.alerts(accts)]
kept = s.step(keep, 1200, accts)
s.unreachable(0, "ChainError: node down")
no_verdict = s.step(cfg, 1300, accts)
s.refused(0, "3-0", 500, "amount 500 would take today's spend to 900, over the daily "
          "limit 800", 1400)
limit = (s.step(cfg, 1400, accts), s.alerts(accts)[0]["kind"])
s.paid(0)
print((res, stage, kept, no_verdict, limit, s.step(cfg, 1500, accts), kind_of("fee 5 wei/gas")))
""", path_dirs=mpy_dirs, heap="256k")
    res, stage, kept, no_verdict, limit, after, fee_kind = out
    assert res == [[], [], ["M1/A"]] and stage == ["cut"]
    assert kept == [] and no_verdict == []
    assert limit == (["M1/A"], "limit_reached") and after == [] and fee_kind is None


def test_switching_on_an_output_held_off_is_refused_and_a_retry_says_so(micropython, mpy_dirs,
                                                                        tmp_path):
    out = micropython.eval(SETUP + """
st = Store(%r)
b = Board()
m = Meter()
o = boot(st, {"protect": {"max_current_a": 10, "hold_s": 1, "retry_s": 5, "retry_max": 1}}, b)
o.switch("M1/B", False)
o.set_unpaid(("M1/A", "M1/B"))
res = []
for key in ("M1/A", "M1/B"):
    try:
        o.switch(key, True, "http")
        res.append("switched")
    except ValueError as e:         # outputs.HeldOff
        res.append(str(e))
unpaid = (dict(b.relay), o.status()["M1/B"]["want"], logs[-1])
o.set_unpaid(())
b.temp = 95.0
o.check(m, 1001)
try:
    o.switch("M1/A", True, "repl")
    hot = "switched"
except ValueError as e:
    hot = str(e)
b.temp = 30.0
o._temp_at = None
o.check(m, 1002)
m.r["M1/A"] = (230.0, 12.0, 0.0)
for t in (1003, 1004, 1005):
    o.check(m, t)
tripped = o.status()["M1/A"]["reason"]
m.r["M1/A"] = (230.0, 0.0, 0.0)
for t in range(1006, 1012):
    o.check(m, t)
retried = (b.relay["M1/A"], o.status()["M1/A"]["reason"], o.status()["M1/A"]["detail"])
print((res, unpaid, hot, tripped, retried))
""" % str(tmp_path / "s"), path_dirs=mpy_dirs, heap="256k")
    res, unpaid, hot, tripped, retried = out
    # a person cannot clear unpaid or over-temperature: refused, the reason named,
    # nothing changes (M1/B stays unwanted: it does not come on once the wallet pays)
    assert "M1/A is held off (unpaid" in res[0] and "M1/B is held off (unpaid" in res[1]
    assert unpaid[0] == {"M1/A": False, "M1/B": False} and unpaid[1] is False
    assert "M1/B not switched on (http): held off, unpaid" in unpaid[2]
    assert "held off (over_temperature: 95.0 C above 80 C)" in hot
    # an automatic retry of a trip says so (not who switched it on last)
    assert tripped == "over_current"
    assert retried == (True, "on", "retry 1 of 1 after over_current")


def test_control_token_scheme_is_case_insensitive_and_held_off_is_409(micropython, mpy_dirs,
                                                                      tmp_path):
    out = micropython.eval(SETUP + """
import hashlib, binascii
from plug.control import authorized, post_switch
from plug.server import HTTPError
h = binascii.hexlify(hashlib.sha256(b"s3cret").digest()).decode()
auth = [authorized(h, a) for a in ("bearer s3cret", "BEARER s3cret", "beArer  s3cret",
                                   "bearers3cret", "bearer")]

class Req:
    def __init__(self, body):
        self.headers = {"authorization": "bearer s3cret"}
        self.body = body
    def json(self):
        return self.body

o = boot(Store(%r), {}, Board())
o.set_unpaid(("M1/A",))

class Plug:
    class cfgm:
        config = {"control": {"token_sha256": h}}
    def switch(self, key, on, by):
        return o.switch(key, on, by)

codes = []
for on in (False, True):
    try:
        codes.append(post_switch(Plug(), Req({"channel": "M1/A", "on": on}))["on"])
    except HTTPError as e:
        codes.append((e.status, e.message))
print((auth, codes, o.status()["M1/A"]["want"]))
""" % str(tmp_path / "s"), path_dirs=mpy_dirs, heap="256k")
    auth, codes, want = out
    assert auth == [True, True, True, False, False]
    assert codes[0] is False and codes[1][0] == 409 and "held off (unpaid" in codes[1][1]
    assert want is False  # refused: nothing changed


def test_alerts_show_the_total_due_and_the_balance_of_the_verdict(micropython, mpy_dirs):
    out = micropython.eval("""
from plug.config import validate
from plug.supply import Supply, money_alerts
cfg = validate({"supply": {"on_unpaid": "cut", "grace_s": 100, "warn_s": 40},
                "limits": {"gas_floor_wei": 10**15}})
accts = {0: ["M1/A"], 1: ["M1/B"]}
s = Supply(lambda m: None)
s.refused(0, "8-0", 300, "balance of 0xa0 is 200 wei, needs 400 (amount + gas + floor 1)", 1000)
s.refused(0, "9-0", 500, "balance of 0xa0 is 200 wei, needs 600 (amount + gas + floor 1)", 1010)
s.refused(1, "9-0", 700, "amount 700 would take today's spend over the daily limit", 1010)
unit = [(a["account"], a["amount_due"]) for a in s.alerts(accts)]

class Plug:
    pass
p = Plug()
p.supply = s
p._accounts = lambda: accts
p.cfgm = Plug()
p.cfgm.config = cfg
class T:
    def current(self):
        return {"token": None}
p.tariff = T()
class St:
    def open_invoices(self):
        return [{"id": "8-0", "account": 0, "amount": 300, "token": None},
                {"id": "9-0", "account": 0, "amount": 500, "token": None},
                {"id": "10-1", "account": 1, "amount": 700, "token": None},
                {"id": "11-1", "account": 1, "amount": 50, "token": None}]
p.settlement = St()
class C:
    def time(self):
        return 2000
p.clock = C()
class W:
    def address(self, a):
        return "0xa%d" % a
p.wallet = W()
class Pay:
    def records(self):
        return [{"from": "0xa0", "st": "confirmed", "tok": None, "amt": 10**12, "t": 1900},
                {"from": "0xa1", "st": "confirmed", "tok": None, "amt": 10**13, "t": 1900}]
p.payments = Pay()
import time
p._balances_at = time.ticks_ms() - 1000          # refreshed before the refusal: stale
p.balances = {"0xa0": {"native": 9990 * 10**15}, "0xa1": {"native": 10**14}}
s.step(cfg, 1200, accts)
alerts, runway = money_alerts(p)
p.balances["0xa1"] = {"native": 3 * 10**15}
p._balances_at = time.ticks_ms() + 1000          # refreshed after it: the refresh counts
alerts2, runway2 = money_alerts(p)
print((unit, [(a["account"], a["amount_due"], a["supply"], a["balance"]) for a in alerts],
       runway, alerts2[0]["balance"], runway2[1]["runway_s"]))
""", path_dirs=mpy_dirs, heap="256k")
    unit, alerts, runway, bal2, runway2 = out
    assert unit == [(0, 800), (1, 700)]  # both refused invoices are due, not the last one
    # the wallet's open invoices; the balance the refusal said, not the older refresh
    assert alerts == [(0, 800, "cut", 200), (1, 750, "cut", 10**14)]
    # below the gas floor nothing is spendable: no runway, whatever was spent
    assert [(r["account"], r["balance"], r["spendable"], r["runway_s"]) for r in runway] == \
        [(0, 200, 200 - 10**15, 0), (1, 10**14, 10**14 - 10**15, 0)]
    assert bal2 == 9990 * 10**15  # a refresh newer than the refusal is what counts
    assert runway2 == 2 * 10**15 * 86400 // 10**13
