# The waveform front end's inner loops as @micropython.viper code (native machine words).
# Same arithmetic as the portable loops in waveform.py; callers keep every sum below 2**31
# (chunks of at most 64 samples of at most 12 bits), so 32-bit words never overflow.
# Viper allows four arguments: scalar parameters travel in the `p` array:
#   p[0] start, p[1] end, p[2] v offset, p[3] i offset, p[4] m, p[5] k (Q8), p[6] shift
# out: [sum v, sum v^2, sum i, sum i^2, sum va, sum va*i] with va the voltage interpolated
# between v[n+m] and v[n+m+1] by k/256.
import micropython


@micropython.viper
def accumulate(v: ptr16, i: ptr16, p: ptr32, out: ptr32):  # noqa: F821
    start = p[0]
    end = p[1]
    voff = p[2]
    ioff = p[3]
    m = p[4]
    k = p[5]
    sh = p[6]
    sv = 0
    sv2 = 0
    si = 0
    si2 = 0
    sva = 0
    svai = 0
    n = start
    while n < end:
        x = int(v[n])
        if x & 0x8000:
            x -= 0x10000
        x = (x >> sh) - voff
        y = int(i[n])
        if y & 0x8000:
            y -= 0x10000
        y = (y >> sh) - ioff
        a = int(v[n + m])
        if a & 0x8000:
            a -= 0x10000
        a = (a >> sh) - voff
        b = int(v[n + m + 1])
        if b & 0x8000:
            b -= 0x10000
        b = (b >> sh) - voff
        va = a + (((b - a) * k) >> 8)
        sv += x
        sv2 += x * x
        si += y
        si2 += y * y
        sva += va
        svai += va * y
        n += 1
    out[0] = sv
    out[1] = sv2
    out[2] = si
    out[3] = si2
    out[4] = sva
    out[5] = svai


@micropython.viper
def crossings(v: ptr16, n: int, off: int, out: ptr32):  # noqa: F821
    """Rising crossings of v through off within [2, n-3), with hysteresis out[0] on entry
    (the signal must first fall below off - out[0]): out = first, last, count."""
    h = out[0]
    first = -1
    last = -1
    count = 0
    armed = 0
    j = 2
    while j < n - 3:
        x = int(v[j])
        if x & 0x8000:
            x -= 0x10000
        if x < off - h:
            armed = 1
        elif armed and x >= off:
            if first < 0:
                first = j
            last = j
            count += 1
            armed = 0
        j += 1
    out[0] = first
    out[1] = last
    out[2] = count
