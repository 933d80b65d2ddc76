# lib/esp32_adc.py: the ESP32 ADC1 waveform source, with stand-in ADC objects and a
# stepped microsecond clock (runs under CPython and MicroPython; see tests/dual.py).
from array import array

from dual import MICROPYTHON, raises
from esp32_adc import ADCError, ESP32ADCSource, check_pin


class StepClock:
    """ticks_us that advances by `step` us per call; wraps at 2**30 like the ESP32's."""

    def __init__(self, step=7, start=(1 << 30) - 2000):
        self.t = start
        self.step = step
        self.calls = 0

    def ticks_us(self):
        self.calls += 1
        self.t = (self.t + self.step) & 0x3FFFFFFF
        return self.t

    @staticmethod
    def ticks_diff(a, b):
        return ((a - b + (1 << 29)) & 0x3FFFFFFF) - (1 << 29)

    @staticmethod
    def ticks_add(a, d):
        return (a + d) & 0x3FFFFFFF


class RawADC:
    """read() gives 12-bit counts from a list, in turn."""

    def __init__(self, values, clock=None, cost_us=0):
        self.values = values
        self.n = 0
        self.clock = clock
        self.cost_us = cost_us

    def read(self):
        if self.clock:
            self.clock.t = (self.clock.t + self.cost_us) & 0x3FFFFFFF
        v = self.values[self.n % len(self.values)]
        self.n += 1
        return v


class U16ADC:
    """Only read_u16(), as newer ports prefer: 16-bit scaled counts."""

    def __init__(self, value):
        self.value = value

    def read_u16(self):
        return self.value


def source(v, i, clock, **kw):
    return ESP32ADCSource(v, i, ticks_us=clock.ticks_us, ticks_diff=clock.ticks_diff,
                          ticks_add=clock.ticks_add, **kw)


def test_adc2_and_non_adc_pins_are_refused_with_the_reason():
    assert check_pin(34) == 34 and check_pin(39) == 39
    e = raises(ADCError, check_pin, 25)
    assert "GPIO25 is on ADC2, which the Wi-Fi radio blocks" in str(e)
    e = raises(ADCError, check_pin, 5)
    assert "GPIO5 has no ADC" in str(e)


def test_sample_rate_outside_what_the_loop_can_do_is_refused():
    c = StepClock()
    e = raises(ADCError, source, RawADC([0]), RawADC([0]), c, sample_rate=200, pair_delay=0.1)
    assert "sample_rate 200 outside 320..10000" in str(e)
    raises(ADCError, source, RawADC([0]), RawADC([0]), c, sample_rate=20000, pair_delay=0.1)


def test_reported_rate_is_the_one_the_microsecond_clock_gives():
    s = source(RawADC([0]), RawADC([0]), StepClock(), sample_rate=3000, pair_delay=0.1)
    assert s.period_us == 333
    assert abs(s.sample_rate - 1000000 / 333) < 1e-6 and s.bits == 12


def test_pairs_fill_the_buffers_in_order_and_u16_reads_are_reduced_to_12_bits():
    c = StepClock(step=5)
    s = source(RawADC([100, 200, 300]), U16ADC(0xFFF0), c, sample_rate=2000, pair_delay=0.2)
    v = array("h", [0] * 7)
    i = array("h", [0] * 7)
    s.read_into(v, i)
    assert list(v) == [100, 200, 300, 100, 200, 300, 100]
    assert list(i) == [0xFFF] * 7
    assert s.late == 0 and s.bursts == 1


def test_pairs_are_spaced_by_the_clock_not_by_the_interpreter():
    c = StepClock(step=3)
    times = []

    class Stamp:
        def read(self):
            times.append(c.t)
            return 0

    s = source(Stamp(), RawADC([0]), c, sample_rate=2000, pair_delay=0.1)
    s.read_into(array("h", [0] * 6), array("h", [0] * 6))
    gaps = [StepClock.ticks_diff(times[k + 1], times[k]) for k in range(5)]
    # each pair waits for its slot: 500 us apart to within one clock step, across the wrap
    for g in gaps:
        assert abs(g - 500) <= 3, gaps


def test_pairs_taken_more_than_a_period_late_are_counted():
    c = StepClock(step=1)
    slow = RawADC([0], clock=c, cost_us=2500)  # a read that takes 2.5 sample periods
    s = source(RawADC([0]), slow, c, sample_rate=1000, pair_delay=0.5)
    s.read_into(array("h", [0] * 10), array("h", [0] * 10))
    assert s.late >= 8


class StallClock(StepClock):
    """A StepClock that loses `stall` us once, at its `at`-th call (an interrupt)."""

    def __init__(self, at, stall, step=3):
        StepClock.__init__(self, step)
        self.at = at
        self.stall = stall

    def ticks_us(self):
        if self.calls == self.at:
            self.t = (self.t + self.stall) & 0x3FFFFFFF
        return StepClock.ticks_us(self)


def _stamped(clock, n, retries):
    times = []

    class Stamp:
        def read(self):
            times.append(clock.t)
            return 0

    s = source(Stamp(), RawADC([0]), clock, sample_rate=2000, pair_delay=0.1, retries=retries)
    s.read_into(array("h", [0] * n), array("h", [0] * n))
    kept = times[-n:]
    return s, [StepClock.ticks_diff(kept[k + 1], kept[k]) for k in range(n - 1)]


def test_a_stall_restarts_the_schedule_instead_of_squeezing_the_missed_pairs():
    c = StallClock(at=400, stall=10000)  # 10 ms lost in the middle of the burst
    s, gaps = _stamped(c, 12, retries=0)
    assert s.late == 1
    assert max(gaps) >= 10000  # the one gap where time was lost
    assert [g for g in gaps if g < 10000] == [g for g in gaps if abs(g - 500) <= 3]
    assert len([g for g in gaps if g < 10000]) == 10  # every other pair on its slot


def test_a_burst_with_a_stall_is_taken_again():
    c = StallClock(at=400, stall=10000)
    s, gaps = _stamped(c, 12, retries=1)
    assert s.late == 0 and s.bursts == 1
    assert all(abs(g - 500) <= 3 for g in gaps), gaps


def test_pair_delay_is_measured_from_the_time_of_one_current_read():
    c = StepClock(step=0)
    s = source(RawADC([0]), RawADC([0], clock=c, cost_us=125), c, sample_rate=2000)
    assert abs(s.pair_delay - 0.25) < 1e-9  # 125 us of a 500 us period
    e = raises(ADCError, source, RawADC([0]), RawADC([0], clock=c, cost_us=600), c,
               sample_rate=2000)
    assert "lower sample_rate" in str(e)


def test_sampling_loop_allocates_nothing():
    if not MICROPYTHON:
        return  # heap_lock is MicroPython's; on CPython there is nothing to prove
    import micropython

    s = ESP32ADCSource(RawADC([1, 2, 3]), RawADC([4, 5]), sample_rate=10000, pair_delay=0.1,
                       retries=0)
    v = array("h", [0] * 64)
    i = array("h", [0] * 64)
    s.read_into(v, i)  # warm up
    micropython.heap_lock()
    try:
        s.read_into(v, i)
    finally:
        micropython.heap_unlock()
    # the locked read still sampled: it went on where the warm-up stopped
    assert list(v[:4]) == [2, 3, 1, 2] and list(i[:4]) == [4, 5, 4, 5]
