# The common shape of a metering front end (a chip or an ADC path) and its helpers.
#
# A front end `fe` has:
#   fe.device_code     "M1": the measurement device (one per chip)
#   fe.channel_codes   ("A", "B"): its measurement circuits
#   fe.max_current     rated current in A
#   fe.read()          -> list of ChannelReading in channel_codes order. The objects are
#                      preallocated and reused by the next read(): copy what you keep.
#                      Raises FrontEndError when the chip does not answer or answers nonsense.
#   fe.resumed         True after a read() that resumed a chip found still metering (a soft
#                      reboot of the ESP32, a bus outage): that read's energy was counted
#                      since the previous read, however long ago, up to max_read_gap_s.
#   fe.calibration()   -> {channel_code: {"v_gain", "i_gain", "p_gain", "phase_deg", "i_offset"}}
#   fe.load_calibration(cal)  applies a (partial) calibration dict; ValueError on bad values,
#                      and then nothing is changed.
#
# Calibration semantics, the same on every front end:
#   v_gain, i_gain, p_gain multiply the uncalibrated voltage, current and active power (and
#   energy) readings of a channel independently: 1.0 = chip default. A power gain is the whole
#   power multiplier; a driver whose chip folds the voltage and current gains into power
#   compensates in its power gain register. So calibrating from a reference is always
#   new_gain = old_gain * reference / reading (see reference_gains()).
#   phase_deg: the phase lag of the current path (CT) in degrees at 50 Hz, corrected by
#   delaying the voltage path as much (chip phase registers, or interpolation on the ADC path).
#   i_offset: no-load current noise in A, removed in quadrature from the RMS current.
#
# Energy: readings carry import_uwh / export_uwh as integer micro-watt-hours since the previous
# read(). Chips count energy in register LSBs whose size is a rational number of uWh; an
# EnergyCounter turns LSBs into uWh exactly, carrying the remainder so nothing drifts.
GAIN_MIN = 0.5  # a gain outside this range means a wrong reference or wiring, not calibration
GAIN_MAX = 2.0
PHASE_MAX_DEG = 5.0
KEYS = ("v_gain", "i_gain", "p_gain", "phase_deg", "i_offset")
_DEFAULT = (1.0, 1.0, 1.0, 0.0, 0.0)


class FrontEndError(Exception):
    """A front end cannot be read: bus error, chip not answering, read-back mismatch."""


class ChannelReading:
    """One channel's reading. Preallocated once per channel and overwritten by each read()."""

    def __init__(self, channel_code):
        self.channel_code = channel_code
        self.voltage = 0.0
        self.current = 0.0
        self.power = 0.0  # W, negative = export
        self.pf = 0.0
        self.frequency = 0.0
        self.import_uwh = 0
        self.export_uwh = 0

    def __repr__(self):
        return "<%s %.2fV %.3fA %.1fW pf=%.3f %.2fHz +%duWh -%duWh>" % (
            self.channel_code, self.voltage, self.current, self.power, self.pf,
            self.frequency, self.import_uwh, self.export_uwh)


class EnergyCounter:
    """Exact LSB -> uWh conversion: uwh = lsb * num / den, the remainder carried as an integer.

    Summing add() over any split of the LSB stream gives floor(total * num / den): the same
    energy whether the chip is read every second or every minute.
    """

    def __init__(self, num, den):
        if num <= 0 or den <= 0:
            raise ValueError("energy scale must be positive, got %d/%d" % (num, den))
        a, b = num, den
        while b:
            a, b = b, a % b
        self.num = num // a
        self.den = den // a
        self.rem = 0

    def add(self, lsb):
        if lsb < 0:
            raise ValueError("energy LSBs must be >= 0")
        # divmod first keeps the numbers small-int on the plug for typical reads
        q, r = divmod(lsb, self.den)
        t = r * self.num + self.rem
        uwh = q * self.num + t // self.den
        self.rem = t % self.den
        return uwh


def _check_code(code, what):
    if not isinstance(code, str) or not code or "/" in code or len(code) > 8:
        raise ValueError("%s must be a short non-empty string without '/', got %r" % (what, code))


class FrontEnd:
    """Base with the common shape; a driver implements read() and _apply(channel_index, cal)."""

    def __init__(self, device_code, channel_codes, max_current):
        _check_code(device_code, "device_code")
        channel_codes = tuple(channel_codes)
        if not channel_codes:
            raise ValueError("a front end needs at least one channel")
        for c in channel_codes:
            _check_code(c, "channel_code")
        if len(set(channel_codes)) != len(channel_codes):
            raise ValueError("channel codes must be distinct: %r" % (channel_codes,))
        if not max_current > 0:
            raise ValueError("max_current must be > 0 A")
        self.device_code = device_code
        self.channel_codes = channel_codes
        self.max_current = float(max_current)
        self.readings = [ChannelReading(c) for c in channel_codes]
        self._cal = [list(_DEFAULT) for _ in channel_codes]
        self.resumed = False

    def __repr__(self):
        return "<%s %s %s>" % (type(self).__name__, self.device_code, "".join(self.channel_codes))

    def calibration(self):
        out = {}
        for i, c in enumerate(self.channel_codes):
            out[c] = dict(zip(KEYS, self._cal[i]))
        return out

    def load_calibration(self, cal):
        """Validate every value first, then apply: a bad dict changes nothing."""
        if not isinstance(cal, dict):
            raise ValueError("calibration must be a dict {channel_code: {...}}")
        new = [list(row) for row in self._cal]
        for code, values in cal.items():
            if code not in self.channel_codes:
                raise ValueError("%s has no channel %r (channels: %s)"
                                 % (self.device_code, code, ", ".join(self.channel_codes)))
            if not isinstance(values, dict):
                raise ValueError("calibration of %s/%s must be a dict" % (self.device_code, code))
            row = new[self.channel_codes.index(code)]
            for k, v in values.items():
                if k not in KEYS:
                    raise ValueError("unknown calibration key %r (known: %s)"
                                     % (k, ", ".join(KEYS)))
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ValueError("%s of %s/%s must be a number" % (k, self.device_code, code))
                v = float(v)
                if v != v:
                    raise ValueError("%s of %s/%s is NaN" % (k, self.device_code, code))
                if k.endswith("_gain") and not GAIN_MIN <= v <= GAIN_MAX:
                    raise ValueError("%s %.4f of %s/%s outside %.1f..%.1f: check the reference"
                                     % (k, v, self.device_code, code, GAIN_MIN, GAIN_MAX))
                if k == "phase_deg" and not -PHASE_MAX_DEG <= v <= PHASE_MAX_DEG:
                    raise ValueError("phase_deg %.3f of %s/%s outside +-%.1f degrees: a CT "
                                     "lags a degree or two; check the reference PF and the CT"
                                     % (v, self.device_code, code, PHASE_MAX_DEG))
                if k == "i_offset" and not 0.0 <= v <= 0.05 * self.max_current:
                    raise ValueError("i_offset %.4f A of %s/%s outside 0..%.3f A (5%% of rated)"
                                     % (v, self.device_code, code, 0.05 * self.max_current))
                row[KEYS.index(k)] = v
        self._check_new(new)
        changed = [i for i in range(len(new)) if new[i] != self._cal[i]]
        self._cal = new
        if changed:
            self._apply(changed)

    def _check_new(self, new):
        """Driver hook: refuse a combination its registers cannot hold (ValueError)."""

    def _apply(self, indices):
        """Driver hook: bring the chip in line with self._cal for these channel indices.

        The stored calibration is the truth: a chip that cannot be written now (FrontEndError)
        gets it again on its next init."""
        raise NotImplementedError

    def read(self):
        raise NotImplementedError


def offset_rms(value, offset):
    """Remove uncorrelated no-load noise from an RMS value (noise adds in quadrature)."""
    if offset <= 0.0:
        return value
    d = value * value - offset * offset
    return d ** 0.5 if d > 0.0 else 0.0


_TICKS_PERIOD = 1 << 30
_TICKS_HALF = 1 << 29


def ticks_diff(a, b):
    """time.ticks_diff for tick values that wrap at 2**30 (works on CPython too)."""
    return ((a - b + _TICKS_HALF) & (_TICKS_PERIOD - 1)) - _TICKS_HALF


def set_power_offset(fe, channel_code, watts, reg_of, reg_max, reg_name):
    """For drivers with power offset registers: set fe.p_offsets for `channel_code` to
    `watts` (its no-load power) and write it, if reg_of(i, watts) fits in +-reg_max;
    ValueError (and nothing changed) otherwise."""
    i = fe.channel_codes.index(channel_code)
    if isinstance(watts, bool) or not isinstance(watts, (int, float)) or watts != watts:
        raise ValueError("power offset must be a number (W), got %r" % (watts,))
    if abs(reg_of(i, watts)) > reg_max:
        raise ValueError("power offset %.3f W of %s/%s is beyond the %s register: is a load "
                         "still on?" % (watts, fe.device_code, channel_code, reg_name))
    fe.p_offsets[i] = float(watts)
    fe._apply((i,))


def sign_extend(value, bits):
    if value & (1 << (bits - 1)):
        return value - (1 << bits)
    return value


def reference_gains(cal, reading_v, reading_i, reading_p, ref_v, ref_i, ref_p):
    """New gains for one channel from a reference meter: gain * reference / reading.

    `cal` is the channel's current calibration dict; a reading of zero is refused.
    """
    out = {}
    for key, got, ref in (("v_gain", reading_v, ref_v), ("i_gain", reading_i, ref_i),
                          ("p_gain", reading_p, ref_p)):
        if ref is None:
            continue
        if not got:
            raise ValueError("no %s reading to calibrate against (is the load on?)" % key[0])
        out[key] = cal[key] * ref / got
    return out


_FIELDS = ("channel_code", "voltage", "current", "power", "pf", "frequency", "import_uwh",
           "export_uwh")


def snapshot(readings):
    """Plain dicts of a read()'s readings, safe to keep after the next read()."""
    return [dict((f, getattr(r, f)) for f in _FIELDS) for r in readings]
