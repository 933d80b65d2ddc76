# The metering loop: read every front end once a second, put each channel's energy
# into the ledger, keep the latest readings for status, checkpoint the ledger.
#
#   m = Meter(front_ends, ledger, clock, checkpoint_s=60, interval_s=1.0, log=print)
#   m.read_once() -> number of front ends read
#   await m.run()            loop until m.stop(); checkpoints every checkpoint_s and on stop
#   m.reading(key) -> (volts, amps, watts, pf, hz, plug_time) of the last good read
#   m.status() -> {"channels": {key: {"v", "a", "w", "pf", "hz", "t", "ok"}},
#                  "faulty": {device_code: message}}
#   m.checkpoint()           write the ledger now (entering calibration)
#   m.shutdown()             clean stop: stop the loop and checkpoint now. Call it from
#                            the app's `except KeyboardInterrupt` / finally around
#                            asyncio.run: on MicroPython a Ctrl-C or SIGINT is raised in
#                            the event loop's wait, so run()'s own finally may not run.
#
# A read later than a front end's registers hold at full load (max_read_gap_s) may have
# overflowed them: a signed ADE7953 accumulator that wrapped reads as energy flowing the
# other way. Such a read credits no energy against the direction of the channel's
# measured power (beyond +-_FLOW_W of creep): lost, never invented.
# A front end that raises (FrontEndError: bus error, chip gone, read-back mismatch)
# marks its device code faulty: logged once, retried with exponential backoff (1 s up
# to max_backoff_s), logged again once it answers; every other front end keeps
# metering meanwhile. A chip found still metering after a soft reboot (fe.resumed)
# hands over the energy it counted meanwhile: that read may cover up to the front
# end's max_read_gap_s, however recently the Meter was built. Timing follows the
# clock's monotonic seconds, so a simulated clock running N times faster makes the
# loop read N times more often in real time.
# The per-read path allocates only short-lived floats: it leaves no garbage that
# would fragment a 64 KB heap.
# `m.on_read(t)`, if set, runs after every pass (output protection: outputs.py).
# A read is rejected as a spike only when it is physically impossible: more energy than
# the front end's full scale (fe.full_scale_a, else _FULL_SCALE_X x its rated current) at
# the ledger's margin could carry. An overload above a channel's configured
# max_current_a is real energy: it is metered and billed (and protection may trip).
_FULL_SCALE_X = 4
_FLOW_W = 1.0  # below this a channel's power shows no direction (creep, noise)
_MIN_CHECKPOINT_S = 1
_MIN_REAL_MS = 20
_MAX_CHECKPOINT_S = 3600


class Meter:
    def __init__(self, front_ends, ledger, clock, checkpoint_s=60, interval_s=1.0, log=print,
                 max_backoff_s=60):
        if not _MIN_CHECKPOINT_S <= checkpoint_s <= _MAX_CHECKPOINT_S:
            raise ValueError("checkpoint_s must be %d..%d s, got %r"
                             % (_MIN_CHECKPOINT_S, _MAX_CHECKPOINT_S, checkpoint_s))
        if not 0.05 <= interval_s <= 60:
            raise ValueError("interval_s must be 0.05..60 s, got %r" % (interval_s,))
        self.front_ends = list(front_ends)
        self.ledger = ledger
        self.clock = clock
        self.checkpoint_s = checkpoint_s
        self.interval_s = interval_s
        self.log = log
        self.max_backoff_s = max_backoff_s
        self.reads = 0
        self.late_reads = 0  # reads later than a front end's registers can hold energy
        self.checkpoints = 0
        self._running = False
        self._ticks0 = None
        self._mono_acc = 0  # ms; an integer, exact however long the plug runs
        self.on_read = None
        codes = []
        self._keys = []
        self._latest = {}
        self._full = {}
        for fe in self.front_ends:
            if fe.device_code in codes:
                raise ValueError("two front ends share the device code %r" % fe.device_code)
            codes.append(fe.device_code)
            keys = tuple(fe.device_code + "/" + c for c in fe.channel_codes)
            fs = full_scale_a(fe)
            for key in keys:
                ledger.add_channel(key, fs)
                self._full[key] = fs
                self._latest[key] = [0.0, 0.0, 0.0, 0.0, 0.0, 0, False]
            self._keys.append(keys)
        now = self._mono()
        self._last = [now] * len(self.front_ends)  # monotonic time of the last good read
        self._fault = [None] * len(self.front_ends)  # [retry_at_ms, backoff_s, message, since_ms]

    # -- time ------------------------------------------------------------------
    def _mono(self):
        """Monotonic time in integer milliseconds. Never a float total: single precision
        on the ESP32 would round a long uptime's seconds away."""
        mono = getattr(self.clock, "monotonic", None)
        if mono is not None:
            return int(mono() * 1000 + 0.5)
        import time

        now = self.clock.ticks_ms()
        if self._ticks0 is None:
            self._ticks0 = now
        self._mono_acc += time.ticks_diff(now, self._ticks0)
        self._ticks0 = now
        return self._mono_acc

    # -- one pass --------------------------------------------------------------
    def read_once(self):
        """Read every front end that is due; returns how many answered."""
        now = self._mono()
        t = self.clock.time()
        n = 0
        for i in range(len(self.front_ends)):
            fault = self._fault[i]
            if fault is not None and now < fault[0]:
                continue
            fe = self.front_ends[i]
            try:
                readings = fe.read()
            except Exception as e:  # FrontEndError, or a driver bug: other chips keep metering
                self._failed(i, fe, e, now)
                continue
            dt = (now - self._last[i]) / 1000
            self._last[i] = now
            gap = getattr(fe, "max_read_gap_s", None)
            # its registers may have overflowed: the count is no longer the energy, and a
            # signed accumulator (ADE7953) that wrapped reads as flow the other way
            late = gap and dt > gap
            if late:
                self.late_reads += 1
                if self.late_reads % 100 == 1:
                    self.log("[meter] %s: read %.0f s after the last one, longer than its energy "
                             "registers hold at full load (%.0f s): energy may be lost, none is "
                             "credited against the measured power's direction (%d late reads)"
                             % (fe.device_code, dt, gap, self.late_reads))
            if gap and dt < gap and getattr(fe, "resumed", False):
                # the chip kept counting through a soft reboot or bus outage: its energy
                # spans more than our last read, at most what its registers hold
                dt = gap
            if fault is not None:
                self._fault[i] = None
                self.log("[meter] %s: front end answering again after %d s; metering resumed"
                         % (fe.device_code, (now - fault[3]) // 1000))
            keys = self._keys[i]
            for j in range(len(keys)):
                r = readings[j]
                key = keys[j]
                imp, exp = r.import_uwh, r.export_uwh
                if late:  # not against the flow its power shows: a wrap is lost, not invented
                    if r.power > _FLOW_W:
                        exp = 0
                    elif r.power < -_FLOW_W:
                        imp = 0
                self.ledger.add(key, imp, exp, t, dt)
                s = self._latest[key]
                s[0] = r.voltage
                s[1] = r.current
                s[2] = r.power
                s[3] = r.pf
                s[4] = r.frequency
                s[5] = t
                s[6] = True
            n += 1
        self.reads += 1
        if self.on_read is not None:
            self.on_read(t)
        return n

    def _failed(self, i, fe, e, now):
        fault = self._fault[i]
        if fault is None:
            msg = str(e) or type(e).__name__
            self._fault[i] = [now + 1000, 1, msg, now]
            self.log("[meter] %s: front end faulty, its channels are not metered: %s; "
                     "retrying with backoff" % (fe.device_code, msg))
            for key in self._keys[i]:
                self._latest[key][6] = False
        else:
            backoff = min(fault[1] * 2, self.max_backoff_s)
            fault[0] = now + backoff * 1000
            fault[1] = backoff

    # -- status ----------------------------------------------------------------
    def reading(self, key):
        s = self._latest.get(key)
        if s is None:
            raise ValueError("unknown channel %r; channels: %s"
                             % (key, ", ".join(sorted(self._latest))))
        return s[0], s[1], s[2], s[3], s[4], s[5]

    def keys(self):
        return sorted(self._latest)

    def full_scale_a(self, key, default=16.0):
        """The current beyond which a reading of `key` is physically impossible."""
        return self._full.get(key, default)

    def faulty(self):
        out = {}
        for i in range(len(self.front_ends)):
            if self._fault[i] is not None:
                out[self.front_ends[i].device_code] = self._fault[i][2]
        return out

    def status(self):
        ch = {}
        for key in self._latest:
            s = self._latest[key]
            ch[key] = {"v": s[0], "a": s[1], "w": s[2], "pf": s[3], "hz": s[4], "t": s[5],
                       "ok": s[6]}
        return {"channels": ch, "faulty": self.faulty()}

    def front_end(self, device_code):
        for fe in self.front_ends:
            if fe.device_code == device_code:
                return fe
        raise ValueError("no front end %r; front ends: %s"
                         % (device_code, ", ".join(fe.device_code for fe in self.front_ends)))

    # -- durability and the loop ----------------------------------------------
    def checkpoint(self):
        gen = self.ledger.checkpoint()
        self.checkpoints += 1
        return gen

    def stop(self):
        """Ask run() to finish: it checkpoints the ledger and returns."""
        self._running = False

    def shutdown(self):
        """Clean stop outside the loop (KeyboardInterrupt, reboot command): checkpoint now."""
        self._running = False
        self._try_checkpoint()

    @property
    def running(self):
        return self._running

    async def run(self):
        import asyncio

        self._running = True
        speed = getattr(self.clock, "speed", 1)
        next_read = self._mono()
        next_ckpt = next_read + self.checkpoint_s * 1000
        errors = 0
        try:
            while self._running:
                try:
                    self.read_once()
                    errors = 0
                except Exception as e:  # the loop never dies on one bad pass
                    errors += 1
                    if errors == 1 or errors % 60 == 0:
                        self.log("[meter] read failed (%d in a row): %r" % (errors, e))
                now = self._mono()
                if now >= next_ckpt:
                    self._try_checkpoint()
                    next_ckpt = now + self.checkpoint_s * 1000
                next_read += int(self.interval_s * 1000)
                if next_read < now:
                    next_read = now  # fell behind: carry on, never burst
                wait = (next_read - now) / 1000
                if speed:
                    # never faster than every _MIN_REAL_MS of real time: a simulated clock
                    # many times faster than real time would otherwise read the chips within
                    # one tick of its clock, where elapsed time reads as zero
                    await asyncio.sleep_ms(max(_MIN_REAL_MS, int(wait * 1000 / speed)))
                else:  # a stepped sim clock: waiting is advancing it
                    self.clock.advance(wait)
                    await asyncio.sleep(0)
        finally:
            self._running = False
            self._try_checkpoint()

    def _try_checkpoint(self):
        try:
            self.checkpoint()
        except Exception as e:  # OSError (flash full) or StoreError: log, keep metering
            self.log("[meter] checkpoint failed, energy since the last one is at risk: %r" % (e,))


def full_scale_a(fe):
    return getattr(fe, "full_scale_a", None) or fe.max_current * _FULL_SCALE_X
