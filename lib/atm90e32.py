# ATM90E32AS poly-phase energy metering IC: three voltage and three current channels.
#
# SPI mode 3, 16-bit words: a frame is the 16-bit address with bit 15 set for a read (bits 9:0
# the register), then 16 data bits, MSB first. Every write is checked by reading LastSPIData
# (0x78), which holds the data of the last SPI transfer (data sheet "SPI interface"; ESPHome
# atm90e32.cpp does the same check at setup). Register addresses: data sheet register list, as
# in ESPHome's atm90e32_reg.h. Setup values (ZXConfig 0x0A55, MMode0 0x0185 (+bit 12 at 60 Hz),
# PStartTh 0x0AFC, QStartTh 0x0AEC, PPhaseTh 0x00BC) follow ESPHome's setup().
# Scaling: Urms 0.01 V/LSB, Irms 0.001 A/LSB, Pmean (32 bits: PmeanX << 16 | PmeanXLSB)
# 0.00032 W/LSB, PFmean 0.001/LSB signed, Freq 0.01 Hz/LSB, energy registers (clear-on-read)
# 0.01 CF = 10/3200 Wh with the default meter constant 3200 imp/kWh, i.e. 3125 uWh per LSB.
# Gains: Ugain/Igain scale the RMS and power paths proportionally (the board's nominal values
# are constructor arguments); PQGain is a two's-complement power gain, P * (1 + PQGain / 2^15).
# PhiX is taken as sign (bit 15) and magnitude (bits 9:0) at 0.02 degree per LSB at 50 Hz.
# PoffsetX: two's complement, 1 LSB = 1 LSB of the 32-bit PmeanX:PmeanXLSB (0.00032 W), added
# to the power that Pmean shows and the energy registers integrate; set_power_offset(code,
# watts) writes the no-load power negated, p_offsets lists them. Same as ESPHome's
# calibrate_power_offset (esphome/esphome, esphome/components/atm90e32/atm90e32.cpp) and
# CircuitSetup's CalculatePowerOffset (mcmchris/mcm-atm90e32-lib, MCM_ATM90E32.cpp): low 16 bits
# of -(PmeanX << 16 | PmeanXLSB) read at no load. 0.00032 W per 32-bit LSB: those and Microchip's
# Zephyr m90e32as driver. The data sheet's own register text was not available to check.
# The RMS current offset stays in software (i_offset, removed in quadrature): the same drivers
# write IoffsetX = -((IrmsX << 16 | IrmsXLSB) >> 7), but none says whether the chip applies it to
# the RMS or to its square, so IoffsetX is left at 0.
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

from frontend import (EnergyCounter, FrontEnd, FrontEndError, offset_rms,
                      set_power_offset, sign_extend)

_METEREN = const(0x00)
_ZXCONFIG = const(0x07)
_MMODE0 = const(0x33)
_MMODE1 = const(0x34)  # PGA gain of the current channels, 2 bits each
_PSTARTTH = const(0x35)
_QSTARTTH = const(0x36)
_PPHASETH = const(0x38)
_POFFSETA = const(0x41)  # then QoffsetA 0x42, PoffsetB 0x43, QoffsetB 0x44, PoffsetC 0x45
_PQGAINA = const(0x47)  # then PhiA 0x48, PQGainB 0x49, PhiB 0x4A, PQGainC 0x4B, PhiC 0x4C
_UGAINA = const(0x61)  # then IgainA 0x62, UoffsetA 0x63, IoffsetA 0x64; B at +4, C at +8
_SOFTRESET = const(0x70)
_LASTSPIDATA = const(0x78)
_CFGREGACCEN = const(0x7F)
_APENERGYA = const(0x81)  # forward active energy A..C, clear-on-read
_ANENERGYA = const(0x85)  # reverse active energy A..C, clear-on-read
_PMEANA = const(0xB1)
_PFMEANA = const(0xBD)
_PMEANALSB = const(0xC1)
_URMSA = const(0xD9)
_IRMSA = const(0xDD)
_FREQ = const(0xF8)

_READ = const(0x8000)
_RESET_KEY = const(0x789A)
_ACCESS_KEY = const(0x55AA)
_ZX_VALUE = const(0x0A55)
_MMODE0_50HZ = const(0x0185)
_MMODE0_60HZ_BIT = const(0x1000)
_PSTART_VALUE = const(0x0AFC)
_QSTART_VALUE = const(0x0AEC)
_PPHASE_VALUE = const(0x00BC)
_UWH_PER_LSB = const(3125)
_PHI_LSB_DEG = 0.02
_PHI_MAX = const(0x3FF)
_P_LSB_W = 0.00032
_POFF_MAX = const(0x7FFF)


class ATM90E32(FrontEnd):
    """Up to three channels (phases A, B, C in channel_codes order) on one SPI chip select.

    `ugain` / `igain`: the board's nominal Ugain / Igain register values (one int for all
    channels or a tuple per channel; ESPHome's defaults 7305 and 27961); calibration gains
    multiply them.
    """

    def __init__(self, spi, cs, device_code="M1", channel_codes=("A", "B", "C"), max_current=16.0,
                 line_freq=50, pga=0, ugain=7305, igain=27961):
        FrontEnd.__init__(self, device_code, channel_codes, max_current)
        n = len(self.channel_codes)
        if n > 3:
            raise ValueError("the ATM90E32 has three channels, got %d codes" % n)
        if line_freq not in (50, 60):
            raise ValueError("line_freq must be 50 or 60 Hz")
        if not 0 <= pga <= 0x3F:
            raise ValueError("pga (MMode1) must be 0..0x3F")
        self._spi = spi
        self._cs = cs
        self._mmode0 = _MMODE0_50HZ | (_MMODE0_60HZ_BIT if line_freq == 60 else 0)
        self._pga = pga
        self._ugain = tuple(ugain) if isinstance(ugain, (tuple, list)) else (ugain,) * n
        self._igain = tuple(igain) if isinstance(igain, (tuple, list)) else (igain,) * n
        for g in self._ugain + self._igain:
            if not 0 < g <= 0xFFFF:
                raise ValueError("nominal Ugain/Igain must be 1..65535, got %r" % (g,))
        self._tx = bytearray(4)
        self._rx = bytearray(4)
        self._imp = [EnergyCounter(_UWH_PER_LSB, 1) for _ in range(n)]
        self._exp = [EnergyCounter(_UWH_PER_LSB, 1) for _ in range(n)]
        self.p_offsets = [0.0] * n
        # the 16-bit energy registers wrap after this long at full load (264 V, max_current)
        self.max_read_gap_s = 2792.7 / max_current  # 0xFFFF x 3125 uWh x 3600 s/h / 1e6 / 264 V
        self._ready = False
        cs.value(1)

    # -- bus -------------------------------------------------------------------------------
    def _xfer(self, word, data):
        tx = self._tx
        tx[0] = word >> 8
        tx[1] = word & 0xFF
        tx[2] = data >> 8
        tx[3] = data & 0xFF
        self._cs.value(0)
        try:
            self._spi.write_readinto(tx, self._rx)
        except OSError as e:
            self._ready = False
            raise FrontEndError("ATM90E32 %s: SPI error at register 0x%02X (%s): check wiring and "
                                "power" % (self.device_code, word & 0x3FF, e))
        finally:
            self._cs.value(1)
        return (self._rx[2] << 8) | self._rx[3]

    def _rd(self, reg):
        return self._xfer(_READ | reg, 0)

    def _wr(self, reg, value):
        """Write and check through LastSPIData: a mismatch means the chip did not take it."""
        self._xfer(reg, value)
        got = self._rd(_LASTSPIDATA)
        if got != value:
            self._ready = False
            raise FrontEndError("ATM90E32 %s: write 0x%04X to 0x%02X not confirmed (LastSPIData "
                                "0x%04X): chip not answering" % (self.device_code, value, reg, got))

    def _wr_verified(self, reg, value):
        self._wr(reg, value)
        got = self._rd(reg)
        if got != value:
            self._ready = False
            raise FrontEndError("ATM90E32 %s: register 0x%02X reads 0x%04X after writing "
                                "0x%04X (configuration access locked?)"
                                % (self.device_code, reg, got, value))

    # -- init ------------------------------------------------------------------------------
    def init(self):
        """Reset and configure the chip (energy counted before is dropped); after a bus outage
        that left the chip metering with our setup, resume and keep its energy."""
        self._ready = False
        if self._rd(_METEREN) == 1 and self._rd(_MMODE0) == self._mmode0 and self._cal_intact():
            self._ready = True
            self.resumed = True
            return
        self._xfer(_SOFTRESET, _RESET_KEY)  # LastSPIData is cleared by the reset itself
        self._wr(_CFGREGACCEN, _ACCESS_KEY)
        self._wr_verified(_METEREN, 1)
        self._wr_verified(_ZXCONFIG, _ZX_VALUE)
        self._wr_verified(_MMODE0, self._mmode0)
        self._wr_verified(_MMODE1, self._pga)
        self._wr_verified(_PSTARTTH, _PSTART_VALUE)
        self._wr_verified(_QSTARTTH, _QSTART_VALUE)
        self._wr_verified(_PPHASETH, _PPHASE_VALUE)
        self._write_cal(range(len(self.channel_codes)))
        self._wr(_CFGREGACCEN, 0)
        for i in range(len(self.channel_codes)):
            self._rd(_APENERGYA + i)  # clear-on-read: drop energy counted before init
            self._rd(_ANENERGYA + i)
        self._ready = True

    def _regs_for(self, cal, i):
        v, ig, p, ph = cal[i][0], cal[i][1], cal[i][2], cal[i][3]
        ugain = int(self._ugain[i] * v + 0.5)
        igain = int(self._igain[i] * ig + 0.5)
        # the chip's power path already carries (Ugain * Igain); PQGain supplies the rest
        pq = int((p / (v * ig) - 1.0) * 32768 + (0.5 if p >= v * ig else -0.5))
        mag = int(abs(ph) / _PHI_LSB_DEG + 0.5)
        phi = mag | (0x8000 if ph < 0 else 0)
        return ugain, igain, pq, phi, mag

    def _check_new(self, new):
        for i in range(len(new)):
            ugain, igain, pq, phi, mag = self._regs_for(new, i)
            if ugain > 0xFFFF or igain > 0xFFFF or not -32768 <= pq <= 32767 or mag > _PHI_MAX:
                raise ValueError("%s/%s: calibration %r is beyond the ATM90E32 registers"
                                 % (self.device_code, self.channel_codes[i], new[i]))

    def _cal_intact(self):
        for i in range(len(self.channel_codes)):
            ugain, igain, pq, phi, mag = self._regs_for(self._cal, i)
            if (self._rd(_UGAINA + 4 * i) != ugain or self._rd(_UGAINA + 1 + 4 * i) != igain
                    or self._rd(_PQGAINA + 2 * i) != pq & 0xFFFF
                    or self._rd(_POFFSETA + 2 * i) != self._poff_reg(self.p_offsets[i]) & 0xFFFF):
                return False
        return True

    def _poff_reg(self, watts):
        return int(-watts / _P_LSB_W + (0.5 if watts <= 0 else -0.5))

    def set_power_offset(self, channel_code, watts):
        """Take `watts` (the channel's no-load power) out of its power and energy, in the chip."""
        return set_power_offset(self, channel_code, watts, lambda i, w: self._poff_reg(w),
                                _POFF_MAX, "PoffsetX")

    def _write_cal(self, indices):
        for i in indices:
            ugain, igain, pq, phi, mag = self._regs_for(self._cal, i)
            self._wr_verified(_UGAINA + 4 * i, ugain)
            self._wr_verified(_UGAINA + 1 + 4 * i, igain)
            self._wr_verified(_PQGAINA + 2 * i, pq & 0xFFFF)
            self._wr_verified(_PQGAINA + 1 + 2 * i, phi)
            self._wr_verified(_POFFSETA + 2 * i, self._poff_reg(self.p_offsets[i]) & 0xFFFF)

    def _apply(self, indices):
        if self._ready:
            self._wr(_CFGREGACCEN, _ACCESS_KEY)
            try:
                self._write_cal(indices)
            finally:
                if self._ready:
                    self._wr(_CFGREGACCEN, 0)

    # -- read ------------------------------------------------------------------------------
    def read(self):
        self.resumed = False
        if not self._ready:
            self.init()
        en = self._rd(_METEREN)
        if en != 1:
            self._ready = False
            raise FrontEndError("ATM90E32 %s: MeterEn reads 0x%04X, expected 1: chip stopped "
                                "answering or was reset" % (self.device_code, en))
        freq = self._rd(_FREQ) * 0.01
        for i in range(len(self.readings)):
            r = self.readings[i]
            cal = self._cal[i]
            r.voltage = self._rd(_URMSA + i) * 0.01
            r.current = offset_rms(self._rd(_IRMSA + i) * 0.001, cal[4])
            hi = sign_extend(self._rd(_PMEANA + i), 16)
            r.power = (hi * 65536 + self._rd(_PMEANALSB + i)) * 0.00032
            r.pf = sign_extend(self._rd(_PFMEANA + i), 16) * 0.001
            r.frequency = freq
            r.import_uwh = self._imp[i].add(self._rd(_APENERGYA + i))
            r.export_uwh = self._exp[i].add(self._rd(_ANENERGYA + i))
        return self.readings
