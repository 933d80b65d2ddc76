"""Energy by period (issue 14): per channel import and export for today, yesterday, this
month and last month at the owner's UTC offset (plug/periods.py), on MicroPython with the
real store and ledger: day and month boundaries at offsets of both signs, leap years and
month lengths on the epoch-2000 clock, the EU DST rule, boots across midnight, power cuts
mid-save, channels added later, resets; a hypothesis property over any sequence of
readings and clock jumps; and the virtual plug crossing midnight (slow)."""

import calendar
import datetime
import json
import os
import time
import zoneinfo

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tools import mp

TESTS = os.path.dirname(os.path.abspath(__file__))
UNIX_2000 = 946684800
CLOCK_SET = 631152000  # plug time of 2020-01-01: before it the clock is not set
WH = 10**6  # uWh


def pt(y, m, d, hh=0, mm=0, ss=0, off_min=0):
    """Plug time of a local wall-clock time at a fixed UTC offset."""
    return calendar.timegm((y, m, d, hh, mm, ss)) - off_min * 60 - UNIX_2000


def run_ops(root, ops, off=0, dst="none", channels="M1/A"):
    from paytest import build_dir  # the .mpy set, as the plug runs it (64 KB heap)

    out = mp.run(path=os.path.join(TESTS, "periods_ops.py"),
                 args=[str(root), str(off), dst, channels], heap="64k",
                 path_dirs=build_dir(), input="".join(json.dumps(op) + "\n" for op in ops))
    rows = [json.loads(x) for x in out.splitlines()]
    assert len(rows) == len(ops), out
    return rows


def fig(row, key="M1/A"):
    """{"today": (imp, exp), ...} of one output row."""
    e = row[1][key]
    return {"today": tuple(e[0]), "yesterday": tuple(e[1]), "month": tuple(e[2]),
            "last_month": tuple(e[3])}


def logs(rows):
    return [m for r in rows for m in r[4]]


# ---- the calendar ------------------------------------------------------------------

def test_calendar_and_the_eu_rule_match_cpython(micropython):
    """Leap years (2000 and 2024 are, 2100 is not), month lengths and the EU summer time
    of plug/periods.py against CPython's datetime and the tz database (Europe/Berlin)."""
    from paytest import build_dir

    days = list(range(-400, 40000, 7)) + list(range(36500, 36600))  # 1998 .. 2109
    ts = _dst_probe_times()
    got = micropython.eval(
        "from plug.periods import civil, days_from, utc_offset_s\n"
        "days = %r\nts = %r\n"
        "print(([civil(d) for d in days], [days_from(*civil(d)) for d in days],"
        " [utc_offset_s(t, {'utc_offset_min': 60, 'dst': 'eu'}) for t in ts],"
        " [utc_offset_s(t, {'utc_offset_min': -300, 'dst': 'none'}) for t in ts]))"
        % (days, ts), heap="4m", path_dirs=build_dir())  # a big literal: not a memory test
    civ, back, eu, fixed = got
    base = datetime.date(2000, 1, 1)
    assert civ == [(base + datetime.timedelta(d)).timetuple()[:3] for d in days]
    assert back == days
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    want = [int(datetime.datetime.fromtimestamp(t + UNIX_2000, berlin).utcoffset()
                .total_seconds()) for t in ts]
    assert eu == want and 7200 in want and 3600 in want
    assert fixed == [-18000] * len(ts)


def _dst_probe_times():
    """Plug times around every EU switch of 2021..2030 (01:00 UTC, last Sundays)."""
    out = []
    for y in range(2021, 2031):
        for m in (3, 10):
            last = max(w[6] for w in calendar.monthcalendar(y, m))
            at = calendar.timegm((y, m, last, 1, 0, 0)) - UNIX_2000
            out += [at - 3601, at - 1, at, at + 1, at + 86400 * 40]
    return out


# ---- days and months ---------------------------------------------------------------

@pytest.mark.parametrize("off", [0, 60, 330, -300, 840, -720])
def test_a_local_midnight_closes_the_day_at_the_owners_offset(tmp_path, off):
    y, m, d = 2026, 5, 14
    ops = [["at", pt(y, m, d, 10, 0, 0, off)], ["roll"], ["add", "M1/A", 5 * WH, 2 * WH],
           ["at", pt(y, m, d, 23, 59, 59, off)], ["roll"], ["add", "M1/A", 3 * WH, 0],
           ["at", pt(y, m, d + 1, 0, 0, 0, off)], ["roll"],
           ["add", "M1/A", 7 * WH, 1 * WH], ["roll"]]
    rows = run_ops(tmp_path, ops, off)
    assert rows[1][3] == "2026-05-14"
    assert rows[4][0] is False  # a second before local midnight: still the same day
    before = fig(rows[5])
    assert before["today"] == (8 * WH, 2 * WH) and before["yesterday"] == (0, 0)
    assert rows[7][0] is True and rows[7][3] == "2026-05-15"
    after = fig(rows[7])
    assert after["yesterday"] == before["today"] and after["today"] == (0, 0)
    assert after["month"] == (8 * WH, 2 * WH) and after["last_month"] == (0, 0)
    assert fig(rows[9])["today"] == (7 * WH, 1 * WH)
    assert fig(rows[9])["month"] == (15 * WH, 3 * WH)
    assert rows[9][0] is False
    # the UTC day is not the owner's day: at offsets far from 0 the roll is hours off UTC
    assert any("new day 2026-05-15" in m for m in logs(rows))


@pytest.mark.parametrize("off,start,end", [
    (-720, (2024, 1, 27), (2024, 3, 3)),  # 2024 is a leap year: 29 February
    (840, (2099, 12, 25), (2100, 3, 3)),  # 2100 is not (a century not divisible by 400)
    (0, (2027, 4, 27), (2027, 7, 2)),  # 30- and 31-day months
])
def test_every_day_of_the_months_across_year_ends_and_leap_days(tmp_path, off, start, end):
    """One roll per local day, a different energy each day: each day's figures and each
    month's equal what CPython's calendar says that day and month held."""
    day = datetime.date(*start)
    ops, days = [], []
    while day <= datetime.date(*end):
        n = len(days) + 1
        ops += [["at", pt(*day.timetuple()[:3], 0, 0, 30, off)], ["roll"],
                ["at", pt(*day.timetuple()[:3], 12, 0, 0, off)],
                ["add", "M1/A", n * WH, (n % 3) * WH]]
        days.append((day, n * WH, (n % 3) * WH))
        day += datetime.timedelta(1)
    rows = run_ops(tmp_path, ops, off)
    per_month = {}
    for i, (day, imp, exp) in enumerate(days):
        got = fig(rows[4 * i + 3])  # after that day's energy
        assert rows[4 * i + 3][3] == day.isoformat()
        assert got["today"] == (imp, exp), day
        if i:
            assert got["yesterday"] == days[i - 1][1:], day
        mk = (day.year, day.month)
        per_month[mk] = tuple(a + b for a, b in zip(per_month.get(mk, (0, 0)), (imp, exp)))
        assert got["month"] == per_month[mk], day
        prev = (day.year - (day.month == 1), (day.month - 2) % 12 + 1)
        assert got["last_month"] == per_month.get(prev, (0, 0)), day


def test_eu_summer_time_moves_midnight_by_an_hour(tmp_path):
    # CET (UTC+1) with the EU rule: on 2026-07-01 local midnight is 22:00 UTC
    ops = [["at", pt(2026, 6, 30, 21, 0, 0)], ["roll"], ["add", "M1/A", WH, 0],
           ["at", pt(2026, 6, 30, 21, 59, 59)], ["roll"],
           ["at", pt(2026, 6, 30, 22, 0, 0)], ["roll"],
           ["at", pt(2026, 12, 31, 22, 59, 59)], ["roll"],
           ["at", pt(2026, 12, 31, 23, 0, 0)], ["roll"]]  # winter: midnight is 23:00 UTC
    rows = run_ops(tmp_path, ops, 60, "eu")
    assert rows[1][3] == "2026-06-30" and rows[4][0] is False
    assert rows[6][0] is True and rows[6][3] == "2026-07-01"
    assert fig(rows[6])["last_month"] == (WH, 0) and fig(rows[6])["yesterday"] == (WH, 0)
    # 22:59:59 UTC on 31 December is 23:59:59 CET: months later, nothing metered since
    assert rows[8][0] is True and rows[8][3] == "2026-12-31"
    assert fig(rows[8])["last_month"] == (0, 0) and fig(rows[8])["yesterday"] == (0, 0)
    assert rows[10][0] is True and rows[10][3] == "2027-01-01"


def test_a_new_offset_from_the_owner_moves_the_midnight(tmp_path):
    ops = [["at", pt(2026, 3, 10, 20, 0, 0)], ["roll"], ["add", "M1/A", 4 * WH, 0],
           ["tz", 300, "none"], ["roll"],  # 20:00 UTC is 01:00 tomorrow at UTC+5
           ["tz", -300, "none"], ["roll"], ["add", "M1/A", WH, 0]]
    rows = run_ops(tmp_path, ops, 0)
    assert rows[4][0] is True and rows[4][3] == "2026-03-11"
    assert fig(rows[4])["yesterday"] == (4 * WH, 0)
    # back to UTC-5 (15:00 on the 10th): never rolls back, the 11th keeps counting
    assert rows[6][0] is False and rows[6][3] == "2026-03-11"
    assert fig(rows[7])["today"] == (WH, 0)


# ---- boots, power cuts, channels, resets -------------------------------------------

def test_boot_across_midnight_and_days_off(tmp_path):
    off = 120
    rows = run_ops(tmp_path, [["at", pt(2026, 2, 27, 8, 0, 0, off)], ["roll"],
                              ["add", "M1/A", 10 * WH, 0],
                              ["at", pt(2026, 2, 27, 23, 50, 0, off)],
                              ["add", "M1/A", 2 * WH, WH], ["restart"],  # clean stop
                              ["at", pt(2026, 2, 28, 0, 10, 0, off)], ["cut"]], off)
    # it was off across midnight: the boot rolls, before the meter reads anything
    e = fig(rows[-1])
    assert rows[-1][3] == "2026-02-28"
    assert e["yesterday"] == (12 * WH, WH) and e["today"] == (0, 0)
    assert e["month"] == (12 * WH, WH)
    # off for three days across a month's end: yesterday had nothing; February closes
    rows = run_ops(tmp_path, [["add", "M1/A", 5 * WH, 0], ["restart"],
                              ["at", pt(2026, 3, 3, 6, 0, 0, off)], ["cut"],
                              ["add", "M1/A", WH, 0], ["restart"]], off)
    e = fig(rows[-1])
    assert rows[-1][3] == "2026-03-03"
    assert e["yesterday"] == (0, 0) and e["today"] == (WH, 0)
    assert e["last_month"] == (17 * WH, WH) and e["month"] == (WH, 0)
    # a power cut loses what the ledger had not checkpointed, and nothing more
    rows = run_ops(tmp_path, [["add", "M1/A", 9 * WH, 0], ["cut"]], off)
    assert fig(rows[0])["today"] == (10 * WH, 0)
    assert fig(rows[1])["today"] == (WH, 0) and fig(rows[1])["month"] == (WH, 0)
    assert fig(rows[1])["last_month"] == (17 * WH, WH)


@pytest.mark.parametrize("cut", ["periods save torn", "between the two saves"])
def test_a_power_cut_in_the_midnight_save_gives_the_same_figures(tmp_path, cut):
    ops = [["at", pt(2026, 8, 31, 9, 0, 0)], ["roll"], ["add", "M1/A", 6 * WH, 3 * WH],
           ["at", pt(2026, 9, 1, 0, 0, 1)]]
    if cut == "periods save torn":
        ops += [["roll"], ["torn", "periods"], ["cut"]]
    else:  # the ledger checkpointed for the roll, the periods file never written
        ops += [["save_fails", 1], ["roll"], ["cut"]]
    rows = run_ops(tmp_path, ops)
    if cut == "between the two saves":
        assert any("[periods] save failed" in m for m in rows[-2][4])
    e = fig(rows[-1])
    assert rows[-1][3] == "2026-09-01"
    assert e == {"today": (0, 0), "yesterday": (6 * WH, 3 * WH), "month": (0, 0),
                 "last_month": (6 * WH, 3 * WH)}
    assert any("new day 2026-09-01 and month" in m for m in rows[-1][4])  # rolled at boot


def test_a_failed_save_is_tried_again(tmp_path):
    t = pt(2026, 9, 1, 0, 0, 5)
    rows = run_ops(tmp_path, [["at", t - 86400], ["roll"], ["add", "M1/A", WH, 0],
                              ["save_fails", 1], ["at", t], ["roll"],
                              ["at", t + 30], ["roll"], ["at", t + 61], ["roll"], ["cut"]])
    assert rows[5][0] is True and "save failed" in " ".join(rows[5][4])
    assert rows[7][4] == []  # not before a minute
    assert rows[9][4] == [] and fig(rows[10])["yesterday"] == (WH, 0)
    assert not any("new day" in m for m in rows[10][4])  # saved: no second roll at boot


def test_persisted_across_reboots_and_a_channel_added_later(tmp_path):
    ops = [["at", pt(2026, 4, 30, 12, 0, 0)], ["roll"], ["add", "M1/A", 30 * WH, 0],
           ["at", pt(2026, 5, 1, 0, 0, 0)], ["roll"], ["add", "M1/A", 4 * WH, 0],
           ["restart"]]
    rows = run_ops(tmp_path, ops)
    assert fig(rows[-1]) == fig(rows[-2]) == {
        "today": (4 * WH, 0), "yesterday": (30 * WH, 0), "month": (4 * WH, 0),
        "last_month": (30 * WH, 0)}
    # a firmware with another front end: M2/1 arrives with totals of its own (a chip
    # swapped in, say); it starts at them, and the others keep their figures
    rows = run_ops(tmp_path, [["channel", "M2/1", 500 * WH, 0], ["add", "M2/1", 2 * WH, 0],
                              ["restart"]])
    assert fig(rows[0], "M2/1")["today"] == (0, 0)
    assert fig(rows[-1], "M2/1")["today"] == (2 * WH, 0)
    assert fig(rows[-1], "M1/A")["today"] == (4 * WH, 0)
    # a plug updated to this firmware with 1 MWh metered: periods start from there
    for p in tmp_path.glob("periods.*"):
        p.unlink()
    rows = run_ops(tmp_path, [["add", "M1/A", WH, 0], ["restart"]], channels="M1/A,M2/1")
    assert fig(rows[-1]) == {"today": (WH, 0), "yesterday": (0, 0), "month": (WH, 0),
                             "last_month": (0, 0)}
    assert fig(rows[-1], "M2/1") == {"today": (0, 0), "yesterday": (0, 0), "month": (0, 0),
                                     "last_month": (0, 0)}


def test_a_new_channel_is_saved_when_first_seen(tmp_path):
    run_ops(tmp_path, [["at", pt(2026, 1, 5, 12, 0, 0)], ["roll"]])
    rows = run_ops(tmp_path, [["channel", "M1/B"], ["add", "M1/B", 3 * WH, 0], ["cut"]])
    assert fig(rows[1], "M1/B")["today"] == (3 * WH, 0)
    # the cut took its energy (never checkpointed) with it; its start was saved at 0
    assert fig(rows[2], "M1/B")["today"] == (0, 0)
    assert not any("below" in m for m in logs(rows))
    rows = run_ops(tmp_path, [["add", "M1/B", WH, 0], ["restart"]], channels="M1/A,M1/B")
    assert fig(rows[-1], "M1/B")["today"] == (WH, 0)


def test_a_reset_or_a_held_ledger_never_gives_negative_figures(tmp_path):
    ops = [["at", pt(2026, 6, 1, 10, 0, 0)], ["roll"], ["add", "M1/A", 50 * WH, 5 * WH],
           ["at", pt(2026, 6, 2, 0, 0, 0)], ["roll"], ["add", "M1/A", 20 * WH, 0],
           ["set_total", "M1/A", 10 * WH, 0], ["add", "M1/A", WH, 0], ["restart"]]
    rows = run_ops(tmp_path, ops)
    e = fig(rows[6])
    assert e["today"] == (0, 0) and e["month"] == (10 * WH, 0)
    assert e["yesterday"] == (50 * WH, 5 * WH)  # closed figures stay as they were
    assert any("below today's or this month's start" in m for m in rows[6][4])
    assert fig(rows[-1])["today"] == (WH, 0)
    # a held ledger (safe mode) reads zero totals: nothing negative, logged
    for p in tmp_path.glob("ledger.*"):
        p.unlink()
    rows = run_ops(tmp_path, [["roll"]])
    assert all(x >= 0 for pair in fig(rows[0]).values() for x in pair)
    assert fig(rows[0])["yesterday"] == (50 * WH, 5 * WH)


def test_no_clock_no_roll_and_a_bad_state_file_starts_afresh(tmp_path):
    ops = [["at", 5000], ["roll"], ["add", "M1/A", 2 * WH, 0], ["at", 90000], ["roll"],
           ["at", pt(2026, 10, 3, 14, 0, 0)], ["roll"], ["add", "M1/A", WH, 0]]
    rows = run_ops(tmp_path, ops)
    assert rows[1][3] is None and rows[4][0] is False and rows[4][3] is None
    # NTP set the clock: what was metered meanwhile is today's; no day was closed
    assert rows[6][0] is False and rows[6][3] == "2026-10-03"
    assert fig(rows[7])["today"] == (3 * WH, 0) and fig(rows[7])["yesterday"] == (0, 0)
    (tmp_path / "periods.0").write_bytes(b"")
    (tmp_path / "periods.1").write_bytes(b'13 0 2\n{}')
    rows = run_ops(tmp_path, [["roll"]])
    assert fig(rows[0])["today"] == (0, 0)
    # a file that passes its CRC but is not ours: logged, counted again
    import binascii

    body = b'{"v": 1, "day": "x", "mon": null, "ch": {}}'
    (tmp_path / "periods.1").write_bytes(b"99 %d %d\n" % (binascii.crc32(body), len(body))
                                         + body)
    rows = run_ops(tmp_path, [["roll"]])
    assert any("state file not readable" in m for m in rows[0][4])
    assert all(x >= 0 for pair in fig(rows[0]).values() for x in pair)


def test_the_config_takes_the_offset_and_refuses_bad_ones(micropython):
    got = micropython.eval(
        "from plug.config import validate, ConfigError\n"
        "out = [validate({})['time']]\n"
        "for t in ({'utc_offset_min': 345, 'dst': 'eu'}, {'utc_offset_min': -721},"
        " {'utc_offset_min': 841}, {'utc_offset_min': 50}, {'utc_offset_min': '60'},"
        " {'dst': 'us'}, {'zone': 'CET'}):\n"
        "    try:\n        out.append(validate({'time': t})['time'])\n"
        "    except ConfigError as e:\n        out.append(str(e))\n"
        "print(out)")
    assert got[0] == {"utc_offset_min": 0, "dst": "none"}
    assert got[1] == {"utc_offset_min": 345, "dst": "eu"}
    assert got[2] == got[3] == "time.utc_offset_min: must be between -720 and 840"
    assert got[4].startswith("time.utc_offset_min: must be a multiple of 15 minutes")
    assert got[5] == "time.utc_offset_min: must be an integer"
    assert got[6] == "time.dst: must be one of none, eu"
    assert got[7].startswith("time.zone")


def test_heap_it_holds(tmp_path):
    keys = "M1/A,M1/B,M2/1,M2/2,M2/3"
    rows = run_ops(tmp_path, [["at", pt(2026, 1, 1, 12)], ["roll"]]
                   + [["add", k, 2**37, 2**35] for k in keys.split(",")]
                   + [["at", pt(2026, 1, 2, 12)], ["roll"], ["heap"]], channels=keys)
    held = rows[-1][0]
    print("Periods holds %d bytes for 5 channels on the 64-bit unix port" % held)
    assert 0 < held < 1200


# ---- the property ------------------------------------------------------------------

_EPOCHS = st.sampled_from([CLOCK_SET - 2 * 86400, pt(2024, 2, 27), pt(2026, 3, 28, 20),
                           pt(2026, 10, 24, 22), pt(2099, 12, 30, 23), pt(2030, 6, 30, 11)])
_ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(0, 3 * 10**9), st.integers(0, 10**9),
              st.integers(1, 7200)),
    st.tuples(st.just("add"), st.integers(0, 10**6), st.integers(0, 0), st.integers(1, 600)),
    st.tuples(st.just("jump"), st.integers(1, 3 * 86400), st.booleans()),
    st.tuples(st.just("jump"), st.integers(20 * 3600, 28 * 3600), st.booleans()),
    st.tuples(st.just("jump"), st.integers(30 * 86400, 70 * 86400), st.booleans()),
    st.tuples(st.just("roll")), st.tuples(st.just("roll")),
    st.tuples(st.just("restart")), st.tuples(st.just("cut")),
), min_size=1, max_size=40)


def _local_date(t, off, dst):
    u = datetime.datetime(2000, 1, 1) + datetime.timedelta(seconds=t)
    shift = off * 60
    if dst == "eu":
        berlin = zoneinfo.ZoneInfo("Europe/Berlin")
        aware = u.replace(tzinfo=datetime.timezone.utc).astimezone(berlin)
        shift += int(aware.dst().total_seconds())
    return (u + datetime.timedelta(seconds=shift)).date()


class Model:
    """What the figures must be, worked out with CPython's calendar."""

    def __init__(self):
        self.tot = [0, 0]
        self.ckpt = [0, 0]
        self.day = None
        self.d0 = self.m0 = [0, 0]
        self.y = self.lm = [0, 0]

    def roll(self, t, off, dst):
        if t < CLOCK_SET:
            return False
        day = _local_date(t, off, dst)
        if self.day is None:
            self.day = day
            return False
        if day <= self.day:
            return False
        self.ckpt = list(self.tot)
        self.y = [a - b for a, b in zip(self.tot, self.d0)] if (day - self.day).days == 1 \
            else [0, 0]
        self.d0 = list(self.tot)
        months = (day.year * 12 + day.month) - (self.day.year * 12 + self.day.month)
        if months:
            self.lm = [a - b for a, b in zip(self.tot, self.m0)] if months == 1 else [0, 0]
            self.m0 = list(self.tot)
        self.day = day
        return True

    def figures(self):
        return {"today": tuple(a - b for a, b in zip(self.tot, self.d0)),
                "yesterday": tuple(self.y),
                "month": tuple(a - b for a, b in zip(self.tot, self.m0)),
                "last_month": tuple(self.lm)}


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=_ops, t0=_EPOCHS, off=st.sampled_from([0, -720, -300, 60, 345, 840]),
       dst=st.sampled_from(["none", "eu"]))
def test_any_readings_and_clock_jumps_keep_the_periods_right(tmp_path_factory, seq, t0, off,
                                                            dst):
    """Figures are never negative, today + yesterday and this + last month never exceed
    the ledger's total, and across a midnight today + yesterday equal what the ledger
    gained since the start of the day before; restarts and power cuts included."""
    root = tmp_path_factory.mktemp("periods")
    t = t0
    ops = [["at", t]]
    for op in seq:
        if op[0] == "add":
            t += op[3]
            ops += [["at", t], ["add", "M1/A", op[1], op[2]]]
        elif op[0] == "jump":  # and the roll the app makes within a second, or not yet
            t += op[1]
            ops += [["at", t], ["roll"]] if op[2] else [["at", t]]
        else:
            ops.append([op[0]])
    rows = run_ops(root, ops, off, dst)
    model = Model()  # the harness boots at plug time 86400: no clock yet
    t = 86400
    prev = None
    for op, row in zip(ops, rows):
        kind = op[0]
        if kind == "at":
            t = op[1]
        elif kind == "add":
            assert row[0] is True
            model.tot = [model.tot[0] + op[2], model.tot[1] + op[3]]
        elif kind == "roll":
            mon = model.day and (model.day.year, model.day.month)
            assert row[0] is model.roll(t, off, dst), (op, t, row)
            if row[0] and mon != (model.day.year, model.day.month):
                event("a roll into another month")
        elif kind == "restart":
            model.ckpt = list(model.tot)
            model.roll(t, off, dst)
        elif kind == "cut":
            model.tot = list(model.ckpt)
            model.roll(t, off, dst)
        got = fig(row)
        assert row[2]["M1/A"] == model.tot
        assert got == model.figures(), (op, t, row)
        tot = row[2]["M1/A"]
        for j in (0, 1):
            assert all(v[j] >= 0 for v in got.values())
            assert got["today"][j] + got["yesterday"][j] <= tot[j]
            assert got["month"][j] + got["last_month"][j] <= tot[j]
            assert got["today"][j] <= got["month"][j]
        if kind == "roll" and row[0] and prev is not None \
                and (_local_date(t, off, dst) - prev[1]).days == 1:
            event("a roll across one midnight")
            # one midnight: nothing lost or invented
            for j in (0, 1):
                assert got["yesterday"][j] + got["today"][j] == \
                    prev[0]["today"][j] + tot[j] - prev[2][j]
        if model.day is not None:
            prev = (got, model.day, tot)


# ---- the virtual plug --------------------------------------------------------------

@pytest.mark.slow
def test_virtual_plug_crossing_midnight_moves_today_into_yesterday():
    """A virtual plug at 120x, owner at UTC+1, started at 23:20 local time: after its
    local midnight `yesterday` holds what `today` held, plus only what the ledger gained
    between the two looks (one REPL line reads the figures and the totals together)."""
    from tools.scenario import World

    now = time.gmtime()
    # 23:20 local at UTC+1 is 22:20 UTC; the tariff schedule starts at that day's 00:00
    day = calendar.timegm(now[:3] + (0, 0, 0)) - 86400
    with World(day, log=lambda *a: None) as w:
        from tools.simrun import read_settings, save_settings

        p = w.add_plug("midnight", speed=240, deploy=False)
        p.provision({"time": {"utc_offset_min": 60, "dst": "none"}})
        s = read_settings(p.state)
        # the sim clock restarts at 23:20 local, 120x: midnight 20 s after the reboot,
        # room for a slow boot on a loaded machine
        s["start"], s["anchor"] = day - UNIX_2000 + 22 * 3600 + 20 * 60, time.time()
        s["speed"] = 120
        save_settings(p.state, s)
        p.reboot()
        expr = ("(plug.periods.energy('M1/A'), plug.ledger.totals('M1/A'), "
                "plug.periods.date(), plug.clock.time())")
        first = p.repl_eval(expr)
        assert first[2] == time.strftime("%Y-%m-%d", time.gmtime(day)), \
            ("the reboot took more than 20 s: past midnight already", first)
        deadline = time.monotonic() + 120
        while True:
            got = p.repl_eval(expr)
            if got[2] != first[2] and got[1][0] > first[1][0]:
                break
            assert time.monotonic() < deadline, (first, got)
            time.sleep(1)
        e1, tot1, _, t1 = first
        e2, tot2, _, t2 = got
        assert e1["today"][0] > 0  # the heater has been on since the boot
        assert got[2] == time.strftime("%Y-%m-%d", time.gmtime(day + 86400))
        for j in (0, 1):
            assert e2["yesterday"][j] >= e1["today"][j]
            assert e2["yesterday"][j] + e2["today"][j] == \
                e1["today"][j] + tot2[j] - tot1[j]
        assert e2["month"][0] >= e2["today"][0]
