# Energy by period: per channel import and export (integer uWh) for today, yesterday,
# this month and last month, at the owner's local time.
#
#   per = Periods(ledger, store, clock, tz=lambda: config["time"], log=print)
#       loads the "periods" state file; a channel it does not know yet starts at the
#       ledger's totals now (a channel added later counts from when it is first seen)
#   per.roll(t=None) -> True when it moved to a new day. Call it every second or so
#       (app.py: the watchdog loop); between midnights it is one comparison. Never raises.
#   per.energy(key) -> {"today": (imp, exp), "yesterday": (imp, exp), "month": (imp, exp),
#                       "last_month": (imp, exp)}      ints, uWh, never negative
#   per.flat(key) -> the same as one tuple of 8 ints, PERIODS in order (import, export
#                       of each): one allocation, what /status writes from
#   per.date() -> "2026-12-07", the local date "today" is, or None until the clock is set
#   utc_offset_s(t, tz), civil(days), days_from(y, m, d): the calendar, epoch 2000
#
# Local time is plug time + the signed config's time.utc_offset_min (-720..840), plus one
# hour in summer with time.dst = "eu" (the EU rule: from the last Sunday of March to the
# last Sunday of October, 01:00 UTC both). With "none" (the default) the offset is fixed:
# elsewhere the owner signs a config with the new offset at each DST change.
#
# No work per reading. Per channel this keeps the ledger's totals at the start of today
# and of this month, and the energy of yesterday and of last month as closed figures:
# 8 ints per channel in an array('q') (64 bytes, no int objects on the heap). today = totals
# now - totals at today's start. At a local midnight roll() closes the day: yesterday =
# totals now - today's start, today's start = totals now (a month likewise); a jump of two
# days or more leaves yesterday at 0 (nothing was metered on it). So no energy is lost or
# invented: today + yesterday after a midnight is what the ledger gained since the start
# of the day before. Keeping yesterday and last month as closed figures, a ledger reset
# (set_total) never changes them.
#
# Durability: the state is saved with the store's atomic rules ("periods") at each
# midnight and when a channel is first seen, and loaded at boot. The ledger is
# checkpointed first, so a saved start is never above the totals a power cut brings
# back; after a cut anywhere in a roll the plug rolls again at boot from the same totals.
# Energy metered before the plug notices a midnight (at most a second while it runs, or
# until boot when it was off) counts for the day before; energy a chip kept counting
# through a reboot across midnight counts for the day the plug reads it. While the clock
# is not set (before 2020: no NTP yet) nothing rolls; what is metered meanwhile counts
# for the day the clock turns out to be. A clock stepped back never rolls back: the plug
# waits until the day it already counts for has passed.
#
# Totals below a saved start (a ledger reset, or a held ledger in safe mode, which starts
# at zero) never make a negative figure: today's and the month's start drop to the
# totals (logged), so those periods count again from there.
from array import array

from micropython import const

_V = const(1)  # state format
_NAME = "periods"
_N = const(8)  # ints per channel
_DAY_IMP = const(0)  # ledger totals at the start of today (import, export)
_MON_IMP = const(2)  # ... at the start of this month
_YDAY = const(4)  # yesterday's energy (import, export)
_LMON = const(6)  # last month's energy
_CLOCK_SET = const(631152000)  # 2020-01-01: before this the clock is not set
_RETRY_S = const(60)  # a failed checkpoint or save is tried again this much later
_D = const(86400)
PERIODS = ("today", "yesterday", "month", "last_month")  # the order of flat()


def days_from(y, m, d):
    """Days since 2000-01-01 of a date in the proleptic Gregorian calendar."""
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 730425


def civil(days):
    """(year, month, day) of a day number since 2000-01-01."""
    z = days + 730425
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, doy - (153 * mp + 2) // 5 + 1


def _last_sunday(y, m, last):
    d = days_from(y, m, last)
    return d - (d - 1) % 7  # 2000-01-02 (day 1) was a Sunday


def utc_offset_s(t, tz):
    """Seconds local time is ahead of UTC at plug time t."""
    off = tz["utc_offset_min"] * 60
    if tz["dst"] == "eu":
        y = civil(t // _D)[0]
        if _last_sunday(y, 3, 31) * _D + 3600 <= t < _last_sunday(y, 10, 31) * _D + 3600:
            off += 3600
    return off


def _month(day):
    y, m, _ = civil(day)
    return y * 12 + m - 1


class Periods:
    def __init__(self, ledger, store, clock, tz, log=print):
        self.ledger = ledger
        self.store = store
        self.clock = clock
        self.tz = tz
        self.log = log
        self._day = None  # local day number today is, None until the clock was set
        self._mon = None  # year * 12 + month - 1
        self._ch = {}  # key -> array("q") of _N: 64 bytes each, never one big block
        self._tz = None  # the tz section _next was worked out for
        self._next = 0  # plug time before which roll() has nothing to do
        self._dirty = False
        self._load()
        new = 0
        for key in ledger.keys():
            if key not in self._ch:
                self._add(key)
                new += 1
        if new:
            self._save()
        self.roll()

    # ---- state ----

    def _add(self, key):
        imp, exp = self.ledger.totals(key)
        a = self._ch[key] = array("q", (imp, exp, imp, exp, 0, 0, 0, 0))
        return a

    def _load(self):
        data = self.store.load(_NAME)
        if data is None:
            return
        try:
            if data["v"] != _V:
                raise ValueError("format %r" % (data["v"],))
            day, mon, ch = data["day"], data["mon"], data["ch"]
            if (day is None) != (mon is None) or not (day is None or (
                    type(day) is int and type(mon) is int and mon == _month(day))):
                raise ValueError("day %r, month %r" % (day, mon))
            for key in ch:
                rec = ch[key]
                if not (isinstance(rec, list) and len(rec) == _N and all(
                        type(x) is int and 0 <= x < 2**62 for x in rec)):
                    raise ValueError("channel %r" % (key,))
        except (KeyError, TypeError, ValueError) as e:
            self.log("[periods] state file not readable (%s): periods count again from now"
                     % e)
            return
        self._day, self._mon = day, mon
        for key in ch:
            self._ch[key] = array("q", ch[key])

    def _save(self):
        ch = {}
        for key in self._ch:
            ch[key] = list(self._ch[key])
        try:
            self.store.save(_NAME, {"v": _V, "day": self._day, "mon": self._mon, "ch": ch})
            self._dirty = False
        except Exception as e:  # OSError (flash full) or StoreError: kept in RAM, retried
            self._dirty = True
            self._next = 0  # roll() tries again
            self.log("[periods] save failed, retrying: %r" % (e,))

    # ---- the calendar ----

    def roll(self, t=None):
        if t is None:
            t = self.clock.time()
        if t < self._next and self.tz() is self._tz:
            return False
        try:
            return self._roll(t)
        except Exception as e:  # noqa: BLE001 - never stops the loop that calls it
            self._next = t + _RETRY_S
            self.log("[periods] roll failed: %r" % (e,))
            return False

    def _roll(self, t):
        if t < _CLOCK_SET:
            self._next = 0  # checked again at every call until the clock is set
            return False
        tz = self._tz = self.tz()
        day = (t + utc_offset_s(t, tz)) // _D
        rolled = False
        if self._day is None:  # the clock was set for the first time: today is this day
            self._day, self._mon = day, _month(day)
            self._dirty = True
        elif day > self._day:
            try:
                self.ledger.checkpoint()  # the totals the new starts are taken at, durable
            except Exception as e:  # noqa: BLE001 - not rolled; tried again later
                self._next = t + _RETRY_S
                self.log("[periods] midnight waits for an energy checkpoint: %r" % (e,))
                return False
            self._shift(day)
            rolled = True
        if self._dirty:
            self._save()
        # the next midnight after the day counted for; with DST, looked at from an hour
        # before (the offset may change on the way)
        nxt = (self._day + 1) * _D - utc_offset_s(t, tz) - (0 if tz["dst"] == "none" else 3600)
        self._next = t + _RETRY_S if self._dirty else max(nxt, t + 1)
        return rolled

    def _shift(self, day):
        days = day - self._day
        mon = _month(day)
        months = mon - self._mon
        metered = self.ledger.keys()
        gone = [k for k in self._ch if k not in metered]
        for key in gone:  # not metered: their starts cannot follow the days
            del self._ch[key]
        if gone:
            self.log("[periods] %s not metered: their periods start again when they are"
                     % ", ".join(gone))
        for key in self._ch:
            a = self._ch[key]
            now = self.ledger.totals(key)
            for j in (0, 1):
                a[_YDAY + j] = self._gained(key, now[j], a[_DAY_IMP + j]) if days == 1 else 0
                a[_DAY_IMP + j] = now[j]
                if months:
                    a[_LMON + j] = self._gained(key, now[j], a[_MON_IMP + j]) \
                        if months == 1 else 0
                    a[_MON_IMP + j] = now[j]
        self._day, self._mon = day, mon
        self._dirty = True
        self.log("[periods] new day %s%s" % (self.date(), " and month" if months else ""))

    def _gained(self, key, now, start):
        if now >= start:
            return now - start
        self.log("[periods] %s: ledger totals went back (%d < %d uWh): counted as 0"
                 % (key, now, start))
        return 0

    # ---- queries ----

    def date(self):
        if self._day is None:
            return None
        return "%04d-%02d-%02d" % civil(self._day)

    def flat(self, key):
        """energy(key) as one tuple of 8 ints, PERIODS in order, import then export of
        each: one allocation (what /status writes from)."""
        a = self._ch.get(key)
        if a is None:  # first seen now (the ledger raises for a channel it does not meter)
            a = self._add(key)
            self._save()
        imp, exp = self.ledger.totals(key)
        # each element read once: a read of array("q") makes a new int object (mpz)
        di, de, mi, me = a[_DAY_IMP], a[_DAY_IMP + 1], a[_MON_IMP], a[_MON_IMP + 1]
        if imp < di or exp < de or imp < mi or exp < me:
            self._rebase(key, a, (imp, exp))
            di, de, mi, me = a[_DAY_IMP], a[_DAY_IMP + 1], a[_MON_IMP], a[_MON_IMP + 1]
        return (imp - di, exp - de, a[_YDAY], a[_YDAY + 1], imp - mi, exp - me, a[_LMON],
                a[_LMON + 1])

    def energy(self, key):
        t0, t1, y0, y1, m0, m1, l0, l1 = self.flat(key)
        return {"today": (t0, t1), "yesterday": (y0, y1), "month": (m0, m1),
                "last_month": (l0, l1)}

    def _rebase(self, key, a, now):
        self.log("[periods] %s: ledger totals %d/%d uWh are below today's or this month's "
                 "start (a reset?): those periods count again from here" % (key, now[0], now[1]))
        for j in (0, 1):
            for s in (_DAY_IMP, _MON_IMP):
                if now[j] < a[s + j]:
                    a[s + j] = now[j]
        self._save()
