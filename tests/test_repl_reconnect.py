"""`plugctl repl` survives the plug resetting (reset(), a power cut: kill -9 of the virtual
plug): one line, then the REPL is back on the same --serial link, as a real board's
serial session survives a reset. A plug that does not come back is one line, exit 1.
Never mpremote's traceback. Driven through a pty, as a person's terminal."""

import os
import pty
import re
import select
import signal
import subprocess
import time

import pytest

from test_cli_errors import plugctl_argv
from tools.paths import ROOT


class Terminal:
    """`plugctl repl --port LINK` at a pseudo-terminal."""

    def __init__(self, link, *args):
        self.m, s = pty.openpty()
        self.p = subprocess.Popen(plugctl_argv() + ["repl", "--port", link] + list(args),
                                  cwd=ROOT, stdin=s, stdout=s, stderr=s,
                                  env=dict(os.environ, PYTHONPATH=ROOT), start_new_session=True)
        os.close(s)
        self.out = b""

    def expect(self, text, timeout=30):
        self.expect_after(0, text, timeout)

    def expect_after(self, mark, text, timeout):
        deadline = time.monotonic() + timeout
        while text.encode() not in self.out[mark:]:
            assert time.monotonic() < deadline, (text, self.out[-2000:])
            r, _, _ = select.select([self.m], [], [], 0.1)
            if r:
                try:
                    self.out += os.read(self.m, 4096)
                except OSError:
                    time.sleep(0.1)

    def type(self, text):
        os.write(self.m, text.encode())

    def close(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
        self.p.wait(10)
        os.close(self.m)


@pytest.fixture
def sim(tmp_path):
    link = str(tmp_path / "plug.tty")
    p = subprocess.Popen(plugctl_argv() + ["sim", "--state", str(tmp_path / "flash"),
                                           "--serial", link],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         env=dict(os.environ, PYTHONPATH=ROOT), start_new_session=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(link):
        assert time.monotonic() < deadline and p.poll() is None, "sim did not start"
        time.sleep(0.1)
    yield p, link
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
    p.wait(20)


def plug_pid(link):
    """The virtual plug's process: MicroPython running in the sim's flash (its cwd)."""
    flash = os.path.join(os.path.dirname(link), "flash")
    deadline = time.monotonic() + 30
    while True:
        mine = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if (os.path.realpath("/proc/%s/cwd" % pid) == flash and
                        b"vplug_boot" in open("/proc/%s/cmdline" % pid, "rb").read()):
                    mine.append(int(pid))
            except OSError:
                continue
        if len(mine) == 1:
            return mine[0]
        assert time.monotonic() < deadline, mine
        time.sleep(0.1)


def back(t):
    """The session said the plug went, and shows the plug's prompt again."""
    t.expect("plug reset; reconnecting...")
    t.expect("reconnected to")
    seen, t.out = t.out, t.out.split(b"reconnected to")[-1]
    t.expect(">>> ")  # the new boot's banner, or its prompt shown to a terminal arriving
    t.out = seen + t.out
    deadline = time.monotonic() + 30
    while True:  # keys pressed as the port opens may be lost (as on a board): Enter till heard
        mark = len(t.out)
        t.type("\r")
        try:
            t.expect_after(mark, ">>> ", 1)
            return
        except AssertionError:
            assert time.monotonic() < deadline, t.out[-2000:]


@pytest.mark.slow
def test_repl_reconnects_after_a_reset_and_a_power_cut(sim):
    _p, link = sim
    t = Terminal(link)
    try:
        t.expect("Use Ctrl-] or Ctrl-x to exit this shell")
        t.type("\r")
        t.expect(">>> ")
        t.type("reset()\r")  # what plug.reboot() ends in: the process ends, the sim boots it
        back(t)
        t.type("6*7\r")
        t.expect("42")
        os.kill(plug_pid(link), signal.SIGKILL)  # a power cut
        back(t)
        t.type("6*8\r")
        t.expect("48")
        t.type("\x1d")  # Ctrl-]: leave
        assert t.p.wait(20) == 0
    finally:
        t.close()
    assert b"Traceback" not in t.out and b"Errno" not in t.out, t.out


@pytest.mark.slow
def test_repl_says_one_line_when_the_plug_does_not_come_back(sim):
    p, link = sim
    t = Terminal(link, "--wait", "2")
    try:
        t.expect(">>> ")
        os.killpg(p.pid, signal.SIGTERM)  # the sim stops: the port goes for good
        assert t.p.wait(60) == 1
        t.expect("did not come back within 2 s")
    finally:
        t.close()
    text = t.out.decode(errors="replace")
    assert "Traceback" not in text, text
    assert len(re.findall(r"plugctl repl: ", text)) == 1, text
