# Board: CircuitSetup Expandable 6 Channel ESP32 Energy Meter: an ESP32 with two ATM90E32AS
# on one SPI bus, six CT inputs, one voltage transformer (9 V AC) shared by both chips,
# optionally stacked add-on boards (two more ATM90E32AS each).
#   SPI (VSPI, mode 3, 200 kHz): CLK GPIO18, MISO GPIO19, MOSI GPIO23
#   main board    CS GPIO5 -> device M1, channels 1 2 3 (jacks CT1-CT3)
#                 CS GPIO4 -> device M2, channels 4 5 6 (jacks CT4-CT6)
#   add-on board k (1..6), default jumpers: CS (0, 16), (27, 17), (2, 21), (13, 22),
#                 (14, 25), (15, 26) -> devices M(2k+1), M(2k+2), channels numbered on
#                 (add-on 1: 7-9 and 10-12, ...)
# Pins and calibration constants: CircuitSetup's ESPHome configs and the ESPHome device
# page for this meter. Ugain 7305 is their value for the Jameco 9 V AC transformer (meter
# v1.3 and later); Igain per CT type below (22 ohm burdens on the board).
#
# board.json on the flash (all optional):
#   {"line_freq": 50 | 60, "ct": "SCT-013-000" (or a list, one per channel),
#    "current_cal": 27518 (or a list; overrides "ct"), "voltage_cal": 7305,
#    "addons": 0..6, "factory": {config sections}}
import esp32_board as _b
from esp32_board import network_up, watchdog, watchdog_reset, wifi_link  # noqa: F401 (board API)

NAME = "circuitsetup_6ch"

SCK, MISO, MOSI = 18, 19, 23
BAUDRATE = 200000
MAIN_CS = (5, 4)
ADDON_CS = ((0, 16), (27, 17), (2, 21), (13, 22), (14, 25), (15, 26))
VOLTAGE_CAL = 7305
# CT type -> (ATM90E32 Igain for this board, rated primary current A)
CTS = {
    "SCT-006": (11143, 20.0),       # 20 A / 25 mA
    "SCT-013-030": (8650, 30.0),    # 30 A / 1 V
    "SCT-013-050": (15420, 50.0),   # 50 A / 1 V
    "SCT-010": (41660, 80.0),       # 80 A / 26.6 mA
    "SCT-013-000": (27518, 100.0),  # 100 A / 50 mA (the kit's default)
    "SCT-016": (41787, 120.0),      # 120 A / 40 mA
    "SCT-024": (27518, 200.0),      # 200 A / 100 mA
}
DEFAULT_CT = "SCT-013-000"
_SETTINGS = None


def settings():
    global _SETTINGS
    if _SETTINGS is None:
        _SETTINGS = _b.settings()
    return _SETTINGS


def layout():
    """[(device_code, chip select GPIO, channel_codes)] for the main board and add-ons."""
    n = _b.option(settings(), "addons", 0, lo=0, hi=len(ADDON_CS))
    if isinstance(n, float):
        raise _b.BoardError("board.json 'addons' must be a whole number")
    pairs = (MAIN_CS,) + ADDON_CS[:n]
    out = []
    ch = 1
    for cs_pair in pairs:
        for cs in cs_pair:
            out.append(("M%d" % (len(out) + 1), cs, (str(ch), str(ch + 1), str(ch + 2))))
            ch += 3
    return out


def _per_channel(value, count, what):
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise _b.BoardError("board.json %r lists %d values for %d channels"
                                % (what, len(value), count))
        return list(value)
    return [value] * count


def channel_gains():
    """[(igain, rated_a)] per channel in layout order, from "ct" and "current_cal"."""
    s = settings()
    count = 3 * len(layout())
    cts = _per_channel(s.get("ct", DEFAULT_CT), count, "ct")
    out = []
    for name in cts:
        if name not in CTS:
            raise _b.BoardError("board.json 'ct' %r unknown; known: %s (or give current_cal)"
                                % (name, ", ".join(sorted(CTS))))
        out.append(CTS[name])
    if "current_cal" in s:
        cals = _per_channel(s["current_cal"], count, "current_cal")
        for k in range(count):
            c = cals[k]
            if isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= 0xFFFF:
                raise _b.BoardError("board.json 'current_cal' %r must be an Igain 1..65535"
                                    % (c,))
            out[k] = (c, out[k][1])
    return out


def clock():
    from plug.clock import SystemClock

    return SystemClock()


def front_ends(clk=None):
    """Build the SPI bus and one ATM90E32 front end per chip (nothing at import time)."""
    import machine
    from atm90e32 import ATM90E32

    s = settings()
    freq = _b.option(s, "line_freq", 50, allowed=(50, 60))
    ugain = _b.option(s, "voltage_cal", VOLTAGE_CAL, lo=1, hi=0xFFFF)
    Pin = machine.Pin
    chips = layout()
    gains = channel_gains()
    cs = [Pin(c, Pin.OUT, value=1) for _, c, _ in chips]  # all deselected first
    spi = machine.SPI(2, baudrate=BAUDRATE, polarity=1, phase=1,
                      sck=Pin(SCK), mosi=Pin(MOSI), miso=Pin(MISO))
    fes = []
    for k in range(len(chips)):
        code, _, chans = chips[k]
        g = gains[3 * k:3 * k + 3]
        fes.append(ATM90E32(spi, cs[k], code, chans, max_current=max(r for _, r in g),
                            line_freq=freq, ugain=int(ugain), igain=tuple(i for i, _ in g)))
    return fes


def relays():
    """No outputs: this board only measures (CT clamps around wires it cannot switch); the
    plug's /switch and /status show every channel as "measurement only"."""
    return {}


def factory_config():
    chans = {}
    gains = channel_gains()
    k = 0
    for code, _, cc in layout():
        for c in cc:
            chans[code + "/" + c] = {"name": "CT%s" % c,
                                     "max_current_a": min(100, int(gains[k][1]))}
            k += 1
    return _b.factory(settings(), {"meter": {"nominal_voltage_v": 230}, "channels": chans})
