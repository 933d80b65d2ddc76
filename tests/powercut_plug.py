# The metering process of the power-cut test (tests/test_powercut_meter.py), on MicroPython:
# sim front ends + ledger + meter with a fast sim clock, run until SIGKILLed (or SIGINT for
# a clean stop). argv (through the POWERCUT env var): state_dir speed checkpoint_s start.
# Prints, one line each, flushed by the unix port as it goes:
#   boot <generation> <totals>            restored totals
#   m <sim_s> <totals> <truths>           after every read
#   c-begin <totals> / c <generation> <totals>   around every checkpoint (it may come
#                                         inside a read, before that read's "m" line)
#   w / r                                 slow flash: before the second half of a write,
#                                         before a rename
#   stopped <totals>                      after a clean stop
# <totals> is "imp:exp,imp:exp,..." in key order; <truths> the same for the TRUE energy
# of this process's simulated loads (floats, uWh), as the chip sampled it at the instant
# of the read's energy register access (true_energy_at_read_uwh): exact however the host
# stalls the process. The chips here have no power offset (creep), so what their energy
# registers hand out is exactly the delivered energy: a total above the truth is energy
# the plug invented.
import asyncio
import os
import sys
import time

import plug.store
from simplug import SimPlug


class SlowFile:
    """Flash takes milliseconds per write: each write goes down in two halves, 4 ms apart,
    so a power cut can land inside one and leave a torn file."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        half = len(data) // 2
        self.f.write(data[:half])
        self.f.flush()
        say("w")
        time.sleep_ms(4)
        self.f.write(data[half:])


class SlowOs:
    def __getattr__(self, name):
        return getattr(os, name)

    def rename(self, a, b):
        say("r")
        time.sleep_ms(4)
        os.rename(a, b)


def slow_open(path, mode="r"):
    f = open(path, mode)
    return SlowFile(f) if "w" in mode else f


def say(*parts):
    """One line in one write: a clean stop's KeyboardInterrupt can abort a blocked write
    (EINTR) but never leaves half a line for the next one to continue."""
    sys.stdout.write(" ".join(parts) + "\n")


plug.store.open = slow_open  # the store module's own globals: flash timing, not logic
plug.store.os = SlowOs()

args = os.getenv("POWERCUT").split()
state_dir, speed, checkpoint_s, start = args[0], float(args[1]), int(args[2]), int(args[3])
plug = SimPlug(state_dir, speed=speed, start=start, checkpoint_s=checkpoint_s,
               log=lambda msg: say("log", msg))
ledger = plug.ledger
meter = plug.meter
keys = meter.keys()
for chip in plug.chips.values():  # before their first sync: no creep from sim time 0 on
    for c in chip.channels:
        c.p_offset = 0.0


def totals():
    out = []
    for k in keys:
        imp, exp = ledger.totals(k)
        out.append("%d:%d" % (imp, exp))
    return ",".join(out)


def truths():
    out = []
    for k in keys:
        dev, ch = k.split("/")
        fe = meter.front_end(dev)
        imp, exp = plug.chips[dev].true_energy_at_read_uwh(fe.channel_codes.index(ch))
        out.append("%.1f:%.1f" % (imp, exp))
    return ",".join(out)


say("boot", str(ledger.restore()), totals())
_checkpoint = ledger.checkpoint
_read_once = meter.read_once


def checkpoint():
    say("c-begin", totals())
    gen = _checkpoint()
    say("c", str(gen), totals())
    return gen


def read_once():
    n = _read_once()
    say("m", "%.3f" % plug.clock.monotonic(), totals(), truths())
    return n


ledger.checkpoint = checkpoint
meter.read_once = read_once
try:
    asyncio.run(meter.run())
except KeyboardInterrupt:  # clean stop: what main.py does
    meter.shutdown()
say("stopped", totals())
