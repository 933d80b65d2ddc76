# A compact declarative schema for the plug's configuration (config.py holds the
# schema itself). Specs are tuples, not objects, to keep the heap small:
#   ("i", lo, hi, default)          integer in [lo, hi]
#   ("s", maxlen, default, choices) string (choices: tuple or None)
#   ("u", maxlen, default)          "" or an http:// or https:// URL
#   ("b", default)                  true or false
#   ("a", optional)                 EIP-55 checksummed address (None allowed if optional)
#   ("l", item, lo, hi, default)    list of lo..hi items
#   ("d", {key: spec})              object with known keys; missing keys take defaults
#   ("m", value, max_entries)       object keyed DEVICE/CHANNEL codes, values share a spec
# check() returns the value with defaults filled in, or raises ConfigError naming the
# dotted path of the offending field.


# ConfigError is config.py's: this module is let go of after each check (app.py) and the
# class must stay one object; the modules that raise it may import it from here.
from plug.config import ConfigError  # noqa: F401


def _fail(path, msg):
    raise ConfigError("%s: %s" % (path or "config", msg))


def _join(path, key):
    return "%s.%s" % (path, key) if path else key


def code_ok(code):
    """A device or channel code: 1-8 letters or digits."""
    return isinstance(code, str) and 0 < len(code) <= 8 and all(
        c.isalpha() or c.isdigit() for c in code)


def channel_key_ok(k):
    if not isinstance(k, str) or k.count("/") != 1:
        return False
    dev, ch = k.split("/")
    return code_ok(dev) and code_ok(ch)


_REQUIRED = object()


def default(spec):
    kind = spec[0]
    if kind == "i":
        return spec[3]
    if kind in "su":
        return spec[2]
    if kind == "b":
        return spec[1]
    if kind == "a":
        return None if spec[1] else _REQUIRED
    if kind == "l":
        return list(spec[4])
    if kind == "m":
        return {}
    out = {}
    for k, sub in spec[1].items():
        out[k] = default(sub)
    return out


def check(spec, v, path=""):
    kind = spec[0]
    if kind == "i":
        if type(v) is not int:  # true/false are not integers here
            _fail(path, "must be an integer")
        if v < spec[1] or v > spec[2]:
            _fail(path, "must be between %d and %d" % (spec[1], spec[2]))
    elif kind in "su":
        if not isinstance(v, str):
            _fail(path, "must be a string")
        if len(v) > spec[1]:
            _fail(path, "longer than %d characters" % spec[1])
        if kind == "s" and spec[3] and v not in spec[3]:
            _fail(path, "must be one of %s" % ", ".join(spec[3]))
        if kind == "u" and v and not (v.startswith("http://") or v.startswith("https://")):
            _fail(path, "must be an http:// or https:// URL")
    elif kind == "b":
        if v is not True and v is not False:
            _fail(path, "must be true or false")
    elif kind == "a":
        if v is None and spec[1]:
            return None
        import eth

        if not isinstance(v, str) or not eth.is_address(v) or v != eth.to_checksum_address(v):
            _fail(path, "must be a checksummed 0x address")
    elif kind == "l":
        if not isinstance(v, list):
            _fail(path, "must be a list")
        if not spec[2] <= len(v) <= spec[3]:
            _fail(path, "must have %d to %d entries" % (spec[2], spec[3]))
        return [check(spec[1], x, "%s[%d]" % (path, i)) for i, x in enumerate(v)]
    elif kind == "m":
        if not isinstance(v, dict):
            _fail(path, "must be an object")
        if len(v) > spec[2]:
            _fail(path, "more than %d entries" % spec[2])
        out = {}
        for k in v:
            if not channel_key_ok(k):
                _fail(_join(path, k), "key must be DEVICE/CHANNEL, 1-8 letters or digits each")
            out[k] = check(spec[1], v[k], _join(path, k))
        return out
    else:  # "d"
        if not isinstance(v, dict):
            _fail(path, "must be an object")
        fields = spec[1]
        for k in v:
            if k not in fields:
                _fail(_join(path, k), "unknown key")
        out = {}
        for k, sub in fields.items():
            if k in v:
                out[k] = check(sub, v[k], _join(path, k))
            else:
                d = default(sub)
                if d is _REQUIRED:
                    _fail(_join(path, k), "is required")
                out[k] = d
        return out
    return v
