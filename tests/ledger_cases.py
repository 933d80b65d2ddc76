# Energy ledger cases that run on the MicroPython unix port (64 KB heap), driven by
# tests/test_ledger.py. Each test_* builds its own store in $LEDGER_TMP/<name>.
import gc
import os

from plug.ledger import EnergyLedger, LedgerError
from plug.store import Store

from dual import raises

CFG = {"M1/A": {"name": "kettle", "max_current_a": 16.0, "account": 0},
       "M1/B": {"name": "fridge", "max_current_a": 10.0, "account": 0}}


class FakeClock:
    def __init__(self, t=800000000):
        self.t = t

    def time(self):
        return self.t


class Log:
    def __init__(self):
        self.lines = []

    def __call__(self, msg):
        self.lines.append(msg)

    def has(self, text):
        for ln in self.lines:
            if text in ln:
                return True
        return False


def _rm_tree(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for n in names:
        os.remove(path + "/" + n)
    os.rmdir(path)


def fresh(name, cfg=CFG, **kw):
    root = os.getenv("LEDGER_TMP") + "/" + name
    _rm_tree(root)
    store = Store(root)
    clock = FakeClock()
    log = Log()
    led = EnergyLedger(store, clock, cfg, log=log, **kw)
    led.restore()
    return led, store, clock, log, root


def again(root, clock, cfg=CFG, **kw):
    log = Log()
    led = EnergyLedger(Store(root), clock, cfg, log=log, **kw)
    led.restore()
    return led, log


def uwh(watts, seconds):
    return watts * seconds * 1000000 // 3600


def feed(led, clock, key, watts, seconds, export=False):
    """One read per second at `watts`; returns the energy fed."""
    total = 0
    for _ in range(seconds):
        clock.t += 1
        e = uwh(watts, 1)
        ok = led.add(key, 0 if export else e, e if export else 0, clock.t, 1.0)
        if not ok:
            raise AssertionError("normal read rejected")
        total += e
    return total


def test_totals_accumulate_per_channel_import_and_export():
    led, store, clock, log, root = fresh("acc")
    a = feed(led, clock, "M1/A", 2000, 90)
    b = feed(led, clock, "M1/B", 500, 30, export=True)
    if led.totals("M1/A") != (a, 0) or led.totals("M1/B") != (0, b):
        raise AssertionError((led.totals("M1/A"), led.totals("M1/B"), a, b))
    if led.keys() != ["M1/A", "M1/B"]:
        raise AssertionError(led.keys())


def test_spike_is_rejected_logged_and_not_added():
    led, store, clock, log, root = fresh("spike")
    feed(led, clock, "M1/A", 1000, 5)
    before = led.totals("M1/A")
    clock.t += 1
    # 16 A x 230 V x 1.5 = 5520 W; 10 kW for one second cannot be real
    if led.add("M1/A", uwh(10000, 1), 0, clock.t, 1.0):
        raise AssertionError("spike accepted")
    if led.totals("M1/A") != before:
        raise AssertionError("spike changed totals")
    if not log.has("[meter] M1/A: rejected spike"):
        raise AssertionError(log.lines)
    # the same energy over 2 s at 5 kW is plausible and accepted
    clock.t += 2
    if not led.add("M1/A", uwh(5000, 2), 0, clock.t, 2.0):
        raise AssertionError("plausible read rejected")
    # export spikes too; the smaller channel has the smaller limit (10 A)
    clock.t += 1
    if led.add("M1/B", 0, uwh(4000, 1), clock.t, 1.0):
        raise AssertionError("export spike on the 10 A channel accepted")


def test_spike_log_is_rate_limited_with_a_count():
    led, store, clock, log, root = fresh("spikelog")
    for _ in range(30):
        clock.t += 1
        led.add("M1/A", 10 ** 12, 0, clock.t, 1.0)
    if len(log.lines) != 2:  # one line for the restore message, one for the spikes
        raise AssertionError(log.lines)
    clock.t += 60
    led.add("M1/A", 10 ** 12, 0, clock.t, 1.0)
    if not log.has("(+29 more rejected)") or len(log.lines) != 3:
        raise AssertionError(log.lines)


def test_totals_never_go_backwards():
    led, store, clock, log, root = fresh("back")
    feed(led, clock, "M1/A", 1000, 3)
    before = led.totals("M1/A")
    clock.t += 1
    if led.add("M1/A", -5, 0, clock.t, 1.0) or led.add("M1/A", 0, -1, clock.t, 1.0):
        raise AssertionError("negative delta accepted")
    if led.totals("M1/A") != before:
        raise AssertionError("totals went backwards")
    if not log.has("rejected negative delta"):
        raise AssertionError(log.lines)
    e = raises(ValueError, led.add, "M1/A", 1.5, 0, clock.t, 1.0)
    if "integer uWh" not in str(e):
        raise AssertionError(e)


def test_unknown_channel_lists_the_configured_ones():
    led, store, clock, log, root = fresh("unknown")
    e = raises(ValueError, led.add, "M9/Z", 1, 0, clock.t)
    if "M9/Z" not in str(e) or "M1/A, M1/B" not in str(e):
        raise AssertionError(e)
    raises(ValueError, led.add_channel, "M1A", 16)
    raises(ValueError, led.add_channel, "M2/A", 0)
    raises(ValueError, led.add_channel, "M2/A", "lots")


def test_checkpoint_and_restore_roundtrip():
    led, store, clock, log, root = fresh("roundtrip")
    a = feed(led, clock, "M1/A", 1500, 200)
    b = feed(led, clock, "M1/B", 300, 100, export=True)
    gen = led.checkpoint()
    bills = led.unbilled("M1/A")
    led2, log2 = again(root, clock)
    if led2.totals("M1/A") != (a, 0) or led2.totals("M1/B") != (0, b):
        raise AssertionError("restore lost energy")
    if led2.unbilled("M1/A") != bills or led2.pending("M1/B") != (0, b):
        raise AssertionError("restore changed buckets")
    if store.generation("ledger") != gen:
        raise AssertionError("generation")


def test_read_at_plug_time_zero_restores():
    # an ESP32 boots with its clock at 2000-01-01 00:00:00 (plug time 0) until NTP: a read
    # then must not leave a bucket that begins before the epoch, which restore would refuse
    led, store, clock, log, root = fresh("epoch0")
    clock.t = 0
    if not led.add("M1/A", 5000, 0, 0, dt=1):
        raise AssertionError("read at plug time 0 refused")
    led.checkpoint()
    led2, log2 = again(root, clock)
    if led2.totals("M1/A") != (5000, 0) or led2.pending("M1/A") != (5000, 0):
        raise AssertionError("restore after a read at time 0: %r" % (led2.totals("M1/A"),))


def test_restore_from_torn_checkpoint_uses_previous_good():
    led, store, clock, log, root = fresh("torn")
    first = feed(led, clock, "M1/A", 1000, 60)
    g1 = led.checkpoint()
    feed(led, clock, "M1/A", 1000, 60)
    g2 = led.checkpoint()
    newest = "%s/ledger.%d" % (root, g2 & 1)
    with open(newest, "rb") as f:
        data = f.read()
    with open(newest, "wb") as f:  # power cut mid-write: the tail never reached flash
        f.write(data[: len(data) // 2])
    led2, log2 = again(root, clock)
    if led2.totals("M1/A") != (first, 0):
        raise AssertionError((led2.totals("M1/A"), first))
    if store.generation("ledger") != g2 or Store(root).generation("ledger") != g1:
        raise AssertionError("generation bookkeeping")
    # metering goes on and the next checkpoint replaces the torn slot, not the good one
    more = feed(led2, clock, "M1/A", 1000, 10)
    led2.checkpoint()
    led3, log3 = again(root, clock)
    if led3.totals("M1/A") != (first + more, 0):
        raise AssertionError("after torn restore")


def test_no_good_checkpoint_starts_from_zero_and_says_so():
    led, store, clock, log, root = fresh("nothing")
    if not log.has("no energy checkpoint found"):
        raise AssertionError(log.lines)
    feed(led, clock, "M1/A", 100, 5)
    led.checkpoint()
    led.checkpoint()
    for slot in (0, 1):
        with open("%s/ledger.%d" % (root, slot), "wb") as f:
            f.write(b"garbage")
    led2, log2 = again(root, clock)
    if led2.totals("M1/A") != (0, 0) or not log2.has("no energy checkpoint found"):
        raise AssertionError("corrupt slots")


def test_unknown_format_is_refused_and_left_untouched():
    led, store, clock, log, root = fresh("format")
    store.save("ledger", {"v": 99, "ch": {}})
    led2 = EnergyLedger(Store(root), clock, CFG, log=Log())
    e = raises(LedgerError, led2.restore)
    if "unknown format" not in str(e):
        raise AssertionError(e)
    if Store(root).load("ledger") != {"v": 99, "ch": {}}:
        raise AssertionError("touched")


def test_set_total_and_reset_are_explicit_logged_and_durable():
    led, store, clock, log, root = fresh("settotal")
    feed(led, clock, "M1/A", 1000, 10)
    pend = led.pending("M1/A")
    led.set_total("M1/A", 123456789012, 7, reason="meter swap")
    if not log.has("[meter] M1/A: totals set by hand from") or not log.has("meter swap"):
        raise AssertionError(log.lines)
    led2, _ = again(root, clock)
    if led2.totals("M1/A") != (123456789012, 7):
        raise AssertionError("not durable")
    if led2.pending("M1/A") != pend:
        raise AssertionError("set_total must not touch what billing owes")
    led2.reset("M1/A")
    if led2.totals("M1/A") != (0, 0):
        raise AssertionError("reset")
    raises(ValueError, led2.set_total, "M1/A", -1, 0)
    raises(ValueError, led2.set_total, "M1/A", 1.5, 0)


def test_buckets_per_minute_open_bucket_hidden_and_billing_cursor():
    led, store, clock, log, root = fresh("billing")
    clock.t = 800000000 - 800000000 % 60  # start on a minute boundary
    feed(led, clock, "M1/A", 1200, 150)  # 2.5 minutes
    got = led.unbilled("M1/A")
    if len(got) != 2 or got[0][1] != got[1][0]:
        raise AssertionError(got)
    if led.pending("M1/A") != led.totals("M1/A"):
        raise AssertionError("pending must include the open bucket")
    # cutting a bucket is refused, billing the first one works and is idempotent
    e = raises(LedgerError, led.mark_billed, "M1/A", got[1][0] + 5)
    if "cuts the bucket" not in str(e):
        raise AssertionError(e)
    if led.mark_billed("M1/A", got[0][1]) != (got[0][2], 0):
        raise AssertionError("mark_billed energy")
    if led.mark_billed("M1/A", got[0][1]) != (0, 0):
        raise AssertionError("not idempotent")
    if led.unbilled("M1/A") != [got[1]]:
        raise AssertionError(led.unbilled("M1/A"))
    raises(LedgerError, led.mark_billed, "M1/A", clock.t)  # the open bucket
    # billed + pending == everything measured, and it survives a restart
    led2, _ = again(root, clock)
    if led2.billed("M1/A")[0] + led2.pending("M1/A")[0] != led.totals("M1/A")[0]:
        raise AssertionError("billed + pending")
    if led2.unbilled("M1/A") != [got[1]]:
        raise AssertionError("billing cursor not durable")
    raises(ValueError, led.mark_billed, "M1/A", -3)


def test_buckets_stay_bounded_without_dropping_energy():
    led, store, clock, log, root = fresh("bounded", max_buckets=12)
    total = 0
    for _ in range(400):  # 400 minutes of billing down
        clock.t += 60
        e = uwh(3000, 60)
        led.add("M1/A", e, 0, clock.t, 60.0)
        total += e
    bs = led.unbilled("M1/A")
    if len(bs) > 12:
        raise AssertionError(len(bs))
    if led.pending("M1/A") != (total, 0):
        raise AssertionError("energy dropped")
    for i in range(1, len(bs)):
        if bs[i][0] != bs[i - 1][1]:
            raise AssertionError("buckets not contiguous")
    if bs[0][0] != 800000000 or led.unbilled("M1/A")[-1][1] != clock.t - 60:
        raise AssertionError("coverage %r" % ((bs[0], bs[-1]),))


def test_clock_stepped_back_keeps_buckets_ordered_and_closed_ones_closed():
    led, store, clock, log, root = fresh("stepback")
    clock.t = 800000000 - 800000000 % 60
    feed(led, clock, "M1/A", 1000, 70)
    closed = led.unbilled("M1/A")
    clock.t -= 3600  # NTP steps the clock back an hour
    feed(led, clock, "M1/A", 1000, 5)
    if led.unbilled("M1/A")[: len(closed)] != closed:
        raise AssertionError("a closed bucket changed")
    clock.t += 7200
    bs = led.unbilled("M1/A")
    for i in range(1, len(bs)):
        if bs[i][0] < bs[i - 1][1] or bs[i][1] < bs[i][0]:
            raise AssertionError(bs)


def test_unconfigured_channel_in_checkpoint_is_kept_not_dropped():
    led, store, clock, log, root = fresh("dormant")
    b = feed(led, clock, "M1/B", 400, 20)
    led.checkpoint()
    only_a = {"M1/A": CFG["M1/A"]}
    led2, log2 = again(root, clock, cfg=only_a)
    if not log2.has("unconfigured channels M1/B"):
        raise AssertionError(log2.lines)
    feed(led2, clock, "M1/A", 100, 2)
    led2.checkpoint()
    led3, _ = again(root, clock)
    if led3.totals("M1/B") != (b, 0):
        raise AssertionError("dormant channel lost")


def _allocated_by(fn):
    """Bytes fn allocates with the collector off: an upper bound of its peak heap."""
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        fn()
        return gc.mem_alloc() - before
    finally:
        gc.enable()


def test_heap_cost_with_six_full_channels_fits_the_plug():
    cfg = {}
    for d in ("M1", "M2"):
        for c in ("A", "B", "C"):
            cfg[d + "/" + c] = {"max_current_a": 16.0}
    led, store, clock, log, root = fresh("heap", cfg=cfg)
    for key in cfg:
        led.set_total(key, 10 ** 13, 10 ** 12)  # years of energy: bigints on the plug
    for _ in range(40):  # billing down for 40 minutes: every channel has full buckets
        clock.t += 60
        for key in cfg:
            if not led.add(key, uwh(3000, 60), 10 ** 6, clock.t, 60.0):
                raise AssertionError("rejected")

    def one_second():
        clock.t += 1
        for key in cfg:
            led.add(key, 1500, 0, clock.t, 1.0)

    per_read = _allocated_by(one_second)
    if per_read > 1024:
        raise AssertionError("one read of 6 channels allocates %d bytes" % per_read)
    # the checkpoint streams its JSON: 2 KB left free is enough for it
    gc.collect()
    first = bytearray(2000)
    ballast = None  # a chain [block, rest]: no list as large as the heap's blocks
    for size in (1000, 48):  # the heap filled, its small holes too; then 2 KB freed
        try:
            while True:
                ballast = [bytearray(size), ballast]
        except MemoryError:
            pass
    del first  # the 2 KB the checkpoint may use
    err = None
    try:
        led.checkpoint()
    except MemoryError as e:
        err = e
    ballast = None
    gc.collect()
    if err is not None:
        raise AssertionError("a checkpoint needs more than 2 KB of heap at once: %s (%s)"
                             % (err, root))
    led2, _ = again(root, clock, cfg=cfg)
    if led2.totals("M2/C") != led.totals("M2/C") or led2.unbilled("M1/A") != led.unbilled("M1/A"):
        raise AssertionError("roundtrip")
