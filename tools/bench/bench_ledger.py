"""Energy ledger and metering loop on the MicroPython unix port (64 KB heap): cost of one
ledger add beside a bare integer add, one meter pass over 6 channels, a checkpoint beside a
store.save of a tiny dict (the file system's own cost), and the heap the metering loop
holds and allocates."""

from tools import mp

CODE = r"""
import gc, time
from micropython import const
from frontend import ChannelReading
from plug.ledger import EnergyLedger
from plug.meter import Meter
from plug.store import Store

class Clock:
    t = 800000000
    m = 0.0
    def time(self):
        return self.t
    def monotonic(self):
        return self.m

class FE:
    def __init__(self, code, chans):
        self.device_code = code
        self.channel_codes = chans
        self.max_current = 16.0
        self.r = [ChannelReading(c) for c in chans]
        for x in self.r:
            x.voltage = 230.0; x.current = 5.0; x.power = 1150.0; x.pf = 1.0; x.frequency = 50.0
            x.import_uwh = 319444
    def read(self):
        return self.r

gc.collect(); base = gc.mem_alloc()
clock = Clock()
store = Store(ROOT)
fes = [FE("M1", ("A", "B", "C")), FE("M2", ("A", "B", "C"))]
led = EnergyLedger(store, clock, {}, log=lambda m: None)
meter = Meter(fes, led, clock, log=lambda m: None)
led.restore()
gc.collect(); resident = gc.mem_alloc() - base

N = 2000
t0 = time.ticks_us()
for i in range(N):
    clock.t += 1; clock.m += 1.0
    led.add("M1/A", 319444, 0, clock.t, 1.0)
t_add = time.ticks_diff(time.ticks_us(), t0) / N
tot = 10 ** 13
t0 = time.ticks_us()
for i in range(N):
    tot += 319444
t_int = time.ticks_diff(time.ticks_us(), t0) / N

for i in range(60 * 30):  # 30 minutes unbilled: full buckets everywhere
    clock.t += 1; clock.m += 1.0
    meter.read_once()
t0 = time.ticks_us()
for i in range(N // 4):
    clock.t += 1; clock.m += 1.0
    meter.read_once()
t_pass = time.ticks_diff(time.ticks_us(), t0) / (N // 4)
gc.collect(); gc.disable(); a = gc.mem_alloc()
clock.t += 1; clock.m += 1.0
meter.read_once()
alloc_pass = gc.mem_alloc() - a
gc.enable()

led.checkpoint()
gc.collect(); gc.disable(); a = gc.mem_alloc()
t0 = time.ticks_us()
led.checkpoint()
t_ck = time.ticks_diff(time.ticks_us(), t0)
alloc_ck = gc.mem_alloc() - a
gc.enable(); gc.collect()
import os
size = os.stat(ROOT + "/ledger.%d" % (store.generation("ledger") & 1))[6]
t0 = time.ticks_us()
store.save("peer", {"v": 1})
t_raw = time.ticks_diff(time.ticks_us(), t0)
print("ledger add: %.1f us (bare bigint add %.2f us)" % (t_add, t_int))
print("meter pass, 2 front ends x 3 channels: %.1f us, allocates %d B (all short-lived)"
      % (t_pass, alloc_pass))
print("checkpoint, 6 channels x 24 buckets: %d us, file %d B, allocates %d B in all, in "
      "small pieces, each garbage at once (its JSON written a bucket at a time; "
      "store.save of a tiny dict: %d us)" % (t_ck, size, alloc_ck, t_raw))
print("metering loop heap: %d B resident (meter + ledger, 6 channels; x64 unix port, ~half on "
      "the ESP32)" % resident)
"""


def run():
    import os
    import tempfile

    from tools import build_mpy
    from tools.paths import BUILD, DEVICE_DIRS

    build_mpy.build("unix")  # the plug runs .mpy: 64 KB cannot compile the modules
    dirs = tuple(os.path.join(BUILD, "unix", os.path.basename(d)) for d in DEVICE_DIRS)
    with tempfile.TemporaryDirectory() as d:
        # 128k: the checkpoint's pieces are counted with the collector off
        out = mp.run("ROOT = %r\n" % d + CODE, heap="128k", path_dirs=dirs)
    print(out.rstrip())


if __name__ == "__main__":
    run()
