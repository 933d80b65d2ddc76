# A calibration pushed in the owner's signed config (config.py "calibration", integers),
# for plug/calibration.py's Calibrator: loaded only when a config carries one.
#
#   plan = from_config(section, front_ends)  -> [(key, front end, channel code, values)]
#   apply(cal, section)                      set the listed channels, keep them as
#                                            cal.save() does; ConfigError naming the field
from plug.calibration import _load, _snapshot

_FROM_CONFIG = (("v_gain_ppm", "v_gain", 1000000.0), ("i_gain_ppm", "i_gain", 1000000.0),
                ("p_gain_ppm", "p_gain", 1000000.0), ("phase_mdeg", "phase_deg", 1000.0),
                ("i_offset_ua", "i_offset", 1000000.0), ("p_offset_mw", "p_offset", 1000.0))


def from_config(section, front_ends):
    """The front ends' float values of a config's "calibration" section (integers, unset
    fields None): [(key, front end, channel code, {calibration key: value})]."""
    from plug.schema import ConfigError

    fes = {}
    keys = []
    for fe in front_ends:
        fes[fe.device_code] = fe
        keys.extend(fe.device_code + "/" + c for c in fe.channel_codes)
    out = []
    for key in sorted(section):
        dev, code = key.split("/")
        fe = fes.get(dev)
        if fe is None or code not in fe.channel_codes:
            raise ConfigError("calibration.%s: this plug has no channel %s (channels: %s)"
                              % (key, key, ", ".join(keys)))
        values = {}
        for name, k, scale in _FROM_CONFIG:
            v = section[key].get(name)
            if v is not None:
                values[k] = v / scale
        if not hasattr(fe, "set_power_offset") and values.pop("p_offset", 0):
            raise ConfigError("calibration.%s.p_offset_mw: %s has no power offset registers"
                              % (key, dev))
        out.append((key, fe, code, values))
    return out


def apply(cal, section):
    """Set the channels a config's "calibration" section lists (the others keep theirs)
    and keep them as cal.save() does, so cal.undo() goes back to the calibration before.
    Energy is checkpointed first. ConfigError naming the field, with the chips and the
    stored calibration as they were, if a front end refuses a value, fails mid-way or the
    flash does."""
    from plug.schema import ConfigError

    plan = from_config(section, cal.meter.front_ends)
    if not plan:  # a section emptied: no channel is listed, each keeps its own
        return
    try:
        cal.meter.checkpoint()  # energy metered under the old gains is durable
    except Exception as e:  # as when a REPL session starts: logged, not blocking
        cal.log("[cal] checkpoint before a pushed calibration failed: %r" % (e,))
    stored = cal._stored().get("devices") or cal._boot
    devices = {}
    for dev, chans in stored.items():
        devices[dev] = dict((c, dict(v)) for c, v in chans.items())
    before = {}
    try:
        for key, fe, code, values in plan:
            dev = fe.device_code
            if dev not in before:
                before[dev] = (fe, _snapshot(fe))
            try:
                _load(fe, {code: values})
            except Exception as e:  # ValueError (refused) or FrontEndError (chip away)
                raise ConfigError("calibration.%s: %s" % (key, e))
            entry = devices.setdefault(dev, {}).get(code) or _snapshot(fe)[code]
            entry.update(values)
            devices[dev][code] = entry
        gen = cal._keep(devices)
    except Exception as e:
        for fe, snap in before.values():
            try:
                _load(fe, snap)
            except Exception as e2:  # noqa: BLE001 - the stored calibration is the truth
                cal.log("[cal] %s: putting its calibration back failed: %s"
                        % (fe.device_code, e2))
        if isinstance(e, ConfigError):
            raise
        raise ConfigError("calibration: not saved (%s)" % e)
    for dev, snap in cal._history:  # REPL undo steps do not revert the pushed values
        if dev in before:
            now = _snapshot(before[dev][0])
            for _key, fe, code, _values in plan:
                if fe.device_code == dev:
                    snap[code] = now[code]
    cal.log("[cal] calibration of %s set by config (generation %d)"
            % (", ".join(p[0] for p in plan), gen))
