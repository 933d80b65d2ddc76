# Board: a bare ESP32 metering with its own ADC1: one voltage transformer and up to four
# CT clamps, each signal AC-coupled onto a mid-supply (1.65 V) bias, as in the
# OpenEnergyMonitor / emonLib wiring.
#   voltage  GPIO34 (9 V AC transformer through a divider, about 0.6 V rms at the pin)
#   CT1      GPIO35 -> device W1 channel 1
#   CT2      GPIO36 (SENSOR_VP) -> W1/2
#   CT3      GPIO39 (SENSOR_VN) -> W1/3
# All four are input-only ADC1 pins, free on every ESP32 module; ADC2 is unusable with
# Wi-Fi on. The default scale is for SCT-013-030 clamps (30 A / 1 V, burden built in) and
# the ADC at 11 dB (3.3 V / 4095 per count), 230 V mains to a 9 V transformer with a
# 10:1 divider; calibrate with `cal` against a reference meter.
#
# The ESP32 ADC is one device (W1); each CT is a channel. Every read samples each CT
# with the shared voltage over `cycles` whole mains cycles at `sample_rate` pairs/s
# (2000 and 5 by default: 3 CTs take about 0.4 s of each second).
#
# board.json on the flash (all optional):
#   {"v_pin": 34, "ct_pins": [35, 36, 39], "sample_rate": 2000, "cycles": 5,
#    "line_freq": 50, "v_per_count": 0.194, "i_per_count": 0.0242 (or a list per CT),
#    "max_current_a": 30, "pair_delay": <fraction, measured when absent>,
#    "factory": {config sections}}
import esp32_board as _b
from esp32_board import network_up, watchdog, watchdog_reset, wifi_link  # noqa: F401 (board API)

NAME = "esp32_ct_adc"

V_PIN = 34
CT_PINS = (35, 36, 39)
SAMPLE_RATE = 2000
CYCLES = 5
COUNT_V = 3.3 / 4095  # volts at the pin per ADC count at 11 dB (nominal)
V_PER_COUNT = 0.194  # mains V per count: 230 V -> ~10.5 V transformer -> 10:1 divider
I_PER_COUNT = 30.0 * COUNT_V  # SCT-013-030: 30 A per volt
MAX_CURRENT = 30.0
_SETTINGS = None


def settings():
    global _SETTINGS
    if _SETTINGS is None:
        _SETTINGS = _b.settings()
    return _SETTINGS


def _pins():
    from esp32_adc import check_pin

    s = settings()
    v = s.get("v_pin", V_PIN)
    cts = s.get("ct_pins", list(CT_PINS))
    if not isinstance(cts, (list, tuple)) or not 1 <= len(cts) <= 4:
        raise _b.BoardError("board.json 'ct_pins' must list 1 to 4 ADC1 pins")
    for p in [v] + list(cts):
        try:
            check_pin(p)
        except ValueError as e:
            raise _b.BoardError("board.json pin: %s" % e)
    if v in cts or len(set(cts)) != len(cts):
        raise _b.BoardError("board.json: voltage and CT pins must all differ")
    return v, list(cts)


def clock():
    from plug.clock import SystemClock

    return SystemClock()


def front_ends(clk=None):
    """One front end W1 with a channel per CT; each CT has its own ADC source sharing the
    voltage input. `clk` (the board clock) times the energy between reads."""
    from esp32_adc import ESP32ADCSource, adc1
    from waveform import WaveformFrontEnd

    clk = clk or clock()
    s = settings()
    v_pin, ct_pins = _pins()
    rate = _b.option(s, "sample_rate", SAMPLE_RATE, lo=320, hi=10000)
    cycles = _b.option(s, "cycles", CYCLES, lo=2, hi=50)
    freq = _b.option(s, "line_freq", 50, allowed=(50, 60))
    vpc = _b.option(s, "v_per_count", V_PER_COUNT, lo=0.001, hi=10.0)
    ipc = s.get("i_per_count", I_PER_COUNT)
    ipcs = list(ipc) if isinstance(ipc, (list, tuple)) else [ipc] * len(ct_pins)
    if len(ipcs) != len(ct_pins):
        raise _b.BoardError("board.json 'i_per_count' lists %d values for %d CTs"
                            % (len(ipcs), len(ct_pins)))
    for x in ipcs:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0.0001 <= x <= 1.0:
            raise _b.BoardError("board.json 'i_per_count' %r must be 0.0001..1.0 A/count"
                                % (x,))
    max_a = _b.option(s, "max_current_a", MAX_CURRENT, lo=0.1, hi=200)
    pair_delay = s.get("pair_delay")
    v_adc = adc1(v_pin)
    chans = []
    for k in range(len(ct_pins)):
        src = ESP32ADCSource(v_adc, adc1(ct_pins[k]), sample_rate=int(rate),
                             pair_delay=pair_delay)
        chans.append(WaveformFrontEnd(src, clk, "W1", str(k + 1), max_a, vpc, ipcs[k],
                                      line_freq=freq, cycles=int(cycles),
                                      pair_delay=src.pair_delay))
    return [CTGroup("W1", chans)]


class CTGroup:
    """Several single-channel waveform front ends (one per CT) as one device: the shape
    of a front end (device_code, channel_codes, read, calibration, ...)."""

    def __init__(self, device_code, channels):
        self.device_code = device_code
        self.channels = list(channels)
        self.channel_codes = tuple(fe.channel_codes[0] for fe in self.channels)
        self.max_current = max(fe.max_current for fe in self.channels)
        self.readings = [fe.readings[0] for fe in self.channels]

    def __repr__(self):
        return "<CTGroup %s %s>" % (self.device_code, ",".join(self.channel_codes))

    def read(self):
        for fe in self.channels:
            fe.read()
        return self.readings

    def late(self):
        """Pairs sampled late in the last read, per channel (timing health)."""
        return [fe._src.late for fe in self.channels]

    def calibration(self):
        out = {}
        for fe in self.channels:
            out.update(fe.calibration())
        return out

    def load_calibration(self, cal):
        """Per channel, all or nothing: a bad value anywhere leaves every channel as it was."""
        if not isinstance(cal, dict):
            raise ValueError("calibration must be a dict {channel_code: {...}}")
        for code in cal:
            if code not in self.channel_codes:
                raise ValueError("%s has no channel %r (channels: %s)"
                                 % (self.device_code, code, ", ".join(self.channel_codes)))
        done = []
        try:
            for fe in self.channels:
                code = fe.channel_codes[0]
                if code in cal:
                    before = fe.calibration()
                    fe.load_calibration({code: cal[code]})
                    done.append((fe, before))
        except ValueError:
            for fe, before in done:
                fe.load_calibration(before)
            raise


def relays():
    """No outputs: this board only measures (CT clamps around wires it cannot switch); the
    plug's /switch and /status show every channel as "measurement only"."""
    return {}


def factory_config():
    _, cts = _pins()
    max_a = _b.option(settings(), "max_current_a", MAX_CURRENT, lo=0.1, hi=200)
    chans = {}
    for k in range(len(cts)):
        chans["W1/%d" % (k + 1)] = {"name": "CT%d" % (k + 1),
                                    "max_current_a": max(1, min(100, int(max_a + 0.5)))}
    return _b.factory(settings(), {"meter": {"nominal_voltage_v": 230}, "channels": chans})
