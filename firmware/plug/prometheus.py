# Prometheus text exposition format (version 0.0.4) for GET /metrics.
#
#   prometheus([("plug_power_watts", "gauge", "Active power",
#                [({"device": "M1", "channel": "A"}, 230.5)])])
#
# Names and label names are checked; label values and help text are escaped; NaN and
# infinities are written the way Prometheus reads them.

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _check_name(name, what):
    ok = bool(name) and not ("0" <= name[0] <= "9")
    for ch in name:
        if not (ch.isalpha() or ch.isdigit() or ch in "_:"):
            ok = False
    if not ok or (what == "label" and ":" in name):
        raise ValueError("invalid Prometheus %s name %r" % (what, name))


def _prom_value(v):
    if isinstance(v, bool) or isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        if v != v:
            return "NaN"
        if v in (float("inf"), float("-inf")):
            return "+Inf" if v > 0 else "-Inf"
        return repr(v)
    raise ValueError("Prometheus sample value must be a number, not %r" % (v,))


def prometheus_lines(families):
    """families: iterable of (name, kind, help, samples), samples an iterable of
    (labels dict or None, value) or (suffix, labels, value). Yields exposition lines."""
    for fam in families:
        name, kind, help_text, samples = fam
        _check_name(name, "metric")
        if kind not in ("gauge", "counter", "untyped", "summary", "histogram"):
            raise ValueError("invalid Prometheus metric type %r for %s" % (kind, name))
        if help_text:
            yield "# HELP %s %s\n" % (name, help_text.replace("\\", "\\\\").replace("\n", "\\n"))
        yield "# TYPE %s %s\n" % (name, kind)
        for sample in samples:
            suffix = ""
            if len(sample) == 3:
                suffix, labels, value = sample
            else:
                labels, value = sample
            parts = []
            for k in sorted(labels or ()):
                _check_name(k, "label")
                v = str(labels[k]).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                parts.append('%s="%s"' % (k, v))
            lbl = "{" + ",".join(parts) + "}" if parts else ""
            yield "%s%s%s %s\n" % (name, suffix, lbl, _prom_value(value))


def prometheus(families):
    return "".join(prometheus_lines(families))
