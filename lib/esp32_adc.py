# Waveform sources for lib/waveform.py on the ESP32's own ADC1: a voltage transformer and
# a CT clamp, each biased to mid-supply, sampled as (v, i) pairs at a fixed rate.
#
#   v = adc1(34); i = adc1(35)                      machine.ADC on an ADC1 pin, 11 dB
#   src = ESP32ADCSource(v, i, sample_rate=2000)    .sample_rate .bits .pair_delay
#   src.read_into(v_arr, i_arr)                     fills two array('h') with raw counts
#   src.late                                        pairs of the last burst taken late
#
# Timing: pair n is taken at t0 + n * period (time.ticks_us, busy-waiting between pairs),
# so the spacing is that of the clock, not of the interpreter; the current sample of a
# pair follows the voltage sample by one conversion, which is `pair_delay` (a fraction of
# the period, measured at start-up unless given) and the waveform front end interpolates
# the voltage to line the two up. The loop allocates nothing: the ADC read methods, the
# tick functions and the buffers are bound to locals before it starts, every value is a
# small int. A stall of more than one period (an interrupt, Wi-Fi, a slow ADC read) is
# counted in `late` and the schedule restarts from then, so the spacing stays even apart
# from that one gap; a burst with a stall is taken again (`retries`, default once).
#
# Why ADC1 only: ADC2 is shared with the Wi-Fi radio and reads fail while Wi-Fi is on.
# Attenuation 11 dB gives the widest input range (about 0.15-2.45 V linear), so a signal
# biased at 1.65 V may swing about +-0.8 V before the ESP32's non-linearity sets in.
#
# ADS1115 (16 bits over I2C): it converts at most 860 samples/s, one input at a time. A
# voltage/current pair needs two conversions, so 430 pairs/s = 8.6 pairs per 50 Hz cycle,
# below the 16 per cycle the waveform front end needs (sample_rate / line_freq >= 16);
# even one input alone gives 17.2 per cycle at 50 Hz and 14.3 at 60 Hz. So the ADS1115
# does not work for real power (mean of v x i) here; it would only suit an RMS current with
# an assumed voltage, which this firmware does not bill on. Use ADC1, or a metering chip.
import time

ADC1_PINS = (32, 33, 34, 35, 36, 37, 38, 39)  # 37/38 are not bonded out on most modules
ADC2_PINS = (0, 2, 4, 12, 13, 14, 15, 25, 26, 27)
MIN_RATE = 320  # 16 pairs per 50 Hz cycle (the waveform front end's minimum is per cycle)
MAX_RATE = 10000  # a MicroPython loop with two ADC reads cannot keep up beyond this


class ADCError(ValueError):
    """An ADC pin or rate that cannot work; the message says what to use instead."""


def check_pin(pin):
    if pin in ADC1_PINS:
        return pin
    if pin in ADC2_PINS:
        raise ADCError("GPIO%d is on ADC2, which the Wi-Fi radio blocks: use an ADC1 pin "
                       "(GPIO32-39)" % pin)
    raise ADCError("GPIO%r has no ADC: use an ADC1 pin (GPIO32-39)" % (pin,))


def adc1(pin):
    """machine.ADC on ADC1 pin `pin` with 11 dB attenuation (full 0-3.3 V supply range)."""
    check_pin(pin)
    import machine

    adc = machine.ADC(machine.Pin(pin))
    atten = getattr(machine.ADC, "ATTN_11DB", None)
    if atten is not None:
        adc.atten(atten)
    return adc


def _reader(adc):
    """(read function, right shift) giving 12-bit counts: read() is the raw 12-bit value
    on the ESP32 port; read_u16() is scaled to 16 bits."""
    rd = getattr(adc, "read", None)
    if rd is not None:
        return rd, 0
    return adc.read_u16, 4


class ESP32ADCSource:
    """A (voltage, current) pair source for WaveformFrontEnd on two ADC objects (machine.ADC,
    or anything with read() returning 12-bit counts or read_u16())."""

    bits = 12

    def __init__(self, v_adc, i_adc, sample_rate=2000, pair_delay=None, retries=1,
                 ticks_us=None, ticks_diff=None, ticks_add=None):
        if not MIN_RATE <= sample_rate <= MAX_RATE:
            raise ADCError("sample_rate %r outside %d..%d pairs/s" % (sample_rate, MIN_RATE,
                                                                     MAX_RATE))
        self._v, self._vsh = _reader(v_adc)
        self._i, self._ish = _reader(i_adc)
        self._tus = ticks_us or time.ticks_us
        self._tdiff = ticks_diff or time.ticks_diff
        self._tadd = ticks_add or time.ticks_add
        self.period_us = int(1000000 / sample_rate + 0.5)
        self.sample_rate = 1000000 / self.period_us  # the rate the clock really gives
        self.retries = retries
        self.late = 0
        self.bursts = 0
        if pair_delay is None:
            pair_delay = self.measure_pair_delay()
        if not 0 <= pair_delay < 1:
            raise ADCError("one ADC read takes %.0f%% of the sample period: lower sample_rate"
                           % (pair_delay * 100))
        self.pair_delay = pair_delay

    def measure_pair_delay(self, reads=32):
        """How far behind its voltage sample a current sample is taken, as a fraction of the
        sample period: the time of one current read, measured now."""
        rd = self._i
        tus = self._tus
        t0 = tus()
        for _ in range(reads):
            rd()
        dt = self._tdiff(tus(), t0)
        return max(0.0, dt / reads / self.period_us)

    def read_into(self, v, i):
        """Fill v and i with one burst of pairs. A burst that lost its timing (a stall of
        more than one period) is taken again, up to `retries` times; `late` then tells how
        many stalls the kept burst has."""
        for _ in range(self.retries + 1):
            self._burst(v, i)
            if not self.late:
                break
        self.bursts += 1

    def _burst(self, v, i):
        rv = self._v
        ri = self._i
        vsh = self._vsh
        ish = self._ish
        tus = self._tus
        tdiff = self._tdiff
        tadd = self._tadd
        period = self.period_us
        late = 0
        t = tadd(tus(), period)
        for n in range(len(v)):
            d = tdiff(t, tus())
            while d > 0:
                d = tdiff(t, tus())
            if d < -period:
                # stalled (an interrupt, Wi-Fi): start the schedule again from now rather
                # than rush through the missed slots, which would squeeze the waveform
                late += 1
                t = tadd(t, -d)
            v[n] = rv() >> vsh
            i[n] = ri() >> ish
            t = tadd(t, period)
        self.late = late
