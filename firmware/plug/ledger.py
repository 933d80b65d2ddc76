# The energy ledger: per-channel import and export totals that survive power cuts,
# and the energy in time buckets that billing prices.
#
# API (the billing engineer codes against this; keys are "device_code/channel_code")
#
#   led = EnergyLedger(store, clock, channels_cfg, nominal_v=230.0, margin=1.5,
#                      bucket_s=60, max_buckets=24, log=print)
#       channels_cfg is config["channels"]: {"M1/A": {"max_current_a": 16.0, ...}, ...}
#   led.restore()                  load the newest good checkpoint (call once, at boot)
#   led.add(key, import_uwh, export_uwh, t, dt=None) -> bool
#       energy measured by one read that ended at plug time t and covered dt seconds
#       (monotonic). False (and a "[meter] M1/A: rejected ..." log line) when the
#       delta is negative or implies more power than the channel can carry:
#       max_current_a x nominal_v x margin over dt. Nothing is added then.
#   led.totals(key) -> (import_uwh, export_uwh)    never decrease (except set_total)
#   led.unbilled(key) -> [(t_start, t_end, import_uwh, export_uwh), ...]
#       closed buckets, oldest first, not yet billed. A bucket holds the energy of
#       the reads that ended in (t_start, t_end]; buckets are contiguous and never
#       overlap. The bucket of the current minute is still open and not listed.
#   led.mark_billed(key, upto_t, checkpoint=True) -> (import_uwh, export_uwh)
#       drops the unbilled buckets with t_end <= upto_t and returns their energy (no
#       bucket opened later starts before upto_t, even when none was dropped);
#       upto_t must be a bucket end (LedgerError if it cuts a bucket); calling it
#       again with the same upto_t returns (0, 0). Checkpoints at once so the drop
#       is as durable as the invoice; checkpoint=False leaves that to the caller
#       (Billing.run marks every channel, then checkpoints once). Call unbilled()
#       and mark_billed() without an await in between: the meter task may merge
#       old buckets between awaits.
#   led.pending(key) -> (import_uwh, export_uwh)   unbilled energy incl. open bucket
#   led.billed(key) -> (import_uwh, export_uwh)    energy ever marked billed
#   led.set_total(key, import_uwh, export_uwh, reason) / led.reset(key, reason)
#       explicit, logged, checkpointed; buckets (what billing owes) are untouched.
#   led.checkpoint() -> generation;  led.keys();  led.add_channel(key, max_current_a)
#
# Memory stays bounded on a 64 KB heap: at most max_buckets unbilled buckets per
# channel; past that the adjacent closed pair with the shortest combined span is
# merged (older energy gets coarser time resolution, never dropped). The per-read
# path allocates nothing long-lived, so it does not fragment the heap: totals are
# kept as whole Wh plus a uWh remainder (small ints; a uWh total passes 2**30 after
# ~1 kWh) and the buckets live in one flat list per channel, which grows a bucket at a
# time up to max_buckets and never shrinks: a channel billed every minute holds two
# buckets' room, not max_buckets' (the list grows only when its channel reaches a
# count of open buckets it never had, at most max_buckets times).
#
# Durability and flash wear. The meter calls checkpoint() every
# config["meter"]["checkpoint_s"] (default 60 s), on a clean stop and on entering
# calibration; Billing.run once per pass that bills (at most once per closed bucket,
# bucket_s = 60 s). The store writes a new file and renames it over the older of two
# slots, so a power cut loses at most the energy since the last checkpoint.
# Budget at the defaults, all state files: ledger <= 120 writes/h (meter 60, billing
# 60), billing <= 60/h, tariff <= 8/h (descriptor and rates every refresh_s = 900 s),
# invoices and payments a few a day: about 190 writes/h, 4600 a day, each a file of
# 0.3-3 KB, i.e. about two 4 KB block programs/erases (file data, or inline data in
# the metadata pair, plus the directory commit). LittleFS levels wear dynamically
# over the whole filesystem (metadata pairs move after block_cycles erases), so on
# the ESP32's usual 2 MB vfs partition (512 blocks) that is ~9200 erases/day / 512 =
# ~18 erase cycles per block per day: 100k cycles last ~15 years. A 256 KB filesystem
# (64 blocks, ~145 cycles/block/day) lasts ~2 years. checkpoint_s=10 adds 300 ledger
# writes/h (~2.6x the total).
# Ledger time is kept monotone (max of all times seen), so a clock stepped back by
# NTP never reorders buckets or reopens one that billing has already seen.
import json

from micropython import const

_V = const(1)  # checkpoint format version
_STORE_NAME = "ledger"
_LOG_EVERY_S = const(60)  # at most one spike log line per channel per minute
_U = const(1000000)  # uWh per Wh

# per-channel record, a list to keep the heap small
_IMP_WH = const(0)  # import total = _IMP_WH * 10**6 + _IMP_U
_IMP_U = const(1)
_EXP_WH = const(2)
_EXP_U = const(3)
_LAST_T = const(4)  # plug time of the last accepted add
_BILLED_UPTO = const(5)
_BILLED_IMP = const(6)
_BILLED_EXP = const(7)
_B = const(8)  # flat buckets [t_start, t_end, imp, exp, ...] oldest first, grown as needed
_NB = const(9)  # buckets in use
_LIMIT_W = const(10)  # spike limit in watts (float)
_REJECTED = const(11)  # rejections since the last log line
_LOGGED_T = const(12)  # ledger time of the last rejection log line


class LedgerError(Exception):
    pass


def _check_key(key):
    if not isinstance(key, str) or key.count("/") != 1 or key[0] == "/" or key[-1] == "/":
        raise ValueError("channel key %r must look like 'M1/A' (device_code/channel_code)" % (key,))


def _is_uint(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


class EnergyLedger:
    def __init__(self, store, clock, channels_cfg, nominal_v=230.0, margin=1.5,
                 bucket_s=60, max_buckets=24, log=print):
        if not 4 <= max_buckets <= 1000:
            raise ValueError("max_buckets must be 4..1000, got %r" % (max_buckets,))
        if bucket_s < 1:
            raise ValueError("bucket_s must be at least 1 s, got %r" % (bucket_s,))
        self.store = store
        self.clock = clock
        self.nominal_v = float(nominal_v)
        self.margin = float(margin)
        self.bucket_s = int(bucket_s)
        self.max_buckets = int(max_buckets)
        self.log = log
        self._ch = {}
        self._dormant = {}  # channels in the checkpoint but not configured: kept, not metered
        self._now = 0
        for key in channels_cfg or {}:
            cfg = channels_cfg[key]
            self.add_channel(key, cfg.get("max_current_a", 16.0) if isinstance(cfg, dict) else 16.0)

    def _new_record(self):
        return [0, 0, 0, 0, 0, 0, 0, 0, [], 0, 0.0, 0, 0]

    # -- channels --------------------------------------------------------------
    def add_channel(self, key, max_current_a):
        """Meter `key`; its spike limit is max_current_a x nominal_v x margin."""
        _check_key(key)
        try:
            amps = float(max_current_a)
        except (TypeError, ValueError):
            raise ValueError("%s: max_current_a must be a number, got %r" % (key, max_current_a))
        if not 0 < amps <= 1000:
            raise ValueError("%s: max_current_a %r A is outside 0..1000 A" % (key, max_current_a))
        ch = self._ch.get(key)
        if ch is None:
            ch = self._dormant.pop(key, None) or self._new_record()
            self._ch[key] = ch
        ch[_LIMIT_W] = amps * self.nominal_v * self.margin

    def keys(self):
        return sorted(self._ch)

    def _get(self, key):
        ch = self._ch.get(key)
        if ch is None:
            raise ValueError("unknown channel %r; configured: %s" % (key, ", ".join(self.keys())))
        return ch

    # -- metering --------------------------------------------------------------
    def add(self, key, import_uwh, export_uwh, t, dt=None):
        ch = self._get(key)
        if not isinstance(import_uwh, int) or not isinstance(export_uwh, int):
            raise ValueError("%s: energy must be integer uWh, got %r, %r"
                             % (key, import_uwh, export_uwh))
        t = int(t)
        if t < 1:
            t = 1  # plug time 0 (a clock not set since boot): its bucket (0, 1] is valid
        if t < self._now:
            t = self._now  # clock stepped back: keep ledger time monotone
        self._now = t
        if dt is None:
            dt = t - ch[_LAST_T] if ch[_LAST_T] else 1
        if dt <= 0:
            dt = 0.001
        if import_uwh < 0 or export_uwh < 0:
            self._reject(ch, key, t, "negative delta %d/%d uWh" % (import_uwh, export_uwh))
            return False
        limit = ch[_LIMIT_W] * dt / 3600 * _U
        if import_uwh + export_uwh > limit:
            self._reject(ch, key, t, "spike %d uWh import + %d uWh export in %.1f s "
                         "(limit %d uWh = %.0f W)" % (import_uwh, export_uwh, dt, int(limit),
                                                      ch[_LIMIT_W]))
            return False
        ch[_LAST_T] = t
        if import_uwh or export_uwh:
            _credit(ch, _IMP_WH, import_uwh)
            _credit(ch, _EXP_WH, export_uwh)
            self._bucket(ch, t, dt, import_uwh, export_uwh)
        return True

    def _reject(self, ch, key, t, why):
        if ch[_LOGGED_T] and t - ch[_LOGGED_T] < _LOG_EVERY_S:
            ch[_REJECTED] += 1  # counted, told in the next line
            return
        more = ch[_REJECTED]
        self.log("[meter] %s: rejected %s%s" % (
            key, why, (" (+%d more rejected)" % more) if more else ""))
        ch[_REJECTED] = 0
        ch[_LOGGED_T] = t

    def _bucket(self, ch, t, dt, imp, exp):
        b = ch[_B]
        nb = ch[_NB]
        if nb:
            j = 4 * nb - 4
            if b[j + 1] // self.bucket_s == t // self.bucket_s:
                b[j + 1] = t
                b[j + 2] += imp
                b[j + 3] += exp
                return
            t0 = b[j + 1]
        else:
            t0 = t - int(dt + 0.999)
            if t0 < ch[_BILLED_UPTO]:
                t0 = ch[_BILLED_UPTO]
        if t0 >= t:
            t0 = t - 1
        if nb == self.max_buckets:
            _merge(b, nb)
            nb -= 1
        j = 4 * nb
        if len(b) == j:
            b.extend((0, 0, 0, 0))
        b[j] = t0
        b[j + 1] = t
        b[j + 2] = imp
        b[j + 3] = exp
        ch[_NB] = nb + 1

    # -- queries ---------------------------------------------------------------
    def totals(self, key):
        """(import_uwh, export_uwh) since the ledger began (or the last set_total)."""
        ch = self._get(key)
        return ch[_IMP_WH] * _U + ch[_IMP_U], ch[_EXP_WH] * _U + ch[_EXP_U]

    def _time(self):
        t = int(self.clock.time())
        if t > self._now:
            self._now = t
        return self._now

    def unbilled(self, key):
        ch = self._get(key)
        open_slot = self._time() // self.bucket_s
        b = ch[_B]
        out = []
        for j in range(0, 4 * ch[_NB], 4):
            if b[j + 1] // self.bucket_s < open_slot:
                out.append((b[j], b[j + 1], b[j + 2], b[j + 3]))
        return out

    def pending(self, key):
        ch = self._get(key)
        b = ch[_B]
        imp = exp = 0
        for j in range(0, 4 * ch[_NB], 4):
            imp += b[j + 2]
            exp += b[j + 3]
        return imp, exp

    def billed(self, key):
        ch = self._get(key)
        return ch[_BILLED_IMP], ch[_BILLED_EXP]

    def mark_billed(self, key, upto_t, checkpoint=True):
        ch = self._get(key)
        if not _is_uint(upto_t):
            raise ValueError("%s: upto_t must be a plug time (int >= 0), got %r" % (key, upto_t))
        open_slot = self._time() // self.bucket_s
        b = ch[_B]
        nb = ch[_NB]
        n = 0
        imp = exp = 0
        while n < nb and b[4 * n + 1] <= upto_t:
            if b[4 * n + 1] // self.bucket_s >= open_slot:
                raise LedgerError("%s: the bucket ending %d is still open; bill closed buckets "
                                  "from unbilled() only" % (key, b[4 * n + 1]))
            imp += b[4 * n + 2]
            exp += b[4 * n + 3]
            n += 1
        if n < nb and b[4 * n] < upto_t:
            raise LedgerError("%s: upto_t %d cuts the bucket %d..%d; use a t_end from unbilled()"
                              % (key, upto_t, b[4 * n], b[4 * n + 1]))
        if upto_t > ch[_BILLED_UPTO]:  # no bucket opened from now on starts before it
            ch[_BILLED_UPTO] = upto_t
        if n == 0:
            return 0, 0
        for j in range(4 * n, 4 * nb):
            b[j - 4 * n] = b[j]
        ch[_NB] = nb - n
        ch[_BILLED_IMP] += imp
        ch[_BILLED_EXP] += exp
        if checkpoint:
            self.checkpoint()
        return imp, exp

    # -- explicit corrections --------------------------------------------------
    def set_total(self, key, import_uwh, export_uwh=None, reason=""):
        """Replace a channel's totals (meter swap, migration); logged and checkpointed."""
        old_imp, old_exp = self.totals(key)
        ch = self._get(key)
        if export_uwh is None:
            export_uwh = old_exp
        if not _is_uint(import_uwh) or not _is_uint(export_uwh):
            raise ValueError("%s: totals must be integer uWh >= 0, got %r, %r"
                             % (key, import_uwh, export_uwh))
        self.log("[meter] %s: totals set by hand from %d/%d to %d/%d uWh import/export%s" % (
            key, old_imp, old_exp, import_uwh, export_uwh, (" (%s)" % reason) if reason else ""))
        _set(ch, _IMP_WH, import_uwh)
        _set(ch, _EXP_WH, export_uwh)
        self.checkpoint()

    def reset(self, key, reason=""):
        self.set_total(key, 0, 0, reason or "reset")

    # -- durability ------------------------------------------------------------
    def checkpoint(self):
        """Write every channel durably (new file, then rename); returns the generation."""
        return self.store.save(_STORE_NAME, self)

    def dump(self, out):
        """The checkpoint's JSON, written to `out` a number at a time (the store calls it
        twice: for the checksum, then into the file): {"v": 1, "now": t, "ch": {key:
        [import, export, last_t, billed_upto, billed_import, billed_export, buckets]}},
        buckets flat and delta-coded (_unpack). Nothing is built for it: a checkpoint
        must not fail for want of a block on a fragmented heap."""
        w = out.write
        w(b'{"v": %d, "now": %d, "ch": {' % (_V, self._now))
        sep = b""
        for src in (self._dormant, self._ch):
            for key in src:
                c = src[key]
                w(sep)
                w(json.dumps(key).encode())
                w(b": [%d, %d, %d, %d, %d, %d, [" % (
                    c[_IMP_WH] * _U + c[_IMP_U], c[_EXP_WH] * _U + c[_EXP_U], c[_LAST_T],
                    c[_BILLED_UPTO], c[_BILLED_IMP], c[_BILLED_EXP]))
                b = c[_B]
                if c[_NB]:
                    w(b"%d" % b[0])
                for j in range(0, 4 * c[_NB], 4):
                    w(b", %d, %d, %d" % (b[j + 1] - b[j], b[j + 2], b[j + 3]))
                w(b"]]")
                sep = b", "
        w(b"}}")

    def restore(self):
        """Load the newest good checkpoint; returns its generation (0: none, fresh start)."""
        data = self.store.load(_STORE_NAME)
        if data is None:
            self.log("[meter] no energy checkpoint found: totals start at zero")
            return 0
        if not isinstance(data, dict) or data.get("v") != _V \
                or not isinstance(data.get("ch"), dict):
            raise LedgerError("energy checkpoint has an unknown format (version %r); it was kept "
                              "untouched: update the firmware or move the 'ledger' files away"
                              % (data.get("v") if isinstance(data, dict) else None,))
        for key in data["ch"]:  # validate everything before changing anything
            rec = data["ch"][key]
            if not (isinstance(rec, list) and len(rec) == 7 and all(_is_uint(x) for x in rec[:6])
                    and _flat_ok(rec[6])):
                raise LedgerError("energy checkpoint entry %r is malformed; it was kept untouched"
                                  % (key,))
        for key in data["ch"]:
            rec = data["ch"][key]
            ch = self._ch.get(key)
            if ch is None:
                ch = self._dormant[key] = self._new_record()
            _set(ch, _IMP_WH, rec[0])
            _set(ch, _EXP_WH, rec[1])
            ch[_LAST_T], ch[_BILLED_UPTO], ch[_BILLED_IMP], ch[_BILLED_EXP] = rec[2:6]
            _unpack(rec[6], ch, self.max_buckets)
        now = data.get("now", 0)
        if _is_uint(now) and now > self._now:
            self._now = now
        if self._dormant:
            self.log("[meter] checkpoint holds unconfigured channels %s: kept, not metered"
                     % ", ".join(sorted(self._dormant)))
        return self.store.generation(_STORE_NAME)


def _credit(ch, i, uwh):
    # add uwh to the total held as (whole Wh at i, uWh remainder at i + 1)
    if uwh:
        u = ch[i + 1] + uwh
        if u >= _U:
            q = u // _U
            ch[i] += q
            u -= q * _U
        ch[i + 1] = u


def _set(ch, i, uwh):
    ch[i] = uwh // _U
    ch[i + 1] = uwh % _U


def _merge(b, nb):
    # merge the adjacent pair with the shortest combined span (ties: the oldest);
    # called before a new bucket opens, so every bucket here is closed
    best = 0
    best_span = None
    for i in range(nb - 1):
        span = b[4 * i + 5] - b[4 * i]
        if best_span is None or span < best_span:
            best, best_span = i, span
    j = 4 * best
    b[j + 1] = b[j + 5]
    b[j + 2] += b[j + 6]
    b[j + 3] += b[j + 7]
    for k in range(j + 8, 4 * nb):
        b[k - 4] = b[k]


# Buckets are contiguous, so a checkpoint stores them flat and delta-coded (dump()):
# [t_start0, span0, imp0, exp0, span1, imp1, exp1, ...], about half the bytes.
def _flat_ok(flat):
    if not isinstance(flat, list) or (flat and len(flat) % 3 != 1):
        return False
    for x in flat:
        if not _is_uint(x):
            return False
    return True


def _unpack(flat, ch, max_buckets):
    b = ch[_B]
    nb = 0
    if flat:
        t = flat[0]
        for i in range(1, len(flat), 3):
            if nb == max_buckets:  # a checkpoint from a build with more buckets
                _merge(b, nb)
                nb -= 1
            j = 4 * nb
            if len(b) == j:
                b.extend((0, 0, 0, 0))
            b[j] = t
            t += flat[i]
            b[j + 1] = t
            b[j + 2] = flat[i + 1]
            b[j + 3] = flat[i + 2]
            nb += 1
    ch[_NB] = nb
