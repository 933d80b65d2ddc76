# The plug's own wallet: one secret, kept on the plug's flash, that signs payments.
#
#   w = load_wallet(secret_store, config)        # at boot; creates a seed on first boot
#   w.address(account=0) -> "0x..." (EIP-55)      w.account_of("M1/A") -> int
#   w.configure(config)                           # a new config's wallet mode and channels
#   w.address_of("M1/A")                          w.sign_transaction(tx, account) -> raw bytes
#   w.status() -> {"mode", "kind", "accounts": {channel_key: address}}   (no secret)
#   w.export_secret("EXPORT")                     # REPL only: prints a warning and the secret
#
# The secret is either a 32-byte seed from os.urandom (the ESP32's hardware RNG), a
# provisioned BIP-39 seed (64 bytes), or a single provisioned private key. From a
# seed, account i is BIP-32 m/44'/60'/0'/0/i, as every Ethereum wallet derives it.
# config["wallet"]["mode"]: "single" (default) pays every channel from account 0;
# "per_channel" pays channel K from config["channels"][K]["account"].
#
# Storage is behind a tiny interface (load() -> dict or None, save(dict)):
# FileSecretStore keeps it in the plug's state directory through plug.store (unix
# port, or LittleFS on a plug without NVS); NvsSecretStore keeps it as an NVS blob on
# the ESP32 (pass it esp32.NVS("wallet")). The record is {"v": 1, "kind": "seed" or
# "key", "secret": hex}.
#
# Provisioning: the host writes provisioning_text(seed=... or private_key=...) to
# <state>/wallet_import.json (plugctl over mpremote); the next load_wallet() imports
# it, removes the file and prints the new address. An existing wallet is never
# overwritten unless that file says "replace": true.
#
# The secret never appears in a log, status, repr, str or exception message.
import binascii
import json
import os

import eth
from ecdsa_micro import N as _N

IMPORT_FILE = "wallet_import.json"
EXPORT_CONFIRM = "EXPORT"
_NAME = "wallet"


class WalletError(Exception):
    pass


class FileSecretStore:
    """The secret as a durable state file (plug.store: atomic, checksummed)."""

    def __init__(self, store):
        self.store = store
        self.root = store.root

    def load(self):
        return self.store.load(_NAME)

    def save(self, record):
        self.store.save(_NAME, record)


class NvsSecretStore:
    """The secret as a blob in the ESP32's NVS: NvsSecretStore(esp32.NVS("wallet"))."""

    _KEY = "secret"

    def __init__(self, nvs, root=None):
        self.nvs = nvs
        self.root = root  # state dir, for the provisioning file

    def load(self):
        buf = bytearray(256)
        try:
            n = self.nvs.get_blob(self._KEY, buf)
        except OSError:  # ESP_ERR_NVS_NOT_FOUND
            return None
        try:
            return json.loads(bytes(buf[:n]))
        except ValueError:
            raise WalletError("wallet record in NVS is unreadable")

    def save(self, record):
        self.nvs.set_blob(self._KEY, json.dumps(record).encode())
        self.nvs.commit()


def default_secret_store(store):
    """NVS on an ESP32 (import-guarded), else the state directory."""
    try:
        import esp32

        return NvsSecretStore(esp32.NVS("wallet"), store.root)
    except (ImportError, AttributeError):
        return FileSecretStore(store)


def _unhex(s, what):
    if not isinstance(s, str):
        raise WalletError("%s must be a hex string" % what)
    if s[:2] in ("0x", "0X"):
        s = s[2:]
    try:
        return binascii.unhexlify(s)
    except ValueError:
        raise WalletError("%s is not valid hex" % what)


def _check_secret(kind, secret):
    if kind == "seed":
        if not 16 <= len(secret) <= 64:
            raise WalletError("seed must be 16 to 64 bytes (32 generated, 64 from BIP-39)")
    elif kind == "key":
        if len(secret) != 32:
            raise WalletError("private key must be 32 bytes")
        k = int.from_bytes(secret, "big")
        if k == 0 or k >= _N:
            raise WalletError("private key is out of range for secp256k1")
    else:
        raise WalletError("wallet kind must be 'seed' or 'key'")


def _parse_record(rec):
    if not isinstance(rec, dict) or rec.get("v") != 1:
        raise WalletError("wallet record has an unknown format")
    kind = rec.get("kind")
    secret = _unhex(rec.get("secret"), "wallet secret")
    _check_secret(kind, secret)
    return kind, secret


def provisioning_text(seed=None, private_key=None, replace=False):
    """Host side: the wallet_import.json content for a seed or a private key (bytes)."""
    if (seed is None) == (private_key is None):
        raise WalletError("give exactly one of seed or private_key")
    kind, secret = ("seed", seed) if seed is not None else ("key", private_key)
    secret = bytes(secret)
    _check_secret(kind, secret)
    return json.dumps({"v": 1, "kind": kind, "secret": binascii.hexlify(secret).decode(),
                       "replace": bool(replace)})


def _derive(seed, account):
    # BIP-32 runs only when an account's key is first needed (at boot); its modules
    # are dropped again afterwards to give their heap back to the meter.
    import sys

    from bip32 import eth_account_key

    try:
        return eth_account_key(seed, account)
    finally:
        for name in ("bip32", "sha512"):
            sys.modules.pop(name, None)


class Wallet:
    def __init__(self, kind, secret, mode="single", channels=None):
        _check_secret(kind, secret)
        if mode not in ("single", "per_channel"):
            raise WalletError("wallet mode must be 'single' or 'per_channel'")
        self._kind = kind
        self._secret = bytes(secret)
        self.mode = mode
        self.channels = channels or {}
        self._keys = {}
        self._addrs = {}

    def __repr__(self):
        return "<Wallet %s %s>" % (self.mode, self.address(0))

    __str__ = __repr__

    def configure(self, config):
        """Apply a new config's wallet mode and channel accounts (keys stay cached)."""
        mode = config.get("wallet", {}).get("mode", "single")
        if mode not in ("single", "per_channel"):
            raise WalletError("wallet mode must be 'single' or 'per_channel'")
        self.mode = mode
        self.channels = config.get("channels") or {}

    @property
    def kind(self):
        return self._kind

    def _key(self, account):
        if not isinstance(account, int) or account < 0:
            raise WalletError("account index must be an int >= 0")
        k = self._keys.get(account)
        if k is None:
            if self._kind == "key":
                if account != 0:
                    raise WalletError("this wallet holds one imported key (account 0 only); "
                                      "per-channel accounts need a seed")
                k = self._secret
            else:
                k = _derive(self._secret, account)
            self._keys[account] = k
        return k

    def address(self, account=0):
        a = self._addrs.get(account)
        if a is None:
            a = eth.address(self._key(account))
            self._addrs[account] = a
        return a

    def account_of(self, channel_key):
        if self.mode == "single":
            return 0
        # a channel the config lists no account for pays from account 0, as settle.py bills it
        return (self.channels.get(channel_key) or {}).get("account", 0)

    def address_of(self, channel_key):
        return self.address(self.account_of(channel_key))

    def sign_transaction(self, tx, account=0):
        return eth.sign_transaction(tx, self._key(account))

    def status(self):
        accounts = {}
        if self.mode == "single":
            accounts["*"] = self.address(0)
        else:
            for key in sorted(self.channels):
                accounts[key] = self.address(self.account_of(key))
        return {"mode": self.mode, "kind": self._kind, "accounts": accounts}

    def export_secret(self, confirm=None):
        """REPL only. Prints the secret in the provisioning format after a warning."""
        print("WARNING: export_secret prints this plug's wallet secret. Anyone who sees it "
              "can spend every account of this plug. Clear your terminal afterwards.")
        if confirm != EXPORT_CONFIRM:
            print("Nothing exported. Call export_secret(%r) to print it." % EXPORT_CONFIRM)
            return None
        print(json.dumps({"v": 1, "kind": self._kind,
                          "secret": binascii.hexlify(self._secret).decode()}))
        return None


def _import_pending(secret_store, existing):
    """Import <root>/wallet_import.json if present; returns the new record or None."""
    root = getattr(secret_store, "root", None)
    if not root:
        return None
    path = root + "/" + IMPORT_FILE
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    try:
        try:
            rec = json.loads(text)
        except ValueError:
            raise WalletError("%s is not JSON; nothing imported" % IMPORT_FILE)
        if not isinstance(rec, dict):
            raise WalletError("%s must hold an object; nothing imported" % IMPORT_FILE)
        replace = rec.get("replace", False)
        rec = {"v": rec.get("v"), "kind": rec.get("kind"), "secret": rec.get("secret")}
        _parse_record(rec)
        if existing is not None and replace is not True:
            raise WalletError("a wallet exists; %s needs \"replace\": true to overwrite it"
                              % IMPORT_FILE)
        secret_store.save(rec)
        return rec
    finally:
        os.remove(path)  # a secret never lingers in a plain file, imported or not


def load_wallet(secret_store, config=None, rng=None, log=print):
    """The plug's wallet: imported if a provisioning file is waiting, else loaded,
    else created from the RNG on first boot. Prints the address for the owner."""
    def _log(msg):
        log("[wallet] " + msg)

    config = config or {}
    mode = config.get("wallet", {}).get("mode", "single")
    rec = secret_store.load()
    try:
        imported = _import_pending(secret_store, rec)
    except WalletError as e:
        _log("import refused: %s" % e)
        imported = None
    if imported is not None:
        rec = imported
        _log("imported a provisioned %s" % rec["kind"])
    if rec is None:
        rng = rng or os.urandom
        rec = {"v": 1, "kind": "seed", "secret": binascii.hexlify(rng(32)).decode()}
        secret_store.save(rec)
        _log("created a new wallet")
    kind, secret = _parse_record(rec)
    w = Wallet(kind, secret, mode, config.get("channels"))
    _log("address %s (fund it to pay the provider)" % w.address(0))
    return w
