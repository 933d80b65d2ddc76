# A Wi-Fi station kept connected by the app's network task, with a fallback to the last
# credentials that worked. Board files build one with wifi_link() (lib/esp32_board.py on
# an ESP32, boards/board_sim.py on the virtual plug). The app names the plug on the
# network (link.hostname = "plug-<last 4 hex of its address>"): set_hostname(name), the
# board's network.hostname, is called with it before the first connect, so the router's
# DHCP table and mDNS show that name. identity() is the station's MAC, IP and RSSI.
import time

# The link kept up while the plug runs. step() never blocks: it starts a connect and looks
# at it again on the next call. A failed attempt is retried after a backoff that doubles
# from NET_FIRST_BACKOFF_MS to NET_MAX_BACKOFF_MS. The credentials that last connected
# are kept in the store ("wifi_good"): when the configured ones fail NET_SWITCH_AFTER
# attempts in a row, the link tries those, and back again, so a signed config with a
# wrong wifi.password cannot take the plug offline for good. The config stays as applied.
NET_FIRST_BACKOFF_MS = 5000
NET_MAX_BACKOFF_MS = 300000
NET_ATTEMPT_MS = 20000
NET_SWITCH_AFTER = 3
NET_POLL_MS = 1000


class WifiLink:
    """A Wi-Fi station (network.WLAN(STA_IF) or one that behaves like it) kept connected.

    store: load(name, default) / save(name, obj), for the last working credentials.
    fail_status: {sta.status() value: reason} for those that end an attempt at once.
    on_up(): called each time the link comes up (the ESP32 boards set the clock).
    set_hostname(name): names the station on the network (network.hostname)."""

    def __init__(self, sta, store=None, log=print, fail_status=None, on_up=None,
                 set_hostname=None):
        self.sta = sta
        self.hostname = None  # set by the app before start()
        self.set_hostname = set_hostname
        self._named = None  # the hostname given to set_hostname()
        self.store = store
        self.log = log
        self.fail_status = fail_status or {}
        self.on_up = on_up
        good = (store.load("wifi_good", None) if store is not None else None) or {}
        self._good = (good.get("ssid"), good.get("password") or "") if good.get("ssid") else None
        self._cfg = None
        self._use = 0  # index into _creds(): 0 the configured credentials, 1 the last good
        self.up = False
        self._trying = None  # ticks when the current attempt started
        self._next = None  # ticks of the next attempt; None: at once
        self._backoff = NET_FIRST_BACKOFF_MS
        self._fails = 0  # failed attempts in a row with the credentials in use
        self._asked = None  # the credentials of our last connect()
        self._last = None
        self._down_ms = 0
        self.error = None

    def _creds(self):
        c = [self._cfg] if self._cfg and self._cfg[0] else []
        if self._good and self._good not in c:
            c.append(self._good)
        return c

    def configure(self, wifi_cfg):
        """The credentials of the config in force; a change reconnects with them."""
        w = wifi_cfg or {}
        cfg = (w.get("ssid") or "", w.get("password") or "")
        if cfg == self._cfg:
            return
        first = self._cfg is None
        self._cfg = cfg
        self._use, self._fails, self._next = 0, 0, None
        self._backoff = NET_FIRST_BACKOFF_MS
        if not first and (self.up or self._trying is not None):
            self.log("[net] Wi-Fi settings changed: reconnecting to %r" % cfg[0])
            self._drop()
            self.up = False

    def _drop(self):
        self._trying = None
        try:
            self.sta.disconnect()
        except OSError:
            pass

    def _current(self):
        c = self._creds()
        return c[self._use % len(c)] if c else ("", "")

    def using(self):
        """"config" or "last_good": which credentials the link is on (or trying)."""
        return "last_good" if self._creds() and self._current() != self._cfg else "config"

    def step(self, now=None):
        """One look at the link: notice it up or lost, end or start an attempt."""
        now = time.ticks_ms() if now is None else now
        if self.hostname != self._named:
            self._name()
        if self._last is not None and not self.up:
            self._down_ms += time.ticks_diff(now, self._last)
        self._last = now
        if self.sta.isconnected():
            if not self.up:
                self._came_up()
            return
        if self.up:
            self.up = False
            self.log("[net] Wi-Fi %r lost: reconnecting" % self._ssid())
            self._drop()
            self._next = None
        creds = self._creds()
        if not creds:
            return
        if self._trying is not None:
            st = _status(self.sta)
            if st in self.fail_status:
                self._failed(now, "%s (status %r)" % (self.fail_status[st], st), creds)
            elif time.ticks_diff(now, self._trying) >= NET_ATTEMPT_MS:
                self._failed(now, "no link after %d s (status %r)"
                             % (NET_ATTEMPT_MS // 1000, st), creds)
            return
        if self._next is not None and time.ticks_diff(now, self._next) < 0:
            return
        self._asked = self._current()
        try:
            self.sta.active(True)
            self.sta.connect(self._asked[0], self._asked[1])
            self._trying = now
        except OSError as e:
            self._failed(now, e, creds)

    def _ssid(self):
        return self._current()[0]

    def _name(self):
        # before the first connect, so DHCP carries it (a link already up at boot takes
        # it at its next connect); a board without set_hostname keeps its own name
        self._named = self.hostname
        if self.hostname and self.set_hostname is not None:
            try:
                self.set_hostname(self.hostname)
            except (OSError, ValueError, TypeError) as e:
                self.log("[net] hostname %r not set: %s" % (self.hostname, e))

    def identity(self):
        """(mac "aa:bb:..", ip, rssi dBm) as far as the station reports them, else None
        each; ip and rssi only while the link is up."""
        mac = ip = rssi = None
        try:
            m = self.sta.config("mac")
            if len(m) == 6:
                mac = ":".join("%02x" % b for b in m)
        except (AttributeError, OSError, ValueError, TypeError):
            pass
        if self.up:
            try:
                ip = self.sta.ifconfig()[0]
            except (AttributeError, OSError, IndexError):
                pass
            try:
                r = self.sta.status("rssi")
                rssi = r if isinstance(r, int) and -128 <= r <= 0 else None
            except (AttributeError, OSError, ValueError, TypeError):
                pass
        return mac, ip, rssi

    def _came_up(self):
        self.up = True
        self._trying = None
        self._fails, self._down_ms, self.error = 0, 0, None
        self._backoff = NET_FIRST_BACKOFF_MS
        # only credentials seen to connect become the fallback (not a link that was
        # already up at boot, which may be on other ones)
        if self._asked and self._asked == self._cfg and self._asked != self._good:
            self._good = self._asked
            if self.store is not None:
                self.store.save("wifi_good", {"ssid": self._good[0], "password": self._good[1]})
        try:
            ip = self.sta.ifconfig()[0]
        except (OSError, AttributeError, IndexError):
            ip = "?"
        if self.using() == "last_good":
            self.log("[net] Wi-Fi %r up, address %s, with the LAST WORKING credentials: the "
                     "configured ones (wifi.ssid %r) did not connect; the config stays as "
                     "applied" % (self._ssid(), ip, self._cfg[0]))
        elif self._ssid():
            self.log("[net] Wi-Fi %r up, address %s" % (self._ssid(), ip))
        else:
            self.log("[net] network up, address %s" % ip)
        if self.on_up:
            self.on_up()

    def _failed(self, now, why, creds):
        self._drop()
        self._fails += 1
        self.error = "Wi-Fi %r not connected: %s" % (self._ssid(), why)
        if len(creds) > 1 and self._fails >= NET_SWITCH_AFTER:
            failed = self._ssid()
            self._use = (self._use + 1) % len(creds)
            self._fails, self._next = 0, None
            self.log("[net] Wi-Fi %r failed %d times (%s): trying the %s credentials "
                     "(ssid %r)" % (failed, NET_SWITCH_AFTER, why,
                                    "last working" if self._use else "configured",
                                    self._ssid()))
            return
        self._next = time.ticks_add(now, self._backoff)
        self.log("[net] %s; next try in %d s" % (self.error, self._backoff // 1000))
        self._backoff = min(self._backoff * 2, NET_MAX_BACKOFF_MS)

    def start(self, wifi_cfg, wait_ms=None, poll_ms=100):
        """At boot: the first attempt, waited for (at most wait_ms). True when up."""
        wait_ms = NET_ATTEMPT_MS if wait_ms is None else wait_ms
        self.configure(wifi_cfg)
        if not self._creds() and not self.sta.isconnected():
            self.log("[net] no Wi-Fi configured (config wifi.ssid): staying offline")
        t0 = time.ticks_ms()
        self.step(t0)
        while self._trying is not None and time.ticks_diff(time.ticks_ms(), t0) < wait_ms:
            time.sleep_ms(poll_ms)
            self.step()
        return self.up

    async def run(self, wifi_section):
        """The network task: wifi_section() is the config's wifi section, asked afresh."""
        import asyncio

        while True:
            self.configure(wifi_section())
            self.step()
            await asyncio.sleep_ms(NET_POLL_MS)

    def status(self):
        link = "up" if self.up else "connecting" if self._trying is not None else "down"
        if not self.up and not self._creds():
            link = "off"
        return {"link": link, "ssid": self._ssid(), "down_s": self._down_ms // 1000,
                "credentials": self.using(), "failed_attempts": self._fails,
                "error": self.error}


def _status(sta):
    try:
        return sta.status()
    except (OSError, AttributeError):
        return None
