# A new config for a running plug: checked against its chain and provider, its money side
# built from the flash, then put in force (plug.apply_config, POST /config, the config
# pull). Imported when a config arrives, not at boot. The envelope's own checks (owner,
# signature, version, schema) and the rollback are config.py's.
import gc


def check_config(cfg):
    """A new config must reach its chain and accept its provider, or it rolls back."""
    from plug.chain import Chain
    from plug.rpc import CALL_DEADLINE_S, CALL_TIMEOUT_S, RPC
    from plug.provider import check_descriptor, check_token_decimals, get_json, http_get

    ch = cfg["chain"]
    chain = Chain(RPC(ch["rpc_urls"], timeout_s=CALL_TIMEOUT_S, retries=1,
                      deadline_s=CALL_DEADLINE_S), ch["chain_id"], ch["eip1559"])
    chain.check_chain()
    if cfg["provider"]["url"]:
        d = get_json(http_get, cfg["provider"]["url"])  # bounded (plug/jsonlimit.py)
        check_token_decimals(check_descriptor(d, cfg["provider"], ch["chain_id"]),
                             chain.erc20_decimals)


def apply_config(plug, envelope):
    """Apply a signed config envelope (JSON text or dict); returns its version. The new
    config must reach its chain, accept its provider and load the money side from the
    flash before it is put in force; otherwise it is rolled back."""
    built = []
    cal_before = plug.cfgm.config["calibration"]

    def precheck(cfg):
        keys = [fe.device_code + "/" + c for fe in plug.front_ends for c in fe.channel_codes]
        for key in sorted(cfg["channels"]):
            if keys and key not in keys:  # a typo would silently set nothing
                from plug.config import ConfigError

                raise ConfigError("channels.%s: this plug has no channel %s (channels: %s)"
                                  % (key, key, ", ".join(keys)))
        if cfg["calibration"] != cal_before:
            plug.cal.check_config(cfg["calibration"])

    def check(cfg):
        plug._check_config(cfg)
        if not plug.safe_mode:
            gc.collect()
            built.append(plug._make_money(cfg))
        # last, so nothing after it rolls the config back; saved before the config is
        if cfg["calibration"] != cal_before:
            plug.cal.apply_config(cfg["calibration"])

    v = plug.cfgm.apply(envelope, check=check, precheck=precheck)
    cfg = plug.cfgm.config
    for key, ch in cfg["channels"].items():
        if key in plug.ledger.keys():  # spikes: only beyond the chip's full scale
            plug.ledger.add_channel(key, max(ch["max_current_a"],
                                             plug.meter.full_scale_a(key)))
    plug.out.configure(cfg)
    plug.meter.checkpoint_s = cfg["meter"]["checkpoint_s"]
    plug.meter.interval_s = cfg["meter"]["read_interval_ms"] / 1000
    if built:
        plug._install_money(cfg, built[0])
    if cfg["mqtt"]["url"] and not plug.safe_mode:  # the first broker: start MQTT now
        __import__("plug.mqtt").mqtt.start(plug)
    return v
