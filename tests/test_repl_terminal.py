"""The virtual plug's serial looks like a real ESP32's to a terminal (tools/vplug_serial.py,
firmware/plug/repl.py): every line ends "\\r\\n" (screen, picocom and `plugctl repl` on a
raw port would otherwise draw each line where the last one ended), a terminal that opens
the port sees the prompt without pressing Enter, and app log lines print above the line
being typed, which is drawn again. Checked on the raw bytes of the real pty, read by the
VirtualPlug console and by pyserial as a second program opening the port."""

import re
import time

import pytest
import serial
from iface_util import compile_plug

from tools import mp

BARE_LF = re.compile(r"(?<!\r)\n")




@pytest.fixture
def plug(repl_plug):
    return repl_plug


def raw_answer(plug, line):
    """Type `line` and return the raw text up to the next prompt."""
    plug.send(line + "\r")
    return plug.expect(re.compile(r">>> $"))


def test_every_line_ends_with_crlf_as_on_an_esp32(plug):
    out = raw_answer(plug, "for i in range(3): print('row', i)\r")
    assert "row 0\r\nrow 1\r\nrow 2\r\n" in out, repr(out)
    out = raw_answer(plug, "{'k': 'a' * 3}")
    assert "{'k': 'aaa'}\r\n" in out, repr(out)  # an echoed result
    out = raw_answer(plug, "help(state)")  # the builtin help, several lines
    assert out.count("\r\n") >= 3 and not BARE_LF.search(out), repr(out)
    out = raw_answer(plug, "1/0")
    assert "ZeroDivisionError" in out and not BARE_LF.search(out), repr(out)
    # a chatty app printing straight to the serial is cooked too
    plug.send("state['flood'] = 5\r")
    text = plug.expect(re.compile(r"(FFFFF\r\n){3}"))
    plug.send("\x03state['flood'] = 0\r")
    plug.settle(0.3)
    assert not BARE_LF.search(text), repr(text)
    # and the raw REPL's framing is unchanged apart from the cooked output
    plug.send("\x01")
    plug.expect("raw REPL; CTRL-B to exit\r\n>")
    plug.send("print('a\\nb')\x04")
    assert plug.expect("\x04>") == "OKa\r\nb\r\n\x04\x04>"
    plug.send("\x02")
    plug.expect(">>> ")


def open_port(plug):
    """Open the plug's serial as a terminal program does (pyserial, exclusive)."""
    plug.detach()  # the console stops reading: this program gets the bytes
    return serial.Serial(plug.port, 115200, timeout=0.2, exclusive=True)


def read_for(port, pattern, timeout=15.0):
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got += port.read(256)
        if re.search(pattern, got):
            return got
    raise AssertionError("no %r from the plug; got %r" % (pattern, got))


def test_a_terminal_that_opens_the_port_sees_the_prompt_without_enter(plug):
    plug.send("6 * ")  # half typed by someone before
    plug.settle(0.3)
    with open_port(plug) as port:
        got = read_for(port, rb">>> 6 \* $")  # nothing was sent
        assert got.endswith(b"\r\x1b[K>>> 6 * "), got
        port.write(b"7\r")
        assert b"42\r\n>>> " in read_for(port, rb"42\r\n>>> $")
    with open_port(plug) as port:  # each terminal that comes gets it
        read_for(port, rb"\r\x1b\[K>>> $")
    plug.attach()


def test_mpremote_after_the_prompt_replay(plug):
    # mpremote opens the port too: the replayed prompt must not disturb its raw REPL
    for _ in range(3):
        assert plug.mpremote("exec", "print(6 * 7)").stdout == "42\n"
    assert plug.mpremote("eval", "'x\\ny'").stdout == "x\ny\n"  # eval prints it


def test_log_lines_print_above_the_line_being_typed(plug):
    plug.send("state['log'] = True\r")  # a "[tick] N" line every 0.5 s
    plug.expect(re.compile(r"state\['log'\] = True\r\n>>> "))
    try:
        plug.send("1 + ")
        plug.expect("1 + ")  # the echo
        text = plug.expect(re.compile(r"\[tick\] \d+\r\n\r\x1b\[K>>> 1 \+ "), timeout=15)
        # the log line went above: the typed line is cleared, the log printed on its
        # own line, and the prompt with what was typed is drawn again below it
        assert re.search(r"\r\x1b\[K\[tick\] \d+\r\n\r\x1b\[K>>> 1 \+ $", text), repr(text)
        plug.send("2\r")
        assert "3\r\n" in plug.expect(re.compile(r"\r\n3\r\n"), timeout=15)
        # in paste mode too
        plug.send("\x05")
        plug.expect("=== ")
        plug.send("x = 'pas")
        plug.expect("x = 'pas")
        text = plug.expect(re.compile(r"\[tick\] \d+\r\n\r\x1b\[K=== x = 'pas"), timeout=15)
        assert re.search(r"\r\x1b\[K\[tick\] \d+\r\n\r\x1b\[K=== x = 'pas$", text), repr(text)
        plug.send("ted'\r\x04")
        plug.expect(">>> ")
    finally:
        plug.send("\x03")
        plug.reset_prompt()
        plug.command("state['log'] = False")
    assert plug.command("x") == "'pasted'"


LOG_CODE = """
import io, sys
from plug.repl import Repl
out = io.BytesIO()
r = Repl({}, stdin=sys.stdin.buffer, stdout=out)
r.log("[cal] two\\nlines")
r._shown, r._line, r._cur = ">>> ", "ab", 2
r.log("[pay] one\\r\\nmore")
print(repr(out.getvalue()))
"""


def test_the_repl_itself_ends_log_lines_crlf_as_the_board_writes_them_raw(tmp_path):
    # on an ESP32 the REPL writes through sys.stdout.buffer, which the UART driver does not
    # cook: a multi-line log text (cal.help(), cal.show()) must carry its own "\r\n"
    mpy = compile_plug(str(tmp_path))
    got = mp.run(code=LOG_CODE, heap="64k", path_dirs=(mpy,), input="").strip()
    assert got == repr(b"[cal] two\r\nlines\r\n\r\x1b[K[pay] one\r\nmore\r\n\r\x1b[K>>> ab"), got
