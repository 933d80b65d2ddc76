# Register-level ATM90E32AS on a simulated SPI bus (mode 3, 16-bit address then 16-bit data,
# bit 15 of the address = read).
#
# LastSPIData (0x78) holds the data word of the last transfer, which is how a driver checks
# its writes. Configuration and calibration registers (0x31..0x6F) only take writes while
# CfgRegAccEn (0x7F) is 0x55AA; SoftReset (0x70) = 0x789A resets every register. Metering runs
# while MeterEn (0x00) is 1. Energy accumulates from the load model as sim time passes into
# forward (APenergyX) and reverse (ANenergyX) 16-bit registers, 0.01 CF = 3125 uWh per LSB,
# cleared on read; Ugain/Igain (relative to the board's nominal values), PQGain
# (P * (1 + PQGain / 2^15)) and PhiX (sign bit 15, 0.02 deg/LSB) take effect on the readings.
# PoffsetX (0x41, 0x43, 0x45; two's complement in LSBs of the 32-bit Pmean:PmeanLSB, 0.00032 W,
# as ESPHome's calibrate_power_offset and CircuitSetup's CalculatePowerOffset write it) is added
# to the power the energy registers integrate and Pmean shows. IoffsetX/UoffsetX are not
# modelled (the driver leaves them at 0).
# Scaling: Urms 0.01 V, Irms 0.001 A, Pmean:PmeanLSB 0.00032 W, PFmean 0.001, Freq 0.01 Hz.
from sim.chip import SimMeterChip

E_LSB_PER_WS = 1.0 / (3.125 * 3.6)  # 3.125 mWh per LSB
_UWH_PER_LSB = 3125.0
_ACCESS_KEY = 0x55AA
_RESET_KEY = 0x789A
_PHI_LSB_DEG = 0.02
_P_LSB_W = 0.00032
_MMODE0_DEFAULT = 0x0087


class ATM90E32Sim(SimMeterChip):
    def __init__(self, clock, loads, mains=None, seed=9032, ugain_nominal=7305,
                 igain_nominal=27961, **kw):
        if not 1 <= len(loads) <= 3:
            raise ValueError("the ATM90E32 has three channels")
        while len(loads) < 3:
            loads = list(loads) + [None]
        from sim.load import Load
        loads = [ld if ld is not None else Load(0.0) for ld in loads]
        SimMeterChip.__init__(self, clock, loads, mains, seed, **kw)
        self.ugain_nominal = ugain_nominal
        self.igain_nominal = igain_nominal
        self.power_on()

    def power_on(self):
        if hasattr(self, "regs"):
            self.sync()  # energy up to the reset was counted with the old registers
        else:
            self._t = self.clock.monotonic()  # first power-on: nothing to count yet
        self.regs = {0x00: 0, 0x33: _MMODE0_DEFAULT, 0x34: 0, 0x7F: 0x6886}
        for k in range(3):
            self.regs[0x61 + 4 * k] = 0
            self.regs[0x62 + 4 * k] = 0
        self._ap = [0.0, 0.0, 0.0]
        self._an = [0.0, 0.0, 0.0]
        self._last = 0
        self._frame = bytearray(4)
        self._n = 0
        self.reads = 0
        self.writes_refused = 0

    def _metering(self):
        return self.regs.get(0x00, 0) == 1

    def _gains(self, k):
        r = self.regs
        vg = r.get(0x61 + 4 * k, 0) / self.ugain_nominal
        ig = r.get(0x62 + 4 * k, 0) / self.igain_nominal
        pq = r.get(0x47 + 2 * k, 0)
        if pq & 0x8000:
            pq -= 0x10000
        phi = r.get(0x48 + 2 * k, 0)
        corr = (phi & 0x3FF) * _PHI_LSB_DEG * (-1 if phi & 0x8000 else 1)
        return vg, ig, 1.0 + pq / 32768.0, corr

    def _offset_w(self, k):
        off = self.regs.get(0x41 + 2 * k, 0)
        return (off - 0x10000 if off & 0x8000 else off) * _P_LSB_W

    def _accumulate(self, k, energy_ws):
        lsb = energy_ws * E_LSB_PER_WS
        if lsb >= 0:
            self._ap[k] += lsb
        else:
            self._an[k] -= lsb

    def _take(self, acc, k):
        whole = int(acc[k])
        acc[k] -= whole
        if acc is self._ap:  # what the register measured and cleared, a wrap included
            self._handed(k, whole * _UWH_PER_LSB, 0.0, exp=False)
        else:
            self._handed(k, 0.0, whole * _UWH_PER_LSB, imp=False)
        return whole & 0xFFFF  # a 16-bit register: read it before it wraps

    def _value(self, reg):
        self.sync()
        r = self.regs
        on = self._metering()
        if 0x81 <= reg <= 0x83:
            return self._take(self._ap, reg - 0x81)
        if 0x85 <= reg <= 0x87:
            return self._take(self._an, reg - 0x85)
        if reg == 0x78:
            return self._last
        if not on and reg >= 0x80:
            return 0
        if 0xD9 <= reg <= 0xDB:
            return int(self.measured_vrms(reg - 0xD9) * 100 + 0.5) & 0xFFFF
        if 0xDD <= reg <= 0xDF:
            return int(self.measured_irms(reg - 0xDD) * 1000 + 0.5) & 0xFFFF
        if 0xB1 <= reg <= 0xB3:
            return (self._pmean(reg - 0xB1) >> 16) & 0xFFFF
        if 0xC1 <= reg <= 0xC3:
            return self._pmean(reg - 0xC1) & 0xFFFF
        if 0xBD <= reg <= 0xBF:
            pf = max(-1.0, min(1.0, self.measured_pf(reg - 0xBD)))
            return int(round(pf * 1000)) & 0xFFFF
        if reg == 0xF8:
            return int(self.mains.frequency * 100 + 0.5)
        return r.get(reg, 0)

    def _pmean(self, k):
        return int(round(self.measured_power(k) / _P_LSB_W)) & 0xFFFFFFFF

    def _write(self, reg, value):
        self.sync()
        if reg == 0x70:
            if value == _RESET_KEY:
                self.power_on()
            return
        if 0x31 <= reg <= 0x6F and self.regs.get(0x7F) != _ACCESS_KEY:
            self.writes_refused += 1
            return
        if reg >= 0x80 and reg != 0x7F:
            return  # measurement registers are read-only
        self.regs[reg] = value

    # -- SPI ---------------------------------------------------------------------------------
    def spi_begin(self):
        self._n = 0

    def spi_byte(self, b):
        n = self._n
        self._n = n + 1
        f = self._frame
        if n < 2:
            f[n] = b
            if n == 1 and f[0] & 0x80:
                reg = ((f[0] & 0x03) << 8) | f[1]
                v = self._value(reg)
                self.reads += 1
                if reg != 0x78:
                    self._last = v
                f[2] = v >> 8
                f[3] = v & 0xFF
            return 0
        if n < 4:
            if f[0] & 0x80:
                return f[n]
            f[n] = b
        return 0

    def spi_end(self):
        f = self._frame
        if self._n >= 4 and not f[0] & 0x80:
            reg = ((f[0] & 0x03) << 8) | f[1]
            v = (f[2] << 8) | f[3]
            self._last = v
            self._write(reg, v)
        self._n = 0
