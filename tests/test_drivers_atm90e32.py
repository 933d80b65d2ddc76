"""The ATM90E32 driver against its register-level simulator, on MicroPython (256 KB heap: the
simulator shares the interpreter; the driver's own heap is measured by bench_meter)."""

HEAP = "256k"

PRELUDE = """
from sim.clock import SimClock
from sim.load import Load, Mains
from sim.bus import SimSPI
from sim.atm90e32_sim import ATM90E32Sim
from atm90e32 import ATM90E32
from frontend import FrontEndError
clk = SimClock(0, speed=0)
sim = ATM90E32Sim(clk, [Load(10.0), Load(3.0, 0.8, "capacitive"), Load(5.0, export=True)])
spi = SimSPI()
fe = ATM90E32(spi, spi.cs_for(sim), "M3")
def span(seconds, step=10):
    tot = [[0, 0] for _ in fe.channel_codes]
    t = 0
    while t < seconds:
        clk.advance(step)
        t += step
        for k, r in enumerate(fe.read()):
            tot[k][0] += r.import_uwh
            tot[k][1] += r.export_uwh
    return tot
"""


def run(micropython, code):
    return micropython.eval(PRELUDE + code, heap=HEAP)


def test_setup_registers_and_readings(micropython):
    got = run(micropython, """
rs = fe.read()
print(([sim.regs[a] for a in (0x00, 0x07, 0x33, 0x34, 0x35, 0x36, 0x38, 0x61, 0x62, 0x7F)],
       [(r.channel_code, r.voltage, r.current, r.power, r.pf, r.frequency) for r in rs]))
""")
    regs, rows = got
    assert regs == [1, 0x0A55, 0x0185, 0, 0x0AFC, 0x0AEC, 0x00BC, 7305, 27961, 0]  # locked again
    (_, va, ia, pa, pfa, fa), (_, vb, ib, pb, pfb, _), (_, vc, ic, pc, pfc, _) = rows
    assert all(abs(v / 230 - 1) < 0.06 for v in (va, vb, vc))
    assert abs(ia / 10 - 1) < 0.06 and abs(ib / 3 - 1) < 0.06 and abs(ic / 5 - 1) < 0.06
    assert abs(pa / 2300 - 1) < 0.1 and abs(pb / 552 - 1) < 0.1 and abs(pc / -1150 - 1) < 0.1
    assert abs(pfa - 1) < 0.002 and abs(pfb - 0.8) < 0.002 and pfc < -0.99
    assert abs(fa - 50) < 0.01


def test_forward_and_reverse_energy_clear_on_read(micropython):
    got = run(micropython, """
fe.read()
t0 = [sim.true_energy_uwh(k) for k in range(3)]
tot = span(600)
t1 = [sim.true_energy_uwh(k) for k in range(3)]
clk.advance(0.001)
again = [r.import_uwh + r.export_uwh for r in fe.read()]
print((tot, [(t1[k][0] - t0[k][0], t1[k][1] - t0[k][1]) for k in range(3)], again))
""")
    tot, true, again = got
    assert tot[0][1] == 0 and tot[1][1] == 0 and tot[2][0] == 0
    assert abs(tot[0][0] / true[0][0] - 1) < 0.1
    assert abs(tot[1][0] / true[1][0] - 1) < 0.1
    assert abs(tot[2][1] / true[2][1] - 1) < 0.1
    assert max(again) <= 3125  # cleared on read: at most the LSB that just completed


def test_calibration_registers_take_effect(micropython):
    got = run(micropython, """
fe.read(); clk.advance(60); r0 = [(r.voltage, r.current, r.power) for r in fe.read()]
clk.advance(60); e0 = fe.read()[0].import_uwh
fe.load_calibration({"A": {"v_gain": 1.03, "i_gain": 0.97, "p_gain": 1.04},
                     "B": {"phase_deg": -0.3}})
clk.advance(60); fe.read(); clk.advance(60)
r1 = [(r.voltage, r.current, r.power) for r in fe.read()]
e1 = fe.readings[0].import_uwh
print((r0, r1, e0, e1, sim.regs[0x61], sim.regs[0x62], sim.regs[0x47], sim.regs[0x4A],
       sim.regs[0x7F], sim.writes_refused))
""")
    r0, r1, e0, e1, ugain, igain, pqgain, phib, access, refused = got
    assert ugain == round(7305 * 1.03) and igain == round(27961 * 0.97)
    assert pqgain == round((1.04 / (1.03 * 0.97) - 1) * 32768)
    assert phib == 0x8000 | 15  # sign and magnitude, 0.02 degree per LSB
    assert access == 0 and refused == 0  # opened for the write, locked again
    assert abs(r1[0][0] / r0[0][0] - 1.03) < 2e-4
    assert abs(r1[0][1] / r0[0][1] - 0.97) < 2e-3
    assert abs(r1[0][2] / r0[0][2] - 1.04) < 1e-3
    assert abs(e1 / e0 - 1.04) < 2e-3


def test_write_not_confirmed_by_lastspidata_raises(micropython):
    got = run(micropython, """
class NoisyMOSI:
    # a bus whose MOSI line flips bit 0 of every data byte written
    def __init__(self, spi):
        self.spi = spi
        self.on = False
    def write_readinto(self, out, into):
        if self.on and not out[0] & 0x80:
            out = bytearray(out)
            out[3] ^= 1
        self.spi.write_readinto(out, into)
noisy = NoisyMOSI(spi)
fe2 = ATM90E32(noisy, spi.cs_for(sim), "M4")
fe2.read()
noisy.on = True
try:
    fe2.load_calibration({"A": {"i_gain": 1.01}})
    print("accepted")
except FrontEndError as e:
    print(repr(str(e)))
""")
    assert "not confirmed" in got and "LastSPIData" in got and "M4" in got


def test_chip_that_stops_answering_and_recovery(micropython):
    got = run(micropython, """
sim2 = ATM90E32Sim(clk, [Load(2.0)], seed=3)
spi2 = SimSPI()
fe2 = ATM90E32(spi2, spi2.cs_for(sim2), "M5", channel_codes=("X",))
fe.read(); fe2.read()
out = []
for mode in ("ff", "00", "oserror"):
    sim.fail(mode)
    clk.advance(10)
    try:
        fe.read(); out.append("no error")
    except FrontEndError as e:
        out.append(str(e))
    out.append(fe2.read()[0].import_uwh > 0)
sim.fail(None)
clk.advance(10)
r = fe.read()
kept = r[0].import_uwh
sim.power_on()  # brown-out: the chip forgets its setup
clk.advance(10)
try:
    fe.read(); after_reset = "no error"
except FrontEndError as e:
    after_reset = str(e)
clk.advance(10)
r = fe.read()
print((out, kept, sim.channels[0].true_import_uwh, after_reset, r[0].current > 9, sim.regs[0x61]))
""")
    out, kept, true_uwh, after_reset, current_back, ugain = got
    assert "0xFFFF" in out[0] and "0x0000" in out[2] and "SPI error" in out[4]
    assert out[1] is True and out[3] is True and out[5] is True
    assert 0.5 < kept / (true_uwh * 40 / 60) < 1.5  # outage energy kept by the chip
    assert "MeterEn" in after_reset and current_back and ugain == 7305


def test_bad_arguments_are_refused(micropython):
    got = run(micropython, """
out = []
for kw in ({"channel_codes": ("A", "B", "C", "D")}, {"line_freq": 55}, {"ugain": 0},
           {"pga": 0x100}):
    try:
        ATM90E32(spi, spi.cs_for(sim), **kw); out.append("accepted")
    except ValueError as e:
        out.append(str(e))
print(out)
""")
    assert len(got) == 4 and "accepted" not in got


def test_no_load_creep_is_stopped_by_the_power_offset_registers(micropython):
    # nothing plugged in: the chip's own power offset meters energy (creep) until the no-load
    # power read goes into PoffsetX; a rebooted plug writes the offsets it is given again
    got = run(micropython, """
for k in range(3):
    sim.set_load(k, Load(0.0))
fe.read()
before = span(3600)
idle = [r.power for r in fe.readings]
for r in fe.readings:
    fe.set_power_offset(r.channel_code, r.power)
after = span(3600)
saved = list(fe.p_offsets)
out = []
for code, bad in (("A", 50.0), ("A", "0.1"), ("A", True), ("D", 0.01)):
    try:
        fe.set_power_offset(code, bad); out.append("accepted")
    except ValueError as e:
        out.append(str(e))
unchanged = fe.p_offsets == saved
sim.power_on()  # power cut: the chip forgets its registers
fe2 = ATM90E32(spi, spi.cs_for(sim), "M3")
for k, code in enumerate(fe2.channel_codes):
    fe2.set_power_offset(code, saved[k])
fe2.read()
fe = fe2
again = span(3600)
print((before, idle, after, saved, [sim.regs[0x41 + 2 * k] for k in range(3)], out, unchanged,
       again))
""")
    before, idle, after, p_off, regs, refused, unchanged, again = got
    creep = [b[0] + b[1] for b in before]
    assert min(creep) >= 3125 and sum(creep) > 40000  # some mWh an hour: a few 0.01 W
    assert p_off == idle
    assert regs == [-round(p / 0.00032) & 0xFFFF for p in p_off]
    for tot in (after, again):  # under one 3.125 mWh register LSB in an hour
        assert all(t[0] + t[1] < 3125 for t in tot), tot
    assert "beyond the PoffsetX register" in refused[0] and "must be a number" in refused[1]
    assert "must be a number" in refused[2] and refused[3] != "accepted"
    assert unchanged
