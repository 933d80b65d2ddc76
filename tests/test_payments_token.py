"""ERC-20 payments from the plug (MicroPython) against anvil. The token is compiled from
tests/contracts_pay/PayToken.sol with solcjs from npm and deployed in the test."""

import os
import subprocess
import tempfile

import pytest
from eth_utils import keccak

from paytest import PAYEE, Plug, config, finish, wait_for
from tools.devnet import FAUCET
from tools.paths import executable

pytestmark = pytest.mark.slow

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "contracts_pay", "PayToken.sol")
_BIN = {}


def token_bytecode():
    if "bin" not in _BIN:
        out = tempfile.mkdtemp(prefix="solc-")
        subprocess.run([executable("solcjs"), "--bin", "-o", out, SOURCE], check=True,
                       capture_output=True, timeout=120)
        (name,) = [n for n in os.listdir(out) if n.endswith("PayToken.bin")]
        with open(os.path.join(out, name)) as f:
            _BIN["bin"] = f.read().strip()
    return _BIN["bin"]


def call_data(sig, *args):
    out = keccak(text=sig)[:4]
    for a in args:
        if isinstance(a, str):
            out += bytes(12) + bytes.fromhex(a[2:])
        elif isinstance(a, bool):
            out += int(a).to_bytes(32, "big")
        else:
            out += a.to_bytes(32, "big")
    return "0x" + out.hex()


class Token:
    def __init__(self, devnet):
        self.d = devnet
        h = devnet.rpc("eth_sendTransaction", {"from": FAUCET, "data": "0x" + token_bytecode(),
                                               "gas": hex(3_000_000)})
        r = self.wait(h)
        from eth_utils import to_checksum_address

        self.address = to_checksum_address(r["contractAddress"])

    def wait(self, h):
        r = self.d.wait_receipt(h)
        return r

    def send(self, data):
        h = self.d.rpc("eth_sendTransaction", {"from": FAUCET, "to": self.address, "data": data,
                                               "gas": hex(200_000)})
        return self.wait(h)

    def mint(self, to, amount):
        self.send(call_data("mint(address,uint256)", to, amount))

    def freeze(self, on):
        self.send(call_data("freeze(bool)", on))

    def balance(self, owner):
        return int(self.d.rpc("eth_call", {"to": self.address,
                                           "data": call_data("balanceOf(address)", owner)},
                              "latest"), 16)


@pytest.fixture
def token(devnet):
    return Token(devnet)


@pytest.fixture
def plug(tmp_path, devnet, token):
    p = Plug(tmp_path / "state", config(devnet.url, provider={"approved_tokens": [token.address],
                                                              "approved_payees": [PAYEE]}))
    devnet.fund(p.address, 10**18)
    token.mint(p.address, 5_000_000)
    return p


def test_token_payment_lands_once_with_memo(plug, devnet, token):
    out = plug.run("p = make(ST)\nr = p.pay('t-1', %r, 1_250_000, token=%r, memo=b'inv t-1')\n"
                   "settle(p)\nshow(r)\np.pay('t-1', %r, 1_250_000, token=%r)\n"
                   "print('spent', p.spent_today(%r), p.spent_today())\n"
                   % (PAYEE, token.address, PAYEE, token.address, token.address))
    assert '"st": "confirmed"' in out
    assert "spent 1250000 0" in out
    assert token.balance(PAYEE) == 1_250_000
    assert token.balance(plug.address) == 3_750_000
    assert devnet.nonce(plug.address) == 1
    rec = plug.records()[0]
    tx = devnet.rpc("eth_getTransactionByHash", rec["mined"])
    assert tx["to"].lower() == token.address.lower() and int(tx["value"], 16) == 0
    assert tx["input"] == call_data("transfer(address,uint256)", PAYEE, 1_250_000) + \
        b"inv t-1".hex()


def test_token_balance_too_low_is_refused_before_signing(plug, token):
    out = plug.run("p = make(ST)\ntry:\n    p.pay('t-2', %r, 9_000_000, token=%r)\n"
                   "except SpendRefused as e:\n    print('refused', e)\nprint(len(p.records()))\n"
                   % (PAYEE, token.address))
    assert "refused token balance" in out and out.strip().endswith("0")


def test_unapproved_token_and_payee_are_refused(plug, token):
    other = "0x" + "ab" * 20
    out = plug.run("p = make(ST)\n"
                   "for args in ((%r, 1, %r), (%r, 1, None)):\n"
                   "    try:\n        p.pay('t-3', *args)\n"
                   "    except SpendRefused as e:\n        print('refused', e)\n"
                   % (PAYEE, other, other))
    assert out.count("refused") == 2
    assert "not approved" in out


def test_token_transfer_reverting_when_mined_is_failed_and_released(plug, devnet, token):
    proc = plug.start("p = make(ST)\np.hook = wait_at('prepared')\n"
                      "r = p.pay('t-4', %r, 1_000_000, token=%r)\nsettle(p)\nshow(r)\n"
                      % (PAYEE, token.address))
    wait_for(proc, "AT prepared")
    token.freeze(True)  # after the plug estimated gas and signed
    proc.stdin.write("\n")
    proc.stdin.flush()
    out = finish(proc)
    assert '"st": "failed"' in out.splitlines()[-1]
    assert token.balance(PAYEE) == 0
    # released: paying the same invoice again signs a second attempt, which lands
    token.freeze(False)
    out = plug.run("p = make(ST)\nr = p.pay('t-4', %r, 1_000_000, token=%r)\nsettle(p)\nshow(r)\n"
                   % (PAYEE, token.address))
    assert '"st": "confirmed"' in out and '"att": 2' in out
    assert token.balance(PAYEE) == 1_000_000
