"""The plug's wallet from the host.

    plugctl wallet new --out wallet.json [--accounts N]   a new seed (0600 file), its addresses
    plugctl wallet provision --port PORT --file wallet.json [--replace]
                                                          onto a plug; imported at next boot
    plugctl wallet address --port PORT                    the plug's address
    plugctl wallet export --port PORT --confirm EXPORT    print the plug's secret (warns first;
                                                          without --confirm it prints nothing)

The file is what the plug imports (`plug/wallet.py` provisioning_text): {"v": 1, "kind":
"seed"|"key", "secret": hex, "replace": false}. Account i of a seed is BIP-32
m/44'/60'/0'/0/i, the same on the plug and in every Ethereum wallet.
"""

import argparse
import json
import os
import sys
import tempfile

IMPORT_PATH = "state/wallet_import.json"  # the plug's state directory on its flash
EXPORT_CONFIRM = "EXPORT"  # as plug.wallet.EXPORT_CONFIRM
WARNING = ("WARNING: export prints this plug's wallet secret. Anyone who sees it can spend "
           "every account of this plug. Clear your terminal afterwards.")


def addresses(seed, n):
    from eth_account import Account
    from eth_account.hdaccount import key_from_seed

    return [Account.from_key(key_from_seed(seed, "m/44'/60'/0'/0/%d" % i)).address
            for i in range(n)]


def record(kind, secret, replace=False):
    return {"v": 1, "kind": kind, "secret": secret.hex(), "replace": bool(replace)}


def provision(port, rec):
    """Copy the import file onto the plug and reboot it; returns the plug's new address."""
    from .deploy import mpremote, reset_plug

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(rec, f)
        path = f.name
    try:
        os.chmod(path, 0o600)
        mpremote(port, "fs", "cp", path, ":" + IMPORT_PATH, capture=True)
    finally:
        os.remove(path)
    reset_plug(port)


def cli(cmd, argv):
    ap = argparse.ArgumentParser(prog="plugctl wallet", description="The plug's own wallet "
                                 "(the keys it pays with), from the host.")
    sub = ap.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = sub.add_parser("new", help="make a new seed in a file (0600) and print its addresses",
                       description="Make a new wallet seed in a file only you can read, to "
                                   "provision onto a plug; prints its addresses.")
    p.add_argument("--out", required=True, metavar="FILE", help="wallet file to create")
    p.add_argument("--accounts", type=int, default=1, metavar="N",
                   help="how many addresses to print (accounts 0..N-1; default 1)")
    p = sub.add_parser("provision", help="copy a wallet file onto a plug (imported at its "
                                         "next boot)",
                       description="Copy a wallet file onto a plug over serial and restart "
                                   "it; the plug imports the wallet as it boots.")
    p.add_argument("--port", required=True, help="the plug's serial port or --serial link")
    p.add_argument("--file", required=True, help="wallet file from `plugctl wallet new`")
    p.add_argument("--replace", action="store_true",
                   help="replace a wallet the plug already has (its funds stay with the old key)")
    p = sub.add_parser("address", help="print the plug's wallet address (account 0)",
                       description="Print the plug's wallet address (account 0): the one to "
                                   "fund and to sign configs for.")
    p.add_argument("--port", required=True, help="the plug's serial port or --serial link")
    p = sub.add_parser("export", help="print the plug's wallet secret (needs --confirm EXPORT)",
                       description="Print the plug's wallet secret. " + WARNING)
    p.add_argument("--port", required=True, help="the plug's serial port or --serial link")
    p.add_argument("--confirm", default="", help="must be %s to print the secret" % EXPORT_CONFIRM)
    a = ap.parse_args(argv)
    from .deploy import DeployError

    try:
        return _run(a)
    except DeployError as e:
        # export's output may hold the secret: name the failure only
        raise SystemExit("plugctl wallet %s: %s" % (a.action, "mpremote failed" if
                                                      a.action == "export" else _one_line(e)))


def _one_line(e):
    """mpremote's failure as one line: the plug's error if it raised one."""
    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    errs = [x for x in lines if x.split(":")[0].endswith("Error")]
    if errs:
        hint = ("; is the firmware deployed (plugctl deploy)?"
                if "NameError" in errs[-1] and "plug" in errs[-1] else "")
        return "the plug answered %s%s" % (errs[-1], hint)
    return lines[0] if lines else type(e).__name__


def _run(a):
    from .deploy import mpremote

    if a.action == "new":
        seed = os.urandom(32)
        try:
            fd = os.open(a.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise SystemExit("%s exists; not overwritten (it may hold a wallet)" % a.out)
        with os.fdopen(fd, "w") as f:
            json.dump(record("seed", seed), f)
        for i, addr in enumerate(addresses(seed, a.accounts)):
            print("account %d: %s" % (i, addr))
    elif a.action == "provision":
        with open(a.file) as f:
            try:
                rec = json.load(f)
            except ValueError:
                rec = None
        if not isinstance(rec, dict) or rec.get("kind") not in ("seed", "key") or \
                not isinstance(rec.get("secret"), str):
            raise SystemExit("%s: not a wallet file (kind seed|key and a hex secret)" % a.file)
        rec["replace"] = bool(a.replace)
        provision(a.port, rec)
        print("provisioned; the plug imports it as it boots (plugctl wallet address --port %s)"
              % a.port)
    elif a.action == "address":
        sys.stdout.write(mpremote(a.port, "exec", "print(plug.address())", capture=True))
    elif a.confirm != EXPORT_CONFIRM:
        print(WARNING)
        print("Nothing exported. Run again with --confirm %s to print it." % EXPORT_CONFIRM)
        return 1
    else:
        sys.stdout.write(mpremote(a.port, "exec", "plug.export_wallet(%r)" % EXPORT_CONFIRM,
                                  capture=True))
    return 0
