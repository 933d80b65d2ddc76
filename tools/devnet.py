"""A local Ethereum devnet: anvil on a free loopback port.

    plugctl devnet [--port N] [--chain-id N] [--fund ADDRESS=ETH ...] [--no-mining]

starts anvil, waits until it answers, funds the given addresses (ETH as a decimal,
exact to the wei; nothing is funded without --fund) and keeps running until Ctrl-C or
SIGTERM, then stops anvil. A port another program holds is refused (PortTaken) before
anvil starts. Tests use the Devnet class through the `devnet` fixture.
"""

import argparse
import decimal
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

from .paths import executable

# anvil's first default account (mnemonic "test test ... junk"), the faucet of tests
FAUCET_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
FAUCET = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RPCError(Exception):
    pass


class PortTaken(OSError):
    """Something already listens on the port asked for."""


def check_port_free(port, host="127.0.0.1", what="port"):
    """PortTaken unless `port` can be bound on `host` (a port left in TIME_WAIT by an
    earlier server counts as free, as it does for anvil and Python's servers)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            import errno

            if e.errno != errno.EADDRINUSE:
                raise PortTaken("%s %d on %s: cannot listen (%s)" % (what, port, host,
                                                                    e.strerror or e))
            raise PortTaken("%s %d on %s is taken: stop what holds it, or pick another port"
                            % (what, port, host))


class Devnet:
    def __init__(self, chain_id=31337, port=None, automine=True, block_time=None,
                 base_fee=None, extra_args=()):
        self.chain_id = chain_id
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.automine = automine
        self.block_time = block_time
        self.base_fee = base_fee
        self.extra_args = list(extra_args)
        self.proc = None
        self._id = 0

    def start(self, timeout=30):
        argv = [executable("anvil"), "--host", "127.0.0.1", "--port", str(self.port),
                "--chain-id", str(self.chain_id), "--silent"]
        if self.block_time:
            argv += ["--block-time", str(self.block_time)]
        if not self.automine:
            argv += ["--no-mining"]
        if self.base_fee is not None:
            argv += ["--block-base-fee-per-gas", str(self.base_fee)]
        # a second anvil on a taken port would fail, yet the first one would answer
        # _wait_ready: refuse the port before starting
        check_port_free(self.port)
        # own process group: stop() can reach the anvil binary behind npm's launcher
        self.proc = subprocess.Popen(argv + self.extra_args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        try:
            self._wait_ready(timeout)
        except BaseException:  # a failed or interrupted start leaves no anvil behind
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("anvil exited: %s" % self.proc.stderr.read().decode())
            try:
                got = int(self.rpc("eth_chainId"), 16)
            except (OSError, RPCError):
                if time.monotonic() > deadline:
                    raise RuntimeError("anvil did not answer on %s" % self.url)
                time.sleep(0.05)
                continue
            if got != self.chain_id:
                raise RuntimeError("anvil answers chain id %d, not %d" % (got, self.chain_id))
            return

    def stop(self):
        """Stop anvil and wait until its port is closed."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # npm's launcher forwards the signal to the anvil binary and exits at once
        deadline = time.monotonic() + 5
        while self._listening() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self._listening():
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None

    def _listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except ConnectionRefusedError:
            return False
        except OSError:
            pass
        return True

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def rpc(self, method, *params, timeout=10):
        self._id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method,
                           "params": list(params)}).encode()
        req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            reply = json.loads(r.read())
        if "error" in reply:
            raise RPCError("%s: %s" % (method, reply["error"]))
        return reply["result"]

    # conveniences for tests and tools
    def fund(self, address, wei):
        self.rpc("anvil_setBalance", address, hex(wei))

    def balance(self, address):
        return int(self.rpc("eth_getBalance", address, "latest"), 16)

    def mine(self, blocks=1):
        self.rpc("anvil_mine", hex(blocks))

    def set_automine(self, on):
        self.rpc("evm_setAutomine", bool(on))

    def nonce(self, address, block="latest"):
        return int(self.rpc("eth_getTransactionCount", address, block), 16)

    def receipt(self, tx_hash):
        return self.rpc("eth_getTransactionReceipt", tx_hash)

    def wait_receipt(self, tx_hash, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.receipt(tx_hash)
            if r:
                return r
            time.sleep(0.05)
        raise TimeoutError("no receipt for %s" % tx_hash)


def fund_spec(spec):
    """"ADDRESS=ETH" (ETH defaults to 10) -> (address, wei), exact to the wei."""
    addr, _, amount = spec.partition("=")
    with decimal.localcontext() as ctx:
        ctx.prec = 100
        ctx.traps[decimal.Inexact] = True
        try:
            wei = decimal.Decimal(amount or "10") * 10**18
            ok = wei.is_finite() and 0 <= wei <= 2**256 - 1 and wei == wei.to_integral_value()
        except decimal.DecimalException:
            ok = False
    if not ok:
        raise argparse.ArgumentTypeError(
            "%r: ETH must be a number >= 0 with at most 18 decimals, below 2**256 wei" % amount)
    return addr, int(wei)


def _stop(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup
    raise SystemExit(0)  # unwinds through main's finally (or Devnet.__exit__): stops anvil


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="plugctl devnet", description="Run a local Ethereum chain (anvil) on loopback "
        "until Ctrl-C or SIGTERM. Its accounts are anvil's well-known test accounts; other "
        "addresses get ETH only with --fund.")
    ap.add_argument("--port", type=int, help="port to listen on (default: a free one)")
    ap.add_argument("--chain-id", type=int, default=31337, help="chain id (default 31337)")
    ap.add_argument("--no-mining", action="store_true",
                    help="do not mine transactions as they arrive (mine with anvil_mine)")
    ap.add_argument("--fund", action="append", default=[], type=fund_spec, metavar="ADDRESS=ETH",
                    help="give ADDRESS this much ETH (exact decimal; default 10); repeatable")
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    try:
        d = Devnet(a.chain_id, a.port, automine=not a.no_mining)
        d.start()
    except (PortTaken, RuntimeError) as e:
        raise SystemExit("plugctl devnet: %s" % e)
    try:  # SIGTERM (SystemExit) and Ctrl-C unwind through here, which stops anvil
        for addr, wei in a.fund:
            d.fund(addr, wei)
        print("devnet: chain %d on %s" % (d.chain_id, d.url), flush=True)
        d.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        d.stop()


if __name__ == "__main__":
    main()
