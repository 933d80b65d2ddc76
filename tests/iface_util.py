"""Helpers for the interface tests (REPL, HTTP server, virtual plug).

The plug runs .mpy (64 KB of heap cannot compile the firmware from source), so the
tests compile the modules they need into a private directory with mpy-cross; other
work in progress in firmware/ cannot break them.
"""

import calendar
import contextlib
import os
import socket
import subprocess
import time

from tools import mp
from tools.paths import FIRMWARE, ROOT, executable

TESTS = os.path.join(ROOT, "tests")
IFACE_MODULES = ("__init__", "repl", "repl_edit", "repl_raw", "server", "http_request",
                 "http_response", "prometheus", "jsonlimit", "iobuf")


def compile_plug(out_dir, modules=IFACE_MODULES):
    """Compile firmware/plug/<m>.py for the unix port into out_dir/plug/; returns out_dir."""
    os.makedirs(os.path.join(out_dir, "plug"), exist_ok=True)
    for m in modules:
        r = subprocess.run([executable("mpy-cross"), "-march=x64",
                            "-o", os.path.join(out_dir, "plug", m + ".mpy"),
                            os.path.join(FIRMWARE, "plug", m + ".py")],
                           capture_output=True, text=True)
        if r.returncode:
            raise AssertionError("mpy-cross rejected plug/%s.py: %s" % (m, r.stderr))
    return out_dir


def wait_for(cond, timeout=60, what="condition", every=0.2):
    """cond()'s first true answer, polled every `every` s; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, "no %s within %d s" % (what, timeout)
        time.sleep(every)


@contextlib.contextmanager
def yesterdays_world(**kw):
    """A tools.scenario.World (anvil, tariff server) whose day began yesterday 00:00 UTC."""
    from tools.scenario import World

    day = calendar.timegm(time.gmtime()[:3] + (0, 0, 0)) - 86400
    with World(day, **kw) as w:
        yield w


def wait_paid(plug, timeout=60):
    """Wait until the virtual plug's /status lists a confirmed payment."""
    wait_for(lambda: plug.status()["payments"]["confirmed"], timeout, "payment", every=1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MicroPythonServer:
    """tests/server_main.py on the unix port (heap capped), serving on 127.0.0.1."""

    def __init__(self, mpy_dir, max_body=2048, heap=mp.DEFAULT_HEAP):
        self.port = free_port()
        self.log_path = os.path.join(mpy_dir, "server-%d.log" % self.port)
        self._log = open(self.log_path, "wb")
        env = mp.env((mpy_dir,))
        self.proc = subprocess.Popen(
            mp.command(heap) + [os.path.join(TESTS, "server_main.py"), str(self.port),
                                str(max_body)],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=mpy_dir)
        deadline = time.monotonic() + 10
        while b"READY" not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("server did not start:\n" + self.output().decode())
            time.sleep(0.05)

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read()

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self._log.close()
