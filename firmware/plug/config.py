# The plug's configuration: one schema, signed by the owner, applied atomically.
#
# Envelope (what `plugctl config sign` writes and POST /config, the pull URL and
# `plugctl config push` deliver):
#     {"version": <int>, "plug": "0x<address>", "config": {...}, "signature": "0x<65 bytes>"}
# The signature is the owner's EIP-191 personal_sign over canonical({"config": c,
# "plug": p, "version": v}): JSON with keys sorted, no spaces, non-ASCII and control
# characters escaped as \uXXXX, integers in decimal and no floats (exactly what
# CPython's json.dumps(obj, sort_keys=True, separators=(",", ":")) produces).
# "plug" is the plug's wallet address 0 (EIP-55), so an envelope signed for one plug is
# refused by every other plug of the same owner.
#
# Signed configs hold integers only, so the encoding is the same on a 32-bit plug
# with single-precision floats as on the host: calibration comes as gains in ppm,
# phase in milli-degrees, offsets in uA and mW (a field left out is not set).
# Calibration pushed here is applied only when the "calibration" section differs from
# the one in the config it replaces: then every channel it lists gets those values and
# the result is saved as cal.save() saves it (calibration.py); otherwise the plug's
# calibration (e.g. one done later at the REPL) is left alone.
#
# Durable state: "config" (the envelope in force) and "owner" (the owner's address,
# set once at provisioning). An apply first records the candidate as "config_next",
# checks it, then saves it as "config" (an atomic rename); a power cut before that
# leaves the old config in force and the candidate is dropped at boot. A stored config
# that this firmware no longer accepts is left on the flash; the plug then runs on its
# factory settings, and its version still refuses older envelopes (`fallback` says why).
#
# The canonical encoding and the signature check are config_sig.py's.
from micropython import const


class ConfigError(ValueError):
    pass


def check(spec, value, path=""):  # plug/schema.py, loaded for each check (app.py lets it go)
    from plug.schema import check

    return check(spec, value, path)


MAX_ENVELOPE_BYTES = const(8192)
_URL = ("u", 200, "")
_PPM = ("i", 500000, 2000000, None)  # a gain x 1e6 (frontend.GAIN_MIN..GAIN_MAX)
_ADDR = ("a", False)


def __getattr__(name):  # config.SCHEMA, as the host tools read it (plugctl config schema)
    if name == "SCHEMA":
        return _schema()
    raise AttributeError(name)


def _schema():
    """The schema (plug/schema.py's specs), built each time a config is checked: held as
    a module-level dict it would sit on the heap for good (frozen, only tuples of
    constants stay in flash). A new section is one more `"name": ("d", {...}),` below."""
    _BIG = 2**128  # money limits are base units (wei or token units)
    return ("d", {
    "owner": ("a", True),  # set only to hand the plug to a new owner
    "wifi": ("d", {"ssid": ("s", 32, "", None), "password": ("s", 64, "", None)}),
    "chain": ("d", {
        "chain_id": ("i", 1, 2**53, 31337),
        "rpc_urls": ("l", _URL, 1, 4, ("http://127.0.0.1:8545",)),
        "confirmations": ("i", 0, 64, 1),
        "eip1559": ("b", True),
        "tx_deadline_s": ("i", 10, 86400, 300),
        "max_fee_per_gas": ("i", 0, _BIG, 0),  # wei; 0: no fixed ceiling
    }),
    "provider": ("d", {
        "url": _URL,
        "approved_payees": ("l", _ADDR, 0, 8, ()),
        "approved_tokens": ("l", _ADDR, 0, 8, ()),
        "rate_cap_per_kwh": ("i", 0, _BIG, 10**18),
        "fallback": ("s", 8, "hold", ("hold", "rate")),
        "fallback_rate_per_kwh": ("i", 0, _BIG, 0),
        "refresh_s": ("i", 60, 86400, 900),
    }),
    "settlement": ("d", {
        "min_amount": ("i", 0, _BIG, 0),
        "max_period_s": ("i", 60, 90 * 86400, 86400),
        "max_fee_share_pct": ("i", 0, 100, 10),
    }),
    "limits": ("d", {
        "per_payment": ("i", 0, _BIG, 10**17),
        "per_day": ("i", 0, _BIG, 10**18),
        "gas_floor_wei": ("i", 0, _BIG, 10**15),
    }),
    "meter": ("d", {
        "checkpoint_s": ("i", 10, 3600, 60),
        "read_interval_ms": ("i", 100, 10000, 1000),
        "nominal_voltage_v": ("i", 100, 480, 230),
    }),
    "channels": ("m", ("d", {
        "name": ("s", 32, "", None),
        "max_current_a": ("i", 1, 100, 16),
        "account": ("i", 0, 255, 0),
        "power_on": ("s", 12, "restore_last", ("off", "on", "restore_last")),
    }), 16),
    "calibration": ("m", ("d", {  # None: not set (the channel keeps its value)
        "v_gain_ppm": _PPM,
        "i_gain_ppm": _PPM,
        "p_gain_ppm": _PPM,
        "phase_mdeg": ("i", -5000, 5000, None),
        "i_offset_ua": ("i", 0, 5000000, None),  # front ends allow up to 5 % of rated
        "p_offset_mw": ("i", -100000, 100000, None),  # chips with power offset registers
    }), 16),
    "wallet": ("d", {"mode": ("s", 12, "single", ("single", "per_channel"))}),
    "server": ("d", {
        "port": ("i", 1, 65535, 80),
        "max_request_bytes": ("i", 256, 65536, 4096),
        "max_connections": ("i", 1, 16, 4),
    }),
    "pull": ("d", {"url": _URL, "interval_s": ("i", 60, 7 * 86400, 3600)}),
    # releases pulled (plug/update_pull.py): url "": none
    "update": ("d", {"url": _URL, "interval_s": ("i", 60, 7 * 86400, 86400)}),
    "control": ("d", {"token_sha256": ("s", 64, "", None)}),  # "": no switching over HTTP
    "protect": ("d", {  # per channel with a relay; 0: no limit
        "max_power_w": ("i", 0, 100000, 0),
        "max_current_a": ("i", 0, 100, 0),
        "hold_s": ("i", 0, 3600, 10),
        "retry_s": ("i", 0, 86400, 0),  # 0: a tripped output stays off until switched on
        "retry_max": ("i", 0, 100, 3),
    }),
    "supply": ("d", {
        "on_unpaid": ("s", 8, "keep", ("keep", "cut")),
        "grace_s": ("i", 0, 30 * 86400, 3600),
        "warn_s": ("i", 0, 30 * 86400, 600),
    }),
    "time": ("d", {  # the owner's local time, for energy by period (plug/periods.py)
        "utc_offset_min": ("i", -720, 840, 0),  # a multiple of 15; UTC+1: 60
        "dst": ("s", 4, "none", ("none", "eu")),  # eu: +1 h, last Sun Mar..last Sun Oct
    }),
    "mqtt": ("d", {  # Home Assistant over MQTT (plug/mqtt.py); url "": none
        "url": ("s", 80, "", None),  # mqtt://host[:port]; checked by plug/mqtt_ha.py
        "user": ("s", 64, "", None),
        "password": ("s", 64, "", None),  # sent to the broker only
        "base_topic": ("s", 64, "", None),  # "": plug-<last 4 hex of the address>
        "discovery_prefix": ("s", 64, "homeassistant", None),
        "interval_s": ("i", 5, 3600, 30),
        "commands": ("b", False),  # obey switch commands (mind the broker's ACL)
    }),
})


def merged(base, over):
    """`over` on top of `base`, objects merged key by key (lists and values replaced)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merged(out[k], v)
        else:
            out[k] = v
    return out


def validate(cfg):
    """The config with defaults filled in, or ConfigError naming the offending field."""
    schema = _schema()
    out = check(schema, cfg)
    tok = out["control"]["token_sha256"]
    if tok and (len(tok) != 64 or tok.strip("0123456789abcdef")):
        raise ConfigError("control.token_sha256: must be 64 lower-case hex digits (the "
                          "SHA-256 of the control token), or empty")
    if out["time"]["utc_offset_min"] % 15:
        raise ConfigError("time.utc_offset_min: must be a multiple of 15 minutes (UTC+5:45 "
                          "is 345), got %d" % out["time"]["utc_offset_min"])
    from plug.schema import default

    if out["mqtt"] != default(schema[1]["mqtt"]):
        from plug.mqtt_ha import check_config

        check_config(out["mqtt"])
    return out


# ---- envelopes, ownership and atomic apply ----

def parse_envelope(body):
    """(version, config dict as sent, plug address, signature bytes) from raw bytes or a
    dict. Size and nesting are checked before the JSON is parsed (plug/jsonlimit.py)."""
    if isinstance(body, (bytes, bytearray, str)):
        from plug import jsonlimit

        try:
            body = jsonlimit.loads(body, MAX_ENVELOPE_BYTES)
        except ValueError as e:
            raise ConfigError("envelope: %s" % e)
    if not isinstance(body, dict):
        raise ConfigError("envelope: must be an object")
    for k in body:
        if k not in ("version", "config", "plug", "signature"):
            raise ConfigError("envelope.%s: unknown key" % k)
    version, cfg, sig = body.get("version"), body.get("config"), body.get("signature")
    if type(version) is not int or not 0 < version < 2**53:
        raise ConfigError("envelope.version: must be a positive integer")
    if not isinstance(cfg, dict):
        raise ConfigError("envelope.config: must be an object")
    if not isinstance(sig, str) or len(sig) != 132 or sig[:2] != "0x":
        raise ConfigError("envelope.signature: must be 0x and 65 bytes of hex")
    import binascii

    try:
        sig = binascii.unhexlify(sig[2:])
    except ValueError:
        raise ConfigError("envelope.signature: not hex")
    plug = body.get("plug")
    if plug is None:
        raise ConfigError("envelope.plug: missing; sign the config for this plug's address "
                          "(plugctl config sign --plug ADDRESS)")
    check(_ADDR, plug, "envelope.plug")
    return version, cfg, plug, sig


class ConfigManager:
    """The config in force, the owner, and signed, versioned, atomic updates."""

    def __init__(self, store, log=print, factory=None, plug=None):
        # The board's factory settings are the defaults under every config, signed or not
        # (a board's HTTP port, its RPC node until the owner names one).
        self.factory = factory or {}
        self.store = store
        self.log = log
        # this plug's address (wallet account 0), or a function returning it when first
        # needed; envelopes must be signed for it
        self.plug = plug
        self.fallback = None  # why the stored config is not in force, if it is not
        self.owner = store.load("owner")
        if store.load("config_next") is not None:
            self.log("[config] dropped an unfinished apply (power cut during its check)")
            store.remove("config_next")
        env = store.load("config")
        if env is None:  # version 0: what the board ships with, until the owner's first config
            self.version, self.config, self.signature = 0, validate(self.factory), None
            return
        self.version = env["version"]
        try:
            self.config, self.signature = self.complete(env["config"]), env["signature"]
        except ConfigError as e:
            # e.g. a firmware update narrowed a range: boot on the factory settings, keep
            # the version (older envelopes stay refused) and the stored envelope
            self.config, self.signature = validate(self.factory), None
            self.fallback = "stored config v%d is not valid for this firmware (%s); running " \
                "on factory settings until the owner sends a newer one" % (self.version, e)
            self.log("[config] " + self.fallback)
            return
        self._adopt_owner()

    def plug_address(self):
        """The address envelopes must be signed for; ConfigError if it is not known."""
        p = self.plug
        try:
            if callable(p):
                p = p()
        except Exception as e:  # noqa: BLE001 - e.g. no usable wallet (safe mode)
            raise ConfigError("envelope: this plug's address is not available (%s)" % e)
        if not p:
            raise ConfigError("envelope: this plug's address is not known yet")
        return p

    def set_owner(self, address):
        """Provisioning: record the first owner. Later changes need a config the owner signed."""
        if self.owner is not None:
            raise ConfigError("owner: already set; a new owner must arrive in a signed config")
        self.owner = check(("a", False), address, "owner")
        self.store.save("owner", self.owner)
        self.log("[config] owner set to %s" % self.owner)

    def verify(self, body):
        """Check an envelope; returns (version, config as signed, that config completed
        (complete()), plug address, signature hex) or raises."""
        version, cfg, plug, sig = parse_envelope(body)
        if self.owner is None:
            raise ConfigError("envelope: this plug has no owner yet (provision it first)")
        me = self.plug_address()
        if plug != me:
            raise ConfigError("envelope.plug: signed for plug %s, this plug is %s" % (plug, me))
        # the cheap checks first: a replayed or forged old envelope costs no recovery
        if version <= self.version:
            raise ConfigError("envelope.version: %d is not newer than the config in force (%d)"
                              % (version, self.version))
        from plug.config_sig import recover_signer

        try:
            signer = recover_signer(version, cfg, plug, sig)
        except (ValueError, RuntimeError) as e:  # RuntimeError: a dict nested too deeply
            raise ConfigError("envelope.signature: %s" % e)
        if signer != self.owner:
            raise ConfigError("envelope.signature: not signed by the owner %s" % self.owner)
        import binascii

        full = self.complete(cfg)  # refuse schema errors before anything changes
        return version, cfg, full, plug, "0x" + binascii.hexlify(sig).decode()

    def complete(self, cfg):
        """A config as signed, with the board's factory settings and the schema's
        defaults under it; ConfigError naming the field if it is not valid."""
        return validate(merged(self.factory, cfg))

    def apply(self, body, check=None, precheck=None):
        """Verify, switch to and check a new config; roll back and raise if the check fails.

        `precheck(config)` raises ConfigError for a config this plug cannot take (refused
        as invalid, before anything changes). `check(config)` raises with a reason if the
        config does not work (chain id not reachable or not matching, provider descriptor
        refused). Returns the new version.
        """
        version, signed, cfg, plug, sig = self.verify(body)
        if precheck:
            precheck(cfg)
        env = {"version": version, "plug": plug, "config": signed, "signature": sig}
        self.store.save("config_next", env)
        old = (self.version, self.config, self.signature)
        self.version, self.config, self.signature = version, cfg, sig
        try:
            if check:
                check(cfg)
        except Exception as e:  # any failure of the new config means roll back
            self.version, self.config, self.signature = old
            self.store.remove("config_next")
            self.log("[config] version %d rolled back: %s" % (version, e))
            raise ConfigError("config version %d rolled back: %s" % (version, e))
        self.store.save("config", env)
        self.store.remove("config_next")
        self.fallback = None
        self._adopt_owner()
        self.log("[config] version %d in force" % version)
        return version

    def _adopt_owner(self):
        """A config the owner signed may name a new owner (also after a power cut that
        fell between saving that config and saving the owner)."""
        new = self.config.get("owner")
        if new and new != self.owner:
            self.owner = new
            self.store.save("owner", new)
            self.log("[config] ownership passed to %s" % new)
