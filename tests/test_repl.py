"""The plug's serial REPL (firmware/plug/repl.py) on a virtual plug: MicroPython (64 KB
heap) with its serial on a pty, an app with a ticking counter task (the stand-in for the
metering loop, tests/repl_main.py). The tests type at the prompt and read the screen as
a person would, speak the raw REPL protocol byte by byte, and drive the real mpremote."""

import os
import random
import re
import time

import pytest


@pytest.fixture
def plug(repl_plug):
    return repl_plug


def ticks(vp):
    return eval(vp.command("state['ticks'], state['max_gap_ms']"))


def test_friendly_prompt_evaluates_prints_and_survives_errors(plug):
    assert plug.command("1 + 1") == "2"
    assert plug.command("x = 6 * 7") == ""
    assert plug.command("x") == "42"
    assert plug.command("print('a', x)") == "a 42"
    assert plug.command("for i in range(3):\n    print(i * x)") == "0\n42\n84"
    assert plug.command("def f(n):\n    return n + 1\n") == ""
    assert plug.command("f(x)") == "43"
    assert plug.command("(1,\n 2)") == "(1, 2)"  # open brackets continue the line
    out = plug.command("undefined_name + 1")
    assert out.startswith("Traceback (most recent call last):")
    assert out.endswith("NameError: name 'undefined_name' isn't defined")
    assert "repl" not in out  # the REPL's own frames are not shown
    assert "SyntaxError" in plug.command("1 +* 2")
    assert "SystemExit" in plug.command("raise SystemExit")  # does not end the REPL or app
    assert plug.command("x") == "42"


def test_line_editing_history_and_ctrl_c(plug):
    plug.send("3*4\x1b[D\x1b[D0\r")  # left twice, insert: 30*4
    plug.expect(re.compile(r"\n120\r?\n>>> $"))
    plug.send("1+9\x7f5\r")  # backspace
    plug.expect(re.compile(r"\n6\r?\n>>> $"))
    plug.send("\x1b[A\x1b[A\r")  # history: two back is 30*4
    plug.expect(re.compile(r"\n120\r?\n>>> $"))
    plug.send("\x1b[A\x1b[H7\x1b[F+1\r")  # recall 30*4, home, insert 7, end, append
    plug.expect(re.compile(r"\n2921\r?\n>>> $"))
    plug.send("print('never')\x03")  # Ctrl-C drops the line
    text = plug.expect(re.compile(r">>> $"))
    plug.settle()
    assert "never\n" not in text and "never\r\n" not in plug.screen[-50:]


def test_paste_mode_and_await(plug):
    plug.send("\x05")
    plug.expect("paste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ")
    plug.send("def g(a):\r    return a * 3\r\rprint(g(5))\r\x04")
    plug.expect(re.compile(r"\n15\r?\n>>> $"))
    assert plug.command("await later(21)") == "42"
    assert plug.command("y = await later(5)") == ""
    assert plug.command("y") == "10"
    plug.send("await later_forever()\r")
    plug.expect(re.compile(r"NameError: name 'later_forever' isn't defined\r\n>>> $"))
    assert plug.command("import asyncio") == ""
    plug.send("await asyncio.sleep(30)\r")
    time.sleep(0.3)
    plug.send("\x03")  # cancels the awaited command, not the app
    plug.expect(re.compile(r"KeyboardInterrupt: command cancelled\r\n>>> $"))
    assert ticks(plug)[0] > 0


def test_soft_reboot_keys_never_stop_the_app(plug):
    plug.command("x = 42")
    t0 = ticks(plug)[0]
    plug.send("\x04")
    plug.expect("soft reboot is off while the app runs")
    plug.send("\x01")
    plug.expect("raw REPL; CTRL-B to exit\r\n>")
    plug.send("\x04")  # empty raw command = soft reset: answered, but nothing stops
    plug.expect("OK\r\nMPY: soft reboot\r\n")
    plug.expect("raw REPL; CTRL-B to exit\r\n>")
    plug.send("\x02")
    plug.expect(">>> ")
    assert plug.alive
    assert plug.command("x") == "42"  # namespace kept
    time.sleep(0.2)
    assert ticks(plug)[0] > t0


def test_raw_repl_protocol_byte_by_byte(plug):
    plug.send("\x01")
    plug.expect("\r\nraw REPL; CTRL-B to exit\r\n>")
    plug.send("print(7 * 6)\x04")
    assert plug.expect("\x04>") == "OK42\r\n\x04\x04>"  # cooked, as an ESP32 sends it
    plug.send("print('partial')\n1/0\x04")
    out = plug.expect("\x04>")
    assert out.startswith("OKpartial\r\n\x04Traceback (most recent call last):\r\n")
    assert out.endswith("ZeroDivisionError: divide by zero\r\n\x04>")
    plug.send("junk\x03print(1)\x04")  # Ctrl-C clears the buffer
    assert plug.expect("\x04>") == "OK1\r\n\x04\x04>"
    # raw-paste: window 128 (0x80 0x00), one extra window up front, \x01 per window used
    plug.send("\x05A\x01")
    assert plug.expect("\x01") == "R\x01"
    assert plug.expect("\x01") == "\udc80\x00\x01"  # 0x80 is no UTF-8: kept as a surrogate
    src = "s = 0\n" + "s += 1\n" * 40 + "print('sum', s)\n"  # 286 bytes: two windows
    plug.send(src)
    assert plug.expect("\x01\x01") == "\x01\x01"
    plug.send("\x04")
    assert plug.expect("\x04>") == "\x04sum 40\r\n\x04\x04>"
    plug.send("\x05A\x01")
    plug.expect("\x01")
    plug.expect("\x01")
    plug.send("print('cut')\x03")  # Ctrl-C inside raw-paste aborts it
    out = plug.expect("\x04>")
    assert out.startswith("\x04\x04") and "KeyboardInterrupt" in out and "cut" not in out
    plug.send("\x05B\x01")  # unknown raw-paste variant is refused
    assert plug.expect(">") == "R\x00>"
    plug.send("\r\x02")
    plug.expect("\r\n>>> ")
    assert plug.command("s") == "40"


def test_mpremote_exec_eval_cp_ls_while_the_counter_ticks(plug, tmp_path):
    plug.command("x = 42")
    plug.command("state['log'] = True")  # the app logs through repl.log during the session
    t0, _ = ticks(plug)
    start = time.monotonic()
    assert plug.mpremote("exec", "print(1+1)").stdout == "2\n"
    assert plug.mpremote("eval", "state['ticks'] > 0").stdout == "True\n"
    assert plug.mpremote("eval", "[x, 'M1/A', {'a': 1.5}]").stdout == "[42, 'M1/A', {'a': 1.5}]\n"
    src = tmp_path / "cal.json"
    src.write_text('{"M1/A": {"v_gain": 1.0123}}\n' * 100)
    plug.mpremote("fs", "cp", str(src), ":cal.json")
    ls = plug.mpremote("fs", "ls").stdout
    assert "cal.json" in ls
    assert plug.mpremote("fs", "cat", ":cal.json").stdout == src.read_text()
    back = tmp_path / "back.json"
    plug.mpremote("fs", "cp", ":cal.json", str(back))
    assert back.read_text() == src.read_text()
    assert open(os.path.join(plug.state_dir, "cal.json")).read() == src.read_text()
    r = plug.mpremote("exec", "import nosuchmodule", check=False)
    assert r.returncode == 1 and "ImportError: no module named 'nosuchmodule'" in r.stdout
    # without `resume` mpremote soft-resets first: the app keeps running anyway
    assert plug.mpremote("exec", "print(x)", resume=False).stdout == "42\n"
    elapsed = time.monotonic() - start
    plug.reset_prompt()
    t1, gap = ticks(plug)
    # the counter ticks every 20 ms; during the whole mpremote session it kept going
    assert t1 - t0 > elapsed / 0.02 * 0.25, (t0, t1, elapsed)
    assert gap < 2500, gap  # loose for busy CI machines; a blocked loop stalls far longer
    plug.command("state['log'] = False")


def test_app_log_lines_wait_while_a_raw_session_is_open(plug):
    plug.command("state['log'] = True")  # a "[tick] N" line every 0.5 s
    try:
        plug.expect("[tick]")
        plug.send("\x01")
        plug.expect("raw REPL; CTRL-B to exit\r\n>")
        plug.settle(1.2)  # more than two log lines' time
        plug.send("print('clean')\x04")
        assert plug.expect("\x04>") == "OKclean\r\n\x04\x04>"  # no log line in the frame
        plug.send("\x02")
        held = plug.expect(re.compile(r"(\[tick\] \d+\r\n){2,}"))
        assert held.startswith("\r\n[tick] ")  # printed right after leaving raw mode
    finally:
        plug.reset_prompt()
        plug.command("state['log'] = False")


def test_garbage_on_the_serial_does_not_kill_the_repl(plug):
    t0 = ticks(plug)[0]
    for seed, prefix in ((7, b""), (8, b"\x01"), (9, b"\x05")):  # friendly, raw, paste
        rnd = random.Random(seed)
        junk = bytes(rnd.randrange(256) for _ in range(3000)).replace(b"\x05A\x01", b"")
        plug.send(prefix + junk + b"\x04")
        plug.send(b"\x03\x02\x03")
        time.sleep(0.3)
        plug.reset_prompt()
        assert plug.alive
        assert plug.command("1 + 1") == "2"
    assert "vplug_boot.py" not in plug.screen  # the app (and its REPL task) never died
    assert ticks(plug)[0] > t0
