# Device side of the config tests: runs on the MicroPython unix port (64 KB heap).
# Reads one JSON case per line on stdin, answers one JSON line per case on stdout:
#   {"op": "validate", "cfg": {...}}     -> {"ok": <canonical of the validated config>}
#   {"op": "canonical", "v": <value>}     -> {"ok": <canonical encoding as text>}
#   {"op": "envelope", "body": "<text>"}  -> {"ok": [version, config, plug, sig hex]}
#   {"op": "signed", "version": v, "cfg": {...}, "plug": a} -> {"ok": <signed_message>}
#   {"op": "apply", "dir": d, "owner": a, "plug": a, "path": p, "factory": {...}}
#        -> {"ok": version in force}
#        (ConfigManager on a Store in d for the plug with address `plug`: provisions
#        `owner` if none, applies the envelope read from file p, as the plug holds an
#        HTTP body: bytes, nothing else around)
#   {"op": "boot", "dir": d, "factory": {...}} -> {"ok": [version, fallback, canonical of
#        the config in force, log lines]}   (ConfigManager as the plug builds it at boot)
# A ConfigError becomes {"err": message}; any other exception {"crash": "Type: msg"}.
import gc
import json
import sys

from plug import config, config_sig


def run(case):
    op = case["op"]
    if op == "validate":
        return config_sig.canonical(config.validate(case["cfg"])).decode()
    if op == "canonical":
        return config_sig.canonical(case["v"]).decode()
    if op == "signed":
        return config_sig.signed_message(case["version"], case["cfg"], case["plug"]).decode()
    if op == "envelope":
        import binascii

        v, cfg, plug, sig = config.parse_envelope(case["body"])
        return [v, cfg, plug, binascii.hexlify(sig).decode()]
    if op == "apply":
        from plug.store import Store

        m = config.ConfigManager(Store(case["dir"]), log=lambda msg: None,
                                 factory=case.get("factory"), plug=case["plug"])
        if m.owner is None:
            m.set_owner(case["owner"])
        with open(case["path"], "rb") as f:
            body = f.read()
        return m.apply(body)
    if op == "boot":
        from plug.store import Store

        logs = []
        m = config.ConfigManager(Store(case["dir"]), log=logs.append, factory=case.get("factory"))
        return [m.version, m.fallback, config_sig.canonical(m.config).decode(), logs]
    raise ValueError("unknown op %r" % op)


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        if not line.strip():
            continue
        case = json.loads(line)
        try:
            out = {"ok": run(case)}
        except config.ConfigError as e:
            out = {"err": str(e)}
        except Exception as e:  # reported to the test, which fails on it
            sys.print_exception(e, sys.stderr)
            out = {"crash": "%s: %s" % (type(e).__name__, e)}
        print(json.dumps(out))
        case = out = None
        gc.collect()


main()
