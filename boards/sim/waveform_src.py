# A sampled-waveform ADC source for the waveform front end (lib/waveform.py): what an ESP32
# ADC1 (12 bits, offset at mid-scale) or an ADS1115 (16 bits, signed) would return when
# sampling a voltage transformer and a CT clamp on the simulated mains and load.
# Pairs are sampled at `sample_rate` from the sim clock's current time; the current sample of
# a pair is taken `pair_delay` sample periods after the voltage sample, as with sequential
# conversions on one ADC. Factory gain errors (seeded), an optional CT phase error, seeded
# noise of a few counts and clipping at the ADC's range make it a real measurement. The TRUE
# energy delivered is integrated exactly from the load model as sim time passes.
import math

from sim.load import Mains, Rng, factory_errors

_EIO = 5


class WaveformSource:
    def __init__(self, clock, load, mains=None, sample_rate=4000, bits=12,
                 v_counts_per_volt=4.3, i_counts_per_amp=50.0, pair_delay=0.5,
                 phase_err_deg=0.0, noise_counts=1.5, seed=1, gain_spread=0.04):
        if bits not in (12, 16):
            raise ValueError("bits must be 12 (ESP32 ADC1) or 16 (ADS1115)")
        self.clock = clock
        self.load = load
        self.mains = mains or Mains()
        self.sample_rate = sample_rate
        self.bits = bits
        scale = 16 if bits == 16 else 1  # the ADS1115 spreads the same signal over 16 bits
        err = factory_errors(seed, 1, gain_spread)[0]
        self.v_scale = v_counts_per_volt * scale * err[0]
        self.i_scale = i_counts_per_amp * scale * err[1]
        self.pair_delay = pair_delay
        self.phase_err_deg = phase_err_deg
        self.noise = noise_counts * scale
        self._rng = Rng(seed + 101)
        self.offset = 2048 if bits == 12 else 0
        self._lo, self._hi = (0, 4095) if bits == 12 else (-32768, 32767)
        self.fault = None
        self.true_import_uwh = 0.0
        self.true_export_uwh = 0.0
        self._t = clock.monotonic()

    def set_load(self, load):
        self.sync()
        self.load = load

    def fail(self, mode="oserror"):
        """ "oserror": reads raise OSError; "stuck": the ADC returns a constant; None: healthy."""
        self.fault = mode

    def sync(self):
        now = self.clock.monotonic()
        if now > self._t:
            e = self.load.power(self.mains) * self.load.on_seconds(self._t, now) / 0.0036
            if e >= 0:
                self.true_import_uwh += e
            else:
                self.true_export_uwh -= e
            self._t = now

    def true_energy_uwh(self):
        self.sync()
        return self.true_import_uwh, self.true_export_uwh

    def _q(self, x):
        x += self.offset + self._rng.uniform(-self.noise, self.noise)
        x = int(x + 0.5) if x >= 0 else -int(-x + 0.5)
        return self._lo if x < self._lo else self._hi if x > self._hi else x

    def read_into(self, vbuf, ibuf):
        if self.fault == "oserror":
            raise OSError(_EIO)
        if self.fault == "stuck":
            for n in range(len(vbuf)):
                vbuf[n] = self._hi
                ibuf[n] = self._hi
            return
        self.sync()
        t0 = self.clock.monotonic()
        dt = 1.0 / self.sample_rate
        lag = math.radians(self.phase_err_deg) / (2 * math.pi * self.mains.frequency)
        mains = self.mains
        load = self.load
        for n in range(len(vbuf)):
            t = t0 + n * dt
            vbuf[n] = self._q(mains.v(t) * self.v_scale)
            ibuf[n] = self._q(load.i(mains, t + self.pair_delay * dt, lag) * self.i_scale)
