# Calibration at the serial REPL, with a reference load and a reference meter:
#
#   >>> cal.show()                      live readings and gains of every channel
#   >>> cal.voltage("M1/A", 230.0)      the reference meter reads 230.0 V
#   >>> cal.current("M1/A", 5.0)        ... 5.0 A
#   >>> cal.power("M1/A", 1150.0)       ... 1150 W
#   >>> cal.phase("M1/A", pf=0.5)       an inductive load of PF 0.5 (or degrees=0.4)
#   >>> cal.zero("M1/A")                with the load switched off: no-load current noise and
#                                       power offset (creep: energy metered with nothing on)
#   >>> cal.save()                      keep it (restored on every boot); checkpoints energy
#   >>> cal.undo()                      back one step (or to the previous saved calibration)
#   >>> cal.help()
#
# Gains go to the front end with fe.load_calibration() (chip registers or waveform
# coefficients); new_gain = old_gain * reference / reading. The meter keeps metering:
# every reading taken here goes through meter.read_once(), so its energy lands in the
# ledger, and the ledger is checkpointed when calibration starts: just before its first
# change (a refused command starts nothing). The calibration is
# stored as "calibration" in the store: {"v": 1, "devices": {device_code: fe.calibration()},
# "previous": <the devices saved before>}; restore(store, front_ends) applies it at boot.
# A chip with power offset registers (fe.set_power_offset) also keeps "p_offset" (W) per
# channel in that dict: cal.zero() sets it, so an idle channel meters no creep.
# A signed config may carry calibration too (config.py "calibration", integers):
# cal.apply_config() sets the channels it lists and saves them the same way
# (plug/cal_config.py, loaded only then).
import math

from frontend import PHASE_MAX_DEG

_STORE_NAME = "calibration"
_V_MIN = 50.0
_V_MAX = 300.0
_RATED_MARGIN = 1.2  # a reference may be up to 120% of the channel's rated current
_MIN_SHARE = 0.01  # a reference under 1% of rated is too small to calibrate against
_NO_LOAD_SHARE = 0.005  # below 0.5% of rated current counts as "no load"

HELP = """Calibration with a reference load and a reference meter (values from the reference):
  cal.show()                    live V, A, W, PF, Hz and gains of every channel
  cal.voltage("M1/A", 230.0)    set the voltage gain from the reference volts
  cal.current("M1/A", 5.0)      set the current gain from the reference amps
  cal.power("M1/A", 1150.0)     set the power (and energy) gain from the reference watts
  cal.phase("M1/A", pf=0.5)     phase from an inductive load's reference PF
                                (load="capacitive" for a leading one), or degrees=0.4
  cal.zero("M1/A")              no-load current and power offset (stops energy creep):
                                switch the load OFF first
  cal.save()                    keep the calibration (restored at every boot)
  cal.undo()                    undo the last change (or go back to the previous save)
Channels: %s. Metering goes on while you calibrate."""


class CalibrationError(ValueError):
    pass


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise CalibrationError("%s must be a number, got %r" % (what, value))
    return float(value)


def _snapshot(fe):
    """fe.calibration(), plus "p_offset" per channel on a chip with power offset registers."""
    cal = fe.calibration()
    offs = getattr(fe, "p_offsets", None)
    if offs:
        for i, code in enumerate(fe.channel_codes):
            cal[code]["p_offset"] = offs[i]
    return cal


def _load(fe, cal):
    """Apply a _snapshot()-shaped dict; ValueError (and nothing changed) on a bad value."""
    gains = cal
    offs = []
    if isinstance(cal, dict):
        gains = {}
        for code, values in cal.items():
            if isinstance(values, dict) and "p_offset" in values:
                offs.append((code, values["p_offset"]))
                values = dict((k, v) for k, v in values.items() if k != "p_offset")
            gains[code] = values
    if not offs or not hasattr(fe, "set_power_offset"):  # (saved for another chip)
        fe.load_calibration(gains)
        return
    old_gains = fe.calibration()
    old_offs = list(fe.p_offsets)
    fe.load_calibration(gains)
    try:
        for code, watts in offs:
            fe.set_power_offset(code, watts)
    except ValueError:
        fe.load_calibration(old_gains)
        for i, code in enumerate(fe.channel_codes):
            fe.set_power_offset(code, old_offs[i])
        raise


def restore(store, front_ends, log=print):
    """Apply the saved calibration at boot; a refused entry is logged, the rest applies."""
    data = store.load(_STORE_NAME)
    if data is None:
        log("[cal] no saved calibration: chip defaults in use")
        return 0
    devices = data.get("devices") if isinstance(data, dict) else None
    if not isinstance(devices, dict):
        log("[cal] saved calibration has an unknown format: chip defaults in use")
        return 0
    applied = 0
    for fe in front_ends:
        cal = devices.get(fe.device_code)
        if cal is None:
            continue
        try:
            _load(fe, cal)
            applied += 1
        except Exception as e:  # ValueError (bad values) or FrontEndError (chip away)
            log("[cal] saved calibration of %s not applied: %s" % (fe.device_code, e))
    return applied


class Calibrator:
    def __init__(self, meter, store, log=print, out=print):
        self.meter = meter
        self.store = store
        self.log = log
        self.out = out  # what the person at the prompt reads
        self._history = []  # [(device_code, calibration before the change)]
        self._back = False  # undo went back to the calibration saved before: nothing more
        self._entered = False
        self._saved = None  # lazily loaded: the stored calibration dict
        self._boot = self._current()  # in effect at boot: saved, or the chip defaults

    def __repr__(self):
        return "<cal: calibration helper, type cal.help()>"

    def help(self):
        self.out(HELP % ", ".join(self.meter.keys()))

    # -- helpers ---------------------------------------------------------------
    def _enter(self):
        if not self._entered:
            self._entered = True
            try:
                self.meter.checkpoint()
                self.log("[cal] calibration started: energy checkpointed, metering goes on")
            except Exception as e:  # flash trouble must not block calibration
                self.log("[cal] checkpoint on entering calibration failed: %r" % (e,))

    def _channel(self, key):
        if not isinstance(key, str) or key not in self.meter.keys():
            raise CalibrationError("no channel %r; channels are: %s"
                                   % (key, ", ".join(self.meter.keys())))
        dev, code = key.split("/")
        fe = self.meter.front_end(dev)
        bad = self.meter.faulty().get(dev)
        if bad:
            raise CalibrationError("%s is not answering (%s): fix that first" % (dev, bad))
        return fe, code

    def _measure(self, key):
        self.meter.read_once()  # a fresh reading; its energy goes into the ledger
        bad = self.meter.faulty().get(key.split("/")[0])
        if bad:
            raise CalibrationError("%s stopped answering: %s" % (key, bad))
        return self.meter.reading(key)

    def _apply(self, fe, code, changes, key, what):
        before = _snapshot(fe)
        old = before[code]
        self._enter()  # the session starts when something is about to change
        try:
            _load(fe, {code: changes})
        except ValueError as e:  # the driver's reason; the chip keeps what it had
            raise CalibrationError("%s: %s (%s); nothing changed" % (key, e, what))
        self._history.append((fe.device_code, before))
        self._back = False
        if len(self._history) > 8:
            del self._history[0]
        parts = ["%s %.4f (was %.4f)" % (k, changes[k], old[k]) for k in sorted(changes)]
        self.out("%s %s -> %s. cal.save() keeps it, cal.undo() goes back." % (
            key, what, ", ".join(parts)))

    def _rescale(self, fe, code, key, gain, ref, got, what):
        # new_gain = old_gain * reference / reading
        self._apply(fe, code, {gain: fe.calibration()[code][gain] * ref / got}, key, what)

    # -- commands --------------------------------------------------------------
    def show(self):
        # only displays: no session starts (its reading's energy goes to the ledger as ever)
        self.meter.read_once()
        faulty = self.meter.faulty()
        for key in self.meter.keys():
            dev, code = key.split("/")
            if dev in faulty:
                self.out("%-6s not answering: %s" % (key, faulty[dev]))
                continue
            v, a, w, pf, hz, t = self.meter.reading(key)
            c = _snapshot(self.meter.front_end(dev))[code]
            self.out("%-6s %7.2f V %7.3f A %8.1f W  pf %6.3f %6.2f Hz | gains v %.4f i %.4f "
                     "p %.4f phase %+.2f deg offset %.3f A" % (
                         key, v, a, w, pf, hz, c["v_gain"], c["i_gain"], c["p_gain"],
                         c["phase_deg"], c["i_offset"])
                     + (" p_offset %.3f W" % c["p_offset"] if "p_offset" in c else ""))

    def voltage(self, key, volts):
        fe, code = self._channel(key)
        ref = _number(volts, "reference voltage")
        if not _V_MIN <= ref <= _V_MAX:
            raise CalibrationError("reference voltage %.1f V is outside %d..%d V: give the "
                                   "reference meter's reading in volts" % (ref, _V_MIN, _V_MAX))
        got = self._measure(key)[0]
        if got < 0.1 * _V_MIN:
            raise CalibrationError("%s measures %.1f V: is the plug on mains?" % (key, got))
        self._rescale(fe, code, key, "v_gain", ref, got,
                      "voltage read %.2f V, reference %.2f V" % (got, ref))

    def current(self, key, amps):
        fe, code = self._channel(key)
        ref = _number(amps, "reference current")
        rated = fe.max_current
        if not _MIN_SHARE * rated <= ref <= _RATED_MARGIN * rated:
            raise CalibrationError("reference current %.3f A is outside %.2f..%.1f A for %s "
                                   "(rated %.1f A)" % (ref, _MIN_SHARE * rated,
                                                       _RATED_MARGIN * rated, key, rated))
        got = self._measure(key)[1]
        if got < _NO_LOAD_SHARE * rated:
            raise CalibrationError("%s measures %.3f A: is the reference load switched on?"
                                   % (key, got))
        self._rescale(fe, code, key, "i_gain", ref, got,
                      "current read %.4f A, reference %.4f A" % (got, ref))

    def power(self, key, watts):
        fe, code = self._channel(key)
        ref = _number(watts, "reference power")
        top = _RATED_MARGIN * fe.max_current * _V_MAX
        if not 1.0 <= abs(ref) <= top:
            raise CalibrationError("reference power %.1f W is outside 1..%d W for %s"
                                   % (ref, top, key))
        got = self._measure(key)[2]
        if abs(got) < 0.5:
            raise CalibrationError("%s measures %.2f W: is the reference load switched on?"
                                   % (key, got))
        if (ref < 0) != (got < 0):
            raise CalibrationError("the reference says %s (%.1f W) but %s reads %s (%.1f W): "
                                   "a CT clamped or wired backwards? add \"%s\" to \"invert\" "
                                   "in board.json (or check the reference's direction)"
                                   % ("export" if ref < 0 else "import", ref, key,
                                      "export" if got < 0 else "import", got, key))
        self._rescale(fe, code, key, "p_gain", abs(ref), abs(got),
                      "power read %.2f W, reference %.2f W" % (got, abs(ref)))

    def phase(self, key, degrees=None, pf=None, load="inductive"):
        fe, code = self._channel(key)
        if (degrees is None) == (pf is None):
            raise CalibrationError("give either degrees=... (the correction) or pf=... (the "
                                   "reference PF of an inductive or capacitive load)")
        old = fe.calibration()[code]["phase_deg"]
        if degrees is not None:
            new = _number(degrees, "phase correction")
            what = "phase correction set"
        else:
            ref = _number(pf, "reference PF")
            if not 0.2 <= ref <= 0.95:
                raise CalibrationError("reference PF %.3f is outside 0.2..0.95: a phase error "
                                       "only shows on a reactive load (PF about 0.5)" % ref)
            if load not in ("inductive", "capacitive"):
                raise CalibrationError("load must be 'inductive' (lagging) or 'capacitive' "
                                       "(leading), got %r" % (load,))
            got = abs(self._measure(key)[3])
            if not 0.05 <= got <= 1.0:
                raise CalibrationError("%s measures PF %.3f: is the reactive load switched on?"
                                       % (key, got))
            err = math.degrees(math.acos(got) - math.acos(ref))
            # positive phase_deg delays the voltage: it shrinks a lagging current's angle
            new = old + err if load == "inductive" else old - err
            what = "PF read %.4f, reference %.4f (%s)" % (got, ref, load)
            if not -PHASE_MAX_DEG <= new <= PHASE_MAX_DEG:
                raise CalibrationError(
                    "%s reads PF %.3f against the reference's %.3f: that needs a phase "
                    "correction of %+.1f degrees, beyond the +-%.1f a CT's lag can explain "
                    "(a CT lags a degree or two). Check that pf= is what the reference meter "
                    "shows for this load, that the reference load is the only one on %s, that "
                    "it is %s (else load=\"%s\"), and the CT's type; nothing changed"
                    % (key, got, ref, new, PHASE_MAX_DEG, key, load,
                       "capacitive" if load == "inductive" else "inductive"))
        self._apply(fe, code, {"phase_deg": new}, key, what)

    def zero(self, key):
        fe, code = self._channel(key)
        v, a, w, pf, hz, t = self._measure(key)
        rated = fe.max_current
        if abs(w) > _NO_LOAD_SHARE * rated * _V_MIN or a > 0.05 * rated:
            raise CalibrationError("%s still carries %.3f A / %.1f W: switch the load off "
                                   "before cal.zero()" % (key, a, w))
        c = _snapshot(fe)[code]
        old = c["i_offset"]
        # the readings have the old offsets taken out
        changes = {"i_offset": math.sqrt(a * a + old * old)}
        what = "no-load current %.4f A" % a
        if "p_offset" in c:  # a chip with power offset registers: they stop the creep
            if code in getattr(fe, "inverted", ()):
                w = -w  # the reading is negated after the chip (esp32_board.Inverted)
            changes["p_offset"] = c["p_offset"] + w
            what += ", power %.3f W" % w
        self._apply(fe, code, changes, key, what)

    # -- keeping it ------------------------------------------------------------
    def _stored(self):
        if self._saved is None:
            data = self.store.load(_STORE_NAME)
            self._saved = data if isinstance(data, dict) else {}
        return self._saved

    def _current(self):
        devices = {}
        for fe in self.meter.front_ends:
            devices[fe.device_code] = _snapshot(fe)
        return devices

    def _keep(self, devices):
        stored = self._stored()
        previous = stored.get("devices") or self._boot
        if previous == devices:
            previous = stored.get("previous")
        data = {"v": 1, "devices": devices, "previous": previous}
        gen = self.store.save(_STORE_NAME, data)
        self._saved = data
        return gen

    def save(self):
        self._entered = False  # the session ends: the next one checkpoints on entry again
        gen = self._keep(self._current())
        self._history = []
        self._back = False
        try:
            self.meter.checkpoint()  # energy metered under the old gains is durable too
        except Exception as e:  # the calibration is saved; flash trouble is logged
            self.log("[cal] energy checkpoint after saving failed: %r" % (e,))
        self.log("[cal] calibration saved (generation %d)" % gen)
        self.out("saved: restored at every boot; cal.undo() goes back to the one before")

    def undo(self):
        if self._history:
            dev, before = self._history.pop()
            fe = self.meter.front_end(dev)
            now = _snapshot(fe)
            _load(fe, before)
            self.out("undone: %s" % _changes(dev, now, before))
            return
        prev = self._stored().get("previous")
        if not prev or self._back:
            self.out("nothing to undo: %s" % (
                "already back at the calibration saved before the last cal.save()"
                if self._back else "no change since the last cal.save() and none saved "
                "before it"))
            return
        done = []
        for fe in self.meter.front_ends:
            if fe.device_code in prev:
                now = _snapshot(fe)
                _load(fe, prev[fe.device_code])
                done.append(_changes(fe.device_code, now, prev[fe.device_code]))
        self._back = True
        self.out("back to the calibration saved before the last cal.save(): %s. cal.save() "
                 "keeps it" % "; ".join(done))

    # -- calibration pushed in a signed config (plug/cal_config.py) -----------------
    def check_config(self, section):
        """[(key, front end, channel code, values)] of a config's "calibration" section;
        ConfigError naming the field for a channel this plug does not have."""
        from plug.cal_config import from_config

        return from_config(section, self.meter.front_ends)

    def apply_config(self, section):
        """Set the channels the section lists and keep them as cal.save() does;
        ConfigError naming the field, with everything as it was, if that fails."""
        from plug.cal_config import apply

        apply(self, section)


_UNITS = (("v_gain", "%.4f"), ("i_gain", "%.4f"), ("p_gain", "%.4f"),
          ("phase_deg", "%+.2f deg"), ("i_offset", "%.4f A"), ("p_offset", "%.3f W"))


def _changes(dev, now, before):
    """'M1/A p_offset 0.000 W (was 0.041 W), ...': what going from `now` back to `before`
    sets, gains, phase and offsets alike."""
    out = []
    for code in sorted(before):
        for k, fmt in _UNITS:
            if k not in before[code]:
                continue
            old = now.get(code, {}).get(k)
            if old is None or abs(old - before[code][k]) > 1e-9:
                out.append("%s/%s %s %s%s" % (dev, code, k, fmt % before[code][k],
                                              "" if old is None else " (was %s)" % (fmt % old)))
    return ", ".join(out) or "%s as it was (that change changed nothing)" % dev
