"""The plug's wallet under MicroPython: created at first boot, kept across reboots,
HD accounts equal to eth-account's, provisioning and export, and the secret never
showing up in repr, str, status, logs or error messages."""

import json
import os

import pytest
from eth_account import Account
from eth_account.hdaccount.deterministic import HDPath
from eth_account.hdaccount.mnemonic import Mnemonic

from paytest import build_dir
from plug.wallet import WalletError, provisioning_text
from tools import mp

MNEMONIC = "test test test test test test test test test test test junk"  # anvil's
PRE = ("from plug.store import Store\nfrom plug.wallet import *\n"
       "S = Store(%r)\nss = FileSecretStore(S)\n")


def run(state, code, heap="96k"):
    return mp.run(PRE % str(state) + code, heap=heap, path_dirs=build_dir())


def write_import(state, text):
    os.makedirs(state, exist_ok=True)
    with open(os.path.join(state, "wallet_import.json"), "w") as f:
        f.write(text)


def per_channel(accounts):
    return {"wallet": {"mode": "per_channel"},
            "channels": {k: {"account": a} for k, a in accounts.items()}}


def test_bip39_seed_accounts_match_eth_account_hd_derivation(tmp_path):
    seed = Mnemonic.to_seed(MNEMONIC)
    write_import(tmp_path, provisioning_text(seed=seed))
    cfg = per_channel({"M1/A": 0, "M1/B": 1, "M2/A": 7})
    out = run(tmp_path, "w = load_wallet(ss, %r)\nimport json\nprint(json.dumps(w.status()))\n"
              % cfg)
    st = json.loads(out.strip().splitlines()[-1])
    Account.enable_unaudited_hdwallet_features()
    want = {k: Account.from_mnemonic(MNEMONIC, account_path="m/44'/60'/0'/0/%d" % i).address
            for k, i in (("M1/A", 0), ("M1/B", 1), ("M2/A", 7))}
    assert st == {"mode": "per_channel", "kind": "seed", "accounts": want}
    out = run(tmp_path, "w = load_wallet(ss)\nprint(w.address_of('M1/B'))\n"
              "w.configure(%r)\nprint(w.address_of('M1/B'))\n" % cfg)
    assert out.split()[-2:] == [want["M1/A"], want["M1/B"]]  # single mode: account 0
    assert want["M1/A"] == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil account 0
    # a channel per_channel mode lists no account for pays from account 0, as billing
    # bills it (before: WalletError, and /status answered 500 until the next config)
    out = run(tmp_path, "w = load_wallet(ss, %r)\nprint(w.address_of('M2/2'))\n" % cfg)
    assert out.split()[-1] == want["M1/A"]
    assert not os.path.exists(tmp_path / "wallet_import.json")  # consumed


def test_first_boot_creates_a_seed_kept_across_reboots(tmp_path):
    out1 = run(tmp_path, "w = load_wallet(ss)\nprint('ADDR', w.address(), w.address(2))\n")
    assert "[wallet] created a new wallet" in out1
    out2 = run(tmp_path, "w = load_wallet(ss)\nprint('ADDR', w.address(), w.address(2))\n")
    assert "created" not in out2
    a1 = out1.split("ADDR ")[1].split()
    assert a1 == out2.split("ADDR ")[1].split()
    assert "[wallet] address %s" % a1[0] in out1  # printed for the owner to fund
    # the generated 32-byte seed derives like any BIP-32 wallet (eth-account's HDPath)
    rec = json.loads(open(tmp_path / "wallet.1", "rb").read().split(b"\n", 1)[1])
    seed = bytes.fromhex(rec["secret"])
    assert len(seed) == 32 and rec["kind"] == "seed"
    for i, addr in ((0, a1[0]), (2, a1[1])):
        assert Account.from_key(HDPath("m/44'/60'/0'/0/%d" % i).derive(seed)).address == addr


def test_secret_never_in_repr_str_status_logs_or_errors(tmp_path):
    key = os.urandom(32)
    write_import(tmp_path, provisioning_text(private_key=key))
    code = (
        "w = load_wallet(ss, %r)\n"
        "print(repr(w)); print(str(w)); print(w.status())\n"
        "for fn in (lambda: w.address(1), lambda: w.address(-1),\n"
        "           lambda: w.sign_transaction({'to': 'nope', 'nonce': 0}, 0),\n"
        "           lambda: w.sign_transaction({'to': w.address(), 'nonce': 0, 'gas': 1,\n"
        "               'gasPrice': 1, 'chainId': 1, 'from': '0x' + '11' * 20}, 0)):\n"
        "    try:\n        fn()\n    except Exception as e:\n"
        "        print('ERR', type(e).__name__, e, repr(e))\n"
        "w.export_secret()\nprint('END')\n" % per_channel({"M1/A": 0}))
    out = run(tmp_path, code)
    assert out.count("ERR ") == 4
    assert "one imported key" in out and "account index must be an int >= 0" in out
    assert key.hex() not in out.lower() and "Nothing exported" in out
    # the explicit export prints a warning and a re-importable record
    out = run(tmp_path, "w = load_wallet(ss)\nw.export_secret('EXPORT')\n")
    assert "WARNING" in out and key.hex() in out
    rec = json.loads([x for x in out.splitlines() if x.startswith("{")][0])
    assert rec == {"v": 1, "kind": "key", "secret": key.hex()}


def test_bad_provisioning_files_are_refused_without_echoing_them(tmp_path):
    secretish = "ab" * 31 + "zz"
    bad = [
        "not json " + secretish,
        json.dumps({"v": 1, "kind": "key", "secret": secretish}),
        json.dumps({"v": 1, "kind": "key", "secret": "00" * 32}),  # key 0 is invalid
        json.dumps({"v": 1, "kind": "seed", "secret": "11" * 8}),  # too short
        json.dumps({"v": 2, "kind": "seed", "secret": "11" * 32}),
    ]
    for text in bad:
        write_import(tmp_path, text)
        out = run(tmp_path, "w = load_wallet(ss)\n")
        assert "[wallet] import refused" in out
        assert secretish not in out and "11" * 8 not in out
        assert not os.path.exists(tmp_path / "wallet_import.json")


def test_import_over_an_existing_wallet_needs_replace(tmp_path):
    def address(out):  # the printed one, not the log's (an address may end in "A ")
        return out.split("ADDRESS=")[1].split()[0]

    code = "print('ADDRESS=' + load_wallet(ss).address())\n"
    first = address(run(tmp_path, code))
    key = os.urandom(32)
    write_import(tmp_path, provisioning_text(private_key=key))
    out = run(tmp_path, code)
    assert "needs \"replace\": true" in out and address(out) == first
    write_import(tmp_path, provisioning_text(private_key=key, replace=True))
    assert address(run(tmp_path, code)) == Account.from_key(key).address


def test_nvs_store_roundtrip(tmp_path):
    # esp32.NVS cannot exist here; this stands in for its get_blob/set_blob/commit API
    code = (
        "class FakeNVS:\n"
        "    def __init__(self): self.d = {}; self.pending = {}\n"
        "    def set_blob(self, k, v): self.pending[k] = bytes(v)\n"
        "    def commit(self): self.d.update(self.pending)\n"
        "    def get_blob(self, k, buf):\n"
        "        if k not in self.d: raise OSError(-4354)\n"
        "        v = self.d[k]; buf[:len(v)] = v; return len(v)\n"
        "nvs = FakeNVS()\n"
        "a = load_wallet(NvsSecretStore(nvs)).address()\n"
        "b = load_wallet(NvsSecretStore(nvs)).address()\n"
        "print(a == b, len(nvs.d['secret']))\n"
        "print(type(default_secret_store(S)).__name__)\n")
    out = run(tmp_path, code)
    assert "True " in out and "FileSecretStore" in out


def test_provisioning_text_checks_its_input():
    with pytest.raises(WalletError):
        provisioning_text()
    with pytest.raises(WalletError):
        provisioning_text(seed=b"\x01" * 32, private_key=b"\x01" * 32)
    with pytest.raises(WalletError) as e:
        provisioning_text(private_key=b"\xff" * 32)
    assert "ff" not in str(e.value)
    assert json.loads(provisioning_text(seed=b"\x02" * 64))["kind"] == "seed"
