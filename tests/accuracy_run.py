# Accuracy run on MicroPython (driven by tests/test_accuracy.py and tools/bench/bench_meter.py):
#   micropython tests/accuracy_run.py ade7953|ade7953_i2c|atm90e32|waveform
# Builds a front end on its simulated chip, calibrates every channel from ONE resistive
# reference load the way a person would with a reference meter (gains = reference / reading),
# then sweeps current (5..120 % of rated), PF (0.5 lagging, 1, 0.8 leading), harmonics and
# export, comparing the metered energy with the TRUE energy the simulator delivered.
# The last line printed is a Python literal: a list of
#   (channel, percent_of_rated, pf_label, harmonics, direction, error_percent)
import sys

from frontend import reference_gains
from sim.clock import SimClock
from sim.load import Load, Mains

RATED = 16.0
MAINS = Mains(230.0, 50.0, ((3, 0.03, 0.0), (5, 0.02, 0.0)))
HARM = ((3, 0.25, 0.0), (5, 0.12, 0.0))  # a switched-mode supply's current harmonics
REF = Load(10.0)  # the reference: a 10 A heater


def build(kind, clock):
    from sim.bus import SimI2C, SimSPI
    if kind in ("ade7953", "ade7953_i2c"):
        from ade7953 import ADE7953, ADE7953I2C, ADE7953SPI
        from sim.ade7953_sim import ADE7953Sim
        sim = ADE7953Sim(clock, [REF, REF], MAINS)
        if kind == "ade7953":
            spi = SimSPI()
            t = ADE7953SPI(spi, spi.cs_for(sim))
        else:
            i2c = SimI2C()
            i2c.attach(0x38, sim)
            t = ADE7953I2C(i2c)
        fe = ADE7953(t, "M1", max_current=RATED)
        return fe, _chip_api(sim, 2)
    if kind == "atm90e32":
        from atm90e32 import ATM90E32
        from sim.atm90e32_sim import ATM90E32Sim
        sim = ATM90E32Sim(clock, [REF, REF, REF], MAINS)
        spi = SimSPI()
        fe = ATM90E32(spi, spi.cs_for(sim), "M2", max_current=RATED)
        return fe, _chip_api(sim, 3)
    if kind == "waveform":
        from sim.waveform_src import WaveformSource
        from waveform import WaveformFrontEnd
        src = WaveformSource(clock, REF, MAINS)
        fe = WaveformFrontEnd(src, clock, "W1", "A", RATED, v_per_count=1 / 4.3,
                              i_per_count=1 / 50.0)
        return fe, ([lambda k, ld: src.set_load(ld)], [lambda k: src.true_energy_uwh()])
    raise SystemExit("unknown front end " + kind)


def _chip_api(sim, n):
    return [sim.set_load] * n, [sim.true_energy_uwh] * n


def run_for(fe, clock, seconds, step):
    """Read every `step` s for `seconds`; returns per-channel (import, export) uWh."""
    n = len(fe.channel_codes)
    imp = [0] * n
    exp = [0] * n
    t = 0
    while t < seconds:
        clock.advance(step)
        t += step
        for k, r in enumerate(fe.read()):
            imp[k] += r.import_uwh
            exp[k] += r.export_uwh
    return imp, exp


def main(kind):
    clock = SimClock(0, speed=0)
    fe, (setters, trues) = build(kind, clock)
    n = len(fe.channel_codes)
    step = 5 if kind == "waveform" else 10
    # -- calibration from one resistive reference (reference meter = the load model's truth)
    fe.read()
    clock.advance(step)
    fe.read()
    t0 = [trues[k](k)[0] for k in range(n)]
    readings_v = [0.0] * n
    readings_i = [0.0] * n
    imp, exp = run_for(fe, clock, 60, step)
    for k, r in enumerate(fe.readings):
        readings_v[k] = r.voltage
        readings_i[k] = r.current
    cal = fe.calibration()
    new = {}
    for k, code in enumerate(fe.channel_codes):
        p_read = imp[k] * 0.0036 / 60  # W from the energy registers
        p_ref = (trues[k](k)[0] - t0[k]) * 0.0036 / 60
        new[code] = reference_gains(cal[code], readings_v[k], readings_i[k], p_read,
                                    MAINS.vrms(), REF.irms(), p_ref)
    fe.load_calibration(new)
    # -- the sweep
    rows = []
    seconds = 600 if kind != "waveform" else 30
    points = []
    for frac in (0.05, 0.1, 0.5, 1.0, 1.2):
        for pf, load_kind, label in ((0.5, "inductive", "0.5L"), (1.0, "resistive", "1.0"),
                                     (0.8, "capacitive", "0.8C")):
            for harm in (False, True):
                points.append((frac, pf, load_kind, label, harm, False))
    points.append((0.5, 1.0, "resistive", "1.0", False, True))
    points.append((1.0, 1.0, "resistive", "1.0", True, True))
    for frac, pf, load_kind, label, harm, export in points:
        load = Load(RATED * frac, pf, load_kind, HARM if harm else (), export)
        for k in range(n):
            setters[k](k, load)
        clock.advance(step)
        fe.read()  # settle: the registers now hold the new load
        before = [trues[k](k) for k in range(n)]
        imp, exp = run_for(fe, clock, seconds, step)
        for k, code in enumerate(fe.channel_codes):
            after = trues[k](k)
            d = 1 if export else 0
            true = after[d] - before[k][d]
            got = (exp if export else imp)[k]
            err = (got - true) / true * 100.0
            rows.append((code, int(frac * 100), label, harm, "export" if export else "import",
                         round(err, 4)))
    print(repr(rows))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "ade7953")
