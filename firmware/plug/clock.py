# Plug time: whole seconds since 2000-01-01 UTC, the ESP32's own epoch.
# Every timestamp the plug records uses it, so times stay small ints on the ESP32
# (Unix seconds are past 2**30). Outside sources (rate APIs, block times) are
# converted once, at the boundary, with from_unix().
import time

from micropython import const

UNIX_2000 = const(946684800)  # Unix seconds at 2000-01-01T00:00:00Z

# The unix port and CPython count from 1970, the ESP32 from 2000.
_OFFSET = UNIX_2000 if time.gmtime(0)[0] == 1970 else 0


def from_unix(unix_seconds):
    return int(unix_seconds) - UNIX_2000


def iso_utc(t):
    """Plug time as ISO-8601 UTC text: "2026-12-07T10:34:27Z"."""
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % time.gmtime(t + _OFFSET)[:6]


class SystemClock:
    """The board's real-time clock (set from NTP on the plug)."""

    def time(self):
        return int(time.time()) - _OFFSET

    def ticks_ms(self):
        return time.ticks_ms()
