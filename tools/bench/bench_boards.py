"""Real boards and the ESP32 ADC source, on the MicroPython unix port:

- the ADC1 sampling loop (lib/esp32_adc.py): its own cost per (v, i) pair with free ADC
  reads, beside a bare loop without pacing, and the rate it holds when paced at 2000
  pairs/s; bytes it allocates per burst;
- heap taken by each real board's front ends, built by the board file on the fake ESP32
  buses of tests/fakehw (simulated chips created and measured apart).
Figures are for this machine's unix port: the ESP32 is roughly 10-20x slower per bytecode.
"""

import os

from tools import mp
from tools.paths import BOARDS, FIRMWARE, LIB, ROOT

FAKEHW = os.path.join(ROOT, "tests", "fakehw")

LOOP = r'''
import gc, time
from array import array
from esp32_adc import ESP32ADCSource

class Free:
    def read(self):
        return 2048

class Jump:
    # a microsecond clock that is always ahead: the loop never waits (its own cost only)
    def __init__(self):
        self.t = 0
    def us(self):
        self.t = time.ticks_add(self.t, 100000)
        return self.t

N = 2000
v = array("h", bytes(2 * N))
i = array("h", bytes(2 * N))
j = Jump()
src = ESP32ADCSource(Free(), Free(), sample_rate=10000, pair_delay=0.1, retries=0,
                     ticks_us=j.us)
t0 = time.ticks_us()
src.read_into(v, i)
own = time.ticks_diff(time.ticks_us(), t0)

a = Free()
b = Free()
rv = a.read
ri = b.read
t0 = time.ticks_us()
for n in range(N):
    v[n] = rv()
    i[n] = ri()
bare = time.ticks_diff(time.ticks_us(), t0)

paced = ESP32ADCSource(Free(), Free(), sample_rate=2000, pair_delay=0.1, retries=0)
M = 1000
pv = array("h", bytes(2 * M))
pi = array("h", bytes(2 * M))
gc.collect()
before = gc.mem_alloc()
t0 = time.ticks_us()
paced.read_into(pv, pi)
took = time.ticks_diff(time.ticks_us(), t0)
alloc = gc.mem_alloc() - before
print("adc loop: %.2f us/pair own cost (%d pairs/s max), bare loop %.2f us/pair"
      % (own / N, 1000000 * N // own, bare / N))
print("adc loop paced at 2000 pairs/s: %.0f pairs/s held, %d stalls (host scheduling) in %d"
      " pairs, %d bytes allocated" % (M * 1e6 / took, paced.late, M, alloc))
'''

BOARD = r'''
import gc, machine
from sim.clock import SimClock
from sim.load import Load, Mains
clk = SimClock(0, 0)
import ade7953, atm90e32, waveform, esp32_adc, esp32_board
NAME = %r
if NAME == "shelly_ade7953":
    from sim.ade7953_sim import ADE7953Sim
    for cs, seed in ((0, 1), (15, 2)):
        machine.hw.spi_chip(ADE7953Sim(clk, [Load(5.0), Load(0.0)], seed=seed), cs=cs,
                            sck=14, mosi=13, miso=12)
elif NAME == "circuitsetup_6ch":
    from sim.atm90e32_sim import ATM90E32Sim
    for cs, seed in ((5, 1), (4, 2)):
        machine.hw.spi_chip(ATM90E32Sim(clk, [Load(5.0)], seed=seed, igain_nominal=27518),
                            cs=cs, sck=18, mosi=23, miso=19)
else:
    from sim.waveform_src import WaveformSource
    srcs = dict((p, WaveformSource(clk, Load(5.0), sample_rate=2000, v_counts_per_volt=5.15,
                                   i_counts_per_amp=41.4, pair_delay=0.1)) for p in (35, 36, 39))
    machine.hw.adc_waveform(clk, 34, srcs)
board = __import__("board_" + NAME)
gc.collect()
before = gc.mem_alloc()
fes = board.front_ends(clk)
gc.collect()
built = gc.mem_alloc() - before
clk.advance(1)
for fe in fes:
    fe.read()
gc.collect()
chans = sum(len(fe.channel_codes) for fe in fes)
print("board %%-16s %%d front ends, %%d channels: %%d bytes of front ends and buffers"
      %% (NAME, len(fes), chans, built))
'''


def run():
    dirs = (LIB, FIRMWARE, BOARDS)
    print(mp.run(LOOP, heap="256k", path_dirs=dirs).rstrip())
    for name in ("shelly_ade7953", "circuitsetup_6ch", "esp32_ct_adc"):
        print(mp.run(BOARD % name, heap="256k", path_dirs=(FAKEHW,) + dirs,
                     cwd=FAKEHW).rstrip())


if __name__ == "__main__":
    run()
