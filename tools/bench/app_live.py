"""The whole app running on a virtual plug, measured through its interfaces only: HTTP
/status, the serial REPL (mpremote exec while the app runs) and the chain.

    with World(day_start) as w:                       # anvil + tariff server
        run = LiveRun(w, flash, romfs=None, free=None)  # .mpy on the flash, 512k heap
        run.boot()          # seconds from process start to the first reading
        run.provision()     # owner, signed config, funded wallet
        run.probe()         # heap probes around the payment path (see PROBE)
        run.wait_payment()  # until a payment is confirmed on chain
        run.heap()          # (used, free) after gc.collect(), idle
        run.peaks()         # {probe: highest live heap seen there}
        run.stop()

Peak heap: the payment path is synchronous (blocking RPC calls), so a sampling task
would only ever see the heap between steps. Instead PROBE wraps the functions a payment
goes through (signing, each RPC round trip, the write-ahead save, the money loop's
steps, /status) and records gc.collect() + gc.mem_alloc() on entry and on return (the
result still held). That is the live heap at those points, a lower bound for the true
peak; run with `free=` set (a heap cap) and a confirmed payment proves the app fits.
"""

import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

from tools import simrun
from tools.config_cli import sign_envelope
from tools.deploy import mpremote
from tools.devnet import free_port
from tools.paths import ROOT
from tools.scenario import ETH, OWNER_KEY, plug_config
from tools.vplug import VirtualPlug

BOOT = os.path.join(ROOT, "tools", "bench", "app_boot.py")
OBJECTS = os.path.join(ROOT, "tools", "bench", "app_objects.py")
HOLES = os.path.join(ROOT, "tools", "heap_holes.py")

PROBE = r"""
import gc
try:
    _HW
except NameError:
    _HW = {}

def _probe(name, f):
    def w(*a, **k):
        gc.collect()
        m = gc.mem_alloc()
        try:
            return f(*a, **k)
        finally:
            gc.collect()
            m = max(m, gc.mem_alloc())
            if m > _HW.get(name, 0):
                _HW[name] = m
    return w

def _wrap(label, obj, attr):
    f = getattr(obj, attr, None)
    if f is not None and not hasattr(f, "_probed"):
        w = _probe(label, f)
        setattr(obj, attr, w)

for _l, _o, _a in (
        ("payments.pay", plug.payments, "pay"),
        ("payments.step", plug.payments, "step"),
        ("payments._save", plug.payments, "_save"),
        ("payments._add_variant", plug.payments, "_add_variant"),
        ("payments._broadcast", plug.payments, "_broadcast"),
        ("wallet.sign_transaction", plug.wallet, "sign_transaction"),
        ("rpc.call", plug.chain.rpc, "call"),
        ("rpc._post", plug.chain.rpc, "_post"),
        ("tariff.poll", plug.tariff, "poll"),
        ("billing.run", plug.billing, "run"),
        ("settlement.settle", plug.settlement, "settle"),
        ("store.save", plug.store, "save"),
        ("ledger.checkpoint", plug.ledger, "checkpoint"),
        ("plug.status", plug, "status"),
        ("plug.money_step", plug, "money_step")):
    _wrap(_l, _o, _a)
import ecdsa_micro
_wrap("ecdsa_micro.sign", ecdsa_micro, "sign")
print(sorted(_HW), "probes in place")
"""


# heap held by the ROMFS image and the ballast: app_boot.py sets it as a builtin, which a
# plain name finds (getattr(builtins, ...) does not see overridden builtins)
_RESERVED = "(lambda: _bench_reserved)()"


class BootFailed(RuntimeError):
    pass


class LiveRun:
    def __init__(self, world, flash, romfs=None, free=None, heap="512k", speed=600,
                 load=None):
        self.world = world
        self.state = tempfile.mkdtemp(prefix="bench-plug-")
        self.serial = self.state + ".tty"
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        args = SimpleNamespace(speed=speed, load=load or "", rpc=world.devnet.url,
                               chain_id=world.chain_id, provider=None, http_port=self.port,
                               start_unix=world.day_start)
        simrun.write_settings(self.state, args)
        if not romfs:  # the flash holds the .mpy files, as after `plugctl deploy`
            for name in os.listdir(flash):
                src = os.path.join(flash, name)
                (shutil.copytree if os.path.isdir(src) else shutil.copy)(
                    src, os.path.join(self.state, name))
        env = {"PLUG_ROMFS": romfs or "", "PLUG_FREE": str(free or 0)}
        self.vp = VirtualPlug(self.state, main_script=BOOT, heap=heap, env=env,
                              serial_link=self.serial, path_dirs=())
        self.address = None

    # -- driving ---------------------------------------------------------------------

    def status(self, timeout=10):
        with urllib.request.urlopen(self.url + "/status", timeout=timeout) as r:
            return json.loads(r.read())

    def exec(self, code, timeout=60):
        self.vp.detach()
        return mpremote(self.serial, "exec", code, capture=True, timeout=timeout)

    def boot(self, timeout=90):
        """Start the plug's process; seconds until /status shows a first reading
        (a channel with a voltage), and the time it first answered HTTP."""
        t0 = time.monotonic()
        self.vp.start()
        self.vp.attach()  # read the serial while booting, to see a traceback
        t_http = None
        try:
            while time.monotonic() - t0 < timeout:
                try:
                    st = self.status(timeout=2)
                except (OSError, ValueError):
                    screen = self.vp.screen
                    if not self.vp.alive or "Traceback" in screen:
                        errs = [x for x in screen.splitlines() if "Error" in x]
                        raise BootFailed((errs or ["the plug died"])[-1].strip()[-200:])
                    time.sleep(0.05)
                    continue
                t_http = t_http or time.monotonic() - t0
                if any(c.get("V", 0) > 0 for c in st["channels"].values()):
                    return time.monotonic() - t0, t_http
                time.sleep(0.05)
            raise BootFailed("no reading within %d s of boot" % timeout)
        finally:
            self.vp.detach()

    def power_cut(self):
        self.vp.kill()

    def provision(self, min_amount=10**13):
        """As an owner would: record the owner over serial, push a signed config over
        HTTP. The wallet is not funded yet, so no payment goes out before fund()."""
        w = self.world
        self.exec("plug.provision_owner(%r)" % w.owner_address)
        cfg = plug_config(w.devnet.url, w.tariff.url, w.payee, w.chain_id,
                          settlement={"min_amount": min_amount, "max_period_s": 3600},
                          meter={"read_interval_ms": 1000, "checkpoint_s": 60})
        plug = [x for x in self.status()["wallets"] if x["account"] == 0][0]["address"]
        body = json.dumps(sign_envelope(cfg, 1, OWNER_KEY, plug)).encode()
        req = urllib.request.Request(self.url + "/config", body,
                                     {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                r.read()
        except urllib.error.HTTPError as e:
            raise RuntimeError("config refused (%d): %s" % (e.code, e.read()[:300]))
        self.address = self.status()["wallets"][0]["address"]

    def fund(self, eth=10):
        self.world.devnet.fund(self.address, eth * ETH)

    def probe(self):
        return self.exec(PROBE)

    def wait_payment(self, timeout=120):
        """Seconds until a payment is confirmed; None if none within `timeout`."""
        t0 = time.monotonic()
        mark = len(self.vp.screen)
        self.vp.attach()  # watch the serial for a MemoryError meanwhile
        try:
            while time.monotonic() - t0 < timeout:
                try:
                    st = self.status()
                except (OSError, ValueError):
                    st = {}
                if st.get("payments", {}).get("confirmed"):
                    return time.monotonic() - t0
                if not self.vp.alive or "MemoryError" in self.vp.screen[mark:]:
                    return None
                time.sleep(0.3)
            return None
        finally:
            self.vp.detach()

    def modules(self):
        out = self.exec("import sys\nprint(' '.join(sorted(sys.modules)))")
        return out.split()

    def last_error(self):
        """The newest MemoryError line on the serial, else the app's last_error."""
        for line in reversed(self.vp.screen.splitlines()):
            if "MemoryError" in line or "memory allocation failed" in line:
                return line.strip()[-200:]
        try:
            return self.status()["device"].get("last_error")
        except (OSError, ValueError, KeyError):
            return "plug not answering"

    def heap(self):
        """(bytes in use, bytes free) after gc.collect(); in use leaves out the ROMFS image
        and the ballast (flash and absent heap on the board)."""
        out = self.exec("import gc\ngc.collect()\nprint(gc.mem_alloc() - %s, gc.mem_free())"
                        % _RESERVED)
        used, free = out.split()[-2:]
        return int(used), int(free)

    def reserved(self):
        out = self.exec("print(%s)" % _RESERVED)
        return int(out.split()[-1])

    def peaks(self):
        out = self.exec("import json\nprint(json.dumps(_HW))")
        return json.loads(out.strip().splitlines()[-1])

    def mem_info(self):
        """{"free": bytes free, "max_free": largest free block in bytes} after gc.collect(),
        from micropython.mem_info() ("max free sz" counts GC blocks: 16 bytes on 32 bits,
        32 on 64)."""
        out = self.exec("import gc, micropython, sys\ngc.collect()\nmicropython.mem_info()\n"
                        "print('BLOCK', 32 if sys.maxsize > 1 << 32 else 16)")
        free = re.search(r"GC: total: \d+, used: \d+, free: (\d+)", out)
        blk = re.search(r"max free sz: (\d+)", out)
        size = re.search(r"BLOCK (\d+)", out)
        if not (free and blk and size):
            raise RuntimeError("no mem_info: %s" % out[-300:])
        return {"free": int(free.group(1)), "max_free": int(blk.group(1)) * int(size.group(1))}

    def holes(self, size):
        """Fragment the running plug's heap into holes of `size` bytes with slack
        (tools/heap_holes.py), kept until the process ends: from now on no allocation
        above the largest free block succeeds."""
        with open(HOLES) as f:
            src = f.read()
        self.exec(src + "\n_bench_holes = holes(%d, slack=True)\nprint('holes made')\n" % size)

    def objects(self, modules, settle_s=8, timeout=120):
        """{what: bytes it held at idle} (tools/bench/app_objects.py): the plug is stopped
        (a power cut) and its flash booted again in a fresh process that releases each
        long-lived object in turn."""
        self.vp.kill()
        self.vp.main_script = OBJECTS
        self.vp.extra_env.update({"PLUG_MODULES": " ".join(modules), "SETTLE_S": str(settle_s)})
        mark = len(self.vp.screen)
        self.vp.start()
        self.vp.attach()
        try:
            t0 = time.monotonic()
            while time.monotonic() - t0 < timeout:
                if "[objects] done" in self.vp.screen[mark:] or not self.vp.alive:
                    break
                time.sleep(0.3)
        finally:
            self.vp.detach()
            self.vp.kill()
        out = {}
        for line in self.vp.screen[mark:].splitlines():
            m = re.search(r"\[objects\] (\S+) (-?\d+)", line)
            if m:
                out[m.group(1)] = int(m.group(2))
        if "released" not in out:
            tail = [x for x in self.vp.screen[mark:].splitlines() if "Error" in x]
            raise RuntimeError("object release failed: %s" % (tail or ["no output"])[-1])
        return out

    def stop(self):
        self.vp.kill()
        shutil.rmtree(self.state, ignore_errors=True)


def pool_bytes(heap):
    """Heap pool (mem_alloc + mem_free) of the unix port under -X heapsize=`heap`."""
    from tools import mp

    out = mp.run("import gc\ngc.collect()\nprint(gc.mem_alloc() + gc.mem_free())", heap=heap,
                 path_dirs=())
    return int(out.split()[-1])
