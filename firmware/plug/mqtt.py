# MQTT for Home Assistant: one asyncio task that keeps a connection to the owner's broker,
# announces the plug (discovery), publishes its state and, if the owner allows it, obeys
# switch commands. Topics and documents: mqtt_ha.py. Started (start()) by app.run when
# the config in force at boot names a broker (mqtt.url), or by app_config when a new
# config first names one; then configs are followed live (a new config reconnects with
# it, an empty url idles the task). Not in safe mode.
#
# Why a client of our own (MQTT 3.1.1, QoS 0, about 250 lines) and not micropython-lib's:
# umqtt.simple (and umqtt.robust on top of it) uses blocking sockets: its connect, its
# wait_msg and a publish to a broker that stops reading hold the whole event loop (the
# meter, the money loop, the HTTP server) for as long as the socket waits, and
# umqtt.robust retries with time.sleep. Peter Hinch's mqtt_as is asyncio but large (its
# source is about 30 KB; it brings its own Wi-Fi management and QoS 1 machinery, which
# the plug has or does not need) and keeps several tasks alive. This client is the few
# packets the plug needs on asyncio streams, every wait bounded:
#   CONNECT (clean session, user/password, keepalive, a retained last will "offline" on
#   B/availability) / CONNACK, PUBLISH QoS 0 with retain, SUBSCRIBE QoS 0 to the command
#   topics / SUBACK, PINGREQ / PINGRESP, and incoming QoS 0 PUBLISH.
# Bounds: connect and CONNACK within _IO_MS; every write drained within _IO_MS; a packet
# from the broker, once its first byte came, read within _IO_MS; a packet longer than
# _MAX_IN bytes, an unknown packet type or a malformed one resets the connection; no
# PINGRESP within _IO_MS resets it. After a failure the task waits 1 s, 2 s, 4 s ... up
# to 5 min (back to the start after a connection that lasted, or at once for a new
# config). Name lookup (getaddrinfo) is the one
# unbounded wait, as everywhere on MicroPython (README, Known limits).
#
# States go out every mqtt.interval_s; one that falls due while a money pass runs
# (plug.money_busy) waits for it to end, so their heap peaks never meet.
#
# Commands (mqtt.commands true, a board with relays): "ON"/"OFF" on B/<channel>/switch/set
# switch that output as POST /switch does: an output held off (over-temperature, unpaid)
# is not switched on, the log says why, and B/<channel>/switch publishes its real state
# ("OFF") at once, so Home Assistant shows it off. Anything else is logged and ignored.
# The broker's ACL decides who may publish there (README, MQTT and Home Assistant).
#
# The password goes to the broker in CONNECT and nowhere else: not in /status, logs or
# errors (a refused login says "bad user name or password").
#
# state() (/status device.mqtt, /metrics plug_mqtt_connected): {"state": "off" |
# "connecting" | "connected" | "error", "error": the last failure's text or None,
# "since": Unix time of the last change or None}.
import asyncio
import time
from micropython import const

from plug import mqtt_ha

_MAX_IN = const(512)  # the longest packet taken from the broker
_IO_MS = const(5000)
_KEEPALIVE_S = const(60)
_BACKOFF_MAX_MS = const(300000)
_BUSY_POLL_MS = const(100)
_UNIX_2000 = const(946684800)
_STATE = ["off", None, None]  # state, last error, since (Unix time)
_REFUSED = ("", "unacceptable protocol version", "client id refused", "server unavailable",
            "bad user name or password", "not authorised")


class MQTTError(Exception):
    pass


def state():
    return {"state": _STATE[0], "error": _STATE[1], "since": _STATE[2]}


def _set(plug, st, err=None):
    if st != _STATE[0] or err is not None:
        _STATE[0] = st
        if err is not None:
            _STATE[1] = err[:120]
        try:
            _STATE[2] = plug.clock.time() + _UNIX_2000
        except (AttributeError, OSError):
            _STATE[2] = None


def _vlen(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return out


def _u16(n):
    return bytes((n >> 8, n & 0xFF))


def _s(text):
    b = text.encode() if isinstance(text, str) else text
    return _u16(len(b)) + b


class Client:
    """One connection to the broker (connect(), then publish/subscribe/poll; close())."""

    def __init__(self, log):
        self.log = log
        self.r = self.w = None
        self.on_message = None  # (topic str, payload bytes)
        self._sent = 0
        self._ping = None
        self._pid = 0

    async def connect(self, host, port, client_id, user, password, will_topic, will):
        self.r, self.w = await asyncio.wait_for_ms(asyncio.open_connection(host, port), _IO_MS)
        flags = 0x02 | 0x04 | 0x20  # clean session, a will, retained, QoS 0
        parts = [b"\x00\x04MQTT\x04", None, _u16(_KEEPALIVE_S), _s(client_id), _s(will_topic),
                 _s(will)]
        if user:
            flags |= 0x80
            parts.append(_s(user))
            if password:
                flags |= 0x40
                parts.append(_s(password))
        parts[1] = bytes((flags,))
        await self._send(0x10, parts)
        kind, body = await asyncio.wait_for_ms(self._packet(), _IO_MS)
        if kind != 0x20 or len(body) != 2:
            raise MQTTError("the broker did not answer CONNECT with CONNACK")
        if body[1]:
            raise MQTTError("broker refused the connection: %s" % (
                _REFUSED[body[1]] if body[1] < len(_REFUSED) else "code %d" % body[1]))

    async def _send(self, kind, parts):
        n = 0
        for p in parts:
            n += len(p)
        self.w.write(bytes((kind,)) + _vlen(n))
        for p in parts:
            self.w.write(p)
            await asyncio.wait_for_ms(self.w.drain(), _IO_MS)  # a broker that stops reading
        self._sent = time.ticks_ms()

    async def publish(self, topic, payload, retain=False):
        await self._send(0x31 if retain else 0x30,
                         (_s(topic), payload.encode() if isinstance(payload, str) else payload))

    async def subscribe(self, topic):
        self._pid = self._pid % 65535 + 1
        await self._send(0x82, (_u16(self._pid), _s(topic), b"\x00"))

    async def _read(self, n):
        b = await self.r.readexactly(n)
        if len(b) != n:
            raise MQTTError("the broker closed the connection")
        return b

    async def _packet(self, first=None):
        """(packet type byte, body) of the next packet; MQTTError for one too long."""
        if first is None:
            first = (await self._read(1))[0]
        n, shift = 0, 0
        while True:
            b = (await self._read(1))[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 21:
                raise MQTTError("malformed packet length from the broker")
        if n > _MAX_IN:
            raise MQTTError("a packet of %d bytes from the broker (at most %d taken): "
                            "connection reset" % (n, _MAX_IN))
        return first, (await self._read(n) if n else b"")

    async def poll(self, wait_ms):
        """Wait up to wait_ms for a packet and handle it; keep the connection alive."""
        now = time.ticks_ms()
        if self._ping is not None and time.ticks_diff(now, self._ping) > _IO_MS:
            raise MQTTError("no PINGRESP from the broker within %d s" % (_IO_MS // 1000))
        if self._ping is None and time.ticks_diff(now, self._sent) > _KEEPALIVE_S * 500:
            await self._send(0xC0, ())
            self._ping = time.ticks_ms()
        try:
            first = await asyncio.wait_for_ms(self.r.read(1), wait_ms)
        except asyncio.TimeoutError:
            return
        if not first:
            raise MQTTError("the broker closed the connection")
        kind, body = await asyncio.wait_for_ms(self._packet(first[0]), _IO_MS)
        t = kind & 0xF0
        if t == 0xD0:
            self._ping = None
        elif t == 0x30:
            if kind & 0x06:
                raise MQTTError("a QoS>0 message from the broker on a QoS 0 subscription")
            if len(body) < 2:
                raise MQTTError("malformed PUBLISH from the broker")
            tl = (body[0] << 8) | body[1]
            if tl + 2 > len(body):
                raise MQTTError("malformed PUBLISH from the broker")
            try:
                topic = str(body[2:2 + tl], "utf-8")
            except UnicodeError:
                raise MQTTError("PUBLISH topic is not UTF-8")
            if self.on_message:
                await self.on_message(topic, body[2 + tl:])
        elif t == 0x90:
            if len(body) != 3:
                raise MQTTError("malformed SUBACK from the broker")
            if body[2] == 0x80:
                self.log("[mqtt] the broker refused the command subscription (its ACL?)")
        else:
            raise MQTTError("unexpected packet type 0x%02x from the broker" % kind)

    def close(self):
        w, self.r, self.w = self.w, None, None
        if w is not None:
            try:
                w.s.close()  # MicroPython's Stream.close() leaves the socket open
            except OSError:
                pass


class Session:
    """The plug on one connection: announce, publish, obey."""

    def __init__(self, plug, m, log):
        from plug.version import VERSION

        self.plug = plug
        self.m = m
        self.log = log
        self.names = mqtt_ha.Names(plug._plug_address(), m, plug.board.NAME, VERSION)
        self.keys = plug.ledger.keys()
        self.relays = plug.out.keys()
        self.commands = m["commands"] and bool(self.relays)
        self.unit = None  # the currency symbol the balance sensor was announced with
        self.c = Client(log)
        self.c.on_message = self.command
        self.shown = {}  # output key -> state last published

    async def run(self, version):
        m, n = self.m, self.names
        host, port = mqtt_ha.parse_url(m["url"])
        await self.c.connect(host, port, n.node, m["user"], m["password"], n.avail, "offline")
        _set(self.plug, "connected")
        await self.c.publish(n.avail, "online", True)
        count = 0
        per = getattr(self.plug, "periods", None) is not None
        chans = self.plug.cfgm.config["channels"]
        labels = dict((k, chans[k].get("name")) for k in chans if chans[k].get("name"))
        self.unit = self.symbol()
        for topic, doc in n.docs(self.keys, self.relays, self.commands, per, labels,
                                 self.unit):
            await self.c.publish(topic, doc, True)
            count += 1
            await self.c.poll(0)  # a broker that talks back meanwhile is heard
        labels = doc = None  # not held in this frame for as long as the session lasts
        for topic in n.gone(self.relays, self.commands):  # commands switched on or off
            await self.c.publish(topic, b"", True)
        if self.commands:
            await self.c.subscribe(n.base + "/+/switch/set")
        self.log("[mqtt] connected to %s:%d as %s: %d entities%s"
                 % (host, port, n.base, count, ", commands on" if self.commands else ""))
        every = m["interval_s"] * 1000
        due = time.ticks_ms()
        while self.plug.cfgm.version == version:
            wait = time.ticks_diff(due, time.ticks_ms())
            if wait <= 0 and not self.plug.money_busy:
                due = time.ticks_add(due, every)
                if time.ticks_diff(time.ticks_ms(), due) > 0:
                    due = time.ticks_add(time.ticks_ms(), every)
                await self.publish_state()
                wait = time.ticks_diff(due, time.ticks_ms())
            else:  # not due yet, or due while a money pass runs: it waits for the end
                await self.publish_outputs(False)
            await self.c.poll(min(1000, wait) if wait > 0 else _BUSY_POLL_MS)

    def symbol(self):
        try:
            return mqtt_ha.symbol(self.plug.tariff.current())
        except AttributeError:  # no tariff (safe mode)
            return None

    async def publish_state(self):
        p, n = self.plug, self.names
        readings = p.meter.status()["channels"]
        per = getattr(p, "periods", None)
        for key in self.keys:
            imp, exp = p.ledger.totals(key)
            await self.c.publish(n.state(key), mqtt_ha.channel_state(
                readings.get(key), imp, exp, per.energy(key) if per is not None else None))
        readings = None
        bal, alerts, dec, sym = None, (), 18, ""
        if p.payments:
            from plug.supply import money_alerts

            try:
                alerts, runway = money_alerts(p)
                if runway:
                    bal = runway[0]["balance"]
                d = p.tariff.current()
                if d:
                    dec, sym = d["decimals"], mqtt_ha.symbol(d)
            except (KeyError, TypeError, ValueError) as e:  # the states go out regardless
                self.log("[mqtt] balance and alerts not published: %r" % (e,))
        if sym and sym != self.unit:  # the provider came (or changed currency) later
            self.unit = sym
            topic, doc = n.balance_doc(sym)
            await self.c.publish(topic, doc, True)
        held = []
        if self.relays:
            st = p.out.status()
            for key in self.relays:
                why = st[key]["reason"]
                if why not in ("on", "off"):
                    held.append((key, why))
        await self.c.publish(n.device, mqtt_ha.device_state(bal, dec, sym, alerts, held))
        await self.publish_outputs(True)

    async def publish_outputs(self, every):
        if not self.relays:
            return
        st = self.plug.out.status()
        for key in self.relays:
            on = "ON" if st[key]["on"] else "OFF"
            if every or self.shown.get(key) != on:
                self.shown[key] = on
                await self.c.publish(self.names.switch(key), on, True)

    async def command(self, topic, payload):
        n = self.names
        if not self.commands or not topic.startswith(n.base + "/") or \
                not topic.endswith("/switch/set"):
            return
        o = topic[len(n.base) + 1:-11]
        key = None
        for k in self.relays:
            if mqtt_ha.obj_id(k) == o:
                key = k
        word = bytes(payload).strip().upper()
        if key is None or word not in (b"ON", b"OFF"):
            self.log("[mqtt] command ignored: %s (payload ON or OFF to an output's "
                     "switch/set topic)" % topic[:80])
            return
        from plug.outputs import HeldOff

        try:
            self.plug.switch(key, word == b"ON", "mqtt")
        except HeldOff as e:
            self.log("[mqtt] %s" % e)
        except ValueError as e:
            self.log("[mqtt] command refused: %s" % e)
        self.shown.pop(key, None)
        await self.publish_outputs(False)


def start(plug):
    """Start the MQTT task once (app.run at boot, app_config when a config first names a
    broker); returns it."""
    t = getattr(plug, "mqtt_task", None)
    if t is None:
        from plug.repl import log
        from plug.supervise import forever

        t = plug.mqtt_task = asyncio.create_task(forever("mqtt", lambda: run(plug, log), log))
    return t


async def run(plug, log=print):
    """The MQTT task: reconnects with backoff for as long as the plug runs."""
    backoff = 1000
    while True:
        m = plug.cfgm.config["mqtt"]
        version = plug.cfgm.version
        if not m["url"]:
            _set(plug, "off")
            await asyncio.sleep_ms(5000)
            continue
        s = None
        started = time.ticks_ms()
        _set(plug, "connecting")
        try:
            s = Session(plug, m, log)
            await s.run(version)
            backoff = 1000  # the session ended for a new config
        except (OSError, MQTTError, ValueError, asyncio.TimeoutError, EOFError) as e:
            if time.ticks_diff(time.ticks_ms(), started) > _BACKOFF_MAX_MS:
                backoff = 1000
            _set(plug, "error", "%s: %s" % (type(e).__name__, e))
            log("[mqtt] %s: %s; retry in %d s" % (type(e).__name__, e, backoff // 1000))
        finally:
            if s is not None:
                s.c.close()
            s = None
        waited = 0
        while waited < backoff and plug.cfgm.version == version:
            await asyncio.sleep_ms(1000)
            waited += 1000
        # a new config (a corrected broker, say) is tried at once
        backoff = 1000 if waited < backoff else min(backoff * 2, _BACKOFF_MAX_MS)
