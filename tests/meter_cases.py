# Meter cases on MicroPython (driven by tests/test_meter.py): the real drivers on simulated
# chips with a stepped sim clock, the real ledger and store in $METER_TMP/<name>.
import asyncio
import os

from frontend import ChannelReading, FrontEndError
from plug.meter import Meter
from simplug import SimPlug

from dual import raises


class Log:
    def __init__(self):
        self.lines = []

    def __call__(self, msg):
        self.lines.append(msg)

    def count(self, text):
        return len([ln for ln in self.lines if text in ln])


def _rm_tree(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for n in names:
        os.remove(path + "/" + n)
    os.rmdir(path)


def fresh(name, **kw):
    root = os.getenv("METER_TMP") + "/" + name
    _rm_tree(root)
    log = Log()
    p = SimPlug(root, speed=0, log=log, **kw)
    p.ledger.restore()
    return p, log


def step(p, seconds):
    for _ in range(seconds):
        p.clock.advance(1)
        p.meter.read_once()


def test_energy_follows_the_true_load_within_one_read():
    p, log = fresh("truth")
    step(p, 600)
    for key in p.meter.keys():
        imp, exp = p.ledger.totals(key)
        t_imp, t_exp = p.true_uwh(key)
        got, true = (imp, t_imp) if t_imp else (exp, t_exp)
        # the first read after init drops the energy before it (one second of load) and
        # up to one energy LSB stays in the chip (ATM90E32: 3125 uWh)
        if not (true * (599.0 / 600) - 3200 <= got <= true + 1):
            raise AssertionError("%s metered %d, true %.0f" % (key, got, true))
    if p.ledger.totals("M2/C")[0] != 0 or p.ledger.totals("M2/C")[1] == 0:
        raise AssertionError("export channel must count export only")


def test_status_has_live_readings_per_channel():
    p, log = fresh("status")
    step(p, 3)
    v, a, w, pf, hz, t = p.meter.reading("M1/B")
    if not (229 < v < 231 and 1.99 < a < 2.01 and 360 < w < 376 and 0.79 < pf < 0.81
            and 49.9 < hz < 50.1 and t == p.clock.time()):
        raise AssertionError((v, a, w, pf, hz, t))
    st = p.meter.status()
    c = st["channels"]["M2/C"]
    if st["faulty"] != {} or not c["ok"] or c["w"] > -1300:
        raise AssertionError(st)
    e = raises(ValueError, p.meter.reading, "M3/A")
    if "M1/A, M1/B, M2/A" not in str(e):
        raise AssertionError(e)


def test_a_chip_that_stops_answering_is_faulty_others_keep_metering():
    p, log = fresh("fault")
    step(p, 5)
    m2_before = p.ledger.totals("M2/A")
    m1_before = p.ledger.totals("M1/A")
    p.chips["M2"].fail("ff")
    for _ in range(100):
        p.clock.advance(1)
        n = p.meter.read_once()
        if n == 2:
            raise AssertionError("faulty chip read")
    if p.ledger.totals("M2/A") != m2_before:
        raise AssertionError("a faulty chip added energy")
    if p.ledger.totals("M1/A")[0] - m1_before[0] < 95 * 1150 * 1000000 // 3600:
        raise AssertionError("M1 stopped metering while M2 was faulty")
    if log.count("[meter] M2: front end faulty") != 1:
        raise AssertionError("logged %r" % log.lines)
    if "M2" not in p.meter.status()["faulty"] or p.meter.status()["channels"]["M2/A"]["ok"]:
        raise AssertionError(p.meter.status())
    p.chips["M2"].fail(None)
    step(p, 70)  # backoff is capped at 60 s
    if log.count("[meter] M2: front end answering again") != 1:
        raise AssertionError(log.lines)
    if p.ledger.totals("M2/A")[0] <= m2_before[0] or p.meter.faulty():
        raise AssertionError("M2 did not resume")


def test_retries_back_off_exponentially():
    p, log = fresh("backoff", with_m2=False)

    class Counting:
        def __init__(self, fe):
            self.fe = fe
            self.tries = []
            self.device_code = fe.device_code
            self.channel_codes = fe.channel_codes
            self.max_current = fe.max_current

        def read(self):
            self.tries.append(int(clock.monotonic()))
            raise FrontEndError("ADE7953 M1: bus error")

    clock = p.clock
    c = Counting(p.front_ends[0])
    m = Meter([c], p.ledger, clock, log=log, max_backoff_s=16)
    for _ in range(80):
        clock.advance(1)
        m.read_once()
    gaps = [c.tries[i + 1] - c.tries[i] for i in range(len(c.tries) - 1)]
    if gaps[:5] != [1, 2, 4, 8, 16] or max(gaps) != 16:
        raise AssertionError(gaps)


def test_a_spiking_front_end_is_rejected_and_logged():
    p, log = fresh("spike", with_m2=False)

    class Spiky:
        device_code = "S1"
        channel_codes = ("A",)
        max_current = 10.0

        def __init__(self):
            self.r = [ChannelReading("A")]

        def read(self):
            self.r[0].import_uwh = 10 ** 9  # 1 kWh in one second
            return self.r

    m = Meter([Spiky()] + p.front_ends, p.ledger, p.clock, log=log)
    for _ in range(3):
        p.clock.advance(1)
        m.read_once()
    if p.ledger.totals("S1/A") != (0, 0) or log.count("[meter] S1/A: rejected spike") != 1:
        raise AssertionError((p.ledger.totals("S1/A"), log.lines))
    if p.ledger.totals("M1/A")[0] == 0:
        raise AssertionError("other channels must go on")


def test_run_loop_checkpoints_every_interval_and_on_stop():
    p, log = fresh("loop", with_m2=False, checkpoint_s=10)

    async def stopper():
        while p.clock.monotonic() < 95:
            await asyncio.sleep(0)
        p.meter.stop()

    async def main():
        asyncio.create_task(stopper())
        await p.meter.run()

    asyncio.run(main())
    # 95 s of reads: checkpoints at 10, 20, ... 90 and one on stop
    if p.meter.checkpoints != 10 or p.store.generation("ledger") != 10:
        raise AssertionError((p.meter.checkpoints, p.store.generation("ledger")))
    if not 94 <= p.meter.reads <= 97:
        raise AssertionError(p.meter.reads)
    saved = p.store.load("ledger")["ch"]["M1/A"][0]
    if saved != p.ledger.totals("M1/A")[0]:
        raise AssertionError("the stop checkpoint is not the last state")


def test_bad_arguments_are_refused():
    p, log = fresh("args", with_m2=False)
    e = raises(ValueError, Meter, p.front_ends, p.ledger, p.clock, checkpoint_s=0)
    if "checkpoint_s" not in str(e):
        raise AssertionError(e)
    e = raises(ValueError, Meter, p.front_ends + p.front_ends, p.ledger, p.clock)
    if "device code 'M1'" not in str(e):
        raise AssertionError(e)


class _TicksClock:
    """A board clock with only ticks_ms (like SystemClock on the ESP32), moved by hand."""

    def __init__(self):
        self.ms = 0

    def ticks_ms(self):
        return self.ms & 0x3FFFFFFF  # wraps like time.ticks_ms()

    def time(self):
        return 800000000 + self.ms // 1000


def test_elapsed_time_stays_exact_after_months_of_uptime():
    # a float total of seconds would hold only whole seconds after ~97 days on the
    # ESP32's single-precision floats; the meter counts integer milliseconds instead
    p, log = fresh("uptime")
    clk = _TicksClock()
    m = Meter(p.meter.front_ends, p.ledger, clk, log=log)
    m._mono()
    clk.ms = 200 * 86400 * 1000  # 200 days, across many ticks_ms wraps
    for _ in range(8):  # read often enough for ticks_diff to follow the wraps
        clk.ms += 1 << 28
        m._mono()
    t0 = m._mono()
    clk.ms += 250
    assert m._mono() - t0 == 250
    assert type(t0) is int


def _reboot_rig(name):
    # both chips on one SPI bus, kept powered across an ESP32 reset: each boot builds
    # new drivers, store, ledger and Meter over the same simulated chips
    from ade7953 import ADE7953, ADE7953SPI
    from atm90e32 import ATM90E32
    from plug.ledger import EnergyLedger
    from plug.store import Store
    from sim.ade7953_sim import ADE7953Sim
    from sim.atm90e32_sim import ATM90E32Sim
    from sim.bus import SimSPI
    from sim.clock import SimClock
    from sim.load import Load

    root = os.getenv("METER_TMP") + "/" + name
    _rm_tree(root)
    clock = SimClock(800000000, 0)
    chips = {"M1": ADE7953Sim(clock, [Load(16.0), Load(4.0)], gain_spread=0.0, noise_a=0.0),
             "M2": ATM90E32Sim(clock, [Load(16.0), Load(4.0), Load(1.0)], gain_spread=0.0,
                               noise_a=0.0)}
    spi = SimSPI()
    log = Log()

    def boot():
        fes = [ADE7953(ADE7953SPI(spi, spi.cs_for(chips["M1"])), "M1"),
               ATM90E32(spi, spi.cs_for(chips["M2"]), "M2")]
        led = EnergyLedger(Store(root), clock, {}, log=log)
        led.restore()
        return Meter(fes, led, clock, log=log), led

    return clock, chips, boot, log


def test_energy_a_chip_counted_through_a_soft_reboot_is_metered():
    clock, chips, boot, log = _reboot_rig("reboot")
    m, led = boot()
    for _ in range(30):
        clock.advance(1)
        m.read_once()
    m.shutdown()
    keys = ("M1/A", "M1/B", "M2/A", "M2/B")
    true0 = [chips[k[:2]].true_energy_uwh("AB".index(k[3]))[0] for k in keys]
    got0 = [led.totals(k)[0] for k in keys]
    clock.advance(8)  # machine.reset(): boot and imports, the chips keep metering
    m, led = boot()
    clock.advance(1)
    m.read_once()
    for n in range(len(keys)):
        k = keys[n]
        true = chips[k[:2]].true_energy_uwh("AB".index(k[3]))[0] - true0[n]
        got = led.totals(k)[0] - got0[n]
        # up to one energy LSB stays in the chip (ATM90E32: 3125 uWh), plus its creep
        if not abs(got - true) <= 3200 + true // 10000:
            raise AssertionError("%s: %d uWh metered over the reboot, %d true; %r"
                                 % (k, got, true, log.lines))
    if log.count("rejected"):
        raise AssertionError(log.lines)
    # only the first read after resuming may span more than the time since the last
    clock.advance(1)
    m.read_once()
    if [fe.resumed for fe in m.front_ends] != [False, False]:
        raise AssertionError("resumed stays set after the first read")


def test_a_resumed_read_is_still_bounded_by_what_the_chip_can_hold():
    p, log = fresh("resume_bound", with_m2=False)

    class Resumed:
        device_code = "R1"
        channel_codes = ("A",)
        max_current = 10.0
        max_read_gap_s = 30.0
        resumed = True

        def __init__(self):
            self.r = [ChannelReading("A")]

        def read(self):
            self.r[0].import_uwh = 10 ** 9  # 1 kWh: more than 10 A can give in 30 s
            return self.r

    m = Meter([Resumed()], p.ledger, p.clock, log=log)
    p.clock.advance(1)
    m.read_once()
    if p.ledger.totals("R1/A") != (0, 0) or log.count("[meter] R1/A: rejected spike") != 1:
        raise AssertionError((p.ledger.totals("R1/A"), log.lines))


def _calibrator(name):
    from plug.calibration import Calibrator

    p, log = fresh(name)
    step(p, 3)
    out = Log()
    return p, log, out, Calibrator(p.meter, p.store, log=log, out=out)


def test_cal_power_refuses_a_reference_the_channel_reads_the_other_way():
    from plug.calibration import CalibrationError

    p, log, out, cal = _calibrator("cal_sign")
    before = p.meter.front_end("M2").calibration()["C"]["p_gain"]
    # M2/C reads export (-1380 W) under a load the reference meter sees importing: a CT
    # wired backwards must not be calibrated as if it were right
    e = raises(CalibrationError, cal.power, "M2/C", 1380.0)
    if "M2/C" not in str(e) or '"invert"' not in str(e) or "board.json" not in str(e):
        raise AssertionError(e)
    e = raises(CalibrationError, cal.power, "M1/A", -1150.0)  # and the other way round
    if '"invert"' not in str(e):
        raise AssertionError(e)
    if p.meter.front_end("M2").calibration()["C"]["p_gain"] != before:
        raise AssertionError("a refused reference changed the gain")
    cal.power("M2/C", -1380.0)  # the same direction on both: calibrated
    if "p_gain" not in out.lines[-1]:
        raise AssertionError(out.lines)


def test_every_calibration_session_checkpoints_the_energy_first():
    p, log, out, cal = _calibrator("cal_enter")
    for session in range(2):
        gen = p.store.generation("ledger")
        p.clock.advance(1)
        cal.voltage("M1/A", 230.0)
        # the checkpoint on entering, then the reading that calibrates
        if p.store.generation("ledger") != gen + 1:
            raise AssertionError("session %d: no checkpoint on entering calibration" % session)
        p.clock.advance(1)
        cal.voltage("M1/A", 230.0)  # within a session: no more checkpoints
        if p.store.generation("ledger") != gen + 1:
            raise AssertionError("session %d: checkpointed on every command" % session)
        cal.save()
    if log.count("[cal] calibration started: energy checkpointed") != 2:
        raise AssertionError(log.lines)



def test_a_refused_calibration_command_starts_no_session():
    from plug.calibration import CalibrationError

    p, log, out, cal = _calibrator("cal_refused")
    gen = p.store.generation("ledger")
    raises(CalibrationError, cal.phase, "M1/A", pf=0.99)  # outside 0.2..0.95
    raises(CalibrationError, cal.phase, "M1/A", pf=0.5, load="resistive")
    raises(CalibrationError, cal.power, "M2/C", 1380.0)  # reads the other way
    if log.count("calibration started") or p.store.generation("ledger") != gen:
        raise AssertionError(("a refused command started a session", log.lines))
    cal.phase("M1/A", degrees=0.5)  # a change: the session starts, energy checkpointed
    if log.count("[cal] calibration started: energy checkpointed") != 1 or \
            p.store.generation("ledger") != gen + 1:
        raise AssertionError(log.lines)


def _creep(p, key):
    """uWh metered on `key` (import + export) in one sim hour, read every 10 s."""
    a = p.ledger.totals(key)
    for _ in range(360):
        p.clock.advance(10)
        p.meter.read_once()
    b = p.ledger.totals(key)
    return b[0] - a[0] + b[1] - a[1]


def test_cal_zero_stops_creep_is_restored_at_boot_and_undone():
    from plug.calibration import restore
    from sim.load import Load

    p, log, out, cal = _calibrator("cal_zero")
    p.chips["M2"].set_load(0, Load(0.0))
    step(p, 2)
    before = _creep(p, "M2/A")  # the ATM90E32's own power offset, nothing plugged in
    cal.zero("M2/A")
    if "p_offset" not in out.lines[-1]:
        raise AssertionError(out.lines)
    after = _creep(p, "M2/A")
    if not (before > 20000 and after < 3125):  # under one energy register LSB an hour
        raise AssertionError((before, after))
    cal.save()
    p2 = SimPlug(os.getenv("METER_TMP") + "/cal_zero", speed=0, log=log)  # a reboot
    p2.ledger.restore()
    restore(p2.store, p2.front_ends, log=log)
    p2.chips["M2"].set_load(0, Load(0.0))
    step(p2, 2)
    rebooted = _creep(p2, "M2/A")
    cal.undo()  # back to the chip defaults: creep again
    undone = _creep(p, "M2/A")
    if not (rebooted < 3125 and abs(undone - before) <= 3125):
        raise AssertionError((before, rebooted, undone, log.lines))
