# Board: the virtual plug. An ADE7953 (device code M1, channels A and B) and an
# ATM90E32 (M2, channels 1-3) on simulated SPI, each channel feeding a load from the
# load model, with a clock that can run faster than real time.
#
# `plugctl sim` writes the plug's settings to sim.json on its flash:
#   {"speed": 600, "start": <plug s>, "anchor": <unix s>, "load": SPEC, "seed": 1,
#    "factory": {config overrides a new plug ships with: rpc, provider, http port},
#    "network": "up", "ap": {"ssid": "home", "password": "secret"}}
# "network", "ap", "temp_c" and "buttons" are read afresh while the plug runs (the Wi-Fi
# when it is looked at, the others at most every 0.2 s), so they can be changed live.
# Without "network" the station is the host's loopback, always up. "up": the access point
# "ap" accepts its own credentials (any, without "ap"); "down": no access point in range;
# "bad_password": it refuses every password.
# Sim time is start + (now - anchor) x speed, so it keeps running while the plug is
# "unplugged", like a real-time clock, and a restart never moves it backwards.
#
# Outputs: every channel has a simulated relay (relays()); an open one makes its load draw
# nothing, so the chip meters nothing and the true energy stops. The board's temperature
# sensor reads sim.json's "temp_c" (default 35 C); above TEMP_LIMIT_C the plug switches
# every output off until it is TEMP_HYST_C cooler. sim.json's "buttons": {"M1/A": true}
# holds that channel's button down (each press toggles its output); led_state() is what
# the status LED shows ("on", "off", "alert").
#
# SPEC: comma-separated KEY=LOAD, for example
#   M1/A=8A,M1/B=fridge,M2/1=4A@0.9ind,M2/2=pv:6A,M2/3=0.5A@0.6cap,M1/B=off
# LOAD: <amps>A[@<pf>ind|cap][~h3] (resistive without @; ~h3 adds a 3rd and 5th harmonic),
# fridge[:<amps>A] (cycling compressor), pv[:<amps>A] (exports), off.
import json
import time

from sim.load import Load, Mains, fridge, pv_inverter

NAME = "sim"
DEFAULT_LOAD = "M1/A=8A,M1/B=fridge,M2/1=4A@0.9ind~h3,M2/2=pv:6A,M2/3=0.5A@0.6cap"
CHANNELS = (("M1", ("A", "B")), ("M2", ("1", "2", "3")))
_UNIX_2000 = 946684800
# Next to sim.json, one per chip: what its energy registers handed the plug and the energy
# the loads drew, summed over every boot (sim.chip record_to; tools/faults_power.py reads it).
ENERGY_LOG = "sim_energy_%s.bin"
TEMP_LIMIT_C = 90  # as the Shelly Plus/Pro 2PM's stock over-temperature cut-off
TEMP_HYST_C = 15
# the drivers' full scale at their default scaling: the ADE7953's IRMS at full-scale input
# (9032007 LSB at 100000 LSB/A), the ATM90E32's 16-bit Irms register (0.001 A/LSB)
FULL_SCALE_A = {"M1": 90.0, "M2": 65.5}


def _settings():
    try:
        with open("sim.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


# [ticks_ms read, sim.json]: read at import (what the plug boots with: clock, loads,
# factory config), then afresh at most every 0.2 s (_live_settings); one copy held
_live = [None, _settings()]


def parse_load(text):
    """One LOAD of the spec as a sim.load.Load; ValueError with the reason if malformed."""
    text = text.strip()
    if text == "off":
        return Load(0.0)
    name, _, amps = text.partition(":")
    if name in ("fridge", "pv"):
        a = float(amps[:-1]) if amps else None
        if amps and not amps.endswith("A"):
            raise ValueError("load %r: amps need an A suffix" % text)
        if name == "fridge":
            return fridge() if a is None else fridge(a)
        return pv_inverter() if a is None else pv_inverter(a)
    harm = ()
    if text.endswith("~h3"):
        harm = ((3, 0.08, 0.0), (5, 0.04, 0.0))
        text = text[:-3]
    amps, _, pf = text.partition("@")
    if not amps.endswith("A"):
        raise ValueError("load %r: expected <amps>A, fridge, pv or off" % text)
    a = float(amps[:-1])
    if not pf:
        return Load(a, harmonics=harm)
    kind = {"ind": "inductive", "cap": "capacitive"}.get(pf[-3:])
    if kind is None:
        raise ValueError("load %r: power factor needs ind or cap, as in @0.9ind" % text)
    return Load(a, float(pf[:-3]), kind, harmonics=harm)


def parse_spec(spec):
    loads = {}
    for part in parse_spec_items(DEFAULT_LOAD) + parse_spec_items(spec or ""):
        key, load = part
        loads[key] = load
    return loads


def parse_spec_items(spec):
    out = []
    for item in spec.split(","):
        if not item.strip():
            continue
        key, eq, load = item.partition("=")
        key = key.strip()
        if not eq or key not in [d + "/" + c for d, cs in CHANNELS for c in cs]:
            raise ValueError("load spec %r: KEY must be one of M1/A, M1/B, M2/1, M2/2, M2/3"
                             % item)
        out.append((key, parse_load(load)))
    return out


_clock = None
_hw = None


def clock():
    global _clock
    if _clock is None:
        from sim.clock import SimClock

        s = _live[1]
        speed = s.get("speed", 1)
        now_unix = time.time()
        start = s.get("start", int(now_unix) - _UNIX_2000)
        anchor = s.get("anchor", now_unix)
        _clock = SimClock(start + int((now_unix - anchor) * speed), speed)
    return _clock


def hardware():
    """The simulated chips (for tests reading the true energy) and the real drivers."""
    global _hw
    if _hw is None:
        from ade7953 import ADE7953, ADE7953SPI
        from atm90e32 import ATM90E32
        from sim.ade7953_sim import ADE7953Sim
        from sim.atm90e32_sim import ATM90E32Sim
        from sim.bus import SimSPI

        loads = parse_spec(_live[1].get("load"))
        seed = _live[1].get("seed", 1)
        mains = Mains(230.0, 50.0, ((3, 0.03, 0.0), (5, 0.02, 0.0)))
        spi = SimSPI()
        c = clock()
        m1 = ADE7953Sim(c, [loads["M1/A"], loads["M1/B"]], mains, seed=seed)
        m2 = ATM90E32Sim(c, [loads["M2/1"], loads["M2/2"], loads["M2/3"]], mains, seed=seed + 1)
        for dev, chip in (("M1", m1), ("M2", m2)):
            chip.record_to(ENERGY_LOG % dev)  # the simulator's energy log, every boot
        _hw = {
            "chips": {"M1": m1, "M2": m2},
            "loads": loads,
            "mains": mains,
            "front_ends": [
                ADE7953(ADE7953SPI(spi, spi.cs_for(m1)), "M1", ("A", "B")),
                ATM90E32(spi, spi.cs_for(m2), "M2", ("1", "2", "3")),
            ],
        }
    return _hw


def _chip_index(key):
    dev, code = key.split("/")
    for d, codes in CHANNELS:
        if d == dev and code in codes:
            return hardware()["chips"][dev], codes.index(code)
    raise ValueError("no channel %r on the sim board" % key)


def reference(key):
    """What a reference meter on channel `key` reads now: (volts, amps, watts), from the
    load model, for calibrating the plug at its REPL as a person would with a real one."""
    hw = hardware()
    load, mains = hw["loads"][key], hw["mains"]
    chip, i = _chip_index(key)
    on = chip.channels[i].relay and load.is_on(clock().monotonic())
    return mains.vrms(), load.irms() if on else 0.0, load.power(mains) if on else 0.0


def true_energy_uwh(key):
    """(import, export) energy the simulated load really drew since this boot, in uWh."""
    chip, i = _chip_index(key)
    return chip.true_energy_uwh(i)


def front_ends(clk=None):
    fes = hardware()["front_ends"]
    for fe in fes:
        fe.full_scale_a = FULL_SCALE_A[fe.device_code]
    return fes


def relays():
    """{channel key: set(on)} for every channel with an output relay: all of them here."""
    out = {}
    for dev, codes in CHANNELS:
        for i in range(len(codes)):
            out[dev + "/" + codes[i]] = _relay(dev, i)
    return out


def _relay(dev, i):
    return lambda on: hardware()["chips"][dev].set_relay(i, on)


_led = ["off"]


def _live_settings():
    now = time.ticks_ms()
    if _live[0] is None or time.ticks_diff(now, _live[0]) > 200:
        _live[0], _live[1] = now, _settings()
    return _live[1]


def temperature():
    """The board's temperature in C: sim.json's "temp_c", default 35."""
    t = _live_settings().get("temp_c", 35)
    return float(t) if isinstance(t, (int, float)) else None


def buttons():
    """{key: pressed()}: one button per output, held down by sim.json's "buttons"."""
    return dict((key, _button(key)) for key in relays())


def _button(key):
    return lambda: (_live_settings().get("buttons") or {}).get(key) is True


def led(state):
    _led[0] = state


def led_state():
    return _led[0]


def factory_config():
    """What this plug ships with until its owner's first signed config."""
    return _live[1].get("factory", {})


# The watchdog: the virtual board's one hardware watchdog, as machine.WDT on the ESP32.
# Each feed() rewrites the heartbeat file the host's supervisor names in VPLUG_WDT (its
# text: the timeout in ms); the supervisor (tools/vplug.py) kills the plug's process when
# the file goes timeout_ms without a write and boots it again with VPLUG_RESET_CAUSE set
# to "watchdog". Without VPLUG_WDT (a test running the app by itself) there is none.
WDT_MIN_MS = 1000
WDT_MAX_MS = 600000
_wdt = [None]


class _Watchdog:
    def __init__(self, path, timeout_ms):
        self.timeout_ms = timeout_ms
        self._beat = ("%d\n" % timeout_ms).encode()
        self._f = open(path, "wb")
        self.feed()

    def feed(self):
        f = self._f
        f.seek(0)
        f.write(self._beat)
        f.flush()


def watchdog(timeout_ms):
    """Start the board's watchdog; feed() it more often than timeout_ms. Once started it
    cannot be stopped nor its timeout changed: a second call (the app's, after main.py
    armed it for a release on trial) returns the running one as it is. None on a host
    without a supervisor watching."""
    if not WDT_MIN_MS <= timeout_ms <= WDT_MAX_MS:
        raise ValueError("watchdog timeout %r ms outside %d..%d" % (timeout_ms, WDT_MIN_MS,
                                                                  WDT_MAX_MS))
    if _wdt[0] is None:
        import os

        path = os.getenv("VPLUG_WDT")
        if not path:
            return None  # no supervisor: the host restarts the plug only when it exits
        _wdt[0] = _Watchdog(path, int(timeout_ms))
    return _wdt[0]


def watchdog_reset():
    """True when the supervisor booted this process after its watchdog fired."""
    import os

    return os.getenv("VPLUG_RESET_CAUSE") == "watchdog"


def network_up(wifi_cfg):
    return True  # the host's loopback


def wifi_link(store=None, log=print):
    from wifi_link import WifiLink

    return WifiLink(SimWLAN(), store, log, {_NO_AP_FOUND: "access point not found",
                                            _WRONG_PASSWORD: "wrong password"})


_IDLE, _CONNECTING, _GOT_IP, _NO_AP_FOUND, _WRONG_PASSWORD = 1000, 1001, 1010, 201, 202


def _network():
    s = _settings()
    ap = s.get("ap")
    return s.get("network"), ap if isinstance(ap, dict) else None


class SimWLAN:
    """A Wi-Fi station (network.WLAN's methods) on the access point that sim.json sets."""

    def __init__(self):
        self._active = False
        self._connected = False
        self._status = _IDLE

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)

    def connect(self, ssid, password):
        if not self._active:
            raise OSError("Wifi Not Started")
        mode, ap = _network()
        self._connected = False
        if mode == "down" or (ap and ssid != ap.get("ssid")):
            self._status = _NO_AP_FOUND
        elif mode == "bad_password" or (ap and password != ap.get("password")):
            self._status = _WRONG_PASSWORD
        else:
            self._status = _CONNECTING

    def disconnect(self):
        self._connected = False
        self._status = _IDLE

    def isconnected(self):
        mode = _network()[0]
        if mode is None:
            return True
        if mode != "up":
            if self._connected:  # the access point went away
                self.disconnect()
        elif self._status == _CONNECTING:
            self._connected, self._status = True, _GOT_IP
        return self._connected

    def status(self, *args):
        return self._status

    def ifconfig(self, *args):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
