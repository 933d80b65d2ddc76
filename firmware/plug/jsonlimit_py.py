# The portable twin of plug/jsonlimit.py's viper scanner, for CPython (the host tools)
# and ports without a native emitter; the plug never loads it.


def deepest(buf, n, limit):
    """Index of the first [ or { that opens level `limit` + 1 outside strings, or -1."""
    depth = 0
    instr = False
    esc = False
    for i in range(n):
        c = buf[i]
        if instr:
            if esc:
                esc = False
            elif c == 92:  # backslash
                esc = True
            elif c == 34:  # quote
                instr = False
        elif c == 34:
            instr = True
        elif c == 91 or c == 123:  # [ {
            depth += 1
            if depth > limit:
                return i
        elif c == 93 or c == 125:  # ] }
            depth -= 1
    return -1
