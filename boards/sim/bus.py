# Simulated buses with the methods of machine.SPI / machine.I2C / machine.Pin that the drivers
# use. A chip on the bus answers byte by byte (spi_begin / spi_byte / spi_end) or by register
# (i2c_read / i2c_write). A chip's `fault` makes it stop answering: "ff" (MISO pulled high),
# "00" (MISO stuck low) or "oserror" (the bus driver reports an error).
_EIO = 5
_ENODEV = 19


class SimPin:
    """A chip-select (or any) output pin: value(v) sets, value() reads."""

    def __init__(self, on_change=None, value=1):
        self._v = value
        self._cb = on_change

    def value(self, v=None):
        if v is None:
            return self._v
        v = 1 if v else 0
        if v != self._v and self._cb:
            self._cb(v)
        self._v = v

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class SimSPI:
    """machine.SPI lookalike; cs_for(chip) returns the chip's chip-select pin."""

    def __init__(self):
        self._sel = None
        self.transfers = 0

    def cs_for(self, chip):
        return SimPin(lambda v: self._select(chip, v))

    def _select(self, chip, v):
        if v == 0:
            self._sel = chip
            if not chip.fault:
                chip.spi_begin()
        elif self._sel is chip:
            self._sel = None
            if not chip.fault:
                chip.spi_end()

    def _byte(self, b):
        chip = self._sel
        if chip is None:
            return 0xFF  # nobody drives MISO
        f = chip.fault
        if f == "oserror":
            raise OSError(_EIO)
        if f == "ff":
            return 0xFF
        if f == "00":
            return 0x00
        return chip.spi_byte(b)

    def write_readinto(self, out, into):
        self.transfers += 1
        for k in range(len(out)):
            into[k] = self._byte(out[k])

    def write(self, buf):
        self.transfers += 1
        for b in buf:
            self._byte(b)

    def readinto(self, buf, write=0):
        self.transfers += 1
        for k in range(len(buf)):
            buf[k] = self._byte(write)

    def read(self, n, write=0):
        buf = bytearray(n)
        self.readinto(buf, write)
        return buf


class SimI2C:
    """machine.I2C lookalike with devices attached at 7-bit addresses."""

    def __init__(self):
        self._dev = {}

    def attach(self, address, chip):
        self._dev[address] = chip

    def scan(self):
        return sorted(a for a, c in self._dev.items() if not c.fault)

    def _chip(self, addr):
        c = self._dev.get(addr)
        if c is None or c.fault in ("oserror", "00"):
            raise OSError(_ENODEV)  # no ACK
        return c

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        c = self._chip(addr)
        if c.fault == "ff":
            for k in range(len(buf)):
                buf[k] = 0xFF
            return
        c.i2c_read(memaddr, buf)

    def readfrom_mem(self, addr, memaddr, n, addrsize=8):
        buf = bytearray(n)
        self.readfrom_mem_into(addr, memaddr, buf, addrsize)
        return buf

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        c = self._chip(addr)
        if c.fault == "ff":
            return
        c.i2c_write(memaddr, buf)
