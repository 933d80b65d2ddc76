# The plug's serial console: a friendly REPL for people and the raw REPL protocol that
# mpremote speaks, run as an asyncio task beside the app (in the style of
# micropython-lib's aiorepl), so metering keeps running while someone is connected.
#
#   from plug import repl
#   repl.start({"plug": plug, "cal": cal})      # -> asyncio Task
#   repl.log("[meter] checkpoint")              # app output that never breaks a session
#
# Friendly mode: ">>> " prompt, echo, backspace, left/right/home/end/delete, history
# (up/down), multi-line blocks ("... ", a blank line ends a block), paste mode (Ctrl-E),
# results printed like the normal REPL, exceptions printed as tracebacks. A command that
# contains `await` runs as a task (Ctrl-C cancels it); everything else runs synchronously:
# while it runs no other task does, so commands must stay short (a long loop at the
# prompt stalls metering; Ctrl-C interrupts it on the ESP32, not on the unix port).
#
# Raw mode (Ctrl-A): "raw REPL; CTRL-B to exit\r\n>", Ctrl-D runs the buffer
# ("OK" + output + \x04 + error + \x04 + ">"), raw-paste (Ctrl-E 'A' Ctrl-A -> "R\x01",
# window size, flow control with \x01 per window, \x04 at the end), Ctrl-B back to
# friendly. Soft reset (Ctrl-D on an empty line) never stops the app: it is answered
# the way mpremote expects and the namespace is kept.
#
# App output: print() goes straight to the serial and, during a raw session, would
# corrupt mpremote's framing. Output sent through log() is held back (bounded) while a
# raw session is open and printed when it ends; at the friendly prompt (and in paste
# mode) it is printed above the line being typed, which is then drawn again. Line ends
# are "\r\n" as on the ESP32's UART (the virtual plug's serial cooks print()'s "\n").
import sys
import select
import asyncio
import gc
import micropython
from micropython import const

from plug import iobuf
from plug.repl_edit import LineEditor, _assigned, _more
from plug.repl_raw import HEADING, RawRepl

_CTRL_A = const(1)
_CTRL_B = const(2)
_CTRL_C = const(3)
_CTRL_D = const(4)
_CTRL_E = const(5)
_LF = const(10)
_CR = const(13)
_BURST = const(256)  # bytes read without yielding to other tasks
_HOLD_MAX = const(1024)  # bytes of log() output held during a raw session
_HISTORY = const(8)


_active = None


def log(text):
    """Print one line of app output without breaking a serial session."""
    if _active is None:
        print(text)
    else:
        _active.log(text)


def start(namespace=None, **kw):
    """Start the REPL task on sys.stdin/sys.stdout; returns the asyncio Task."""
    return asyncio.create_task(Repl(namespace, **kw).run())


class Repl(LineEditor, RawRepl):
    def __init__(self, namespace=None, stdin=None, stdout=None, prompt=">>> ", window=128,
                 max_source=8192, banner=None):
        self.ns = {} if namespace is None else namespace
        self.ns.setdefault("__name__", "__main__")
        self._in = stdin or getattr(sys.stdin, "buffer", sys.stdin)
        self._out = stdout or getattr(sys.stdout, "buffer", sys.stdout)
        self._reader = asyncio.StreamReader(self._in)
        self._poll = select.poll()
        self._poll.register(self._in, select.POLLIN)
        self.prompt = prompt
        self.window = window  # raw-paste flow-control window (ESP32 stdin buffer is 256)
        self.max_source = max_source
        self.banner = banner
        self.raw = False
        self._burst = 0
        self._pushback = bytearray()
        self._prev = 0
        self._executing = False
        self._held = []
        self._held_bytes = 0
        self._dropped = 0
        self._hist = []
        self._line = ""
        self._cur = 0
        self._shown = None  # prompt currently on screen, None while not waiting for input

    # -- serial I/O ---------------------------------------------------------

    def _w(self, s):
        if isinstance(s, str):
            s = s.encode()
        self._out.write(s)

    async def _getc(self):
        """Next input byte as an int, or -1 at end of input."""
        if self._pushback:
            c = self._pushback[0]
            self._pushback = self._pushback[1:]
            return c
        if self._burst < _BURST:
            for _, ev in self._poll.poll(0):
                if ev & select.POLLIN:
                    b = self._in.read(1)
                    if b:
                        self._burst += 1
                        return b[0]
        self._burst = 0
        b = await self._reader.read(1)
        return b[0] if b else -1

    def _kbd(self, on):
        # On the ESP32 a Ctrl-C byte on the UART raises KeyboardInterrupt in whatever runs:
        # only allow that while a command executes. The unix port maps kbd_intr to SIGINT
        # handling instead, which must stay on (VirtualPlug.stop() relies on it).
        if sys.platform != "linux" and hasattr(micropython, "kbd_intr"):
            micropython.kbd_intr(3 if on else -1)

    def _compile(self, src, mode="exec"):
        """compile(src); after a MemoryError tried again with one more pooled I/O buffer
        given back to the GC each time (the HTTP server's first, the HTTP client's, which
        payments use, last), and the pools filled again after. The parser asks for one
        block of 512 bytes (64 rule-stack entries on 32 bits; 1 KB on 64), which a heap a
        payment fragmented may not have: a buffer's block (528 bytes) is one, and those
        of a pool, made side by side at boot, free larger ones. Nothing else runs
        meanwhile."""
        gave = False
        try:
            while True:
                try:
                    return compile(src, "<stdin>", mode)
                except MemoryError:
                    bufs = iobuf.SERVER.free or iobuf.CLIENT.free
                    if not bufs:  # none left (or the ROM's REPL alone: none ever)
                        raise
                    bufs.pop()
                    gave = True
                    gc.collect()
        finally:
            if gave:
                try:
                    iobuf.reserve()
                except MemoryError:
                    pass  # an answer takes what is missing from the GC (iobuf.Pool.take)

    def _print_exc(self, e):
        import io

        s = io.StringIO()
        sys.print_exception(e, s)
        for line in s.getvalue().split("\n"):
            if line and "plug/repl" not in line:  # the REPL's own frame: noise to a user
                self._w(line + "\r\n")

    # -- app output -----------------------------------------------------------

    def log(self, text):
        if "\n" in text:  # written raw (sys.stdout.buffer): the ESP32's UART adds no \r
            text = text.replace("\r\n", "\n").replace("\n", "\r\n")
        if self.raw and not self._executing:
            if self._held_bytes + len(text) > _HOLD_MAX:
                self._dropped += 1
                return
            self._held.append(text)
            self._held_bytes += len(text)
        elif self._shown is not None:
            self._w("\r\x1b[K" + text + "\r\n")
            self._redraw()
        else:
            self._w(text + "\r\n")

    def _flush_held(self):
        held, self._held, self._held_bytes = self._held, [], 0
        for text in held:
            self._w(text + "\r\n")
        if self._dropped:
            self._w("[repl] %d log lines dropped during a raw REPL session\r\n" % self._dropped)
            self._dropped = 0

    # -- main loop ------------------------------------------------------------

    async def run(self):
        global _active
        _active = self
        self._kbd(False)
        try:
            if self.banner:
                self._w(self.banner)
            while True:
                try:
                    if not await (self._raw_session() if self.raw else self._friendly()):
                        break
                except OSError:  # the serial itself failed (host gone): stop, do not spin
                    break
                except Exception as e:  # noqa: BLE001 - e.g. MemoryError: the REPL lives on
                    self._w("\r\n[repl] input dropped: %r\r\n" % e)
                    self._pushback = bytearray()
        finally:
            self._kbd(True)
            if _active is self:
                _active = None

    # -- friendly REPL ----------------------------------------------------------

    async def _friendly(self):
        """Read and run one command or block; False at end of input."""
        src = None
        while True:
            got = await self._read_line(self.prompt if src is None else "... ", src is None)
            if got == -1:
                return False
            if got == _CTRL_A:
                self._w("\r\n")
                self.raw = True
                self._w(HEADING)
                return True
            if got == _CTRL_B:
                self._w("\r\nplug asyncio REPL; Ctrl-A raw mode, Ctrl-E paste mode\r\n")
                return True
            if got == _CTRL_C:
                return True
            if got == _CTRL_D:
                if src is not None:
                    break
                self._w("soft reboot is off while the app runs (machine.reset() restarts)\r\n")
                return True
            if got == _CTRL_E:
                return await self._paste()
            if got.strip() and (not self._hist or self._hist[-1] != got):
                self._hist.append(got)
                if len(self._hist) > _HISTORY:
                    self._hist.pop(0)
            if src is None:
                if not got.strip():
                    return True
                src = got
            else:
                src += "\n" + got
            if not _more(src):
                break
        await self._run(src, "single")
        return True

    async def _paste(self):
        self._w("paste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ")
        buf = bytearray()
        self._line, self._cur, self._shown = "", 0, "=== "  # log() redraws the pasted line
        try:
            while True:
                c = await self._getc()
                prev, self._prev = self._prev, c
                if c < 0:
                    return False
                if c == _CTRL_C:
                    self._w("\r\n")
                    return True
                if c == _CTRL_D:
                    self._shown = None
                    self._w("\r\n")
                    if len(buf) > self.max_source:
                        self._w("[repl] paste longer than %d bytes dropped\r\n"
                                % self.max_source)
                    else:
                        await self._run(bytes(buf).decode(), "exec")
                    return True
                if c == _LF and prev == _CR:
                    continue
                if c == _CR or c == _LF:
                    c = _LF
                    self._line, self._cur = "", 0
                    self._w("\r\n=== ")
                else:
                    if len(self._line) < 512:
                        self._line += chr(c) if 32 <= c < 128 or c == 9 else "?"
                        self._cur = len(self._line)
                    self._w(bytes((c,)))
                if len(buf) <= self.max_source:
                    buf.append(c)
        finally:
            self._shown = None

    async def _run(self, src, mode):
        """Run friendly-mode source, printing results and errors; never raises."""
        if "await " in src:
            await self._run_async(src)
            return
        self._kbd(True)
        try:
            exec(self._compile(src, mode), self.ns)
        except (Exception, KeyboardInterrupt, SystemExit) as e:
            self._print_exc(e)
        finally:
            self._kbd(False)

    async def _run_async(self, src):
        head = "async def __repl_cmd():\n"
        body = "\n".join("    " + ln for ln in src.split("\n"))
        try:
            try:  # an expression: print its value like the normal REPL
                code = self._compile(head + "    return " + src.strip())
            except SyntaxError:
                name = _assigned(src)  # `x = await f()` keeps x, as at the normal prompt
                if name:
                    head += "    global %s\n" % name
                code = self._compile(head + body)
            exec(code, self.ns)
            task = asyncio.create_task(self.ns.pop("__repl_cmd")())
            while not task.done():
                await asyncio.sleep_ms(20)
                for _, ev in self._poll.poll(0):
                    b = self._in.read(1) if ev & select.POLLIN else b""
                    if b == b"\x03":
                        task.cancel()
                    elif b:
                        self._pushback += b
            result = await task
            if result is not None:
                self._w(repr(result) + "\r\n")
        except asyncio.CancelledError:
            self._w("KeyboardInterrupt: command cancelled\r\n")
        except (Exception, KeyboardInterrupt, SystemExit) as e:
            self._print_exc(e)
