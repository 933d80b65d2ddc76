# Accuracy run on MicroPython (driven by tests/test_accuracy.py and tools/bench/bench_meter.py):
#   micropython tests/accuracy_run.py ade7953|ade7953_i2c|atm90e32|waveform [phase]
# Builds a front end on its simulated chip, calibrates every channel from ONE resistive
# reference load the way a person would with a reference meter (gains = reference / reading),
# then sweeps current (5..120 % of rated), PF (0.5 lagging, 1, 0.8 leading), harmonics and
# export, comparing the metered energy with the TRUE energy the simulator delivered.
# The last line printed is a Python literal: a list of
#   (channel, percent_of_rated, pf_label, harmonics, direction, error_percent)
# With "phase", every channel's CT lags (or leads) by about a degree, as real CTs do: the sweep
# runs before and after cal.phase() against a PF 0.5 inductive reference load, and the last
# line is (rows_before, rows_after).
import sys

from frontend import reference_gains
from sim.clock import SimClock
from sim.load import Load, Mains

RATED = 16.0
MAINS = Mains(230.0, 50.0, ((3, 0.03, 0.0), (5, 0.02, 0.0)))
HARM = ((3, 0.25, 0.0), (5, 0.12, 0.0))  # a switched-mode supply's current harmonics
REF = Load(10.0)  # the reference: a 10 A heater
PHASE_REF = Load(8.0, 0.5, "inductive")  # the reference for cal.phase(): a PF 0.5 motor
CT_PHASE_ERR = (1.0, -0.9, 1.2)  # degrees of CT lag per channel (negative: leads)


def build(kind, clock, phase=False):
    err = list(CT_PHASE_ERR) if phase else None
    from sim.bus import SimI2C, SimSPI
    if kind in ("ade7953", "ade7953_i2c"):
        from ade7953 import ADE7953, ADE7953I2C, ADE7953SPI
        from sim.ade7953_sim import ADE7953Sim
        sim = ADE7953Sim(clock, [REF, REF], MAINS, phase_err_deg=err and err[:2])
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
        sim = ATM90E32Sim(clock, [REF, REF, REF], MAINS, phase_err_deg=err)
        spi = SimSPI()
        fe = ATM90E32(spi, spi.cs_for(sim), "M2", max_current=RATED)
        return fe, _chip_api(sim, 3)
    if kind == "waveform":
        from sim.waveform_src import WaveformSource
        from waveform import WaveformFrontEnd
        src = WaveformSource(clock, REF, MAINS, phase_err_deg=err[0] if err else 0.0)
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


class _Bench:
    """What plug.calibration.Calibrator needs of the meter: one front end, read on demand."""

    def __init__(self, fe, clock, step):
        self.fe = fe
        self.front_ends = [fe]
        self._clock = clock
        self._step = step

    def keys(self):
        return [self.fe.device_code + "/" + c for c in self.fe.channel_codes]

    def front_end(self, device_code):
        return self.fe

    def faulty(self):
        return {}

    def checkpoint(self):
        pass

    def read_once(self):
        self._clock.advance(self._step)
        self.fe.read()

    def reading(self, key):
        r = self.fe.readings[self.fe.channel_codes.index(key.split("/")[1])]
        return r.voltage, r.current, r.power, r.pf, r.frequency, 0


def calibrate_phase(fe, clock, step, setters):
    """cal.phase(key, pf=...) per channel, as a person does at the REPL with the reactive
    reference load on and the reference meter's PF (the load model's truth)."""
    from plug.calibration import Calibrator

    for k in range(len(fe.channel_codes)):
        setters[k](k, PHASE_REF)
    clock.advance(step)
    fe.read()
    cal = Calibrator(_Bench(fe, clock, step), None, log=_quiet, out=_quiet)
    pf = PHASE_REF.power(MAINS) / (MAINS.vrms() * PHASE_REF.irms())
    for key in cal.meter.keys():
        cal.phase(key, pf=pf)


def _quiet(*args):
    pass


def main(kind, phase=False):
    clock = SimClock(0, speed=0)
    fe, (setters, trues) = build(kind, clock, phase)
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
    if not phase:
        print(repr(sweep(kind, fe, clock, step, setters, trues)))
        return
    before = sweep(kind, fe, clock, step, setters, trues)
    calibrate_phase(fe, clock, step, setters)
    print(repr((before, sweep(kind, fe, clock, step, setters, trues))))


def sweep(kind, fe, clock, step, setters, trues):
    n = len(fe.channel_codes)
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
    return rows


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "ade7953", "phase" in sys.argv[2:])
