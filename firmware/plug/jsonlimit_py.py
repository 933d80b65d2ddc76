# The portable twin of plug/jsonlimit.py's viper scanner, for CPython (the host tools)
# and ports without a native emitter; the plug never loads it.


def scan(buf, n, state, limit):
    """The scanner's state after buf[:n], from `state` (the state after the chunks before:
    (depth + 65536) * 4 + in a string * 2 + after a backslash; 65536 * 4 at the start), or
    -1 at the first [ or { that opens level `limit` + 1 outside strings."""
    esc = state & 1
    instr = state & 2
    depth = (state >> 2) - 65536
    for i in range(n):
        c = buf[i]
        if instr:
            if esc:
                esc = 0
            elif c == 92:  # backslash
                esc = 1
            elif c == 34:  # quote
                instr = 0
        elif c == 34:
            instr = 2
        elif c == 91 or c == 123:  # [ {
            depth += 1
            if depth > limit:
                return -1
        elif c == 93 or c == 125:  # ] }
            depth -= 1
    return ((depth + 65536) << 2) | instr | esc
