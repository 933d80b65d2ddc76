# A stand-in for the ESP32's `machine` module, for running the real board files on the
# MicroPython unix port (whose own machine module has no SPI, I2C, ADC or WDT).
#
# Put this directory first on MICROPYPATH; the file shadows the built-in module. The
# classes have the constructor signatures and methods of the ESP32 port that the board
# files and drivers use, and route transfers to the register-level simulators of
# boards/sim/ as a PCB would: a chip answers only on the bus pins and chip select it is
# wired to and in its SPI mode; anything else reads as a floating bus (0xFF, or no I2C
# ACK). A test wires the simulated board through `hw` before importing the board file:
#
#   import machine
#   machine.hw.spi_chip(chip, cs=5, sck=18, mosi=23, miso=19)   # mode 3 by default
#   machine.hw.i2c_chip(chip, scl=25, sda=26, address=0x38)
#   machine.hw.shift_register(latch=4, sck=14, mosi=13)       -> .outputs (latched byte)
#   machine.hw.adc_waveform(clock, v_pin, {ct_pin: WaveformSource, ...})
#   machine.hw.reset_cause = machine.WDT_RESET
#   machine.hw.level(pin) -> last level driven on an output pin (None if never driven)
from sim.bus import SimI2C, SimSPI

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


class _ShiftRegister:
    """A 74HC595 on the SPI data lines: bytes shift in, a rising latch edge copies the last
    byte to the outputs."""

    def __init__(self):
        self.shifted = 0
        self.outputs = None

    def shift(self, b):
        self.shifted = b

    def latch(self):
        self.outputs = self.shifted


class _ADCWaveform:
    """Voltage and CT pins sampling the simulated mains and loads of WaveformSources: one
    pair index runs on across bursts taken at the same sim instant, and restarts when
    sim time moves, so every burst is a continuous waveform."""

    def __init__(self, clock, v_pin, sources):
        self.clock = clock
        self.v_pin = v_pin
        self.sources = sources
        self.first = sources[sorted(sources)[0]]
        self.rate = self.first.sample_rate
        self._mono = None
        self._k = 0
        self._t = 0.0

    def _sync(self):
        mono = self.clock.monotonic()
        if mono != self._mono:
            self._mono = mono
            self._k = 0
            for s in self.sources.values():
                s.sync()

    def read(self, pin):
        self._sync()
        if pin == self.v_pin:
            self._k += 1
            src = self.first
            t = self._mono + self._k / self.rate
            return src._q(src.mains.v(t) * src.v_scale)
        src = self.sources[pin]
        t = self._mono + (self._k + src.pair_delay) / self.rate
        return src._q(src.load.i(src.mains, t, 0.0) * src.i_scale)


class _Harness:
    def __init__(self):
        self.reset_cause = PWRON_RESET
        self.levels = {}
        self.pins = {}
        self.spi_wiring = {}  # (sck, mosi, miso) -> [SimSPI, {cs: chip}, (polarity, phase)]
        self.i2c_wiring = {}  # (scl, sda) -> SimI2C
        self.shift_regs = {}  # latch pin -> (_ShiftRegister, (sck, mosi))
        self.adc_pins = {}  # pin -> _ADCWaveform
        self.volts = {}  # pin -> volts held on an ADC input (an NTC divider)
        self.wdts = []
        self.spis = []
        self.i2cs = []
        self.adcs = []

    def spi_chip(self, chip, cs, sck, mosi, miso, polarity=1, phase=1):
        key = (sck, mosi, miso)
        if key not in self.spi_wiring:
            self.spi_wiring[key] = [SimSPI(), {}, (polarity, phase)]
        w = self.spi_wiring[key]
        w[1][cs] = chip
        return w[0]

    def i2c_chip(self, chip, scl, sda, address=0x38):
        bus = self.i2c_wiring.setdefault((scl, sda), SimI2C())
        bus.attach(address, chip)
        return bus

    def shift_register(self, latch, sck, mosi):
        sr = _ShiftRegister()
        self.shift_regs[latch] = (sr, (sck, mosi))
        return sr

    def adc_waveform(self, clock, v_pin, sources):
        bank = _ADCWaveform(clock, v_pin, sources)
        self.adc_pins[v_pin] = bank
        for p in sources:
            self.adc_pins[p] = bank
        return bank

    def level(self, pin):
        return self.levels.get(pin)

    def drive(self, pin, v):
        """A level from outside on an input pin (a switch)."""
        self.levels[pin] = v
        if pin in self.pins:
            self.pins[pin]._v = v

    # -- called by the fakes --
    def _pin_changed(self, pin, old, new):
        self.levels[pin] = new
        for w in self.spi_wiring.values():
            chip = w[1].get(pin)
            if chip is not None:
                w[0]._select(chip, new)
        sr = self.shift_regs.get(pin)
        if sr is not None and old == 0 and new == 1:
            sr[0].latch()


hw = _Harness()


def reset_cause():
    return hw.reset_cause


def reset():
    raise SystemExit("machine.reset()")


def unique_id():
    return b"\x24\x0a\xc4\x00\x00\x01"


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        if not isinstance(id, int) or not 0 <= id <= 39:
            raise ValueError("invalid pin")
        if mode == Pin.OUT and 34 <= id <= 39:
            raise ValueError("pin can only be input")
        self.id = id
        self.mode = mode
        self._v = hw.levels.get(id, 0)
        hw.pins[id] = self
        if value is not None:
            self.value(value)

    def __repr__(self):
        return "Pin(%d)" % self.id

    def value(self, v=None):
        if v is None:
            return self._v
        v = 1 if v else 0
        old = self._v if self.id in hw.levels else None
        self._v = v
        if self.mode == Pin.OUT:
            hw._pin_changed(self.id, old, v)

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


def _pin_id(p):
    return p.id if isinstance(p, Pin) else p


class SPI:
    MSB = 0
    LSB = 1

    def __init__(self, id, baudrate=1000000, polarity=0, phase=0, bits=8, firstbit=0,
                 sck=None, mosi=None, miso=None):
        if id not in (1, 2):
            raise ValueError("SPI(%r) doesn't exist" % (id,))
        self.id = id
        self.baudrate = baudrate
        self.mode = (polarity, phase)
        self.pins = (_pin_id(sck), _pin_id(mosi), _pin_id(miso))
        w = hw.spi_wiring.get(self.pins)
        # wrong pins or wrong clock mode: no chip decodes the frames, MISO floats high
        self._bus = w[0] if w is not None and w[2] == self.mode else SimSPI()
        self._srs = [sr for sr, pins in hw.shift_regs.values() if pins == self.pins[:2]]
        hw.spis.append(self)

    def _shift(self, buf):
        for sr in self._srs:
            for b in buf:
                sr.shift(b)

    def write_readinto(self, out, into):
        self._shift(out)
        self._bus.write_readinto(out, into)

    def write(self, buf):
        self._shift(buf)
        self._bus.write(buf)

    def readinto(self, buf, write=0):
        self._shift(bytes((write,)) * len(buf))
        self._bus.readinto(buf, write)

    def read(self, n, write=0):
        buf = bytearray(n)
        self.readinto(buf, write)
        return buf


class I2C:
    def __init__(self, id=0, scl=None, sda=None, freq=400000, timeout=50000):
        self.pins = (_pin_id(scl), _pin_id(sda))
        self.freq = freq
        self._bus = hw.i2c_wiring.get(self.pins) or SimI2C()
        hw.i2cs.append(self)

    def scan(self):
        return self._bus.scan()

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        self._bus.readfrom_mem_into(addr, memaddr, buf, addrsize)

    def readfrom_mem(self, addr, memaddr, n, addrsize=8):
        return self._bus.readfrom_mem(addr, memaddr, n, addrsize)

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        self._bus.writeto_mem(addr, memaddr, buf, addrsize)


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_12BIT = 3

    def __init__(self, pin, atten=None):
        pid = _pin_id(pin)
        if not 32 <= pid <= 39:
            raise ValueError("invalid Pin for ADC")
        self.pin = pid
        self._atten = atten
        self._bank = hw.adc_pins.get(pid)
        hw.adcs.append(self)

    def atten(self, a):
        self._atten = a

    def read(self):
        if self._bank is None:
            return 0
        return self._bank.read(self.pin)

    def read_u16(self):
        return (self.read() * 65535) // 4095

    def read_uv(self):
        v = hw.volts.get(self.pin)
        return int(v * 1e6) if v is not None else self.read() * 3300000 // 4095


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0
        hw.wdts.append(self)

    def feed(self):
        self.feeds += 1
