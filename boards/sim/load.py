# Load model for the simulated plug: the mains voltage and, per channel, what is plugged in.
#
# Mains(voltage, frequency, harmonics) gives the voltage waveform; Load gives a channel's
# current: resistive, inductive (lagging) or capacitive (leading) at a chosen PF, with
# harmonic currents, an on/off duty cycle (a fridge compressor) and export (a PV inverter
# pushes power back: negative active power). Everything is exact and analytic, so the
# simulated chips can integrate the true energy over any interval in closed form.
import math

_SQRT2 = math.sqrt(2.0)


class Mains:
    """harmonics: ((order, fraction of the fundamental, phase_deg), ...), e.g. ((3, 0.03, 0),)."""

    def __init__(self, voltage=230.0, frequency=50.0, harmonics=()):
        if not 0 < voltage < 1000 or not 40 <= frequency <= 70:
            raise ValueError("mains must be 0..1000 V and 40..70 Hz")
        self.frequency = float(frequency)
        self.v1 = float(voltage)
        self.harmonics = tuple((int(h), float(f), math.radians(p)) for h, f, p in harmonics)
        self._vh = {1: (self.v1, 0.0)}
        for h, f, p in self.harmonics:
            self._vh[h] = (self.v1 * f, p)

    def vrms(self):
        return math.sqrt(sum(v * v for v, _ in self._vh.values()))

    def component(self, h):
        """(rms, phase_rad) of the voltage harmonic of order h, (0, 0) if absent."""
        return self._vh.get(h, (0.0, 0.0))

    def v(self, t):
        w = 2 * math.pi * self.frequency * t
        s = 0.0
        for h, (vh, a) in self._vh.items():
            s += vh * math.sin(h * w + a)
        return _SQRT2 * s


class Load:
    """What one channel feeds. `current` is the total RMS current while on.

    kind: "resistive" (PF 1 at the fundamental), "inductive" (current lags by acos(pf)) or
    "capacitive" (current leads). harmonics: ((order, fraction of the fundamental current,
    phase_deg relative to the voltage harmonic), ...). on_s/off_s: duty cycle starting on at
    sim time offset_s (0 = always on). export=True reverses the power flow.
    """

    def __init__(self, current=0.0, pf=1.0, kind="resistive", harmonics=(), export=False,
                 on_s=0, off_s=0, offset_s=0):
        if current < 0:
            raise ValueError("current is an RMS value >= 0; use export=True for export")
        if kind not in ("resistive", "inductive", "capacitive"):
            raise ValueError("kind must be resistive, inductive or capacitive")
        if not 0 < pf <= 1:
            raise ValueError("pf must be in (0, 1]")
        if kind == "resistive":
            pf = 1.0
        phi = math.acos(pf)
        self.kind = kind
        self.pf1 = pf
        self.phi = phi if kind == "inductive" else -phi if kind == "capacitive" else 0.0
        self.harmonics = tuple((int(h), float(f), math.radians(p)) for h, f, p in harmonics)
        i1 = current / math.sqrt(1.0 + sum(f * f for _, f, _ in self.harmonics))
        self._ih = [(1, i1, self.phi)] + [(h, i1 * f, p) for h, f, p in self.harmonics]
        self.current = float(current)
        self.sign = -1.0 if export else 1.0
        self.on_s = float(on_s)
        self.off_s = float(off_s)
        self.offset_s = float(offset_s)

    # -- steady state while on ------------------------------------------------------------
    def irms(self):
        return self.current

    def power(self, mains, delay_rad=0.0):
        """Active power (W, signed) while on, as seen with the current delayed by delay_rad at
        the fundamental (a phase error; 0 gives the true power)."""
        p = 0.0
        for h, ih, ph in self._ih:
            vh, _ = mains.component(h)
            p += vh * ih * math.cos(ph + h * delay_rad)
        return self.sign * p

    def i(self, mains, t, delay_s=0.0):
        w = 2 * math.pi * mains.frequency * (t - delay_s)
        s = 0.0
        for h, ih, ph in self._ih:
            _, a = mains.component(h)
            s += ih * math.sin(h * w + a - ph)
        return self.sign * _SQRT2 * s if self.is_on(t) else 0.0

    # -- duty cycle -----------------------------------------------------------------------
    def is_on(self, t):
        if not self.off_s:
            return True
        return (t - self.offset_s) % (self.on_s + self.off_s) < self.on_s

    def _cum_on(self, t):
        period = self.on_s + self.off_s
        x = t - self.offset_s
        n = math.floor(x / period)
        return n * self.on_s + min(x - n * period, self.on_s)

    def on_seconds(self, t0, t1):
        """Seconds the load is on within [t0, t1], exactly."""
        if not self.off_s:
            return t1 - t0
        return self._cum_on(t1) - self._cum_on(t0)


def fridge(current=1.2, pf=0.75):
    """A compressor: inductive, 15 minutes on, 25 off, some 3rd harmonic."""
    return Load(current, pf, "inductive", harmonics=((3, 0.08, 0),), on_s=900, off_s=1500)


def pv_inverter(current=6.0):
    """A balcony PV inverter: exports at PF 1."""
    return Load(current, 1.0, "resistive", export=True)


class SimChannel:
    """Load, factory errors and the TRUE energy of one simulated channel."""

    def __init__(self, load, v_err=1.0, i_err=1.0, p_err=1.0, phase_err_deg=0.0, noise_a=0.0):
        self.load = load
        self.v_err = v_err
        self.i_err = i_err
        self.p_err = p_err
        self.phase_err = math.radians(phase_err_deg)
        self.noise_a = noise_a
        self.true_import_uwh = 0.0
        self.true_export_uwh = 0.0
        self.relay = True  # the output relay in front of the load: open, it draws nothing


class Rng:
    """xorshift32: the same seeded numbers on CPython and MicroPython."""

    def __init__(self, seed):
        self.s = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def next(self):
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.s = x
        return x

    def uniform(self, a, b):
        return a + (b - a) * (self.next() / 4294967296.0)


def factory_errors(seed, n, spread=0.04):
    """Per-channel (v_err, i_err, p_err) gain errors of a few percent, seeded."""
    r = Rng(seed)
    return [(1 + r.uniform(-spread, spread), 1 + r.uniform(-spread, spread),
             1 + r.uniform(-spread / 2, spread / 2)) for _ in range(n)]
