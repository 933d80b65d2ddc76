"""Host side helpers of the payment tests: a provisioned plug state dir, and device code
run from the compiled tree (build/unix, as a virtual plug runs it) under MicroPython."""

import json
import os
import signal
import subprocess

from eth_account import Account

from tools import build_mpy, mp
from tools.paths import BUILD

TESTS = os.path.dirname(os.path.abspath(__file__))
_BUILT = {}

PAYEE = "0x2546BcD3c84621e976D8185a91A922aE77ECEc30"  # anvil account 16, unfunded elsewhere


def build_dir():
    """Device code compiled for the unix port in build/unix (incremental; locked against
    xdist peers, the same lock the other .mpy tests take)."""
    if "dirs" not in _BUILT:
        import fcntl

        os.makedirs(BUILD, exist_ok=True)
        with open(os.path.join(BUILD, ".lock"), "w") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            build_mpy.build("unix")
        out = os.path.join(BUILD, "unix")
        _BUILT["dirs"] = (TESTS,) + tuple(os.path.join(out, d) for d in ("lib", "firmware",
                                                                          "boards"))
    return _BUILT["dirs"]


def config(url, **over):
    cfg = {
        "chain": {"chain_id": 31337, "rpc_urls": [url] if isinstance(url, str) else url,
                  "confirmations": 1, "eip1559": True, "tx_deadline_s": 60},
        "provider": {"approved_payees": [], "approved_tokens": []},
        "limits": {"per_payment": 10**18, "per_day": 5 * 10**18, "gas_floor_wei": 10**15},
        "wallet": {"mode": "single"},
        "channels": {},
    }
    for k, v in over.items():
        cfg[k] = dict(cfg.get(k, {}), **v) if isinstance(v, dict) else v
    return cfg


class Plug:
    """A plug state dir with a provisioned key; .run(code) runs device code on it."""

    def __init__(self, state, cfg, key=None, seed=None, heap="256k"):
        from plug.wallet import provisioning_text

        self.state = str(state)
        os.makedirs(self.state, exist_ok=True)
        self.heap = heap
        if seed is None:
            key = key or os.urandom(32)
            self.key = key
            self.address = Account.from_key(key).address
            text = provisioning_text(private_key=key)
        else:
            text = provisioning_text(seed=seed)
            self.address = None
        with open(os.path.join(self.state, "wallet_import.json"), "w") as f:
            f.write(text)
        self.write_cfg(cfg)

    def write_cfg(self, cfg):
        self.cfg = cfg
        with open(os.path.join(self.state, "cfg.json"), "w") as f:
            json.dump(cfg, f)

    def prelude(self, clock_t=None):
        return "from payplug import *\nST = %r\n" % self.state

    def run(self, code, heap=None, timeout=120):
        return mp.run(self.prelude() + code, heap=heap or self.heap, path_dirs=build_dir(),
                      timeout=timeout)

    def records(self, code="p = make(ST)\n"):
        out = self.run(code + "for r in p.records(): show(r)\n")
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def start(self, code, heap=None):
        """Run code in the background (stdin piped) for crash tests."""
        argv = mp.command(heap or self.heap) + ["-c", self.prelude() + code]
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=mp.env(build_dir()),
                                cwd=mp.ROOT)


def wait_for(proc, marker, timeout=60):
    """Read the process's stdout until a line starting with marker; returns that line."""
    import select
    import time

    buf = proc.__dict__.setdefault("_pending", [""])
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    seen = []
    while time.monotonic() < deadline:
        while "\n" in buf[0]:
            line, buf[0] = buf[0].split("\n", 1)
            seen.append(line)
            proc.__dict__.setdefault("lines", []).append(line)
            if line.startswith(marker):
                return line
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf[0] += chunk.decode()
    proc.kill()
    raise AssertionError("no %r from the plug; output:\n%s\n%s"
                         % (marker, "\n".join(seen), proc.stderr.read()))


def finish(proc, timeout=60):
    """Let the process run to its end; returns all the stdout not yet consumed."""
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError("plug exited %d: %s" % (proc.returncode, err[-4000:]))
    return proc.__dict__.get("_pending", [""])[0] + out


def sigkill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def signal_tree(pid, sig):
    """Send sig to pid and all its descendants (anvil runs under a node launcher)."""
    pids = [pid]
    i = 0
    while i < len(pids):
        p = pids[i]
        i += 1
        try:
            for tid in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, tid)) as f:
                    pids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    for p in reversed(pids):
        try:
            os.kill(p, sig)
        except OSError:
            pass
