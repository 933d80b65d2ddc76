"""The simulated hardware itself: clock, load model, and the whole virtual plug's front ends."""

HEAP = "256k"


def test_sim_clock_runs_fast_or_stepped(micropython):
    got = micropython.eval("""
import time
from sim.clock import SimClock
c = SimClock(1000, speed=0)
a = c.time(); c.advance(90.5); b = c.time(); m = c.monotonic()
f = SimClock(0, speed=1000)
time.sleep_ms(50)
print((a, b, m, f.monotonic() > 30, f.ticks_ms() > 30000))
""", heap=HEAP)
    assert got == (1000, 1090, 90.5, True, True)


def test_load_model_energy_is_exact(micropython):
    got = micropython.eval("""
from sim.load import Load, Mains, fridge
m = Mains(230.0, 50.0, ((3, 0.05, 0.0),))
r = Load(10.0)
l = Load(10.0, 0.5, "inductive")
c = Load(10.0, 0.8, "capacitive", harmonics=((3, 0.3, 0.0),))
f = fridge()
x = Load(5.0, export=True)
print((r.power(m), l.power(m), c.power(m), f.on_seconds(0, 2400), f.on_seconds(600, 1200),
       x.power(m), m.vrms()))
""", heap=HEAP)
    pr, pl, pc, fon, fon2, px, vrms = got
    assert abs(pr - 2300) < 1e-6 and abs(pl - 1150) < 1e-6
    i1 = 10 / (1 + 0.09) ** 0.5
    assert abs(pc - (230 * i1 * 0.8 + 230 * 0.05 * i1 * 0.3)) < 1e-6  # harmonic power counts
    assert fon == 900 and fon2 == 300
    assert abs(px + 1150) < 1e-6
    assert abs(vrms - 230 * (1 + 0.05 ** 2) ** 0.5) < 1e-9


def test_cycling_fridge_energy_metered_over_an_hour(micropython):
    got = micropython.eval("""
from sim.clock import SimClock
from sim.load import fridge, Mains
from sim.bus import SimSPI
from sim.ade7953_sim import ADE7953Sim
from ade7953 import ADE7953, ADE7953SPI
clk = SimClock(0, 0)
sim = ADE7953Sim(clk, [fridge(), fridge(current=0.0)], Mains(), gain_spread=0.0, p_offset_w=0.0)
spi = SimSPI()
fe = ADE7953(ADE7953SPI(spi, spi.cs_for(sim)), "M1")
fe.read()
tot = 0
on = 0
for _ in range(360):
    clk.advance(10)
    r = fe.read()[0]
    tot += r.import_uwh
    on += r.current > 0.5
print((tot, sim.true_energy_uwh(0)[0], on))
""", heap=HEAP)
    tot, true, on_reads = got
    assert abs(tot / true - 1) < 1e-4
    assert 178 <= on_reads <= 181  # 15 min on, 25 off: on 0-15 and 40-55 min of the hour


def test_virtual_plug_hardware_reads_every_front_end(micropython):
    got = micropython.eval("""
from sim.clock import SimClock
from sim.plug_hw import build
clk = SimClock(0, 0)
hw = build(clk, layout=("M1", "M2", "M3", "W1"))
for fe in hw.front_ends:
    fe.read()
clk.advance(10)
out = []
for fe in hw.front_ends:
    for r in fe.read():
        out.append("%s/%s" % (fe.device_code, r.channel_code))
print(out)
""", heap=HEAP)
    assert got == ["M1/A", "M1/B", "M2/A", "M2/B", "M2/C", "M3/A", "M3/B", "W1/A"]
