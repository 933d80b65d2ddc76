# Simulated time for the virtual plug. Sim time runs `speed` times faster than real time and
# can be stepped by hand with advance(); with speed=0 it only moves when advanced, which makes
# tests exact and as fast as the code under test.
import time

_EPOCH = 0


def _real_ms():
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms()
    return int(time.monotonic() * 1000)


def _real_diff(a, b):
    if hasattr(time, "ticks_diff"):
        return time.ticks_diff(a, b)
    return a - b


class SimClock:
    """time() -> plug seconds (since 2000-01-01), monotonic() -> float sim seconds,
    ticks_ms() -> sim milliseconds wrapping at 2**30 like time.ticks_ms()."""

    def __init__(self, start_plug_seconds=0, speed=1.0):
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self.start = int(start_plug_seconds)
        self.speed = speed
        self._stepped = 0.0
        self._real0 = _real_ms()
        self._real_s = 0.0

    def _real_elapsed(self):
        if not self.speed:
            return 0.0
        # accumulate in steps so a long run never overflows ticks_diff's half period
        now = _real_ms()
        self._real_s += _real_diff(now, self._real0) / 1000.0
        self._real0 = now
        return self._real_s * self.speed

    def monotonic(self):
        return self._stepped + self._real_elapsed()

    def time(self):
        return self.start + int(self.monotonic())

    def ticks_ms(self):
        return int(self.monotonic() * 1000) & 0x3FFFFFFF

    def advance(self, seconds):
        if seconds < 0:
            raise ValueError("sim time does not go backwards")
        self._stepped += seconds

    def sleep(self, seconds):
        """Wait `seconds` of sim time: stepped when speed is 0, otherwise real sleep / speed."""
        if self.speed:
            time.sleep(seconds / self.speed)
        else:
            self.advance(seconds)
