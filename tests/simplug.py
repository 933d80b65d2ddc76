# A small metering plug on simulated hardware, for the meter, power-cut and calibration
# tests (runs on MicroPython): the real ADE7953 and ATM90E32 drivers on register-level
# simulators over a simulated SPI bus, the real store, ledger and meter.
#
#   p = SimPlug(state_dir, speed=20.0, checkpoint_s=10, gain_spread=0.0)
#   p.ledger.restore(); p.meter.read_once(); await p.meter.run()
#   p.true_uwh("M1/A") -> (import, export) TRUE energy since this process started
from ade7953 import ADE7953, ADE7953SPI
from atm90e32 import ATM90E32
from plug.ledger import EnergyLedger
from plug.meter import Meter
from plug.store import Store
from sim.ade7953_sim import ADE7953Sim
from sim.atm90e32_sim import ATM90E32Sim
from sim.bus import SimSPI
from sim.clock import SimClock
from sim.load import Load

START = 800000000  # plug seconds, 2025-05-09


def loads_m1():
    return [Load(5.0), Load(2.0, 0.8, "inductive")]


def loads_m2():
    return [Load(3.0), Load(1.0, 0.9, "capacitive"), Load(6.0, export=True)]


class SimPlug:
    def __init__(self, state_dir, speed=20.0, start=START, checkpoint_s=10, gain_spread=0.0,
                 noise_a=0.0, log=print, with_m2=True, max_buckets=24, phase_err_deg=None):
        # the chips are built with the clock held still (ADE7953Sim.power_on syncs before
        # its registers exist if sim time moved during its construction), then it runs
        self.clock = SimClock(start, 0)
        self.log = log
        self.store = Store(state_dir)
        self.chips = {"M1": ADE7953Sim(self.clock, loads_m1(), gain_spread=gain_spread,
                                       noise_a=noise_a, phase_err_deg=phase_err_deg)}
        spi = SimSPI()
        self.front_ends = [ADE7953(ADE7953SPI(spi, spi.cs_for(self.chips["M1"])), "M1")]
        if with_m2:
            self.chips["M2"] = ATM90E32Sim(self.clock, loads_m2(), gain_spread=gain_spread,
                                           noise_a=noise_a)
            self.front_ends.append(ATM90E32(spi, spi.cs_for(self.chips["M2"]), "M2"))
        self.clock.speed = speed
        cfg = {}
        for fe in self.front_ends:
            for c in fe.channel_codes:
                cfg[fe.device_code + "/" + c] = {"name": c, "max_current_a": 16.0, "account": 0}
        self.ledger = EnergyLedger(self.store, self.clock, cfg, log=log, max_buckets=max_buckets)
        self.meter = Meter(self.front_ends, self.ledger, self.clock, checkpoint_s=checkpoint_s,
                           log=log)

    def true_uwh(self, key):
        dev, ch = key.split("/")
        fe = self.meter.front_end(dev)
        return self.chips[dev].true_energy_uwh(fe.channel_codes.index(ch))
