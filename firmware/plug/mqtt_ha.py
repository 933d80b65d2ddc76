# What the plug says over MQTT, in Home Assistant's words: the config's mqtt section
# checked, the topics, the discovery documents and the state payloads. The client and
# the task are mqtt.py's; this module only builds strings (each well under 2 KB).
#
# Topics, under the base topic B (mqtt.base_topic, default plug-<last 4 hex of the
# plug's address>), with O a channel's object id ("M1/A" -> "m1_a"):
#   B/availability          "online" (retained), "offline" as the last will (retained)
#   B/O/state               {"power": W, "energy": kWh import, "energy_export": kWh,
#                            "voltage": V, "current": A, "pf": -1..1, "today": kWh,
#                            "month": kWh (imported; when the plug keeps periods)}
#                           every interval_s
#   B/O/switch              "ON" | "OFF" (retained), on change and every interval_s
#   B/O/switch/set          commands "ON" | "OFF" (only with mqtt.commands true)
#   B/device/state          {"balance": "9.99", "currency": "ETH", "alerts": n,
#                            "alert": "wallet_cannot_pay,over_temperature:M1/B,..."}
#                           (the page's alerts: /status alerts, outputs held off)
# Discovery: <prefix>/<component>/<node_id>/<object_id>/config, retained, one device per
# plug (identifiers [node_id], node_id = "plug_" + the plug's address in lower-case hex).
# Energy sensors meet the energy dashboard: device_class energy, state_class
# total_increasing, unit kWh (energy totals never go backwards: ledger.py); the period
# sensors have no state_class, so the dashboard is offered only the totals (no double
# counting). An output is a switch (commands on) or a binary_sensor (off): the other
# component's config topic gets an empty retained payload, Home Assistant's removal.
# Entity names start with the channel's config name (channels.<key>.name) when set.
# (field in B/O/state, entity name, device_class, state_class, unit)
_SENSORS = (
    ("power", "power", "power", "measurement", "W"),
    ("energy", "energy", "energy", "total_increasing", "kWh"),
    ("energy_export", "export energy", "energy", "total_increasing", "kWh"),
    ("voltage", "voltage", "voltage", "measurement", "V"),
    ("current", "current", "current", "measurement", "A"),
    ("pf", "power factor", "power_factor", "measurement", None),
)
# energy by period (plug/periods.py), imported, reset at the owner's local midnight and
# at the start of a month: no state_class (the totals alone feed the statistics)
_PERIODS = (
    ("today", "energy today", "energy", None, "kWh"),
    ("month", "energy this month", "energy", None, "kWh"),
)


def _topic_ok(t, wild_ok=False):
    if not t or len(t) > 64 or t[0] == "/" or t[-1] == "/" or "//" in t:
        return False
    for c in t:
        if c in "+#" or ord(c) <= 32 or ord(c) > 126:
            return False
    return True


def parse_url(url):
    """(host, port) of an "mqtt://host[:port]" URL; ValueError naming what is wrong (never
    echoing the URL, which a careless owner may have put a password in)."""
    if not url.startswith("mqtt://"):
        raise ValueError("must be mqtt://host[:port] (mqtts:// is not supported)")
    rest = url[7:]
    if rest.endswith("/"):
        rest = rest[:-1]
    if "@" in rest or "/" in rest or "?" in rest:
        raise ValueError("must be mqtt://host[:port]: put the user and password in "
                         "mqtt.user and mqtt.password, no path")
    host, port = rest, 1883
    if ":" in rest:
        host, p = rest.rsplit(":", 1)
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise ValueError("port must be 1-65535")
        port = int(p)
    if not host or len(host) > 63 or host.strip(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-"):
        raise ValueError("host must be a name or IPv4 address")
    return host, port


def check_config(m):
    """ConfigError naming the mqtt field that is wrong; values are never echoed."""
    from plug.config import ConfigError

    if m["url"]:
        try:
            parse_url(m["url"])
        except ValueError as e:
            raise ConfigError("mqtt.url: %s" % e)
    if m["password"] and not m["user"]:
        raise ConfigError("mqtt.password: needs mqtt.user (MQTT 3.1.1 sends a password "
                          "only with a user name)")
    for k in ("user", "password"):
        for c in m[k]:
            if ord(c) < 32 or ord(c) == 127:
                raise ConfigError("mqtt.%s: control characters are not allowed" % k)
    if m["base_topic"] and not _topic_ok(m["base_topic"]):
        raise ConfigError("mqtt.base_topic: 1-64 printable ASCII characters without "
                          "spaces, + or #, no leading, trailing or double /")
    d = m["discovery_prefix"]
    if not _topic_ok(d) or "/" in d:
        raise ConfigError("mqtt.discovery_prefix: one topic level of printable ASCII "
                          "without spaces, + or # (Home Assistant's default: homeassistant)")


def obj_id(key):
    return key.lower().replace("/", "_")


class Names:
    """The topics and discovery documents of one plug."""

    def __init__(self, address, m, board, version):
        a = address[2:].lower()
        self.node = "plug_" + a
        self.base = m["base_topic"] or "plug-" + a[-4:]
        self.prefix = m["discovery_prefix"]
        self.avail = self.base + "/availability"
        self.device = self.base + "/device/state"
        # the same device block in every document (Home Assistant merges them)
        self._dev = ('"device":{"identifiers":["%s"],"name":"Plug %s","model":"%s",'
                     '"manufacturer":"selfpay-plug","sw_version":"%s"}'
                     % (self.node, a[-4:], board, version))

    def state(self, key):
        return "%s/%s/state" % (self.base, obj_id(key))

    def switch(self, key):
        return "%s/%s/switch" % (self.base, obj_id(key))

    def docs(self, keys, relays, commands, periods=False, labels=None, unit=None):
        """(topic, document) one at a time: per channel its sensors (with periods, its
        energy today and this month too), then the device's balance (in `unit`, the
        currency's symbol) and alerts, then a switch per output (commands on) or its
        state as a binary sensor (commands off). labels: {key: the channel's name}."""
        labels = labels or {}
        for key in keys:
            o = obj_id(key)
            label = _json_str(labels.get(key) or key)
            for f, name, dc, sc, unit_ in _SENSORS + (_PERIODS if periods else ()):
                yield self._doc("sensor", o + "_" + f, "%s %s" % (label, name),
                                '"state_topic":"%s","value_template":"{{ value_json.%s }}",'
                                '"device_class":"%s"%s%s'
                                % (self.state(key), f, dc,
                                   ',"state_class":"%s"' % sc if sc else "",
                                   ',"unit_of_measurement":"%s"' % unit_ if unit_ else ""))
        yield self.balance_doc(unit)
        yield self._doc("binary_sensor", "alerts", "Alerts",
                        '"state_topic":"%s","value_template":"{{ \'ON\' if value_json.alerts '
                        'else \'OFF\' }}","device_class":"problem","json_attributes_topic":"%s"'
                        % (self.device, self.device))
        for key in relays:
            o = obj_id(key)
            label = _json_str(labels.get(key) or key)
            if commands:
                yield self._doc("switch", o + "_switch", "%s output" % label,
                                '"state_topic":"%s","command_topic":"%s/set",'
                                '"payload_on":"ON","payload_off":"OFF","device_class":"outlet"'
                                % (self.switch(key), self.switch(key)))
            else:
                yield self._doc("binary_sensor", o + "_switch", "%s output" % label,
                                '"state_topic":"%s","payload_on":"ON","payload_off":"OFF",'
                                '"device_class":"power"' % self.switch(key))

    def balance_doc(self, unit):
        return self._doc("sensor", "balance", "Wallet balance",
                         '"state_topic":"%s","value_template":"{{ value_json.balance }}",'
                         '"state_class":"measurement","icon":"mdi:wallet"%s'
                         % (self.device, ',"unit_of_measurement":"%s"' % _json_str(unit)
                            if unit else ""))

    def gone(self, relays, commands):
        """The config topics of what the plug no longer announces (an output's other
        component): each gets an empty retained payload, Home Assistant's removal."""
        for key in relays:
            yield "%s/%s/%s/%s_switch/config" % (
                self.prefix, "binary_sensor" if commands else "switch", self.node, obj_id(key))

    def _doc(self, comp, obj, name, body):
        return ("%s/%s/%s/%s/config" % (self.prefix, comp, self.node, obj),
                '{"name":"%s","unique_id":"%s_%s",%s,"availability_topic":"%s",%s}'
                % (name, self.node, obj, body, self.avail, self._dev))


def _json_str(t):
    """Text safe inside a JSON string (a channel's name, a currency's symbol): control
    characters become spaces."""
    t = t.replace("\\", "\\\\").replace('"', '\\"')
    for c in t:
        if ord(c) < 32:
            return "".join(" " if ord(x) < 32 else x for x in t)
    return t


def _kwh(uwh):
    return "%d.%06d" % (uwh // 1000000000, uwh % 1000000000 // 1000)


def channel_state(reading, imp, exp, per=None):
    """The JSON of one channel's state from a meter reading, its totals (uWh) and its
    energy by period (Periods.energy(), or None)."""
    r = reading or {}
    return ('{"power":%.1f,"energy":%s,"energy_export":%s,"voltage":%.1f,"current":%.3f,'
            '"pf":%.3f%s}' % (r.get("w", 0.0), _kwh(imp), _kwh(exp), r.get("v", 0.0),
                              r.get("a", 0.0), r.get("pf", 0.0),
                              ',"today":%s,"month":%s' % (_kwh(per["today"][0]),
                                                          _kwh(per["month"][0]))
                              if per else ""))


def amount(n, decimals):
    """A base-unit amount as a decimal string in whole units ("9.996115")."""
    if n is None:
        return "null"
    s = "-" if n < 0 else ""
    n = abs(n)
    if not decimals:
        return '"%s%d"' % (s, n)
    d = 10 ** decimals
    frac = str(n % d)
    frac = ("0" * (decimals - len(frac)) + frac).rstrip("0") or "0"
    return '"%s%d.%s"' % (s, n // d, frac)


def symbol(d):
    """The currency's symbol of a provider descriptor (tariff.current()): a token's own,
    "ETH" for the chain's native coin (as the page shows it); None without a provider."""
    if not d:
        return None
    return d["symbol"] if d.get("token") and d.get("symbol") else "ETH"


def device_state(balance, decimals, symbol, alerts, held=()):
    """alerts: /status alerts (their kinds); held: (output key, reason) of the outputs
    held off: the alerts the page shows."""
    names = [a.get("kind", "alert") for a in alerts]
    for key, why in held:
        names.append("%s:%s" % (why, key))
    return '{"balance":%s,"currency":"%s","alerts":%d,"alert":"%s"}' % (
        amount(balance, decimals), _json_str(symbol or ""), len(names),
        _json_str(",".join(names)))
