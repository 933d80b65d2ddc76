"""Metering front ends on the MicroPython unix port (compiled .mpy, as deployed):

- cost of one read() of each front end: driver alone (register file stub that answers at once)
  and with the register-level simulated chip behind a simulated bus;
- waveform samples processed per second, viper inner loop vs the portable loop;
- heap: front-end objects and buffers, bytes allocated by one read() of all front ends, and the
  peak, measured with the heap capped at 80 KB: all three driver types and two waveform
  front ends at once, more than any board loads (each board fits 64 KB).
"""

import os

from tools import build_mpy, mp
from tools.paths import BUILD, ROOT

DEVICE = r'''
import gc, time
from array import array
gc.collect()
from frontend import FrontEndError
from ade7953 import ADE7953, ADE7953SPI, ADE7953I2C
from atm90e32 import ATM90E32
from waveform import WaveformFrontEnd
gc.collect()
code_heap = gc.mem_alloc()

class Stub:
    # answers every register from a dict, instantly: isolates the driver's own cost
    def __init__(self, regs):
        self.regs = regs
    def read(self, reg, n):
        return self.regs.get(reg, 0)
    def write(self, reg, n, value):
        self.regs[reg] = value

class Pin:
    def value(self, v=None):
        return 1

class AtmStub:
    # SPI stub for the ATM90E32: reads answer from a dict, LastSPIData echoes the last write
    def __init__(self, regs):
        self.regs = regs
        self.last = 0
    def write_readinto(self, out, into):
        reg = ((out[0] & 3) << 8) | out[1]
        if out[0] & 0x80:
            v = self.last if reg == 0x78 else self.regs.get(reg, 0)
        else:
            v = (out[2] << 8) | out[3]
            self.regs[reg] = v
            self.last = v
        into[2] = v >> 8
        into[3] = v & 0xFF

class Replay:
    def __init__(self, v, i, rate):
        self.v = v; self.i = i; self.sample_rate = rate; self.bits = 12
    def read_into(self, v, i):
        sv = self.v; si = self.i
        for n in range(len(v)):
            v[n] = sv[n]; i[n] = si[n]

class Clock:
    def __init__(self):
        self.ms = 0
    def ticks_ms(self):
        self.ms += 1000
        return self.ms & 0x3FFFFFFF

def per_call(fn, n):
    t = time.ticks_us()
    for _ in range(n):
        fn()
    return time.ticks_diff(time.ticks_us(), t) / n

ade_regs = {0x102: 0x0004, 0x120: 0x30, 0x004: 0x40, 0x21C: 5980000, 0x10E: 4474,
            0x21A: 1000000, 0x21B: 400000, 0x212: 354200, 0x213: 70840, 0x10A: 32767,
            0x10B: 16383, 0x21E: 15000, 0x21F: 3000, 0x281: 0x400000, 0x280: 0x400000,
            0x282: 0x400000, 0x28C: 0x400000, 0x28E: 0x400000}
atm_regs = {0x00: 1, 0x33: 0x0185, 0xF8: 5000, 0xD9: 23000, 0xDA: 23000, 0xDB: 23000,
            0xDD: 10000, 0xDE: 4000, 0xDF: 2000, 0xB1: 109, 0xB2: 21, 0xB3: 10, 0xBD: 1000,
            0xBE: 500, 0xBF: 1000, 0x81: 12, 0x82: 3, 0x83: 1}
for k in range(3):
    atm_regs[0x61 + 4 * k] = 7305
    atm_regs[0x62 + 4 * k] = 27961

import math
N = 1000
vs = array("h", bytes(2 * N))
cs = array("h", bytes(2 * N))
for n in range(N):
    vs[n] = int(2048 + 1400 * math.sin(2 * math.pi * 50 * n / 4000))
    cs[n] = int(2048 + 600 * math.sin(2 * math.pi * 50 * n / 4000 - 0.5))
src = Replay(vs, cs, 4000)
ade_bus = Stub(ade_regs)
atm_bus = AtmStub(atm_regs)
pin = Pin()
clocks = (Clock(), Clock())
gc.collect()
h0 = gc.mem_alloc()
ade = ADE7953(ade_bus, "M1")
atm = ATM90E32(atm_bus, pin, "M2")
wf = WaveformFrontEnd(src, clocks[0], "W1", "A", 16.0, 1 / 4.3, 1 / 50.0)
fes = (ade, atm, wf)
for fe in fes:
    fe.read()
gc.collect()
objects = gc.mem_alloc() - h0
wf_py = WaveformFrontEnd(src, clocks[1], "W2", "A", 16.0, 1 / 4.3, 1 / 50.0, use_viper=False)

print("read_us ade7953 driver %.0f" % per_call(ade.read, 200))
print("read_us atm90e32 driver %.0f" % per_call(atm.read, 200))
print("read_us waveform viper %.0f" % per_call(wf.read, 20))
print("read_us waveform portable %.0f" % per_call(wf_py.read, 5))
for fe in (wf, wf_py):
    fe.samples = 0
    t = time.ticks_us()
    for _ in range(5):
        fe.read()
    dt = time.ticks_diff(time.ticks_us(), t)
    print("samples_per_s %s %.0f" % ("viper" if fe is wf else "portable", fe.samples * 1e6 / dt))

# heap: allocation of one read() of every front end, GC off so nothing is hidden
gc.collect()
gc.disable()
a = gc.mem_alloc()
for fe in fes:
    fe.read()
per_cycle = gc.mem_alloc() - a
gc.enable()
gc.collect()
print("heap code_bytes %d" % code_heap)
print("heap objects_bytes %d" % objects)
print("heap per_read_cycle_bytes %d" % per_cycle)
print("heap peak_bytes %d" % (objects + per_cycle))
print("heap free_after %d" % gc.mem_free())
'''

SIM = r'''
import time
from sim.clock import SimClock
from sim.load import Load
from sim.bus import SimSPI, SimI2C
from sim.ade7953_sim import ADE7953Sim
from sim.atm90e32_sim import ATM90E32Sim
from ade7953 import ADE7953, ADE7953SPI, ADE7953I2C
from atm90e32 import ATM90E32
clk = SimClock(0, 0)
s1 = ADE7953Sim(clk, [Load(10.0), Load(3.0, 0.5, "inductive")])
spi = SimSPI()
a = ADE7953(ADE7953SPI(spi, spi.cs_for(s1)), "M1")
s2 = ADE7953Sim(clk, [Load(10.0), Load(3.0, 0.5, "inductive")])
i2c = SimI2C(); i2c.attach(0x38, s2)
b = ADE7953(ADE7953I2C(i2c), "M2")
s3 = ATM90E32Sim(clk, [Load(10.0), Load(3.0), Load(1.0)])
spi3 = SimSPI()
c = ATM90E32(spi3, spi3.cs_for(s3), "M3")
for name, fe, bus in (("ade7953_spi", a, spi), ("ade7953_i2c", b, None), ("atm90e32_spi", c, spi3)):
    fe.read()
    n0 = bus.transfers if bus else 0
    t = time.ticks_us()
    for _ in range(100):
        clk.advance(1)
        fe.read()
    us = time.ticks_diff(time.ticks_us(), t) / 100
    n = (bus.transfers - n0) // 100 if bus else 0
    print("read_us %s +sim %.0f transfers %d" % (name, us, n))
'''


def _dirs():
    unix = os.path.join(BUILD, "unix")
    return tuple(os.path.join(unix, d) for d in ("lib", "firmware", "boards"))


def run():
    build_mpy.build("unix")
    out = mp.run(DEVICE, heap="80k", path_dirs=_dirs(), cwd=ROOT)
    sim = mp.run(SIM, heap="256k", path_dirs=_dirs(), cwd=ROOT)
    vals = {}
    for line in out.splitlines():
        parts = line.split()
        vals[" ".join(parts[:-1])] = float(parts[-1])
    print("one read() on the unix port, driver alone (register stub) vs with simulated chip+bus:")
    print("  %-22s %8.0f us" % ("ade7953 driver", vals["read_us ade7953 driver"]))
    print("  %-22s %8.0f us" % ("atm90e32 driver", vals["read_us atm90e32 driver"]))
    for line in sim.splitlines():
        p = line.split()
        print("  %-22s %8s us  (%s SPI transfers per read)" % (p[1] + " +sim", p[3], p[5])
              if p[5] != "0" else "  %-22s %8s us" % (p[1] + " +sim", p[3]))
    print("  %-22s %8.0f us  (%d-cycle window)" % ("waveform viper", vals["read_us waveform viper"],
                                                   10))
    print("  %-22s %8.0f us" % ("waveform portable", vals["read_us waveform portable"]))
    print("waveform samples (v,i pairs) per second: viper %.0f | portable %.0f  (x%.1f)"
          % (vals["samples_per_s viper"], vals["samples_per_s portable"],
             vals["samples_per_s viper"] / vals["samples_per_s portable"]))
    print("heap (80 KB cap, .mpy, all three driver types): front-end objects+buffers %d B, "
          "one read() of all three front ends allocates %d B, peak %d B (target < 16384 B); "
          "driver code loaded %d B"
          % (vals["heap objects_bytes"], vals["heap per_read_cycle_bytes"],
             vals["heap peak_bytes"], vals["heap code_bytes"]))


if __name__ == "__main__":
    run()
