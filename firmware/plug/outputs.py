# The plug's outputs: one relay per channel where the board has one, what a person asked
# for, and what keeps it off regardless (protection, over-temperature, supply policy).
#
#   o = Outputs(store, board, cfg, keys, clock, log)
#   o.switch("M1/A", False, by="repl") -> state of M1/A; ValueError naming the outputs;
#       HeldOff (a ValueError: HTTP 409) switching on an output held off by what a person
#       cannot clear (over-temperature, unpaid); nothing changes then
#   o.check(meter, t)          after each meter read: protection, over-temperature
#   o.set_unpaid(keys_cut)     supply policy: these channels are cut for non-payment
#   o.status() -> {key: {"relay", "on", "want", "reason", "since", "detail"}}
#   o.configure(cfg)           a new config's power-on states and protection limits
#
# Board API (all optional; a board without relays() is measurement only):
#   board.relays() -> {key: set(on)}, board.temperature() -> C or None,
#   board.TEMP_LIMIT_C, board.TEMP_HYST_C,
#   board.buttons() -> {key: pressed()}: each press (a rising edge, polled after every
#   meter read) toggles that output, as a person switching it ("button"),
#   board.led(state): "on" (an output is on), "off", or "alert" (network trouble, supply at
#   risk or cut, a trip, over-temperature; repeated after every read, so a board with one
#   LED can blink it); the board shows it as its LEDs allow.
#
# An output is on when it is wanted (switched on by a person, or by its power-on state)
# and nothing blocks it. Blocks, in the order status names them: over-temperature (all
# outputs, above the board's limit until TEMP_HYST_C cooler), a protection trip (over-
# power or over-current for protect.hold_s; it stays until switched on, or retried after
# protect.retry_s at most protect.retry_max times), a cut for non-payment (supply.py).
# "want" and the trips are written with the store's atomic rules when they change (a
# person switching, a trip), so channels.<key>.power_on = "restore_last" (the default)
# comes back as it was after a power cut; "on" and "off" set the wanted state at boot and
# clear trips.
import time

_STORE = "outputs"
_TEMP_EVERY_MS = 1000


class HeldOff(ValueError):
    """Switching on an output that over-temperature or a cut for non-payment holds off."""


class Outputs:
    def __init__(self, store, board, cfg, keys, clock, log=print):
        self.store = store
        self.clock = clock
        self.log = log
        self.board = board
        get = getattr(board, "relays", None)
        self._relay = get() if get else {}
        self._keys = list(keys)
        saved = store.load(_STORE, None)
        if not isinstance(saved, dict):
            saved = {}
        self._want = {}
        self._trip = {}  # key -> [reason, detail, t, retries]
        self._over = {}  # key -> plug time the reading went over a limit
        self._tries = {}  # key -> automatic retries since a person last switched it on
        self._unpaid = ()
        self._hot = None  # detail while over-temperature
        self._temp = None
        self._temp_at = None
        self._on = {}
        self._since = {}
        self._by = {}
        get = getattr(board, "buttons", None)
        self._buttons = get() if get else {}
        self._pressed = {}
        self._alert = False  # network trouble or supply at risk (set by the app)
        self._led = None
        self.configure(cfg)
        for key in self._relay:
            pon = self._chan(cfg, key)["power_on"]
            rec = saved.get(key)
            if pon == "restore_last" and isinstance(rec, dict):
                self._want[key] = rec.get("want") is not False
                self._by[key] = "restored"
                trip = rec.get("trip")
                if isinstance(trip, list) and len(trip) == 4:
                    self._trip[key] = trip
                    self._tries[key] = trip[3]
            else:
                self._want[key] = pon != "off"
                self._by[key] = "power_on"
        self._apply(force=True)

    @staticmethod
    def _chan(cfg, key):
        return cfg["channels"].get(key) or {"power_on": "restore_last"}

    def configure(self, cfg):
        p = cfg["protect"]
        self.max_w = p["max_power_w"]
        self.max_a = p["max_current_a"]
        self.hold_s = p["hold_s"]
        self.retry_s = p["retry_s"]
        self.retry_max = p["retry_max"]

    # ---- what a person does ----

    def keys(self):
        return sorted(self._relay)

    def switch(self, key, on, by="repl"):
        """Switch `key` on (True) or off (False). Switching on clears a protection trip."""
        if on is not True and on is not False:
            raise ValueError("on must be true or false, got %r" % (on,))
        if key not in self._relay:
            if key in self._keys:
                raise ValueError("%s has no relay on this board (measurement only)" % key)
            raise ValueError("unknown output %r; outputs: %s" % (key, ", ".join(self.keys())))
        if on:
            held = self._held(key)
            if held is not None:
                self.log("[out] %s not switched on (%s): held off, %s: %s"
                         % (key, by, held[0], held[1]))
                raise HeldOff("%s is held off (%s: %s); %s once that clears" % (
                    key, held[0], held[1], "it comes on by itself" if self._want.get(key, True)
                    else "switch it on"))
        self._want[key] = on
        self._by[key] = by
        if on:
            self._trip.pop(key, None)
            self._over.pop(key, None)
            self._tries.pop(key, None)
        self.log("[out] %s switched %s (%s)" % (key, "on" if on else "off", by))
        self._save()
        self._apply()
        return self.status()[key]

    # ---- what the plug does by itself ----

    def check(self, meter, t):
        """After a meter read at plug time t: trip what is over its limits for hold_s,
        retry trips that are due, follow the temperature."""
        try:
            self._check(meter, t)
        except Exception as e:  # noqa: BLE001 - protection never stops metering
            self.log("[out] protection check failed: %r" % (e,))

    def _check(self, meter, t):
        changed = False
        self._read_temp()
        for key, pressed in self._buttons.items():
            p = bool(pressed())
            if p and not self._pressed.get(key) and key in self._relay:
                try:
                    self.switch(key, not self._on.get(key), "button")
                except HeldOff:  # logged: the press changes nothing
                    pass
            self._pressed[key] = p
        for key in self._relay:
            trip = self._trip.get(key)
            if trip is not None:
                if (self.retry_s and trip[3] < self.retry_max and t - trip[2] >= self.retry_s):
                    del self._trip[key]
                    self._tries[key] = trip[3] + 1
                    self._over.pop(key, None)
                    self._by[key] = "retry %d of %d after %s" % (trip[3] + 1, self.retry_max,
                                                                 trip[0])
                    self.log("[out] %s: %s" % (key, self._by[key]))
                    changed = True
                continue
            if not self._on.get(key):
                self._over.pop(key, None)
                continue
            try:
                r = meter.reading(key)
            except ValueError:  # a relay on a channel this plug does not meter
                continue
            w = abs(r[2])
            why = None
            if self.max_w and w > self.max_w:
                why = ("over_power", "%d W above %d W" % (int(w), self.max_w))
            elif self.max_a and r[1] > self.max_a:
                why = ("over_current", "%.1f A above %d A" % (r[1], self.max_a))
            if why is None:
                self._over.pop(key, None)
                continue
            t0 = self._over.setdefault(key, t)
            if t - t0 >= self.hold_s:
                del self._over[key]
                n = self._tries.get(key, 0)
                self._trip[key] = [why[0], "%s for %d s" % (why[1], t - t0), t, n]
                self.log("[out] %s TRIPPED %s: %s for %d s; off until switched on%s"
                         % (key, why[0], why[1], t - t0,
                            (" or retried in %d s" % self.retry_s)
                            if self.retry_s and n < self.retry_max else ""))
                changed = True
        if changed:
            self._save()
        self._apply()
        self._show()

    def set_alert(self, on):
        """Network trouble or supply at risk: the LED says so."""
        self._alert = bool(on)

    def _show(self):
        led = getattr(self.board, "led", None)
        if led is None:
            return
        state = "alert" if (self._alert or self._hot or self._trip or self._unpaid) else \
            "on" if any(self._on.values()) else "off"
        if state != self._led or state == "alert":  # called again: a board may blink
            self._led = state
            led(state)

    def _read_temp(self):
        get = getattr(self.board, "temperature", None)
        if get is None:
            return
        now = time.ticks_ms()
        if self._temp_at is not None and time.ticks_diff(now, self._temp_at) < _TEMP_EVERY_MS:
            return
        self._temp_at = now
        try:
            c = get()
        except Exception as e:  # noqa: BLE001 - a sensor fault must not stop protection
            if self._temp is not False:
                self.log("[out] temperature sensor not read (%r): no over-temperature "
                         "protection until it answers" % (e,))
            self._temp = False
            return
        self._temp = c
        if c is None:
            return
        limit = getattr(self.board, "TEMP_LIMIT_C", 90)
        if self._hot is None and c > limit:
            self._hot = "%.1f C above %d C" % (c, limit)
            self.log("[out] OVER TEMPERATURE: %s: every output off until below %d C"
                     % (self._hot, limit - getattr(self.board, "TEMP_HYST_C", 15)))
        elif self._hot is not None and c < limit - getattr(self.board, "TEMP_HYST_C", 15):
            self.log("[out] temperature back to %.1f C: outputs restored" % c)
            self._hot = None

    def set_unpaid(self, keys):
        """The channels that supply policy cuts now (a tuple of keys)."""
        keys = tuple(sorted(keys))
        if keys != self._unpaid:
            self._unpaid = keys
            self._apply()

    def temperature(self):
        """The board's last temperature in C, None without a sensor or reading."""
        return self._temp if self._temp is not False else None

    # ---- state ----

    def _blocked(self, key):
        """(reason, detail) of what keeps `key` off, or None."""
        trip = self._trip.get(key)
        if trip is not None and self._hot is None:
            return trip[0], trip[1]
        return self._held(key)

    def _held(self, key):
        """(reason, detail) of a block a person cannot clear by switching on, or None."""
        if self._hot is not None:
            return "over_temperature", self._hot
        if key in self._unpaid:
            return "unpaid", "the wallet cannot pay an invoice that is due"
        return None

    def _apply(self, force=False):
        for key, set_relay in self._relay.items():
            on = self._want.get(key, True) and self._blocked(key) is None
            if force or on != self._on.get(key):
                try:
                    set_relay(on)
                except Exception as e:  # noqa: BLE001 - a relay driver error is reported
                    self.log("[out] %s: relay not switched: %r" % (key, e))
                    continue
                self._on[key] = on
                self._since[key] = self.clock.time()

    def _save(self):
        out = {}
        for key in self._relay:
            out[key] = {"want": self._want.get(key, True), "trip": self._trip.get(key)}
        try:
            self.store.save(_STORE, out)
        except OSError as e:
            self.log("[out] output state not saved: %r" % (e,))

    def status(self):
        out = {}
        for key in self._keys:
            if key not in self._relay:
                out[key] = {"relay": False, "on": None, "want": None,
                            "reason": "measurement only", "since": None, "detail": None}
                continue
            want = self._want.get(key, True)
            b = self._blocked(key) if want else None
            if b is None:
                reason, detail = ("on" if want else "off"), self._by.get(key)
            else:
                reason, detail = b
            out[key] = {"relay": True, "on": self._on.get(key, False), "want": want,
                        "reason": reason, "since": self._since.get(key), "detail": detail}
        return out
