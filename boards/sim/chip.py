# What the simulated metering chips share: channels with loads and factory errors, and the
# integration of energy from the load model as sim time passes. A chip subclass says how its
# gain registers scale the measurement (_gains), what its power offset registers subtract
# (_offset_w) and where measured energy goes (_accumulate).
# Each channel has a small power offset (crosstalk from the voltage channel, ADC offsets): the
# chip sees it with or without a load, so with nothing plugged in its energy accumulators creep
# until the offset registers cancel it (they act on the power the accumulators integrate).
import math

from sim.load import Mains, Rng, SimChannel, factory_errors


class SimMeterChip:
    def __init__(self, clock, loads, mains=None, seed=1, gain_spread=0.04, phase_err_deg=None,
                 noise_a=0.003, p_offset_w=0.05):
        self.clock = clock
        self.mains = mains or Mains()
        errs = factory_errors(seed, len(loads), gain_spread)
        self.channels = []
        for k, load in enumerate(loads):
            ph = phase_err_deg[k] if phase_err_deg else 0.0
            self.channels.append(SimChannel(load, errs[k][0], errs[k][1], errs[k][2], ph, noise_a))
        rng = Rng(seed + 17)
        for c in self.channels:
            c.p_offset = rng.uniform(-p_offset_w, p_offset_w)
        self.fault = None
        self._t = clock.monotonic()

    # -- what tests and the virtual plug call ----------------------------------------------
    def set_load(self, index, load):
        """Change what channel `index` feeds, from now on."""
        self.sync()
        self.channels[index].load = load

    def set_mains(self, mains):
        self.sync()
        self.mains = mains

    def fail(self, mode="ff"):
        """Make the chip stop answering ("ff", "00", "oserror"); fail(None) brings it back."""
        if mode not in (None, "ff", "00", "oserror"):
            raise ValueError("fault mode must be None, 'ff', '00' or 'oserror'")
        self.sync()
        self.fault = mode

    def true_energy_uwh(self, index):
        """(import, export) TRUE energy delivered on a channel so far, float uWh."""
        self.sync()
        c = self.channels[index]
        return c.true_import_uwh, c.true_export_uwh

    # -- integration -----------------------------------------------------------------------
    def sync(self):
        now = self.clock.monotonic()
        t0 = self._t
        if now <= t0:
            return
        self._t = now
        metering = self._metering()
        for k, c in enumerate(self.channels):
            on = c.load.on_seconds(t0, now)
            if on > 0:
                e_uwh = c.load.power(self.mains) * on / 0.0036
                if e_uwh >= 0:
                    c.true_import_uwh += e_uwh
                else:
                    c.true_export_uwh -= e_uwh
            if metering:
                e_ws = self._power(k, True) * on if on > 0 else 0.0
                if now - t0 > on:
                    e_ws += self._power(k, False) * (now - t0 - on)
                if e_ws:
                    self._accumulate(k, e_ws)

    def measured_power(self, k, while_on=False):
        """Active power the chip's DSP sees on channel k (W), before its own LSB scaling, offset
        registers applied: now, or (while_on) whenever the load is on."""
        return self._power(k, while_on or self.channels[k].load.is_on(self._t))

    def _power(self, k, on):
        c = self.channels[k]
        vg, ig, pg, corr = self._gains(k)
        p = c.p_offset
        if on:
            p += c.load.power(self.mains, c.phase_err - math.radians(corr))
        return p * c.v_err * c.i_err * c.p_err * vg * ig * pg + self._offset_w(k)

    def measured_vrms(self, k):
        vg = self._gains(k)[0]
        return self.mains.vrms() * self.channels[k].v_err * vg

    def measured_irms(self, k):
        c = self.channels[k]
        i = c.load.irms() if c.load.is_on(self._t) else 0.0
        i = math.sqrt(i * i + c.noise_a * c.noise_a)
        return i * c.i_err * self._gains(k)[1]

    def measured_pf(self, k):
        c = self.channels[k]
        if not c.load.is_on(self._t) or not c.load.irms():
            return 0.0
        delay = c.phase_err - math.radians(self._gains(k)[3])
        return c.load.power(self.mains, delay) / (self.mains.vrms() * c.load.irms())

    # -- subclass hooks --------------------------------------------------------------------
    def _metering(self):
        return True

    def _gains(self, k):
        """(voltage gain, current gain, extra power gain, phase correction deg) from registers."""
        return 1.0, 1.0, 1.0, 0.0

    def _offset_w(self, k):
        """What the power offset register adds to channel k's power (W, after the gains)."""
        return 0.0

    def _accumulate(self, k, energy_ws):
        raise NotImplementedError
