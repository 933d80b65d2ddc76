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
    try:
        with open(path) as f:
            key = f.read().strip()
    except FileNotFoundError:
        raise SystemExit("owner key %s: no such file (make one with `plugctl owner new --out "
                         "%s`)" % (path, path))
    except (OSError, UnicodeDecodeError) as e:
        raise SystemExit("owner key %s: cannot read it (%s)" % (path, getattr(e, "strerror",
                                                                           None) or e))
    if not key.startswith("0x") or len(key) != 66:
        raise SystemExit("%s: not a 0x-prefixed 32-byte hex key" % path)
    return key


def read_json(path, what):
    """The JSON in `path`, or SystemExit saying what is wrong with the file."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise SystemExit("%s %s: no such file" % (what, path))
    except ValueError as e:
        raise SystemExit("%s %s: not JSON: %s" % (what, path, e))


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
    from .paths import FIRMWARE, LIB, shim_micropython

    shim_micropython()
    for d in (LIB, FIRMWARE):
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
    from plug.config_sig import canonical

    canonical(cfg)
    return plug


def plug_exec(port, code):
    """Run `code` at the plug's REPL; the plug's refusal (the exception it raised) becomes
    SystemExit with just its message, e.g. "plug refused: ConfigError: envelope..."."""
    from .deploy import DeployError, check_port, mpremote

    try:
        check_port(port)
    except DeployError as e:
        raise SystemExit(str(e))
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
    port_help = "the plug's serial port (/dev/ttyUSB0) or a virtual plug's --serial link"
    if cmd == "owner":
        ap = argparse.ArgumentParser(prog="plugctl owner", description="The owner's key (it "
                                     "signs the plug's configs) and recording the owner on a "
                                     "new plug.")
        sub = ap.add_subparsers(dest="action", required=True, metavar="ACTION")
        p = sub.add_parser("new", help="create an owner key file (0600); prints its address",
                           description="Create an owner key in a file only you can read and "
                                       "print its address. Keep it off the plug.")
        p.add_argument("--out", required=True, metavar="FILE", help="key file to create")
        p = sub.add_parser("address", help="print the address of an owner key",
                           description="Print the address of an owner key.")
        p.add_argument("--key", required=True, metavar="FILE", help="owner key file")
        p = sub.add_parser("provision", help="record the first owner on a new plug (serial)",
                           description="Record the plug's first owner over serial (physical "
                                       "access). Later owners arrive only in a config the "
                                       "current owner signed.")
        p.add_argument("--port", required=True, help=port_help)
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--key", metavar="FILE", help="owner key file (its address is recorded)")
        g.add_argument("--address", help="the owner's address, if the key is elsewhere")
    else:
        ap = argparse.ArgumentParser(prog="plugctl config", description="The plug's "
                                     "configuration: signed by the owner, pushed over HTTP or "
                                     "serial.")
        sub = ap.add_subparsers(dest="action", required=True, metavar="ACTION")
        p = sub.add_parser("sign", help="sign a config for one plug (checked first)",
                           description="Sign a config with the owner's key for one plug, "
                                       "after checking it as the plug would.")
        p.add_argument("--key", required=True, metavar="FILE", help="owner key file")
        p.add_argument("--plug", required=True, metavar="ADDRESS",
                       help="the plug's wallet address (account 0: plugctl wallet address)")
        p.add_argument("--version", type=int, required=True, metavar="N",
                       help="config version, higher than the one in force")
        p.add_argument("config", help="config JSON file (fields: plugctl config schema)")
        p.add_argument("--out", metavar="FILE", help="envelope file to write (default: print)")
        p = sub.add_parser("push", help="apply a signed envelope (HTTP or serial)",
                           description="Apply a signed envelope: POST /config over HTTP, or "
                                       "plug.apply_config() over serial.")
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--port", help=port_help)
        g.add_argument("--url", help="the plug's HTTP address, e.g. http://127.0.0.1:8081")
        p.add_argument("envelope", help="envelope file from `plugctl config sign`")
        sub.add_parser("schema", help="print every config field with its type and default",
                       description="Print every config field with its type, range and "
                                   "default.")
    a = ap.parse_args(argv)
    from eth_account import Account

    if cmd == "owner" and a.action == "new":
        acct = Account.create()
        try:
            fd = os.open(a.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise SystemExit("%s exists; not overwritten (it may hold an owner key)" % a.out)
        with os.fdopen(fd, "w") as f:
            f.write("0x" + bytes(acct.key).hex() + "\n")
        print(acct.address)
    elif cmd == "owner" and a.action == "address":
        print(Account.from_key(read_key(a.key)).address)
    elif cmd == "owner":
        addr = a.address or Account.from_key(read_key(a.key)).address
        sys.stdout.write(plug_exec(a.port, "print(plug.provision_owner(%r))" % addr))
    elif a.action == "sign":
        cfg = read_json(a.config, "config")
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
        env = read_json(a.envelope, "envelope")
        if a.port:
            sys.stdout.write(push_serial(a.port, env))
        else:
            from .client import PlugUnreachable, check_url, unreachable

            try:
                status, body = push_http(check_url(a.url), env)
            except PlugUnreachable as e:
                raise SystemExit("plugctl config push: %s" % e)
            except OSError as e:
                raise SystemExit("plugctl config push: %s" % unreachable(a.url, e))
            print(status, body)
            return 0 if status == 200 else 1
    else:
        for line in schema_lines(_plug_config_module().SCHEMA):
            print(line)
    return 0
