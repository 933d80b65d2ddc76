# Board: Shelly two-channel relays with ADE7953 metering, on an ESP32.
#
# variant "pro2pm" (default), the Shelly Pro 2PM: two relay boards, each with its own
# ADE7953 on one SPI bus; only current channel A of each chip is wired (B reads its
# reference), and both read negative for a load, so both are inverted here.
#   SPI (HSPI, mode 3, 1 MHz): SCLK GPIO14, MOSI GPIO13, MISO GPIO12
#   ADE7953 #1 CS GPIO0 -> device M1, channel A (output 1)
#   ADE7953 #2 CS GPIO15 -> device M2, channel A (output 2)
#   ADE7953 reset (both chips, active low) GPIO2: held low by the ESP32's boot strapping
#   74HC595 latch GPIO4 on the same SPI: QA relay 1, QB relay 2, QC-QE Wi-Fi LED blue,
#   green, red (inverted)
# variant "plus2pm", the Shelly Plus 2PM (PCB v0.1.9): one ADE7953 over I2C at 0x38,
#   SCL GPIO25, SDA GPIO26, IRQ GPIO27; relays GPIO13 (output 1) and GPIO12 (output 2).
#   Device M1, channels A and B as the chip names them; which ADE channel is which output
#   and which reads negative changed between production batches (ESPHome's device notes),
#   so check with a known load: `plug.channels()` must show it as import (W > 0).
# Pinouts: ESPHome device pages for the Shelly Pro 2 PM and the Shelly Plus 2PM.
#
# board.json on the flash (all optional):
#   {"variant": "pro2pm" | "plus2pm", "invert": ["M1/A", ...] (replaces the default),
#    "max_current_a": 16, "outputs_on": true, "factory": {config sections}}
# With "outputs_on" (default) the relays are switched on when the front ends are built:
# the plug meters and pays for what its outlets deliver, so they start on.
import esp32_board as _b
from esp32_board import network_up, watchdog, watchdog_reset, wifi_link  # noqa: F401 (board API)

NAME = "shelly_ade7953"

VARIANTS = {
    # spi or i2c pins, front ends [(device_code, chip select or None, channel_codes)]
    "pro2pm": {"bus": "spi", "sck": 14, "mosi": 13, "miso": 12, "baudrate": 1000000,
               "reset": 2, "chips": (("M1", 0, ("A",)), ("M2", 15, ("A",))),
               "invert": ("M1/A", "M2/A"), "latch": 4, "max_current_a": 16},
    "plus2pm": {"bus": "i2c", "scl": 25, "sda": 26, "freq": 400000,
                "chips": (("M1", None, ("A", "B")),), "invert": ("M1/A", "M1/B"),
                "relays": (13, 12), "max_current_a": 10},
}
_SR_RELAYS_ON_LEDS_OFF = 0x1F  # 74HC595: QA, QB relays on; QC-QE (inverted LEDs) off
_RESET_RELEASE_MS = 100
_SETTINGS = None


def settings():
    global _SETTINGS
    if _SETTINGS is None:
        _SETTINGS = _b.settings()
    return _SETTINGS


def variant():
    s = settings()
    name = _b.option(s, "variant", "pro2pm", allowed=("pro2pm", "plus2pm"))
    return name, VARIANTS[name]


def clock():
    from plug.clock import SystemClock

    return SystemClock()


def front_ends(clk=None):
    """Build the buses and the ADE7953 front ends (nothing is created at import time)."""
    import machine
    from ade7953 import ADE7953, ADE7953I2C, ADE7953SPI

    s = settings()
    name, v = variant()
    max_a = _b.option(s, "max_current_a", v["max_current_a"], lo=0.1, hi=100)
    invert = s.get("invert", v["invert"])
    if not isinstance(invert, (list, tuple)):
        raise _b.BoardError("board.json 'invert' must be a list of keys such as \"M1/A\"")
    out_on = _b.option(s, "outputs_on", True, allowed=(True, False))
    Pin = machine.Pin
    fes = []
    if v["bus"] == "spi":
        # chip selects high (idle) before the bus clocks anything
        cs = [Pin(c, Pin.OUT, value=1) for _, c, _ in v["chips"]]
        latch = Pin(v["latch"], Pin.OUT, value=1)
        spi = machine.SPI(1, baudrate=v["baudrate"], polarity=1, phase=1,
                          sck=Pin(v["sck"]), mosi=Pin(v["mosi"]), miso=Pin(v["miso"]))
        Pin(v["reset"], Pin.OUT, value=1)  # release both ADE7953 from reset
        import time

        time.sleep_ms(_RESET_RELEASE_MS)
        for k in range(len(v["chips"])):
            code, _, chans = v["chips"][k]
            fes.append(ADE7953(ADE7953SPI(spi, cs[k]), code, chans, max_current=max_a))
        if out_on:
            _shift_out(spi, latch, _SR_RELAYS_ON_LEDS_OFF)
    else:
        i2c = machine.I2C(0, scl=Pin(v["scl"]), sda=Pin(v["sda"]), freq=v["freq"])
        for code, _, chans in v["chips"]:
            fes.append(ADE7953(ADE7953I2C(i2c), code, chans, max_current=max_a))
        if out_on:
            for p in v["relays"]:
                Pin(p, Pin.OUT, value=1)
    return _apply_invert(fes, invert)


def _shift_out(spi, latch, byte):
    latch.value(0)
    spi.write(bytes((byte,)))
    latch.value(1)  # rising edge: the 74HC595 moves the shifted byte to its outputs


def _apply_invert(fes, keys):
    out = []
    for fe in fes:
        mine = [k.split("/", 1)[1] for k in keys if k.split("/", 1)[0] == fe.device_code]
        out.append(_b.Inverted(fe, mine) if mine else fe)
    known = [fe.device_code + "/" + c for fe in fes for c in fe.channel_codes]
    for k in keys:
        if k not in known:
            raise _b.BoardError("board.json 'invert' names %r; channels: %s"
                                % (k, ", ".join(known)))
    return out


def factory_config():
    name, v = variant()
    max_a = _b.option(settings(), "max_current_a", v["max_current_a"], lo=0.1, hi=100)
    chans = {}
    n = 0
    for code, _, cc in v["chips"]:
        for c in cc:
            n += 1
            chans[code + "/" + c] = {"name": "output %d" % n,
                                     "max_current_a": max(1, int(max_a + 0.5))}
    return _b.factory(settings(), {"meter": {"nominal_voltage_v": 230}, "channels": chans})
