"""The plug under attack, through its interfaces, with money on a real chain (anvil).

- Reads are open on the LAN but never show the wallet's secret: /status, /metrics,
  /ledger (JSON and CSV) and every error reply are grepped for the secret read from the
  plug's own flash, and for the private key derived from it.
- Garbage and oversize HTTP requests to every endpoint get a 4xx, and metering goes on
  (the plug's time and energy keep advancing).
- A compromised tariff server (swapped payee, rates 1000x above the owner's cap, wrong
  chain, bad quote signatures) and a lying JSON-RPC node cannot make the plug pay anyone
  but the approved payee, nor more than the owner's limits: checked on chain, by every
  transaction the plug's address ever sent.
"""

import json
import socket
import threading
import time
import urllib.error
import urllib.request

from types import SimpleNamespace

import pytest
from ota_util import DAY_START, flash_load, wait_for
from hostile_rpc import read_request, serve

from tools.scenario import ETH, World

pytestmark = pytest.mark.slow

SPEED = 1440  # a simulated day per real minute
ATTACKER = "0x000000000000000000000000000000000000dEaD"  # tools/tariff_server.py's
LIMITS = {"per_payment": 5 * 10**15, "per_day": 2 * 10**16, "gas_floor_wei": 10**15}
CAP = ETH // 100  # scenario.plug_config's rate cap per kWh


@pytest.fixture(scope="module")
def world():
    with World(DAY_START, log=lambda m: None) as w:
        yield w


@pytest.fixture(scope="module")
def plug(world):
    p = world.add_plug("sec", speed=SPEED, deploy=False)
    p.provision({"limits": LIMITS})
    return p


@pytest.fixture(scope="module")
def liar(world):
    """A second plug whose only JSON-RPC node lies, started early so that it runs its
    simulated day alongside the other tests; the lies change every few seconds."""
    node = LyingNode(world.devnet.url)
    p = world.add_plug("liar", speed=SPEED, deploy=False)
    p.provision({"limits": LIMITS, "chain": {"rpc_urls": [node.url]}})
    node.rotate(5.0)
    try:
        yield SimpleNamespace(node=node, plug=p, start=sim_time(p))
    finally:
        node.close()


def sim_time(p):
    return p.status()["device"]["time"]


def wait_sim(p, seconds, timeout=120):
    t0 = sim_time(p)
    wait_for(lambda: sim_time(p) >= t0 + seconds, timeout, "%d simulated seconds" % seconds)


def txs_from(devnet, address):
    """Every transaction `address` ever sent, from the chain itself."""
    out = []
    latest = int(devnet.rpc("eth_blockNumber"), 16)
    for n in range(latest + 1):
        blk = devnet.rpc("eth_getBlockByNumber", hex(n), True)
        for tx in blk["transactions"]:
            if tx["from"].lower() == address.lower():
                r = devnet.receipt(tx["hash"])
                out.append({"to": tx["to"], "value": int(tx["value"], 16),
                            "ok": r["status"] == "0x1", "input": tx["input"]})
    return out


def assert_paid_only_within_limits(world, address, payee):
    txs = txs_from(world.devnet, address)
    for tx in txs:
        assert tx["to"].lower() == payee.lower(), tx
        assert tx["value"] <= LIMITS["per_payment"], tx
    paid = sum(t["value"] for t in txs if t["ok"])
    assert world.devnet.balance(ATTACKER) == 0
    return txs, paid


# ---- secrets ------------------------------------------------------------------------


def secrets_of(p):
    """The wallet's secret as stored on the flash, in every spelling worth grepping for,
    plus the account-0 private key derived from it."""
    rec = flash_load(p.state, "wallet")
    assert rec and rec.get("secret"), "no wallet on the plug's flash"
    raw = bytes.fromhex(rec["secret"].removeprefix("0x"))
    out = {raw.hex(), raw.hex().upper(), raw.hex()[:24], raw.hex()[-24:]}
    import base64

    out.add(base64.b64encode(raw).decode()[:20])
    if rec.get("kind") == "seed":
        import bip32
        from eth_account import Account

        key = bytes(bip32.eth_account_key(raw, 0))
        # the derived key is the one that pays: it must be the wallet's address 0
        assert Account.from_key(key).address == p.address
        out |= {key.hex(), key.hex().upper(), key.hex()[:24], key.hex()[-24:]}
    return out


def test_reads_never_show_the_wallet_secret(plug, liar):
    secrets = secrets_of(plug)
    wait_sim(plug, 3600)
    pages = {path: plug.get(path) for path in ("/status", "/metrics", "/ledger",
                                               "/ledger?format=csv")}
    for path in ("/nope", "/status?" + "a" * 300, "/config"):
        try:
            pages[path] = plug.get(path)
        except urllib.error.HTTPError as e:
            pages[path] = e.read().decode("latin-1")
    for path, text in pages.items():
        low = text.lower()
        for s in secrets:
            assert s.lower() not in low, "%s shows (part of) the wallet secret" % path
        assert "secret" not in low and "seed" not in low and "mnemonic" not in low, path
    st = json.loads(pages["/status"])
    assert st["wallets"][0]["address"].startswith("0x")  # the address is public


# ---- garbage over HTTP ----------------------------------------------------------------


def _raw(port, data, read_timeout=12, hold=0):
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as s:
        try:
            s.sendall(data)
            if hold:
                time.sleep(hold)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the plug may cut an oversize request short; its answer still counts
        buf = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    return buf


def _status(reply):
    try:
        return int(reply.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


GARBAGE = [
    ("binary noise", bytes(range(256)) * 8),
    ("no request line", b"\r\n\r\n"),
    ("HTTP/0.9", b"GET /status\r\n\r\n"),
    ("bad version", b"GET /status HTTP/9.9\r\n\r\n"),
    ("unknown method", b"BREW /status HTTP/1.1\r\n\r\n"),
    ("long request line", b"GET /status?" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n"),
    ("header flood", b"GET /status HTTP/1.1\r\n" + b"X-A: b\r\n" * 3000 + b"\r\n"),
    ("one huge header", b"GET /metrics HTTP/1.1\r\nX-A: " + b"b" * 20000 + b"\r\n\r\n"),
    ("header without colon", b"GET /ledger HTTP/1.1\r\nnonsense\r\n\r\n"),
    ("path traversal", b"GET /../state/wallet.0 HTTP/1.1\r\n\r\n"),
    ("encoded traversal", b"GET /%2e%2e/state/wallet.0 HTTP/1.1\r\n\r\n"),
    ("bad percent", b"GET /ledger?format=%ZZ% HTTP/1.1\r\n\r\n"),
    ("NUL in path", b"GET /sta\x00tus HTTP/1.1\r\n\r\n"),
    ("POST to a read", b"POST /status HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"),
    ("GET /config", b"GET /config HTTP/1.1\r\n\r\n"),
    ("POST without length", b"POST /config HTTP/1.1\r\n\r\n{}"),
    ("negative length", b"POST /config HTTP/1.1\r\nContent-Length: -5\r\n\r\n{}"),
    ("huge length", b"POST /config HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n{}"),
    ("length not a number", b"POST /config HTTP/1.1\r\nContent-Length: lots\r\n\r\n{}"),
    ("oversize body", b"POST /config HTTP/1.1\r\nContent-Length: 70000\r\n\r\n" + b"x" * 70000),
    ("body shorter than length", b"POST /config HTTP/1.1\r\nContent-Length: 400\r\n\r\n{}"),
    ("chunked body", b"POST /config HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"2\r\n{}\r\n0\r\n\r\n"),
    ("JSON of the wrong kind", b"POST /config HTTP/1.1\r\nContent-Length: 4\r\n\r\nnull"),
    ("non-UTF-8 body", b"POST /config HTTP/1.1\r\nContent-Length: 4\r\n\r\n\xff\xfe\xfd\xfc"),
]


def test_garbage_requests_get_4xx_and_metering_goes_on(plug):
    before = plug.status()
    codes = {}
    for name, data in GARBAGE:
        codes[name] = _status(_raw(plug.http_port, data))
    # a client that sends half a request and goes quiet is cut off by the plug's deadline
    codes["slow drip"] = _status(_raw(plug.http_port, b"GET /status HTTP/1.1\r\nX-A:", hold=7))
    codes["bad version"] = 400 if codes["bad version"] == 505 else codes["bad version"]  # RFC 9110
    wrong = {n: c for n, c in codes.items() if c is None or not 400 <= c < 500}
    print("garbage http: requests tried %d / answered 4xx %d" % (len(codes),
                                                                 len(codes) - len(wrong)))
    assert not wrong, wrong
    after = plug.status()
    assert after["device"]["time"] > before["device"]["time"]
    assert after["device"]["config_version"] == before["device"]["config_version"]
    for key, ch in before["channels"].items():
        a = after["channels"][key]
        assert a["import_uwh"] >= ch["import_uwh"] and a["export_uwh"] >= ch["export_uwh"]
    assert sum(a["import_uwh"] for a in after["channels"].values()) > \
        sum(c["import_uwh"] for c in before["channels"].values())  # still metering


# ---- a compromised tariff server ---------------------------------------------------------


def test_a_compromised_tariff_server_cannot_redirect_or_inflate_payments(world, plug):
    # first an honest day so far: wait for a confirmed payment to the approved payee
    wait_for(lambda: plug.status()["payments"]["confirmed"], 150, "a first payment")
    honest_txs, _ = assert_paid_only_within_limits(world, plug.address, world.payee)
    assert honest_txs
    reports = set()
    for bad in (["swapped_payee"], ["above_cap"], ["wrong_chain"], ["bad_signature"],
                ["swapped_payee", "above_cap"]):
        world.tariff.control(misbehave=bad, target="all")
        wait_sim(plug, 2 * 3600)
        reports.update(plug.status()["provider"]["reports"])
    world.tariff.control(misbehave=[])
    txs, paid = assert_paid_only_within_limits(world, plug.address, world.payee)
    # the plug said why it refused what it was served
    text = " ".join(reports)
    assert "not approved" in text or "above the owner's cap" in text, reports
    # rates above the cap were never used to bill
    led = plug.ledger()
    for inv in led["invoices"]:
        for it in inv["items"]:
            assert it["rate_per_kwh"] <= CAP, it
        assert inv["payee"].lower() == world.payee.lower()
    assert paid <= sum(inv["amount"] for inv in led["invoices"])  # nothing beyond the bills
    print("tariff attacks: %d transactions from the plug, all to the approved payee, "
          "%d wei paid" % (len(txs), paid))


# ---- a lying JSON-RPC node -------------------------------------------------------------


class LyingNode:
    """Forwards to anvil, but lies: receipts say a mined payment failed, balances are
    huge, the suggested tip is absurd."""

    LIES = ("receipt_failed", "balance_huge", "tip_huge", "nonce_behind")

    def __init__(self, upstream):
        self.upstream = upstream
        self.lies = set()
        self.lied = 0
        self.server = serve(self._handle)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]

    def _handle(self, sock):
        try:
            path, body = read_request(sock)
            if path is None:
                return
            req = urllib.request.Request(self.upstream, body,
                                         {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                reply = json.loads(r.read())
            reply = self._lie(json.loads(body).get("method"), reply)
            out = json.dumps(reply).encode()
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(out) + out)
        except (OSError, ValueError, IndexError):
            pass
        finally:
            sock.close()

    def _lie(self, method, reply):
        res = reply.get("result")
        if method == "eth_getTransactionReceipt" and "receipt_failed" in self.lies and res:
            res = dict(res, status="0x0")
        elif method == "eth_getBalance" and "balance_huge" in self.lies:
            res = hex(10**30)
        elif method == "eth_maxPriorityFeePerGas" and "tip_huge" in self.lies:
            res = hex(10**15)
        elif method == "eth_getTransactionCount" and "nonce_behind" in self.lies and res:
            res = hex(max(0, int(res, 16) - 1))
        else:
            return reply
        self.lied += 1
        return dict(reply, result=res)

    def rotate(self, every_s):
        """Tell each lie in turn for every_s real seconds, then an honest spell."""
        self._stop = threading.Event()

        def run():
            cycle = [{x} for x in self.LIES] + [set()]
            i = 0
            while not self._stop.wait(every_s):
                i += 1
                self.lies = cycle[i % len(cycle)]
            self.lies = set()

        self.lies = {self.LIES[0]}
        threading.Thread(target=run, daemon=True).start()

    def close(self):
        if hasattr(self, "_stop"):
            self._stop.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_lying_rpc_node_cannot_make_the_plug_overpay(world, liar):
    p, node = liar.plug, liar.node
    wait_for(lambda: sim_time(p) >= liar.start + 14 * 3600, 120, "14 simulated hours")
    node._stop.set()
    wait_for(lambda: not node.lies, 10, "the node to turn honest")
    wait_sim(p, 3600)
    txs, paid = assert_paid_only_within_limits(world, p.address, world.payee)
    # every invoice was paid at most once on chain, whatever the node claimed
    memos = [t["input"] for t in txs if t["ok"]]
    assert len(memos) == len(set(memos)), "an invoice was paid twice"
    billed = sum(inv["amount"] for inv in p.ledger()["invoices"])
    assert paid <= billed, (paid, billed)
    # never more than the owner's daily limit for each (simulated) day it ran
    days = (sim_time(p) - liar.start) // 86400 + 2
    assert paid <= LIMITS["per_day"] * days, (paid, days)
    assert node.lied > 0
    assert txs, "the plug paid nothing at all in 15 simulated hours"
    print("rpc lies told %d; %d transactions from the plug, all to the approved payee, "
          "%d wei paid, none twice" % (node.lied, len(txs), paid))
