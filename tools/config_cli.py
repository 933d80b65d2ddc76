"""Owner keys and signed configuration envelopes, on the host.

    plugctl owner new --out owner.key            create an owner key (prints the address)
    plugctl owner address --key owner.key        print the owner's address
    plugctl owner provision --port PORT --key owner.key|--address ADDR
                                                 record the first owner on a new plug (serial)
    plugctl config sign --key owner.key --plug ADDR --version N config.json [--out env.json]
                                                 ADDR: the plug's wallet address (account 0,
                                                 `plugctl wallet address`); checked against
                                                 the plug's schema first
    plugctl config push --port PORT env.json     apply an envelope over serial (mpremote)
    plugctl config push --url http://plug/ env.json
    plugctl config schema                        print every field with its default

The envelope is {"version", "plug", "config", "signature"}: the owner's EIP-191
signature over json.dumps({"config": c, "plug": p, "version": v}, sort_keys=True,
separators=(",", ":")), which is the plug's own canonical encoding
(firmware/plug/config.py). Only the plug whose address is p accepts it.
"""

import argparse
import json
import os
import sys


def canonical(version, cfg, plug):
    return json.dumps({"config": cfg, "plug": plug, "version": version}, sort_keys=True,
                      separators=(",", ":")).encode()


def read_key(path):
    with open(path) as f:
        key = f.read().strip()
    if not key.startswith("0x") or len(key) != 66:
        raise SystemExit("%s: not a 0x-prefixed 32-byte hex key" % path)
    return key


def sign_envelope(cfg, version, key, plug):
    """The envelope for the plug whose wallet address (account 0) is `plug`."""
    from eth_account import Account
    from eth_account.messages import encode_defunct
    from eth_utils import to_checksum_address

    plug = to_checksum_address(plug)
    sig = Account.sign_message(encode_defunct(canonical(version, cfg, plug)), key).signature
    return {"version": version, "plug": plug, "config": cfg,
            "signature": "0x" + bytes(sig).hex()}


def _plug_config_module():
    """firmware/plug/config.py on CPython (through tools/shim), as `config schema` uses it."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    for d in (os.path.join(root, "lib"), os.path.join(root, "firmware"),
              os.path.join(here, "shim")):
        if d not in sys.path:
            sys.path.insert(0, d)
    from plug import config

    return config


def check_before_signing(cfg, version, plug):
    """The plug's EIP-55 address if the plug would take (cfg, version) signed for it (a
    version above the one in force provided); else ValueError with the plug's refusal."""
    config = _plug_config_module()
    import eth

    if type(version) is not int or not 0 < version < 2**53:
        raise ValueError("envelope.version: must be a positive integer (1 or more), got %r"
                         % (version,))
    try:
        plug = eth.to_checksum_address(plug)
    except ValueError as e:
        raise ValueError("--plug: %s (the plug's wallet address: plugctl wallet address)" % e)
    config.validate(cfg)  # ConfigError (a ValueError) naming the field
    config.canonical(cfg)
    return plug


def plug_exec(port, code):
    """Run `code` at the plug's REPL; the plug's refusal (the exception it raised) becomes
    SystemExit with just its message, e.g. "plug refused: ConfigError: envelope..."."""
    from .deploy import DeployError, mpremote

    try:
        return mpremote(port, "exec", code, capture=True)
    except DeployError as e:
        lines = [x.strip() for x in str(e).splitlines()]
        errs = [x for x in lines if x.split(":")[0].endswith("Error") and " " not in
                x.split(":")[0]]
        raise SystemExit("plug refused: %s" % errs[-1] if errs else str(e))


def push_serial(port, envelope):
    """Apply an envelope through the plug's REPL: plug.apply_config(<json>)."""
    body = json.dumps(envelope, separators=(",", ":"))
    return plug_exec(port, "print(plug.apply_config(%r))" % body)


def push_http(url, envelope, timeout=30):
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url.rstrip("/") + "/config", json.dumps(envelope).encode(),
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def schema_lines(spec, path=""):
    kind = spec[0]
    if kind == "d":
        for k, sub in spec[1].items():
            yield from schema_lines(sub, "%s.%s" % (path, k) if path else k)
    elif kind == "m":
        yield from schema_lines(spec[1], path + ".<DEVICE/CHANNEL>")
    else:
        desc = {"i": lambda s: "integer %d..%d, %s" % (
                    s[1], s[2], "not set unless given" if s[3] is None else "default %d" % s[3]),
                "s": lambda s: "string (<= %d chars%s), default %r" % (
                    s[1], ", one of " + "|".join(s[3]) if s[3] else "", s[2]),
                "u": lambda s: "http(s) URL or empty, default %r" % s[2],
                "b": lambda s: "true/false, default %s" % str(s[1]).lower(),
                "a": lambda s: "checksummed address%s" % (" or null" if s[1] else ""),
                "l": lambda s: "list of %d..%d, default %r" % (s[2], s[3], list(s[4]))}[kind]
        yield "%-40s %s" % (path, desc(spec))


def cli(cmd, argv):
    ap = argparse.ArgumentParser(prog="plugctl " + cmd)
    sub = ap.add_subparsers(dest="action", required=True)
    if cmd == "owner":
        p = sub.add_parser("new")
        p.add_argument("--out", required=True)
        p = sub.add_parser("address")
        p.add_argument("--key", required=True)
        p = sub.add_parser("provision")
        p.add_argument("--port", required=True)
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--key")
        g.add_argument("--address")
    else:
        p = sub.add_parser("sign")
        p.add_argument("--key", required=True)
        p.add_argument("--plug", required=True, help="the plug's wallet address (account 0)")
        p.add_argument("--version", type=int, required=True)
        p.add_argument("config")
        p.add_argument("--out")
        p = sub.add_parser("push")
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--port")
        g.add_argument("--url")
        p.add_argument("envelope")
        sub.add_parser("schema")
    a = ap.parse_args(argv)
    from eth_account import Account

    if cmd == "owner" and a.action == "new":
        acct = Account.create()
        fd = os.open(a.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("0x" + bytes(acct.key).hex() + "\n")
        print(acct.address)
    elif cmd == "owner" and a.action == "address":
        print(Account.from_key(read_key(a.key)).address)
    elif cmd == "owner":
        addr = a.address or Account.from_key(read_key(a.key)).address
        sys.stdout.write(plug_exec(a.port, "print(plug.provision_owner(%r))" % addr))
    elif a.action == "sign":
        with open(a.config) as f:
            try:
                cfg = json.load(f)
            except ValueError as e:
                raise SystemExit("%s: not JSON: %s" % (a.config, e))
        try:
            plug = check_before_signing(cfg, a.version, a.plug)
        except ValueError as e:
            raise SystemExit("not signed, the plug would refuse it: %s" % e)
        env = sign_envelope(cfg, a.version, read_key(a.key), plug)
        text = json.dumps(env, indent=1)
        if a.out:
            with open(a.out, "w") as f:
                f.write(text + "\n")
        else:
            print(text)
    elif a.action == "push":
        with open(a.envelope) as f:
            env = json.load(f)
        if a.port:
            sys.stdout.write(push_serial(a.port, env))
        else:
            status, body = push_http(a.url, env)
            print(status, body)
            return 0 if status == 200 else 1
    else:
        for line in schema_lines(_plug_config_module().SCHEMA):
            print(line)
    return 0
