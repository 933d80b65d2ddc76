# What the simulated metering chips share: channels with loads and factory errors, and the
# integration of energy from the load model as sim time passes. A chip subclass says how its
# gain registers scale the measurement (_gains), what its power offset registers subtract
# (_offset_w) and where measured energy goes (_accumulate).
# Each channel has a small power offset (crosstalk from the voltage channel, ADC offsets): the
# chip sees it with or without a load, so with nothing plugged in its energy accumulators creep
# until the offset registers cancel it (they act on the power the accumulators integrate).
# Each channel's load sits behind an output relay (set_relay): while it is open the load
# draws no current, so the chip meters only its offset and the true energy stops.
# Exact truths for tests: handed_out_uwh (what the energy registers gave the driver: the
# most a plug can meter from this chip) and true_energy_at_read_uwh (the energy delivered
# up to the instant of that read), both taken inside the register read itself.
import math

from sim.load import Mains, Rng, SimChannel, factory_errors

_PASSES = 16  # read times record_to's file keeps


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
        # per channel: energy handed to the driver (import, export uWh) and the true energy
        # at that moment (import, export uWh); see handed_out_uwh / true_energy_at_read_uwh
        self._hand = [[0.0, 0.0, 0.0, 0.0] for _ in self.channels]
        self._journal = None

    # -- what tests and the virtual plug call ----------------------------------------------
    def set_load(self, index, load):
        """Change what channel `index` feeds, from now on."""
        self.sync()
        self.channels[index].load = load

    def set_relay(self, index, on):
        """Close (True) or open (False) the relay in front of channel `index`'s load."""
        self.sync()
        self.channels[index].relay = bool(on)

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

    def handed_out_uwh(self, index):
        """(import, export) energy, float uWh, that channel `index`'s energy registers
        measured and the driver's reads cleared so far: the chip's measurement, creep and
        gain errors included, and a register's overflow too (the driver then reads less,
        or a signed one the other way). No driver can have metered more from this chip."""
        h = self._hand[index]
        return h[0], h[1]

    def true_energy_at_read_uwh(self, index):
        """(import, export) TRUE energy delivered on channel `index` up to the instant its
        import (export) energy register was last read: the truth sampled atomically with the
        driver's read, whatever the host did before or after it."""
        h = self._hand[index]
        return h[2], h[3]

    def record_to(self, path):
        """Keep handed_out_uwh and the true energy, summed over every boot, in the file
        `path`: the virtual plug's energy log (tools/faults_power.py reads it after a power cut).
        Little-endian: per channel four doubles, handed import, handed export, true import,
        true export (uWh), then _PASSES int32, the plug times (s) of the last reads of
        channel 0 (one per pass of the plug's meter), oldest first, 0 for none. Rewritten
        by one write() before each energy register value leaves the chip: a SIGKILL never
        leaves it short of what the plug has read."""
        import struct

        self._jfmt = "<%dd%di" % (4 * len(self.channels), _PASSES)
        base, passes, exists = [0.0] * (4 * len(self.channels)), [], False
        try:
            with open(path, "rb") as f:
                data = f.read()
            exists = True
            vals = struct.unpack(self._jfmt, data)
            base = list(vals[:len(base)])
            passes = [t for t in vals[len(base):] if t]
        except (OSError, ValueError):
            pass
        self._journal = open(path, "r+b" if exists else "wb")  # r+b: no empty moment
        self._jbase = base
        self._passes = passes
        self._jbuf = bytearray(struct.calcsize(self._jfmt))
        self._pack_into = struct.pack_into
        self._write_journal()

    def _write_journal(self):
        b = self._jbase
        vals = []
        for k in range(len(self.channels)):
            h = self._hand[k]
            c = self.channels[k]
            vals.append(b[4 * k] + h[0])
            vals.append(b[4 * k + 1] + h[1])
            vals.append(b[4 * k + 2] + c.true_import_uwh)
            vals.append(b[4 * k + 3] + c.true_export_uwh)
        vals += self._passes
        vals += [0] * (_PASSES - len(self._passes))
        self._pack_into(self._jfmt, self._jbuf, 0, *vals)
        f = self._journal
        f.seek(0)
        f.write(self._jbuf)

    def _handed(self, k, imp_uwh, exp_uwh, imp=True, exp=True):
        """Subclasses call this as an energy register of channel k is read and cleared
        (imp / exp: which of the channel's directions that register holds)."""
        h = self._hand[k]
        c = self.channels[k]
        h[0] += imp_uwh
        h[1] += exp_uwh
        if imp:
            h[2] = c.true_import_uwh
        if exp:
            h[3] = c.true_export_uwh
        if self._journal is not None:
            if k == 0 and imp:
                self._passes.append(self.clock.time())
                if len(self._passes) > _PASSES:
                    self._passes.pop(0)
            self._write_journal()

    # -- integration -----------------------------------------------------------------------
    def sync(self):
        now = self.clock.monotonic()
        t0 = self._t
        if now <= t0:
            return
        self._t = now
        metering = self._metering()
        for k, c in enumerate(self.channels):
            on = c.load.on_seconds(t0, now) if c.relay else 0.0
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
        c = self.channels[k]
        return self._power(k, c.relay and (while_on or c.load.is_on(self._t)))

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
        i = c.load.irms() if c.relay and c.load.is_on(self._t) else 0.0
        i = math.sqrt(i * i + c.noise_a * c.noise_a)
        return i * c.i_err * self._gains(k)[1]

    def measured_pf(self, k):
        c = self.channels[k]
        if not c.relay or not c.load.is_on(self._t) or not c.load.irms():
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
