"""The virtual plug's UART (tools/vplug.py): what the plug writes reaches the pty as a real
ESP32's serial sends it, and a terminal that opens the port sees the prompt at once.

    link = SerialLink(master_fd, slave_name)    # the plug's stdout/stderr: link.out_fd
    link.start(); ...; link.ignore_open()       # before opening the slave ourselves
    link.close()
    n = link.heard_count(); ...; link.heard_since(n)   # what the plug wrote, read or not

Cooking: the MicroPython unix port writes "\\n" as it is; an ESP32's UART driver sends
text output as "\\r\\n" (mp_hal_stdout_tx_strn_cooked), and terminals on a raw serial
port (screen, picocom, mpremote's repl) need the "\\r" or each line starts where the last
one ended. So the plug's stdout and stderr go to a pipe, and a thread copies it to the pty
master turning every "\\n" not already after a "\\r" into "\\r\\n", as the board does.
mpremote expects exactly that (it runs on real boards). The raw-paste window size the
REPL sends as two binary bytes must not contain 0x0A (the REPL's window is 128).

Prompt on connect: a board's prompt was printed long before a terminal opened the port,
so people saw nothing until they pressed Enter. An inotify watch on the pty's slave
reports every open(); when the plug sits at a friendly prompt (the current output line,
after its last "\\n", starts with ">>> ", "... " or "=== ", possibly after the line
editor's "\\r\\x1b[K"), that line is sent again 0.3 s later (pyserial, hence mpremote,
flushes what arrived before it had set the port up), so screen, picocom, `plugctl repl` and
`mpremote ... resume repl` show ">>> " (and what was typed) right away. In raw mode the
current line is ">" or protocol bytes: nothing is sent, so mpremote's framing is never
touched; a prompt re-sent before mpremote's raw-mode heading is skipped by mpremote as
any earlier output is.
"""

import ctypes
import os
import re
import select
import struct
import threading
import time

_IN_OPEN = 0x20
_TAIL_MAX = 1024  # bytes of the current output line kept for the replay
_SETTLE_S = 0.3  # a terminal program flushes its input after opening (pyserial does)
_HEARD_MAX = 4096  # bytes of the plug's latest output kept for heard_since()
_PROMPT = re.compile(rb"(?:\x1b\[K)?(?:>>> |\.\.\. |=== )")


def _libc():
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None


class SerialLink:
    def __init__(self, master, slave_name):
        self.master = master
        self.slave_name = slave_name
        self.out_fd, self._pipe = None, None
        r, w = os.pipe()
        self._pipe, self.out_fd = r, w  # the plug writes to out_fd (its stdout and stderr)
        self._lock = threading.Lock()
        self._tail = b""  # output since the last "\n": what a terminal shows on its last line
        self._cr = False  # the last byte sent was "\r"
        self._ignore = 0  # our own opens of the slave still to be reported
        self._stop = threading.Event()
        self._threads = []
        self._ino = -1
        self._heard = b""  # the plug's latest output (raw), whoever reads the pty
        self._heard_n = 0  # bytes the plug has written in all

    def start(self):
        """Call after the plug process has its copy of out_fd."""
        if self._stop.is_set():  # closed before it started (a kill raced the boot)
            return self
        os.close(self.out_fd)
        self.out_fd = None
        libc = _libc()
        if libc is not None:
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd >= 0 and libc.inotify_add_watch(fd, self.slave_name.encode(), _IN_OPEN) >= 0:
                self._ino = fd
            elif fd >= 0:
                os.close(fd)
        for target, name in ((self._pump, "vplug-uart"), (self._watch, "vplug-opens")):
            if target == self._watch and self._ino < 0:
                continue  # no inotify: the prompt shows at the first Enter, as on a board
            t = threading.Thread(target=target, daemon=True, name=name)
            t.start()
            self._threads.append(t)
        return self

    def ignore_open(self):
        """The next open() of the slave is ours (the console): no prompt replay for it."""
        with self._lock:
            self._ignore += 1

    def close(self):
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self._threads = []
        for attr in ("_ino", "_pipe", "out_fd", "master"):
            fd = getattr(self, attr)
            if fd is not None and fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
            setattr(self, attr, -1 if attr == "_ino" else None)

    def heard_count(self):
        """Bytes the plug has written so far: a mark for heard_since()."""
        with self._lock:
            return self._heard_n

    def heard_since(self, mark):
        """What the plug wrote after `mark` (its latest _HEARD_MAX bytes), as it wrote it:
        seen here even when another program (a terminal, mpremote) reads the port."""
        with self._lock:
            return self._heard[-min(self._heard_n - mark, len(self._heard)):] \
                if self._heard_n > mark else b""

    # -- the plug's output -> the pty, cooked -------------------------------------------

    def _cook(self, data):
        out = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if self._cr and out.startswith(b"\r\n") and data.startswith(b"\n"):
            out = out[1:]  # "\r" ended the previous chunk: this "\n" completes it
        self._cr = data.endswith(b"\r")
        return out

    def _pump(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self._pipe], [], [], 0.1)
            if not r:
                continue
            try:
                data = os.read(self._pipe, 4096)
            except OSError:
                data = b""
            if not data:  # the plug is gone: hang up, so the host side reads EIO
                with self._lock:
                    fd, self.master = self.master, None
                    if fd is not None:
                        os.close(fd)
                return
            with self._lock:
                self._heard = (self._heard + data)[-_HEARD_MAX:]
                self._heard_n += len(data)
                out = self._cook(data)
                nl = out.rfind(b"\n")
                self._tail = (out[nl + 1:] if nl >= 0 else self._tail + out)[-_TAIL_MAX:]
                if not self._send(out):
                    return

    def _send(self, out):
        """Write all of `out` to the master (blocking as a UART's FIFO does); False once
        closing."""
        while out:
            _, w, _ = select.select([], [self.master], [], 0.1)
            if self._stop.is_set():
                return False
            if not w:
                continue
            try:
                n = os.write(self.master, out[:512])
            except OSError:
                return False
            out = out[n:]
        return True

    # -- a terminal opens the port: show it the prompt ---------------------------------

    def _watch(self):
        due = None  # when to show the prompt to the terminal that arrived
        while not self._stop.is_set():
            wait = 0.2 if due is None else max(0.0, due - time.monotonic())
            r, _, _ = select.select([self._ino], [], [], wait)
            if r:
                try:
                    data = os.read(self._ino, 4096)
                except OSError:
                    data = b""
                opens = 0
                while len(data) >= 16:
                    _wd, mask, _cookie, n = struct.unpack_from("iIII", data)
                    opens += 1 if mask & _IN_OPEN else 0
                    data = data[16 + n:]
                with self._lock:
                    mine = min(opens, self._ignore)
                    self._ignore -= mine
                if opens > mine:  # after the program has set the port up and flushed it
                    due = time.monotonic() + _SETTLE_S
            if due is not None and time.monotonic() >= due:
                due = None
                with self._lock:
                    if self.master is not None:
                        self._replay()

    def _replay(self):
        tail = self._tail
        line = tail[tail.rfind(b"\r") + 1:]
        if _PROMPT.match(line) or _PROMPT.match(tail):
            self._send(b"\r\x1b[K" + tail)
