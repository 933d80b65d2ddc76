# What every real ESP32 board file shares: its settings file, the watchdog, the reset
# cause, Wi-Fi with NTP, and the polarity fix for a channel wired backwards.
#
# Nothing here touches hardware at import time: `machine`, `network` and `ntptime` are
# imported inside the functions that need them, so a board module can be imported (and
# compiled by mpy-cross, and tested on the unix port) without them.
#
#   settings(path="board.json") -> dict   the board's hardware options on the flash, {} if none
#   watchdog(timeout_ms) -> machine.WDT   started; feed() it more often than timeout_ms
#   watchdog_reset() -> bool              the last reset was a watchdog or a crash (panic)
#   network_up(wifi_cfg, timeout_ms=20000, log=print) -> bool   Wi-Fi STA up (and clock set)
#   wifi_link(store=None, log=print) -> WifiLink   (lib/wifi_link.py) kept up by the app
#   Inverted(fe, channel_codes)           front end whose listed channels read negated
import json
import time

WDT_MIN_MS = 1000
WDT_MAX_MS = 600000


class BoardError(ValueError):
    """A board setting that cannot work on this hardware; the message says which and why."""


def settings(path="board.json"):
    """The board's options from a JSON object on the flash ({} when the file is absent).

    A file that exists but does not parse is an error: metering with the wrong wiring
    is worse than not starting, and the REPL stays usable to fix it."""
    try:
        f = open(path)
    except OSError:
        return {}
    try:
        s = json.load(f)
    except ValueError as e:
        raise BoardError("%s is not valid JSON (%s): fix or delete it" % (path, e))
    finally:
        f.close()
    if not isinstance(s, dict):
        raise BoardError("%s must hold a JSON object" % path)
    return s


def option(s, key, default, allowed=None, lo=None, hi=None):
    """One setting with its default; BoardError naming it when out of range."""
    v = s.get(key, default)
    if allowed is not None and v not in allowed:
        raise BoardError("board.json %r is %r; allowed: %s"
                         % (key, v, ", ".join(repr(a) for a in allowed)))
    if lo is not None or hi is not None:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise BoardError("board.json %r must be a number, got %r" % (key, v))
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise BoardError("board.json %r is %r; must be %r..%r" % (key, v, lo, hi))
    return v


def factory(s, base):
    """The config a new plug ships with: the board's defaults, overlaid by the
    "factory" object of board.json (Wi-Fi credentials, RPC, provider, ...)."""
    out = {}
    for k, v in base.items():
        out[k] = dict(v) if isinstance(v, dict) else v
    extra = s.get("factory", {})
    if not isinstance(extra, dict):
        raise BoardError("board.json 'factory' must be an object of config sections")
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k].update(v)
        else:
            out[k] = v
    return out


# ---- watchdog and reset cause ----------------------------------------------------------

_wdt = [None]


def watchdog(timeout_ms):
    """Start the hardware watchdog. Once started it cannot be stopped: the app must feed()
    it more often than timeout_ms or the chip resets. A second call (the app's, after the
    root main.py armed it for a release on trial) returns the running one, its timeout
    unchanged."""
    if not WDT_MIN_MS <= timeout_ms <= WDT_MAX_MS:
        raise BoardError("watchdog timeout %r ms outside %d..%d" % (timeout_ms, WDT_MIN_MS,
                                                                  WDT_MAX_MS))
    if _wdt[0] is None:
        import machine

        _wdt[0] = machine.WDT(timeout=int(timeout_ms))
    return _wdt[0]


def watchdog_reset():
    """True when the last reset was the watchdog or a crash.

    MicroPython on the ESP32 reports ESP_RST_*WDT as WDT_RESET, and a panic (ESP_RST_PANIC)
    as HARD_RESET, the same cause as machine.reset() (ESP_RST_SW). The two cannot be told
    apart, so a deliberate machine.reset() counts once too; BootGuard clears the count
    after a stable run, so only resets in quick succession lead to safe mode. Power-on,
    brown-out and deep-sleep wakes are not crashes."""
    import machine

    cause = machine.reset_cause()
    return cause in (getattr(machine, "WDT_RESET", -1), getattr(machine, "HARD_RESET", -1))


# ---- network ---------------------------------------------------------------------------

def network_up(wifi_cfg, timeout_ms=20000, log=print, poll_ms=100):
    """Connect the Wi-Fi station to wifi_cfg {"ssid", "password"} within timeout_ms and set
    the clock from NTP. Returns True when connected (a failed NTP query is logged, not
    fatal), False when there is no SSID configured or the network did not come up."""
    from wifi_link import _status

    ssid = (wifi_cfg or {}).get("ssid") or ""
    if not ssid:
        log("[board] no Wi-Fi configured (config wifi.ssid): staying offline")
        return False
    import network

    sta = network.WLAN(network.STA_IF)
    sta.active(True)
    if not sta.isconnected():
        try:
            sta.connect(ssid, (wifi_cfg or {}).get("password") or "")
        except OSError as e:
            log("[board] Wi-Fi %r: connect failed (%s)" % (ssid, e))
            return False
        start = time.ticks_ms()
        while not sta.isconnected():
            if time.ticks_diff(time.ticks_ms(), start) >= timeout_ms:
                log("[board] Wi-Fi %r: not connected after %d ms (status %r): out of range "
                    "or wrong password?" % (ssid, timeout_ms, _status(sta)))
                try:
                    sta.disconnect()
                except OSError:
                    pass
                return False
            time.sleep_ms(poll_ms)
    try:
        ip = sta.ifconfig()[0]
    except (OSError, AttributeError, IndexError):
        ip = "?"
    log("[board] Wi-Fi %r up, address %s" % (ssid, ip))
    set_clock_from_ntp(log)
    return True


def wifi_link(store=None, log=print):
    """The ESP32's station as a WifiLink; the clock is set from NTP whenever it comes up."""
    import network

    fails = {}
    for name, why in (("STAT_WRONG_PASSWORD", "wrong password"),
                      ("STAT_NO_AP_FOUND", "access point not found"),
                      ("STAT_CONNECT_FAIL", "connection refused")):
        if hasattr(network, name):
            fails[getattr(network, name)] = why
    from wifi_link import WifiLink

    return WifiLink(network.WLAN(network.STA_IF), store, log, fails,
                    on_up=lambda: set_clock_from_ntp(log),
                    set_hostname=getattr(network, "hostname", None))


def set_clock_from_ntp(log=print):
    """Set the RTC from NTP (ntptime, frozen in the ESP32 firmware). True on success."""
    try:
        import ntptime

        ntptime.settime()
        return True
    except (ImportError, OSError, OverflowError, IndexError) as e:
        log("[board] NTP: clock not set (%s); timestamps may be off until it is" % (e,))
        return False


# ---- polarity --------------------------------------------------------------------------

class Inverted:
    """A front end whose listed channels are wired (or their CT clipped on) backwards:
    power and PF are negated and import and export swapped, in place on the reused
    readings, so a load reads as import. Everything else passes through."""

    def __init__(self, fe, channel_codes):
        for c in channel_codes:
            if c not in fe.channel_codes:
                raise BoardError("cannot invert %s/%s: no such channel (channels: %s)"
                                 % (fe.device_code, c, ", ".join(fe.channel_codes)))
        self.fe = fe
        self.device_code = fe.device_code
        self.channel_codes = fe.channel_codes
        self.max_current = fe.max_current
        self.inverted = tuple(c for c in fe.channel_codes if c in channel_codes)
        self._idx = tuple(fe.channel_codes.index(c) for c in self.inverted)

    def __repr__(self):
        return "<Inverted %s: %s>" % (",".join(self.inverted), self.fe)

    def read(self):
        readings = self.fe.read()
        for k in self._idx:
            r = readings[k]
            r.power = -r.power
            r.pf = -r.pf
            imp = r.import_uwh
            r.import_uwh = r.export_uwh
            r.export_uwh = imp
        return readings

    def calibration(self):
        return self.fe.calibration()

    def load_calibration(self, cal):
        return self.fe.load_calibration(cal)

    def __getattr__(self, name):
        return getattr(self.fe, name)
