# The raw REPL protocol that mpremote and pyboard.py speak, as a mixin for Repl
# (firmware/plug/repl.py). Framing follows MicroPython's shared/runtime/pyexec.c:
# Ctrl-A enters ("raw REPL; CTRL-B to exit\r\n>"), Ctrl-D runs the buffer ("OK" + output
# + \x04 + error + \x04 + ">"), Ctrl-E 'A' Ctrl-A starts raw-paste ("R\x01", window size
# as 16-bit little-endian, \x01 per window consumed, \x04 at the end), Ctrl-B leaves.
from micropython import const

_CTRL_A = const(1)
_CTRL_B = const(2)
_CTRL_C = const(3)
_CTRL_D = const(4)
_CTRL_E = const(5)

HEADING = b"raw REPL; CTRL-B to exit\r\n"


class RawRepl:
    """Mixin for Repl: needs self._w, self._getc, self._kbd, self._print_exc, self.ns,
    self.window, self.max_source, self._flush_held, self._compile."""

    async def _raw_session(self):
        """Serve raw mode until Ctrl-B; False at end of input."""
        line = bytearray()
        self._w(b">")
        while True:
            c = await self._getc()
            if c < 0:
                return False
            if c == _CTRL_A:
                if len(line) == 2 and line[0] == _CTRL_E:
                    if line[1] == ord("A"):
                        if not await self._raw_paste():
                            return False
                    else:
                        self._w(b"R\x00")
                else:
                    self._w(HEADING)
                line = bytearray()
                self._w(b">")
            elif c == _CTRL_B:
                self._w(b"\r\n")
                self.raw = False
                self._flush_held()
                return True
            elif c == _CTRL_C:
                line = bytearray()
            elif c == _CTRL_D:
                self._w(b"OK")
                if not line:
                    # mpremote without `resume` soft-resets here: answer as the device would,
                    # but keep the app (and its namespace) running.
                    self._w(b"\r\nMPY: soft reboot\r\n[repl] the app keeps running\r\n" + HEADING)
                else:
                    self._exec_raw(line)
                line = bytearray()
                self._w(b">")
            elif len(line) <= self.max_source:
                line.append(c)

    async def _raw_paste(self):
        w = self.window
        self._w(bytes((ord("R"), 1, w & 0xFF, w >> 8, 1)))
        buf = bytearray()
        remain = w
        while True:
            c = await self._getc()
            if c < 0:
                return False
            if c == _CTRL_C or c == _CTRL_D:
                self._w(b"\x04")
                break
            if len(buf) <= self.max_source:
                buf.append(c)
            remain -= 1
            if remain == 0:
                self._w(b"\x01")
                remain = w
        if c == _CTRL_C:
            self._w(b"\x04")
            self._print_exc(KeyboardInterrupt())
            self._w(b"\x04")
        else:
            self._exec_raw(buf)
        return True

    def _exec_raw(self, src):
        """Run raw-mode source: output, \\x04, error, \\x04 (pyexec's framing)."""
        self._executing = True
        self._kbd(True)
        err = None
        try:
            if len(src) > self.max_source:
                raise MemoryError("command longer than %d bytes" % self.max_source)
            exec(self._compile(bytes(src).decode()), self.ns)
        except (Exception, KeyboardInterrupt, SystemExit) as e:
            err = e
        finally:
            self._kbd(False)
            self._executing = False
        self._w(b"\x04")
        if err is not None:
            self._print_exc(err)
        self._w(b"\x04")
