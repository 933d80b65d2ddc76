# Waveform front end: a plain ADC (ESP32 ADC1 or an ADS1115) sampling a voltage transformer
# and a CT clamp, with the metering done here instead of in a chip.
#
# The ADC source is passed in and has:
#   source.sample_rate     pairs per second
#   source.bits            ADC resolution (12 for ESP32 ADC1, 16 for the ADS1115)
#   source.read_into(v, i) fills the two preallocated array('h') buffers with raw samples;
#                          i[n] is sampled `pair_delay` sample periods after v[n].
# Each read() samples whole mains cycles (trimmed at rising zero crossings of the voltage),
# removes DC exactly in the same pass (sums taken around the previous offset, corrected by the
# new mean), and computes Vrms, Irms, real power = mean(v * i) and PF. The voltage is
# interpolated between consecutive samples to line it up with the current sample in time
# (the sequential-sampling delay plus the calibrated phase error of the transformers), as
# emonLib's PHASECAL does. The sample loop allocates nothing: buffers and sums live in arrays
# made once, and the inner loops are @micropython.viper code when the port has it
# (waveform_viper.py), else portable Python with the same 32-bit-safe chunking.
# Energy between reads = power x elapsed clock time, carried exactly: whole milli-joules into
# an EnergyCounter (10/36 uWh per mJ), the float remainder below one mJ kept for the next read.
# After a failed read the next good one counts no energy (the power meanwhile is unknown).
from array import array

from frontend import EnergyCounter, FrontEnd, FrontEndError, offset_rms, ticks_diff

try:
    import waveform_viper as _vip
except (ImportError, SyntaxError, NameError, AttributeError):  # CPython, or a port without viper
    _vip = None

CHUNK = 64  # 64 samples x (12 bits)^2 < 2**31: sums fit a 32-bit machine word


def _accumulate_py(v, i, p, out):
    start, end, voff, ioff, m, k, sh = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    sv = sv2 = si = si2 = sva = svai = 0
    for n in range(start, end):
        x = (v[n] >> sh) - voff
        y = (i[n] >> sh) - ioff
        a = (v[n + m] >> sh) - voff
        b = (v[n + m + 1] >> sh) - voff
        va = a + (((b - a) * k) >> 8)
        sv += x
        sv2 += x * x
        si += y
        si2 += y * y
        sva += va
        svai += va * y
    out[0] = sv
    out[1] = sv2
    out[2] = si
    out[3] = si2
    out[4] = sva
    out[5] = svai


def _crossings_py(v, n, off, out):
    h = out[0]
    first = last = -1
    count = 0
    armed = False
    for j in range(2, n - 3):
        x = v[j]
        if x < off - h:
            armed = True
        elif armed and x >= off:
            if first < 0:
                first = j
            last = j
            count += 1
            armed = False
    out[0] = first
    out[1] = last
    out[2] = count


class WaveformFrontEnd(FrontEnd):
    """One channel: v_per_count / i_per_count are the board's volts and amps per ADC count
    (after the 12-bit reduction of wider ADCs). `clock` has ticks_ms()."""

    def __init__(self, source, clock, device_code="W1", channel_code="A", max_current=16.0,
                 v_per_count=0.5, i_per_count=0.01, line_freq=50, cycles=10, pair_delay=0.5,
                 use_viper=True):
        FrontEnd.__init__(self, device_code, (channel_code,), max_current)
        if line_freq not in (50, 60):
            raise ValueError("line_freq must be 50 or 60 Hz")
        if not 2 <= cycles <= 50:
            raise ValueError("cycles must be 2..50")
        if not 0 <= pair_delay < 1:
            raise ValueError("pair_delay is a fraction of a sample period, 0 <= d < 1")
        spc = source.sample_rate / line_freq
        if spc < 16:
            raise ValueError("%d samples per second is too slow: need >= 16 per cycle"
                             % source.sample_rate)
        self._src = source
        self._clock = clock
        self._spc = spc
        self._sh = max(0, source.bits - 12)
        self._vpc = v_per_count
        self._ipc = i_per_count
        self._pair_delay = pair_delay
        n = int(spc * (cycles + 1.5)) + 6
        self._n = n
        self._v = array("h", bytes(2 * n))
        self._i = array("h", bytes(2 * n))
        self._p = array("i", [0] * 7)
        self._out = array("i", [0] * 6)
        mid = 1 << (min(source.bits, 12) - 1) if source.bits <= 12 else 0
        self._voff = mid
        self._ioff = mid
        self._first = True
        self._vip = _vip if use_viper else None
        self._acc = self._vip.accumulate if self._vip else _accumulate_py
        self._cross = self._vip.crossings if self._vip else _crossings_py
        self._last_ms = None
        self._frac_mj = 0.0
        self._imp = EnergyCounter(10, 36)
        self._exp = EnergyCounter(10, 36)
        self.samples = 0  # pairs processed, for benchmarks

    def _apply(self, indices):
        pass  # coefficients are read from self._cal on every read()

    def _sample(self):
        try:
            self._src.read_into(self._v, self._i)
        except OSError as e:
            raise FrontEndError("waveform %s: ADC read failed (%s)" % (self.device_code, e))

    def read(self):
        last_ms = self._last_ms
        # a read that fails leaves no start time: the power meanwhile is unknown
        self._last_ms = None
        self._sample()
        now = self._clock.ticks_ms()
        v = self._v
        n = self._n
        sh = self._sh
        if self._first:
            self._voff = (sum(v) // n) >> sh
            self._ioff = (sum(self._i) // n) >> sh
            self._first = False
        out = self._out
        out[0] = 8 << sh  # crossing hysteresis, raw counts
        self._cross(v, n, self._voff << sh, out)
        first, last, count = out[0], out[1], out[2]
        if count < 2:
            lo = min(v)
            if lo == max(v):
                raise FrontEndError("waveform %s: ADC reads a constant %d: no signal or ADC "
                                    "stuck" % (self.device_code, lo))
            raise FrontEndError("waveform %s: no mains cycle found in %d samples (voltage "
                                "missing?)" % (self.device_code, n))
        cal = self._cal[0]
        # align v with i: i[n] was taken pair_delay samples after v[n] and the current path
        # lags by phase_deg; interpolate v there
        d = self._pair_delay - cal[3] / 360.0 * self._spc
        m = int(d) if d >= 0 else int(d) - 1
        k = int((d - m) * 256 + 0.5)
        if k == 256:
            m += 1
            k = 0
        start = max(first, -m)
        end = min(last, n - m - 2)
        p = self._p
        p[2] = self._voff
        p[3] = self._ioff
        p[4] = m
        p[5] = k
        p[6] = sh
        sv = sv2 = si = si2 = sva = svai = 0
        s = start
        while s < end:
            e = s + CHUNK
            if e > end:
                e = end
            p[0] = s
            p[1] = e
            self._acc(v, self._i, p, out)
            sv += out[0]
            sv2 += out[1]
            si += out[2]
            si2 += out[3]
            sva += out[4]
            svai += out[5]
            s = e
        N = end - start
        self.samples += N
        mv = sv / N
        mi = si / N
        mva = sva / N
        var_v = sv2 / N - mv * mv
        var_i = si2 / N - mi * mi
        pvi = svai / N - mva * mi
        # frequency from the interpolated crossing instants
        t0 = first - 1 + self._frac_cross(first)
        t1 = last - 1 + self._frac_cross(last)
        freq = (count - 1) * self._src.sample_rate / (t1 - t0) if t1 > t0 else 0.0
        # next read removes the DC found now (running mean)
        self._voff += int(mv + (0.5 if mv >= 0 else -0.5))
        self._ioff += int(mi + (0.5 if mi >= 0 else -0.5))
        r = self.readings[0]
        vrms = (var_v if var_v > 0 else 0.0) ** 0.5 * self._vpc
        irms = (var_i if var_i > 0 else 0.0) ** 0.5 * self._ipc
        r.voltage = vrms * cal[0]
        r.current = offset_rms(irms * cal[1], cal[4])
        r.power = pvi * self._vpc * self._ipc * cal[2]
        va = vrms * irms * cal[0] * cal[1]
        r.pf = r.power / va if va > 0 else 0.0
        r.frequency = freq
        r.import_uwh = 0
        r.export_uwh = 0
        if last_ms is not None:
            dt = ticks_diff(now, last_ms)
            if dt > 0:
                e = r.power * dt + self._frac_mj  # W x ms = mJ
                if e >= 0:
                    whole = int(e)
                    self._frac_mj = e - whole
                    r.import_uwh = self._imp.add(whole)
                else:
                    whole = int(-e)
                    self._frac_mj = -(-e - whole)
                    r.export_uwh = self._exp.add(whole)
        self._last_ms = now
        return self.readings

    def _frac_cross(self, j):
        off = self._voff << self._sh
        a = self._v[j - 1]
        b = self._v[j]
        return (off - a) / (b - a) if b != a else 0.0
