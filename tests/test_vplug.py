"""The virtual plug runner (tools/vplug.py): a MicroPython process on a pty that can lose
power (SIGKILL), reboot on the same flash, boot like a freshly flashed board, and never
blocks on serial output that nobody reads."""

import os
import re
import time

import pytest
from iface_util import TESTS, compile_plug

from tools.vplug import VirtualPlug, VirtualPlugError


@pytest.fixture(scope="module")
def mpy(tmp_path_factory):
    return compile_plug(str(tmp_path_factory.mktemp("mpy")))


def app_plug(mpy, flash, **kw):
    return VirtualPlug(str(flash), main_script=os.path.join(TESTS, "repl_main.py"),
                       path_dirs=(mpy,), serial_link=str(flash) + "-tty", **kw)


def ticks(vp):
    return eval(vp.command("state['ticks'], state['max_gap_ms']"))


def test_power_cut_and_reboot_on_the_same_flash(mpy, tmp_path):
    vp = app_plug(mpy, tmp_path / "flash").start()
    try:
        vp.expect("repl test app ready")
        first_pty = vp.slave_name
        assert os.path.realpath(vp.serial_link) == first_pty
        vp.command("f = open('energy.txt', 'w'); f.write('1234'); f.close()")
        with pytest.raises(VirtualPlugError):
            vp.start()  # one plug, one process
        vp.kill()
        assert not vp.alive and vp.returncode == -9
        assert not os.path.lexists(vp.serial_link)  # unplugged: the port is gone
        vp.start()
        vp.expect("repl test app ready")
        assert vp.boots == 2 and os.path.realpath(vp.serial_link) == vp.slave_name
        assert vp.command("open('energy.txt').read()") == "'1234'"
        assert vp.command("import os; os.getcwd()") == repr(str(tmp_path / "flash"))
        vp.restart()
        vp.expect("repl test app ready")
        assert vp.boots == 3 and vp.command("1 + 1") == "2"
    finally:
        vp.kill()


def test_clean_stop_lets_the_app_save_its_state(mpy, tmp_path):
    vp = app_plug(mpy, tmp_path / "flash").start()
    vp.expect("repl test app ready")
    time.sleep(0.3)
    vp.stop()
    assert not vp.alive
    saved = (tmp_path / "flash" / "stopped.txt").read_text()
    assert int(saved) > 0


def test_output_that_nobody_reads_never_blocks_the_plug(mpy, tmp_path):
    vp = app_plug(mpy, tmp_path / "flash").start()
    try:
        vp.expect("repl test app ready")
        t0, _ = ticks(vp)
        vp.send("state['flood'] = 500\r")  # 500 bytes every 20 ms, ~25 KB/s
        vp.detach()  # nobody reads the serial now
        time.sleep(4)  # ~100 KB: far more than the pty holds
        vp.attach()
        vp.send("\x03state['flood'] = 0\r")
        vp.settle(0.3)
        vp.reset_prompt()
        t1, gap = ticks(vp)
        assert vp.alive
        assert t1 - t0 > 100, (t0, t1)  # it kept running instead of blocking in write()
        assert gap < 2500, gap  # without the drain: blocked in write() for ~3 s
    finally:
        vp.kill()


def test_a_fresh_plug_boots_to_a_repl_and_runs_what_is_deployed(mpy, tmp_path):
    flash = tmp_path / "flash"
    vp = VirtualPlug(str(flash), path_dirs=(mpy,), serial_link=str(tmp_path / "tty")).start()
    try:
        vp.expect(re.compile(r"MicroPython \d+\.\d+\.\d+ on the virtual plug.*\n>>> $", re.S))
        assert vp.command("6 * 7") == "42"
        main = tmp_path / "main.py"
        main.write_text("n = 0\ntry:\n    n = int(open('boots').read())\nexcept OSError:\n"
                        "    pass\nopen('boots', 'w').write(str(n + 1))\n"
                        "print('main.py ran, boot', n + 1)\n")
        vp.mpremote("fs", "cp", str(main), ":main.py")
        assert (flash / "main.py").read_text() == main.read_text()
        for boot in (1, 2):
            vp.restart()
            vp.expect("main.py ran, boot %d" % boot)
            vp.expect(">>> ")  # main.py returned: the REPL is there, as on a board
        assert vp.mpremote("exec", "print(open('boots').read())").stdout == "2\n"
        (flash / "main.py").write_text("raise ValueError('bad deploy')\n")
        vp.restart()
        vp.expect("ValueError: bad deploy")  # the traceback is on the serial
        vp.expect(">>> ")  # and the REPL still comes up so it can be fixed
    finally:
        vp.kill()
