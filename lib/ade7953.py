# ADE7953 single-phase energy metering IC: one shared voltage channel, current channels A and B.
#
# Chip logic (class ADE7953) apart from thin transports that only move bytes (ADE7953SPI,
# ADE7953I2C), the shape of ESPHome's ade7953_base / ade7953_spi / ade7953_i2c.
# Register map: ADE7953 data sheet Rev. C, Tables 13-15 (8/16/24/32-bit registers); the 24-bit
# address of a register is its 32-bit address minus 0x100. We use the 24-bit addresses so values
# stay small ints on the ESP32. Init sequence: data sheet "Optimum settings" (write 0xAD to 0xFE,
# then 0x30 to 0x120), as ESPHome ade7953_base.cpp does.
# Scaling defaults are those of Sonoff/Shelly boards used by ESPHome and Tasmota:
# V = VRMS / 26000, I = IRMS / 100000, P = AWATT / 154, energy LSB = 1/154^2 Wh.
# Power offsets: AWATTOS/BWATTOS (signed 24 bits, 1 LSB = 1/512 AWATT LSB, data sheet "Power
# Offsets") add to the active power that AWATT shows and the energy accumulators integrate;
# set_power_offset(code, watts) has them take out a channel's no-load power, p_offsets lists
# them. The RMS current offset stays in software (i_offset, removed in quadrature).
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

from frontend import (EnergyCounter, FrontEnd, FrontEndError, offset_rms,
                      set_power_offset, sign_extend)

# 8-bit registers
_LCYCMODE = const(0x004)  # bit 6 RSTREAD: energy registers read-with-reset (default 0x40)
_PGA_V = const(0x007)
_PGA_IA = const(0x008)
_PGA_IB = const(0x009)
_UNLOCK = const(0x0FE)  # write 0xAD right before writing reserved register 0x120
_VERSION = const(0x702)
# 16-bit registers
_CONFIG = const(0x102)  # default 0x8004; HPFEN bit 2
_PHCALA = const(0x108)  # sign-magnitude, bit 9 sign, 1 LSB = 1/893.85 kHz = 1.1188 us
_PHCALB = const(0x109)
_PFA = const(0x10A)  # signed, 0x7FFF = 1.0
_PFB = const(0x10B)
_PERIOD = const(0x10E)  # f = 223750 / (PERIOD + 1) Hz
_RESERVED_120 = const(0x120)
_LAST_ADD = const(0x1FE)
# 24-bit registers (32-bit twins at +0x100)
_AWATT = const(0x212)
_BWATT = const(0x213)
_IRMSA = const(0x21A)
_IRMSB = const(0x21B)
_VRMS = const(0x21C)
_AENERGYA = const(0x21E)  # signed, read-with-reset when LCYCMODE.RSTREAD
_AENERGYB = const(0x21F)
_AIGAIN = const(0x280)  # gains: unsigned, 0x400000 = 1.0
_AVGAIN = const(0x281)
_AWGAIN = const(0x282)
_BIGAIN = const(0x28C)
_BWGAIN = const(0x28E)
_AWATTOS = const(0x289)  # signed, 1/512 of an AWATT LSB
_BWATTOS = const(0x295)
_WATTOS_MAX = const(0x7FFFFF)

_GAIN_ONE = const(0x400000)
_GAIN_MAX_REG = const(0xFFFFFF)
_CONFIG_VALUE = const(0x0004)  # HPF on, COMM_LOCK bit 15 cleared (as ESPHome)
_UNLOCK_KEY = const(0xAD)
_RESERVED_VALUE = const(0x0030)
_RSTREAD = const(0x40)
_PHCAL_LSB_DEG = 0.0201  # 1.1188 us at 50 Hz: 360 * 50 / 893850
_PHCAL_MAX = const(0x1FF)
_PGA = (1, 2, 4, 8, 16, 22)  # PGA_x codes 0..5 (code 5 is 22 on current channel A only)
I2C_ADDRESS = const(0x38)

# per channel: (IRMS, WATT, ENERGY, PF, IGAIN, WGAIN, PHCAL, PGA, WATTOS)
_CH = ((_IRMSA, _AWATT, _AENERGYA, _PFA, _AIGAIN, _AWGAIN, _PHCALA, _PGA_IA, _AWATTOS),
       (_IRMSB, _BWATT, _AENERGYB, _PFB, _BIGAIN, _BWGAIN, _PHCALB, _PGA_IB, _BWATTOS))


def _size(reg):
    # address ranges select the width (data sheet "Register map"); 0x7xx/0x8xx are 8-bit
    top = reg >> 8
    return 4 if top == 3 else 3 if top == 2 else 2 if top == 1 else 1


class ADE7953SPI:
    """SPI transport (mode 3, MSB first): addr_hi, addr_lo, 0x80 read / 0x00 write, data."""

    def __init__(self, spi, cs):
        self._spi = spi
        self._cs = cs
        self._tx = [memoryview(bytearray(3 + n)) for n in range(5)]
        self._rx = [memoryview(bytearray(3 + n)) for n in range(5)]
        cs.value(1)

    def read(self, reg, n):
        tx = self._tx[n]
        rx = self._rx[n]
        tx[0] = reg >> 8
        tx[1] = reg & 0xFF
        tx[2] = 0x80
        for i in range(3, 3 + n):
            tx[i] = 0
        self._cs.value(0)
        try:
            self._spi.write_readinto(tx, rx)
        finally:
            self._cs.value(1)
        v = 0
        for i in range(3, 3 + n):
            v = (v << 8) | rx[i]
        return v

    def write(self, reg, n, value):
        tx = self._tx[n]
        tx[0] = reg >> 8
        tx[1] = reg & 0xFF
        tx[2] = 0
        for i in range(n):
            tx[2 + n - i] = (value >> (8 * i)) & 0xFF
        self._cs.value(0)
        try:
            self._spi.write(tx)
        finally:
            self._cs.value(1)


class ADE7953I2C:
    """I2C transport: 16-bit register address, then the data MSB first (address 0x38)."""

    def __init__(self, i2c, address=I2C_ADDRESS):
        self._i2c = i2c
        self._addr = address
        self._buf = [bytearray(n) for n in range(5)]

    def read(self, reg, n):
        buf = self._buf[n]
        self._i2c.readfrom_mem_into(self._addr, reg, buf, addrsize=16)
        v = 0
        for b in buf:
            v = (v << 8) | b
        return v

    def write(self, reg, n, value):
        buf = self._buf[n]
        for i in range(n):
            buf[n - 1 - i] = (value >> (8 * i)) & 0xFF
        self._i2c.writeto_mem(self._addr, reg, buf, addrsize=16)


class ADE7953(FrontEnd):
    """Two-channel front end. `transport` is an ADE7953SPI or ADE7953I2C.

    Voltage is shared: AVGAIN carries channel A's v_gain; channel B's v_gain is applied in
    software (the data sheet says BVGAIN must not be modified). Power gains compensate for
    the voltage and current gains the chip folds into power, so p_gain is the whole power
    multiplier. Call read() every few seconds: the 24-bit energy accumulator wraps after
    about 5 minutes at 16 A.
    """

    def __init__(self, transport, device_code="M1", channel_codes=("A", "B"), max_current=16.0,
                 pga_v=0, pga_i=(0, 0), v_lsb_per_volt=26000.0, i_lsb_per_amp=100000.0,
                 w_lsb_per_watt=154.0, energy_lsb_per_wh=23716):
        FrontEnd.__init__(self, device_code, channel_codes, max_current)
        if len(self.channel_codes) > 2:
            raise ValueError("the ADE7953 has two current channels, got %d codes"
                             % len(self.channel_codes))
        for p in (pga_v,) + tuple(pga_i):
            if p not in (0, 1, 2, 3, 4):
                raise ValueError("PGA code must be 0..4 (gain 1..16), got %r" % (p,))
        self._t = transport
        self._pga_v = pga_v
        self._pga_i = tuple(pga_i)
        self._v_scale = 1.0 / (v_lsb_per_volt * _PGA[pga_v])
        self._i_scale = [1.0 / (i_lsb_per_amp * _PGA[p]) for p in self._pga_i]
        self._w_scale = [1.0 / (w_lsb_per_watt * _PGA[pga_v] * _PGA[p]) for p in self._pga_i]
        e_den = energy_lsb_per_wh * _PGA[pga_v]
        self._imp = [EnergyCounter(1000000, e_den * _PGA[p]) for p in self._pga_i]
        self._exp = [EnergyCounter(1000000, e_den * _PGA[p]) for p in self._pga_i]
        self.p_offsets = [0.0] * len(self.channel_codes)
        # the signed 24-bit accumulators wrap after this long at full load (264 V, max_current)
        self.max_read_gap_s = 30198988800.0 / (e_den * _PGA[max(self._pga_i)] * 264 * max_current)
        self._ready = False

    # -- bus access, OSError -> FrontEndError --------------------------------------------
    def _rd(self, reg):
        try:
            return self._t.read(reg, _size(reg))
        except OSError as e:
            self._ready = False
            raise FrontEndError("ADE7953 %s: bus error reading 0x%03X (%s): check wiring and "
                                "power" % (self.device_code, reg, e))

    def _wr(self, reg, value):
        try:
            self._t.write(reg, _size(reg), value)
        except OSError as e:
            self._ready = False
            raise FrontEndError("ADE7953 %s: bus error writing 0x%03X (%s)"
                                % (self.device_code, reg, e))

    def _wr_checked(self, reg, value):
        self._wr(reg, value)
        got = self._rd(reg)
        if got != value:
            self._ready = False
            raise FrontEndError("ADE7953 %s: register 0x%03X reads 0x%X after writing 0x%X: "
                                "chip not answering or bus corrupt"
                                % (self.device_code, reg, got, value))

    # -- init ----------------------------------------------------------------------------
    def init(self):
        """Configure the chip after power-up or a detected reset (energy counted before is
        dropped); after a bus outage that left the chip configured, resume and keep it."""
        self._ready = False
        first = self._rd(_CONFIG)
        if first in (0x0000, 0xFFFF):
            raise FrontEndError("ADE7953 %s: no chip answering (CONFIG reads 0x%04X)"
                                % (self.device_code, first))
        if first == _CONFIG_VALUE and self._rd(_RESERVED_120) == _RESERVED_VALUE:
            # the bus failed but the chip kept its setup and kept counting: verify the
            # calibration and keep the energy it accumulated meanwhile
            self._write_cal(range(len(self.channel_codes)))
            self._ready = True
            self.resumed = True
            return
        self._wr_checked(_CONFIG, _CONFIG_VALUE)
        self._wr(_UNLOCK, _UNLOCK_KEY)
        self._wr(_RESERVED_120, _RESERVED_VALUE)
        got = self._rd(_RESERVED_120)
        if got != _RESERVED_VALUE:
            raise FrontEndError("ADE7953 %s: optimum-settings register 0x120 reads 0x%X"
                                % (self.device_code, got))
        self._wr_checked(_LCYCMODE, _RSTREAD)
        self._wr_checked(_PGA_V, self._pga_v)
        for i in range(len(self.channel_codes)):
            self._wr_checked(_CH[i][7], self._pga_i[i])
        self._write_cal(range(len(self.channel_codes)))
        for i in range(len(self.channel_codes)):
            self._rd(_CH[i][2])  # read-with-reset: drop energy counted before init
        self._ready = True

    def _regs_for(self, cal, i):
        row = cal[i]
        v_a = cal[0][0]
        igain = int(row[1] * _GAIN_ONE + 0.5)
        wgain = int(row[2] / (v_a * row[1]) * _GAIN_ONE + 0.5)
        ph = int(abs(row[3]) / _PHCAL_LSB_DEG + 0.5)
        phcal = ph | (0x200 if row[3] < 0 else 0)
        return igain, wgain, phcal, ph

    def _check_new(self, new):
        for i in range(len(new)):
            igain, wgain, phcal, ph = self._regs_for(new, i)
            if wgain > _GAIN_MAX_REG or ph > _PHCAL_MAX:
                raise ValueError("%s/%s: power gain %.4f with v_gain %.4f and i_gain %.4f "
                                 "is beyond the ADE7953 gain register"
                                 % (self.device_code, self.channel_codes[i], new[i][2],
                                    new[0][0], new[i][1]))

    def _wattos(self, i, watts):
        x = -watts * 512.0 / self._w_scale[i]
        return int(x + (0.5 if x >= 0 else -0.5))

    def set_power_offset(self, channel_code, watts):
        """Take `watts` (the channel's no-load power) out of its power and energy, in the chip."""
        return set_power_offset(self, channel_code, watts, self._wattos, _WATTOS_MAX, "xWATTOS")

    def _write_cal(self, indices):
        self._wr_checked(_AVGAIN, int(self._cal[0][0] * _GAIN_ONE + 0.5))
        if 0 in indices and len(self.channel_codes) > 1:
            indices = range(len(self.channel_codes))  # BWGAIN depends on channel A's v_gain
        for i in indices:
            igain, wgain, phcal, ph = self._regs_for(self._cal, i)
            regs = _CH[i]
            self._wr_checked(regs[4], igain)
            self._wr_checked(regs[5], wgain)
            self._wr_checked(regs[6], phcal)
            self._wr_checked(regs[8], self._wattos(i, self.p_offsets[i]) & 0xFFFFFF)

    def _apply(self, indices):
        if self._ready:
            self._write_cal(indices)

    # -- read ----------------------------------------------------------------------------
    def read(self):
        self.resumed = False
        if not self._ready:
            self.init()
        cfg = self._rd(_CONFIG)
        if cfg != _CONFIG_VALUE:
            self._ready = False
            raise FrontEndError("ADE7953 %s: CONFIG reads 0x%04X, expected 0x%04X: chip stopped "
                                "answering or was reset" % (self.device_code, cfg, _CONFIG_VALUE))
        vrms = self._rd(_VRMS) * self._v_scale
        period = self._rd(_PERIOD)
        freq = 223750.0 / (period + 1)
        v_a = self._cal[0][0]
        for i in range(len(self.readings)):
            r = self.readings[i]
            regs = _CH[i]
            cal = self._cal[i]
            r.voltage = vrms * cal[0] / v_a
            r.current = offset_rms(self._rd(regs[0]) * self._i_scale[i], cal[4])
            r.power = sign_extend(self._rd(regs[1]), 24) * self._w_scale[i]
            r.pf = sign_extend(self._rd(regs[3]), 16) / 32767.0
            r.frequency = freq
            e = sign_extend(self._rd(regs[2]), 24)
            if e >= 0:
                r.import_uwh = self._imp[i].add(e)
                r.export_uwh = 0
            else:
                r.import_uwh = 0
                r.export_uwh = self._exp[i].add(-e)
        return self.readings

    def version(self):
        return self._rd(_VERSION)
