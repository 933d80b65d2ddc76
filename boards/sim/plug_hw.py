# The virtual plug's metering hardware in one call, for board files and tests:
#   hw = build(clock)  ->  hw.front_ends (real drivers), hw.chips / hw.sources (simulators)
# Default layout: M1 = ADE7953 on SPI (channels A, B), M2 = ATM90E32 on SPI (A, B, C),
# M3 = ADE7953 on I2C (A, B), W1 = ADC waveform path (A). Every front end's device code and
# channel codes are given here, as a board file would.
from sim.bus import SimI2C, SimSPI
from sim.load import Load, Mains, fridge, pv_inverter


class SimHardware:
    def __init__(self):
        self.front_ends = []
        self.chips = {}  # device_code -> simulator (ADE7953Sim, ATM90E32Sim or WaveformSource)


def build(clock, mains=None, layout=("M1", "M2", "W1"), seed=1):
    from ade7953 import ADE7953, ADE7953I2C, ADE7953SPI
    from atm90e32 import ATM90E32
    from sim.ade7953_sim import ADE7953Sim
    from sim.atm90e32_sim import ATM90E32Sim

    mains = mains or Mains(230.0, 50.0, ((3, 0.03, 0.0), (5, 0.02, 0.0)))
    hw = SimHardware()
    spi = SimSPI()
    if "M1" in layout:
        sim = ADE7953Sim(clock, [Load(8.0), fridge()], mains, seed=seed)
        hw.chips["M1"] = sim
        hw.front_ends.append(ADE7953(ADE7953SPI(spi, spi.cs_for(sim)), "M1"))
    if "M2" in layout:
        sim = ATM90E32Sim(clock, [Load(4.0, 0.9, "inductive"), pv_inverter(),
                                  Load(0.5, 0.6, "capacitive")], mains, seed=seed + 1)
        hw.chips["M2"] = sim
        hw.front_ends.append(ATM90E32(spi, spi.cs_for(sim), "M2"))
    if "M3" in layout:
        i2c = SimI2C()
        sim = ADE7953Sim(clock, [Load(2.0), Load(0.0)], mains, seed=seed + 2)
        i2c.attach(0x38, sim)
        hw.chips["M3"] = sim
        hw.front_ends.append(ADE7953(ADE7953I2C(i2c), "M3"))
    if "W1" in layout:
        from sim.waveform_src import WaveformSource
        from waveform import WaveformFrontEnd
        src = WaveformSource(clock, Load(3.0, 0.8, "inductive"), mains, seed=seed + 3)
        hw.chips["W1"] = src
        hw.front_ends.append(WaveformFrontEnd(src, clock, "W1", "A", 16.0, 1 / 4.3, 1 / 50.0))
    return hw
