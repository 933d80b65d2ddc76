"""`plugctl sim` stops promptly on Ctrl-C/SIGTERM (simrun.power_off) also while a terminal
(`plugctl repl`, screen) holds the plug's serial port and so reads the ROM's banner
before the supervisor can: the banner is heard on the plug's output itself."""

import os
import threading
import time

import pytest

from tools import simrun


@pytest.mark.slow
def test_power_off_is_prompt_while_a_terminal_reads_the_port(tmp_path, monkeypatch):
    state = str(tmp_path / "flash")
    os.makedirs(state)
    simrun.install_firmware(state, "sim")
    plug = simrun.make_plug(state, str(tmp_path / "plug.tty"))
    # only the banner may bring the second SIGINT: the fallback timer is out of reach
    monkeypatch.setattr(simrun, "SECOND_SIGINT_S", 90.0)
    plug.start()
    got, stop = [], threading.Event()
    term = os.open(plug.slave_name, os.O_RDWR | os.O_NOCTTY)  # the terminal

    def read():
        while not stop.is_set():
            try:
                data = os.read(term, 4096)
            except OSError:  # the plug is gone
                return
            if not data:
                return
            got.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while b"[app] running" not in b"".join(got):
            assert time.monotonic() < deadline and plug.alive, b"".join(got)[-2000:]
            time.sleep(0.1)
        monkeypatch.setattr(plug, "attach", lambda: None)  # the terminal is the only reader
        t = time.monotonic()
        simrun.power_off(plug, timeout=120)
        took = time.monotonic() - t
    finally:
        stop.set()
        plug.kill()
        os.close(term)
        reader.join(5)
    out = b"".join(got)
    assert b"[app] stopped" in out and b"on the virtual plug" in out, out[-2000:]
    assert took < 45, "power_off waited %.1f s: the banner went unnoticed" % took
