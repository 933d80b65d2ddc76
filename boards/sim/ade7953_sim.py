# Register-level ADE7953 on a simulated SPI or I2C bus.
#
# Answers transfers as the data sheet describes: 8/16/24/32-bit registers selected by address
# range (0x0xx/0x1xx/0x2xx/0x3xx, 32-bit twins of the 24-bit registers sign- or zero-extended),
# SPI frames addr_hi, addr_lo, 0x80 (read) / 0x00 (write), data MSB first; I2C at address 0x38.
# Energy accumulates in AENERGYA/B from the load model as sim time passes (24-bit signed,
# wrapping, read-with-reset when LCYCMODE bit 6 is set); the gain registers (AVGAIN, AIGAIN,
# AWGAIN, BIGAIN, BWGAIN, PGA_x) and PHCALA/B take effect on all readings; AWATTOS/BWATTOS
# (0x289/0x295, signed 24 bits, 1 LSB = 1/512 AWATT LSB: data sheet "Power Offsets") add to the
# active power that AWATT shows and the energy accumulators integrate; register 0x120 only
# accepts a write right after 0xAD went to 0xFE. Board scaling as the driver's defaults:
# 26000 LSB/V, 100000 LSB/A, 154 LSB/W, 154^2 energy LSB/Wh. A seeded factory gain error of a
# few percent per channel stands in for resistor tolerances.
from sim.chip import SimMeterChip

V_LSB = 26000.0
I_LSB = 100000.0
W_LSB = 154.0
E_LSB_PER_WS = 154.0 * 154.0 / 3600.0
_UWH_PER_LSB = 1.0 / (E_LSB_PER_WS * 0.0036)  # 1e6 / 154^2
_PGA = (1, 2, 4, 8, 16, 22, 22, 22)
_GAIN_ONE = 0x400000
_PHCAL_LSB_DEG = 360.0 * 50 / 893850

_DEFAULTS = {
    0x004: 0x40, 0x007: 0, 0x008: 0, 0x009: 0, 0x0FE: 0, 0x702: 0x80,
    0x102: 0x8004, 0x108: 0, 0x109: 0, 0x120: 0,
    0x280: _GAIN_ONE, 0x281: _GAIN_ONE, 0x282: _GAIN_ONE, 0x28C: _GAIN_ONE,
    0x28D: _GAIN_ONE, 0x28E: _GAIN_ONE, 0x201: 0, 0x203: 0xE419,
}
_SIGNED = (0x212, 0x213, 0x21E, 0x21F, 0x216, 0x217, 0x218, 0x289, 0x295)
_READ_ONLY = (0x10A, 0x10B, 0x10E, 0x212, 0x213, 0x21A, 0x21B, 0x21C, 0x21E, 0x21F, 0x702,
              0x0FD, 0x0FF, 0x1FE, 0x1FF, 0x2FF)


def _size(reg):
    top = reg >> 8
    return 4 if top == 3 else 3 if top == 2 else 2 if top == 1 else 1


class ADE7953Sim(SimMeterChip):
    """Two channels (A, B). Give it to SimSPI (cs = spi.cs_for(chip)) or SimI2C.attach(0x38)."""

    def __init__(self, clock, loads, mains=None, seed=7953, **kw):
        if len(loads) != 2:
            raise ValueError("the ADE7953 has two current channels")
        SimMeterChip.__init__(self, clock, loads, mains, seed, **kw)
        self.power_on()

    def power_on(self):
        """Power-on reset: registers to their defaults, accumulators cleared."""
        if hasattr(self, "regs"):
            self.sync()  # energy up to the reset was counted with the old registers
        else:
            self._t = self.clock.monotonic()  # first power-on: nothing to count yet
        self.regs = dict(_DEFAULTS)
        self._acc = [0.0, 0.0]  # energy accumulators incl. the fraction below one LSB
        self._real = [0.0, 0.0]  # the same without the 24-bit wrap: what they measured
        self._unlocked = False
        self._frame = bytearray(8)
        self._n = 0
        self.reads = 0

    # -- gains from registers --------------------------------------------------------------
    def _gains(self, k):
        r = self.regs
        vg = r[0x281] / _GAIN_ONE * _PGA[r[0x007] & 7]
        if k == 0:
            ig = r[0x280] / _GAIN_ONE * _PGA[r[0x008] & 7]
            pg = r[0x282] / _GAIN_ONE
            ph = r[0x108]
        else:
            ig = r[0x28C] / _GAIN_ONE * _PGA[r[0x009] & 7]
            pg = r[0x28E] / _GAIN_ONE
            ph = r[0x109]
        corr = (ph & 0x1FF) * _PHCAL_LSB_DEG * (-1 if ph & 0x200 else 1)
        return vg, ig, pg, corr

    def _offset_w(self, k):
        off = self.regs.get(0x295 if k else 0x289, 0)
        if off & 0x800000:
            off -= 0x1000000
        return off / 512.0 / W_LSB

    def _accumulate(self, k, energy_ws):
        self._real[k] += energy_ws * E_LSB_PER_WS
        a = self._acc[k] + energy_ws * E_LSB_PER_WS
        # the 24-bit signed accumulator wraps (the chip flags AEOF/AEHF; energy is lost)
        if a >= 0x800000:
            a -= 0x1000000
        elif a < -0x800000:
            a += 0x1000000
        self._acc[k] = a

    # -- register file ---------------------------------------------------------------------
    def _value(self, reg):
        """Unsigned register contents as the chip would shift them out."""
        self.sync()
        base = reg - 0x100 if reg >> 8 == 3 else reg
        r = self.regs
        if base in (0x21A, 0x21B, 0x21C, 0x212, 0x213, 0x21E, 0x21F, 0x10A, 0x10B, 0x10E):
            v = self._measure(base)
        elif base == 0x0FD:
            v = r.get(0x0FD, 0)
        else:
            v = r.get(base, 0)
        n = _size(reg)
        if n == 4 and base in _SIGNED and v & 0x800000:
            v |= 0xFF000000
        return v & ((1 << (8 * n)) - 1)

    def _measure(self, base):
        k = 1 if base in (0x21B, 0x213, 0x21F, 0x10B) else 0
        if base == 0x21C:
            return int(self.measured_vrms(0) * V_LSB + 0.5) & 0xFFFFFF
        if base in (0x21A, 0x21B):
            return int(self.measured_irms(k) * I_LSB + 0.5) & 0xFFFFFF
        if base in (0x212, 0x213):
            return int(round(self.measured_power(k) * W_LSB)) & 0xFFFFFF
        if base in (0x10A, 0x10B):
            pf = max(-1.0, min(1.0, self.measured_pf(k)))
            return int(round(pf * 32767)) & 0xFFFF
        if base == 0x10E:
            return int(223750.0 / self.mains.frequency - 1 + 0.5)
        # energy: whole LSBs leave, the fraction stays (read-with-reset when RSTREAD)
        a = self._acc[k]
        whole = int(a)
        if self.regs[0x004] & 0x40:
            self._acc[k] = a - whole
            # what the register measured and this read cleared, a wrap's lost turns included
            e = self._real[k] - (a - whole)
            self._real[k] = a - whole
            self._handed(k, max(e, 0.0) * _UWH_PER_LSB, max(-e, 0.0) * _UWH_PER_LSB)
        return whole & 0xFFFFFF

    def _write(self, reg, value):
        self.sync()
        base = reg - 0x100 if reg >> 8 == 3 else reg
        if base in _READ_ONLY:
            return
        if base == 0x120:
            if not self._unlocked:
                return  # ignored unless 0xAD went to 0xFE immediately before
        self._unlocked = base == 0x0FE and value == 0xAD
        if _size(reg) == 4:
            value &= 0xFFFFFF
        if base == 0x102 and value & 0x80:  # SWRST
            self.power_on()
            return
        self.regs[base] = value
        self.regs[0x0FD] = 0xCA
        self.regs[0x1FE] = reg

    # -- SPI: addr_hi, addr_lo, R/W byte, data ---------------------------------------------
    def spi_begin(self):
        self._n = 0

    def spi_byte(self, b):
        n = self._n
        self._n = n + 1
        f = self._frame
        if n < 3:
            f[n] = b
            if n == 2 and b & 0x80:
                reg = (f[0] << 8) | f[1]
                size = _size(reg)
                v = self._value(reg)
                for i in range(size):
                    f[3 + i] = (v >> (8 * (size - 1 - i))) & 0xFF
                self.reads += 1
                self.regs[0x0FD] = 0x35
            return 0
        if f[2] & 0x80:
            return f[n] if n < 8 else 0
        if n < 8:
            f[n] = b
        return 0

    def spi_end(self):
        f = self._frame
        if self._n >= 4 and not f[2] & 0x80:
            reg = (f[0] << 8) | f[1]
            size = _size(reg)
            if self._n >= 3 + size:
                v = 0
                for i in range(size):
                    v = (v << 8) | f[3 + i]
                self._write(reg, v)
        self._n = 0

    # -- I2C: 16-bit register address ------------------------------------------------------
    def i2c_read(self, reg, buf):
        v = self._value(reg)
        size = _size(reg)
        self.reads += 1
        for i in range(len(buf)):
            buf[i] = (v >> (8 * (size - 1 - i))) & 0xFF if i < size else 0

    def i2c_write(self, reg, buf):
        size = _size(reg)
        if len(buf) < size:
            return
        v = 0
        for i in range(size):
            v = (v << 8) | buf[i]
        self._write(reg, v)
