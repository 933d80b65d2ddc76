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
#   green, red (inverted); NTCs on GPIO36 and GPIO37 (ADC), switch inputs SW1 GPIO38 and
#   SW2 GPIO39
# variant "plus2pm", the Shelly Plus 2PM (PCB v0.1.9): one ADE7953 over I2C at 0x38,
#   SCL GPIO25, SDA GPIO26, IRQ GPIO27; relays GPIO13 (output 1) and GPIO12 (output 2).
#   Device M1, channels A and B as the chip names them; which ADE channel is which output
#   and which reads negative changed between production batches (ESPHome's device notes),
#   so check with a known load: `plug.channels()` must show it as import (W > 0).
#   Plus 2PM v0.1.9 also: button GPIO4 (inverted, pull-up), LED GPIO0 (inverted), NTC on
#   GPIO35 (ADC, 10 kOhm fixed to 3.3 V, 10 kOhm NTC to ground, B ~3350).
# Pinouts: ESPHome device pages for the Shelly Pro 2 PM and the Shelly Plus 2PM
# (devices.esphome.io, esphome/esphome-devices src/docs/devices/Shelly-Plus-2PM: relay 1
# GPIO13, relay 2 GPIO12, temperature GPIO35 on PCB v0.1.9); Tasmota's Shelly Pro driver
# (xdrv_88_esp32_shelly_pro: "SPI to control one 74HC595 for relays/leds").
#
# Outputs (plug/outputs.py): relays() maps output 1 and 2 to their channels: Pro 2PM
# M1/A -> QA, M2/A -> QB of the 74HC595 (the byte is kept here and shifted out whole);
# Plus 2PM M1/A -> GPIO13, M1/B -> GPIO12 (which ADE channel is which output varies by
# batch, see above: swap with "relay_pins": [12, 13] in board.json). temperature() is the
# hottest of the board's NTCs (Pro 2PM: one per relay board; Plus 2PM: one), read as
# ESPHome's Shelly pages model them (10 kOhm NTC, B 3350, 10 kOhm divider: calibrate
# against a thermometer if the trip matters to you); an open or shorted NTC reads none.
# Above TEMP_LIMIT_C (80 C, as ESPHome's Shelly examples trip) every output opens until
# the board is TEMP_HYST_C cooler. buttons(): the switch inputs SW1 and SW2 toggle output
# 1 and 2 (as ESPHome's pages wire them). led(): Pro 2PM green = an output on, blue = all
# off, red = alert;
# Plus 2PM LED GPIO0 (inverted) on while an output is on, blinking on alert.
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
               "invert": ("M1/A", "M2/A"), "latch": 4, "max_current_a": 16,
               "ntc": (36, 37), "switches": (38, 39)},
    "plus2pm": {"bus": "i2c", "scl": 25, "sda": 26, "freq": 400000,
                "chips": (("M1", None, ("A", "B")),), "invert": ("M1/A", "M1/B"),
                "relays": (13, 12), "max_current_a": 10, "ntc": (35,), "switches": (5, 18)},
}
_SR_RELAYS_ON_LEDS_OFF = 0x1F  # 74HC595: QA, QB relays on; QC-QE (inverted LEDs) off
_RESET_RELEASE_MS = 100
_SETTINGS = None
TEMP_LIMIT_C = 80
TEMP_HYST_C = 10
# the ADE7953's IRMS at full-scale input is 9032007 LSB; at the driver's 100000 LSB/A:
FULL_SCALE_A = 90.0
_NTC_R_FIXED = 10000.0
_NTC_R25 = 10000.0
_NTC_B = 3350.0
_LED_PIN = 0  # Plus 2PM, inverted
_SR_LEDS = {"off": 2, "on": 3, "alert": 4}  # Pro 2PM 74HC595 QC blue, QD green, QE red
_out = {}  # what relays() and temperature() drive, filled by front_ends()


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
        _out["sr"] = [spi, latch, _SR_RELAYS_ON_LEDS_OFF if out_on else 0x1C]
        if out_on:
            _shift_out(spi, latch, _SR_RELAYS_ON_LEDS_OFF)
    else:
        i2c = machine.I2C(0, scl=Pin(v["scl"]), sda=Pin(v["sda"]), freq=v["freq"])
        for code, _, chans in v["chips"]:
            fes.append(ADE7953(ADE7953I2C(i2c), code, chans, max_current=max_a))
        pins = s.get("relay_pins", v["relays"])
        if out_on:
            _out["pins"] = [Pin(p, Pin.OUT, value=1) for p in pins]
        else:
            _out["pins"] = [Pin(p, Pin.OUT) for p in pins]
        _out["keys"] = [code + "/" + c for code, _, cc in v["chips"] for c in cc]
    fes = _apply_invert(fes, invert)
    for fe in fes:
        fe.full_scale_a = FULL_SCALE_A  # spikes: only readings beyond it are impossible
    return fes


def _keys():
    """The channel keys of output 1 and output 2."""
    if "sr" in _out:
        return [code + "/" + cc[0] for code, _, cc in variant()[1]["chips"]]
    return _out["keys"]


def relays():
    """{channel key: set(on)}: output 1 and output 2 (built by front_ends())."""
    if "sr" in _out:
        k = _keys()
        return {k[0]: lambda on: _sr_bit(0, on), k[1]: lambda on: _sr_bit(1, on)}
    if "pins" in _out:
        return dict(zip(_keys(), [p.value for p in _out["pins"]]))
    return {}


def buttons():
    """{key: pressed()}: the switch inputs SW1 and SW2, one per output."""
    if not _out:
        return {}
    from machine import Pin

    pins = [Pin(p, Pin.IN) for p in variant()[1]["switches"]]
    return dict(zip(_keys(), [p.value for p in pins]))


def led(state):
    """Show "on", "off" or "alert" on the board's LEDs."""
    if "sr" in _out:
        sr = _out["sr"]
        sr[2] = (sr[2] | 0x1C) & ~(1 << _SR_LEDS[state])  # LEDs are inverted: 0 lights
        _shift_out(sr[0], sr[1], sr[2])
    elif "pins" in _out:
        from machine import Pin

        p = _out.get("led")
        if p is None:
            p = _out["led"] = Pin(_LED_PIN, Pin.OUT, value=1)
        p.value(0 if state == "on" else 1 - p.value() if state == "alert" else 1)


def _sr_bit(bit, on):
    sr = _out["sr"]
    sr[2] = (sr[2] | (1 << bit)) if on else (sr[2] & ~(1 << bit))
    _shift_out(sr[0], sr[1], sr[2])


def temperature():
    """The hottest of the board's NTCs in C; None without a sensor that reads."""
    if not _out:
        return None
    import math

    adcs = _out.get("adc")
    if adcs is None:
        import machine

        adcs = _out["adc"] = [machine.ADC(machine.Pin(p), atten=machine.ADC.ATTN_11DB)
                              for p in variant()[1]["ntc"]]
    hottest = None
    for adc in adcs:
        v = adc.read_uv() / 1e6
        if 0.01 < v < 3.2:  # else an open or shorted sensor
            r = _NTC_R_FIXED * v / (3.3 - v)
            t = 1 / (1 / 298.15 + math.log(r / _NTC_R25) / _NTC_B) - 273.15
            hottest = t if hottest is None else max(hottest, t)
    return hottest


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
