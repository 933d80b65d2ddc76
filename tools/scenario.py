"""A whole world for virtual plugs on this machine: anvil, the tariff server, an owner,
and plugs driven only through their interfaces (serial REPL, HTTP, the chain).

Used by `make demo`, the end-to-end tests, `make faults` and the load test:

    with World(day_start_unix, rates=[(hour, "price"), ...]) as w:
        p = w.add_plug("p1", speed=1440)      # plugctl sim in-process, firmware deployed
        p.provision(w)                       # owner, signed config, wallet funded
        ...
"""

import json
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

from .config_cli import sign_envelope
from .simrun import DEFAULT_HEAP
from .devnet import Devnet, free_port
from .tariff_server import TariffServer

PAYEE_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # anvil #2
QUOTE_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil #1
OWNER_KEY = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"  # anvil #3
ETH = 10**18


def day_schedule(day_start_unix, rates, payee, chain_id, days=2):
    """Tariff-server schedule: `rates` is [(from_hour, price ETH/kWh as str), ...]."""
    ivs = []
    for d in range(days):
        base = day_start_unix + 86400 * d
        for i, (h, price) in enumerate(rates):
            end_h = rates[i + 1][0] if i + 1 < len(rates) else 24
            ivs.append({"start": base + h * 3600, "end": base + end_h * 3600, "price": price})
    return {"provider": {"name": "Example Energy", "payee": payee, "chain_id": chain_id,
                         "currency": "native", "format": "native"},
            "signer_key": QUOTE_KEY, "issued": day_start_unix - 3600, "intervals": ivs}


def plug_config(rpc_url, provider_url, payee, chain_id, **over):
    cfg = {
        "chain": {"chain_id": chain_id, "rpc_urls": [rpc_url], "confirmations": 1,
                  "eip1559": True, "tx_deadline_s": 3600},
        "provider": {"url": provider_url + "/provider.json", "approved_payees": [payee],
                     "rate_cap_per_kwh": ETH // 100, "fallback": "hold", "refresh_s": 3600},
        "settlement": {"min_amount": 2 * 10**15, "max_period_s": 6 * 3600,
                       "max_fee_share_pct": 10},
        "limits": {"per_payment": ETH // 10, "per_day": ETH, "gas_floor_wei": 10**15},
        "meter": {"checkpoint_s": 300, "read_interval_ms": 10000},
    }
    for k, v in over.items():
        cfg.setdefault(k, {}).update(v)
    return cfg


class PlugHandle:
    def __init__(self, world, name, speed, load=None, heap=DEFAULT_HEAP, deploy=True):
        from . import simrun

        self.world = world
        self.name = name
        self.state = os.path.join(world.tmp, name)
        self.serial = os.path.join(world.tmp, name + ".tty")
        self.http_port = free_port()
        self.url = "http://127.0.0.1:%d" % self.http_port
        os.makedirs(self.state, exist_ok=True)
        args = SimpleNamespace(speed=speed, load=load or "", rpc=world.devnet.url,
                               chain_id=world.chain_id, provider=None,
                               http_port=self.http_port, start_unix=world.day_start)
        simrun.write_settings(self.state, args)
        if not deploy:
            simrun.install_firmware(self.state, "sim")
        self.vplug = simrun.make_plug(self.state, self.serial, heap)
        self._stop = threading.Event()
        self.boots = 0
        self._thread = threading.Thread(target=self._supervise, daemon=True)
        self._thread.start()
        if deploy:
            from .deploy import deploy as do_deploy

            self._wait_serial()
            do_deploy(self.serial, "sim", log=world.log)
        self.wait_http()

    def _supervise(self):
        from .simrun import supervise

        def log(msg):
            self.boots += 1

        supervise(self.vplug, log=log, should_run=lambda: not self._stop.is_set())

    def _wait_serial(self, timeout=20):
        deadline = time.monotonic() + timeout
        while not (self.vplug.alive and os.path.exists(self.serial)):
            if time.monotonic() > deadline:
                raise RuntimeError("%s: no serial port" % self.name)
            time.sleep(0.1)
        time.sleep(0.5)

    def wait_http(self, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.status()
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise RuntimeError("%s: HTTP server did not come up" % self.name)
                time.sleep(0.3)

    def get(self, path, timeout=10):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return r.read().decode()

    def status(self):
        return json.loads(self.get("/status"))

    def ledger(self, limit=200):
        """The whole /ledger, read page by page (`next_offset`) into one object."""
        led = json.loads(self.get("/ledger?limit=%d" % limit))
        while led.get("next_offset") is not None:
            more = json.loads(self.get("/ledger?offset=%d&limit=%d" % (led["next_offset"],
                                                                      limit)))
            for key in ("payments", "invoices", "unsettled"):
                led[key] += more[key]
            led["next_offset"] = more["next_offset"]
            led["total"] = more["total"]
        return led

    def post_config(self, envelope):
        req = urllib.request.Request(self.url + "/config", json.dumps(envelope).encode(),
                                     {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def mpremote(self, code, timeout=60):
        from .deploy import mpremote

        return mpremote(self.serial, "exec", code, capture=True, timeout=timeout)

    def plug_address(self):
        """The plug's wallet address (account 0), which its config envelopes are signed
        for: from /status, else asked at the REPL (safe mode shows no wallet)."""
        if getattr(self, "_plug_address", None) is None:
            ws = [w for w in self.status().get("wallets", ()) if w["account"] == 0]
            self._plug_address = ws[0]["address"] if ws else \
                self.mpremote("print(plug._plug_address())").strip().splitlines()[-1]
        return self._plug_address

    def sign(self, cfg, version, key=OWNER_KEY):
        """A config envelope for this plug."""
        return sign_envelope(cfg, version, key, self.plug_address())

    def provision(self, config_over=None, fund_eth=10):
        """As an owner would: record the owner over serial, push a signed config over
        HTTP, fund the plug's wallet."""
        w = self.world
        self.mpremote("plug.provision_owner(%r)" % w.owner_address)
        over = dict(config_over or {})
        # the plug keeps serving HTTP on its port after the signed config replaces the
        # factory settings (and after every reboot)
        over["server"] = dict({"port": self.http_port}, **over.get("server", {}))
        cfg = plug_config(w.devnet.url, w.tariff.url, w.payee, w.chain_id, **over)
        self.config_version = getattr(self, "config_version", 0) + 1
        code, body = self.post_config(self.sign(cfg, self.config_version))
        if code != 200:
            raise RuntimeError("%s: config refused (%s): %s" % (self.name, code, body))
        self.address = self.status()["wallets"][0]["address"]
        w.devnet.fund(self.address, fund_eth * ETH)
        return self.address

    def set_load(self, spec):
        """Change the simulated loads (sim.json); they take effect at the next boot."""
        from .simrun import read_settings, save_settings

        s = read_settings(self.state)
        s["load"] = spec
        save_settings(self.state, s)

    def reboot(self, timeout=60):
        """plug.reboot() at the REPL; returns once the rebooted plug answers HTTP."""
        boots = self.boots
        self.mpremote("plug.reboot()")
        deadline = time.monotonic() + timeout
        while self.boots == boots:
            if time.monotonic() > deadline:
                raise RuntimeError("%s did not reboot" % self.name)
            time.sleep(0.1)
        return self.wait_http()

    def repl_eval(self, expr):
        """The value of a Python expression evaluated at the plug's REPL (mpremote exec)."""
        import ast

        return ast.literal_eval(self.mpremote("print(repr(%s))" % expr).strip().splitlines()[-1])

    def kill(self):
        """A power cut; the supervisor boots the plug again."""
        self.vplug.kill()

    def stop(self):
        from .simrun import power_off

        self._stop.set()
        self._thread.join(10)
        power_off(self.vplug)


class World:
    def __init__(self, day_start_unix, rates=((0, "0.0001"), (12, "0.0002")), chain_id=31337,
                 log=print, block_time=None):
        from eth_account import Account

        self.day_start = day_start_unix
        self.chain_id = chain_id
        self.block_time = block_time  # None: anvil mines each transaction at once
        self.log = log
        self.payee = Account.from_key(PAYEE_KEY).address
        self.owner_address = Account.from_key(OWNER_KEY).address
        self.rates = rates
        self.plugs = []
        self.tmp = tempfile.mkdtemp(prefix="plug-world-")

    def __enter__(self):
        self.devnet = Devnet(self.chain_id, block_time=self.block_time)
        try:
            self.devnet.start()
            self.payee_start = self.devnet.balance(self.payee)
            self.tariff = TariffServer(day_schedule(self.day_start, self.rates, self.payee,
                                                    self.chain_id)).start()
        except BaseException:  # __exit__ does not run: leave nothing behind
            self.devnet.stop()
            self._cleanup()
            raise
        return self

    def add_plug(self, name, speed=1440, load=None, deploy=True, heap=DEFAULT_HEAP):
        p = PlugHandle(self, name, speed, load, heap, deploy)
        self.plugs.append(p)
        return p

    def payee_received(self):
        return self.devnet.balance(self.payee) - self.payee_start

    def __exit__(self, *exc):
        for p in self.plugs:
            try:
                p.stop()
            except Exception as e:  # keep stopping the rest
                self.log("stop %s: %s" % (p.name, e))
        try:
            self.tariff.stop()
            self.devnet.stop()
        finally:
            self._cleanup()

    def _cleanup(self):
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)  # the plugs' flash, ttys, chain state
