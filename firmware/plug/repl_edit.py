# Line editing and source analysis for the friendly REPL (firmware/plug/repl.py):
# echo, backspace, left/right/home/end/delete, history (up/down), and the rules that
# decide when a typed block is complete (brackets, strings, compound statements).
from micropython import const

_CTRL_A = const(1)
_CTRL_B = const(2)
_CTRL_C = const(3)
_CTRL_D = const(4)
_CTRL_E = const(5)
_BS = const(8)
_LF = const(10)
_CR = const(13)
_ESC = const(27)
_DEL = const(127)
_MAX_LINE = const(512)  # characters on one input line

_COMPOUND = ("if", "elif", "else", "for", "while", "try", "except", "finally", "with", "def",
             "class", "async")


def _unclosed(src):
    """True if src ends inside brackets, a string or after a backslash."""
    depth = 0
    i = 0
    n = len(src)
    while i < n:
        c = src[i]
        if c == "#":
            while i < n and src[i] != "\n":
                i += 1
            continue
        if c in "'\"":
            q = src[i:i + 3] if src[i:i + 3] in ("'''", '"""') else c
            i += len(q)
            while i < n and src[i:i + len(q)] != q:
                if src[i] == "\\":
                    i += 1
                elif src[i] == "\n" and len(q) == 1:
                    break
                i += 1
            if i >= n:
                return len(q) == 3
            i += len(q)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        i += 1
    return depth > 0 or src.endswith("\\")


def _more(src):
    """True if the friendly REPL should ask for another line ("... ")."""
    if _unclosed(src):
        return True
    lines = src.split("\n")
    if _compound(lines[0]):
        return len(lines) == 1 or lines[-1].strip() != ""
    return False


def _compound(line):
    """True if line opens a block (`if x:`, `def f():`, a decorator...)."""
    line = line.strip()
    if line.endswith(":") or line.startswith("@"):
        return True
    word = ""
    for ch in line:
        if not (ch.isalpha() or ch == "_"):
            break
        word += ch
    return word in _COMPOUND


def _assigned(src):
    """The name a one-line `name = ...` statement binds, else None."""
    i = 0
    while i < len(src) and (src[i].isalpha() or src[i] == "_" or (i and src[i].isdigit())):
        i += 1
    rest = src[i:].lstrip()
    if i and "\n" not in src and rest[:1] == "=" and rest[1:2] != "=":
        return src[:i]
    return None


class LineEditor:
    """Mixin for Repl: needs self._w, self._getc, self._hist, self._prev."""

    def _redraw(self):
        self._w("\r\x1b[K" + self._shown + self._line)
        back = len(self._line) - self._cur
        if back:
            self._w("\x1b[%dD" % back)

    def _set_line(self, line):
        self._line = line
        self._cur = len(line)
        self._redraw()

    async def _escape(self, hist_pos):
        c = await self._getc()
        if c not in (ord("["), ord("O")):
            return hist_pos
        c = await self._getc()
        code = chr(c) if c >= 0 else ""
        while "0" <= code[-1:] <= "9":
            c = await self._getc()
            code += chr(c) if c >= 0 else "~"
        if code == "A" and hist_pos < len(self._hist):
            hist_pos += 1
            self._set_line(self._hist[-hist_pos])
        elif code == "B" and hist_pos > 0:
            hist_pos -= 1
            self._set_line(self._hist[-hist_pos] if hist_pos else "")
        elif code == "D" and self._cur > 0:
            self._cur -= 1
            self._w("\x1b[D")
        elif code == "C" and self._cur < len(self._line):
            self._cur += 1
            self._w("\x1b[C")
        elif code in ("H", "1~", "7~"):
            self._cur = 0
            self._redraw()
        elif code in ("F", "4~", "8~"):
            self._cur = len(self._line)
            self._redraw()
        elif code == "3~" and self._cur < len(self._line):
            self._line = self._line[:self._cur] + self._line[self._cur + 1:]
            self._redraw()
        return hist_pos

    async def _read_line(self, prompt, allow_raw):
        """One edited line (str), or an int control code: _CTRL_A/_CTRL_C/_CTRL_D/_CTRL_E/-1."""
        self._line = ""
        self._cur = 0
        self._shown = prompt
        self._w(prompt)
        hist_pos = 0
        try:
            while True:
                c = await self._getc()
                prev, self._prev = self._prev, c
                if c < 0:
                    return -1
                if c == _CR or (c == _LF and prev != _CR):
                    self._w("\r\n")
                    return self._line
                if c == _LF:
                    continue
                if c == _CTRL_A and not self._line and allow_raw:
                    return _CTRL_A
                if c == _CTRL_A:
                    self._cur = 0
                    self._redraw()
                elif c == _CTRL_B and not self._line:
                    return _CTRL_B
                elif c in (_CTRL_C, _CTRL_E) or (c == _CTRL_D and not self._line):
                    self._w("\r\n")
                    return c
                elif c in (_BS, _DEL):
                    if self._cur:
                        self._cur -= 1
                        self._line = self._line[:self._cur] + self._line[self._cur + 1:]
                        if self._cur == len(self._line):
                            self._w("\x08 \x08")
                        else:
                            self._redraw()
                elif c == _ESC:
                    hist_pos = await self._escape(hist_pos)
                elif c >= 32 and len(self._line) >= _MAX_LINE:
                    self._w(b"\x07")  # bell: the line is full
                elif c >= 32:
                    ch = chr(c) if c < 128 else "?"
                    self._line = self._line[:self._cur] + ch + self._line[self._cur:]
                    self._cur += 1
                    if self._cur == len(self._line):
                        self._w(ch)
                    else:
                        self._redraw()
        finally:
            self._shown = None
