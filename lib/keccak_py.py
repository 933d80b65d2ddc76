# Keccak-f[1600] in portable Python: the fallback of lib/keccak.py where viper is
# missing (CPython, the WebAssembly port). Same interface, state layout (50
# bit-interleaved 32-bit words) and steps as keccak_viper.py; see the notes there.
# Values are kept below 2**32 with explicit masks, so it is right on any int width
# (on a 32-bit port words above 2**30 are heap ints: correct, but slow).

_M32 = 0xFFFFFFFF


_PLAN = None  # rho/pi steps for the pure-Python back end, built on first use


def _plan(t):
    # per lane: (source word, D word, dest word, swap, even rot, 32 - even rot, odd rot, 32 - odd)
    plan = []
    for lane in range(25):
        k = 4 * lane
        re = t[k + 2]
        ro = t[k + 3]
        plan.append((2 * lane, 2 * (lane % 5), 2 * t[k], t[k + 1], re, 32 - re, ro, 32 - ro))
    return tuple(plan)


def permute(s, w, t, rc):
    global _PLAN
    if _PLAN is None:
        _PLAN = _plan(t)
    plan = _PLAN
    a = list(s)
    b = [0] * 50
    m = _M32
    for r in range(0, 48, 2):
        c0 = a[0] ^ a[10] ^ a[20] ^ a[30] ^ a[40]
        c1 = a[1] ^ a[11] ^ a[21] ^ a[31] ^ a[41]
        c2 = a[2] ^ a[12] ^ a[22] ^ a[32] ^ a[42]
        c3 = a[3] ^ a[13] ^ a[23] ^ a[33] ^ a[43]
        c4 = a[4] ^ a[14] ^ a[24] ^ a[34] ^ a[44]
        c5 = a[5] ^ a[15] ^ a[25] ^ a[35] ^ a[45]
        c6 = a[6] ^ a[16] ^ a[26] ^ a[36] ^ a[46]
        c7 = a[7] ^ a[17] ^ a[27] ^ a[37] ^ a[47]
        c8 = a[8] ^ a[18] ^ a[28] ^ a[38] ^ a[48]
        c9 = a[9] ^ a[19] ^ a[29] ^ a[39] ^ a[49]
        # D[x] = C[x-1] ^ rot(C[x+1], 1), as in keccak_viper.permute
        d = (c8 ^ (((c3 << 1) | (c3 >> 31)) & m), c9 ^ c2,
             c0 ^ (((c5 << 1) | (c5 >> 31)) & m), c1 ^ c4,
             c2 ^ (((c7 << 1) | (c7 >> 31)) & m), c3 ^ c6,
             c4 ^ (((c9 << 1) | (c9 >> 31)) & m), c5 ^ c8,
             c6 ^ (((c1 << 1) | (c1 >> 31)) & m), c7 ^ c0)
        for i, x, dst, swap, ne, me, no, mo in plan:
            if swap:
                e = a[i + 1] ^ d[x + 1]
                o = a[i] ^ d[x]
            else:
                e = a[i] ^ d[x]
                o = a[i + 1] ^ d[x + 1]
            if ne:
                e = ((e << ne) | (e >> me)) & m
            if no:
                o = ((o << no) | (o >> mo)) & m
            b[dst] = e
            b[dst + 1] = o
        for j in (0, 1, 10, 11, 20, 21, 30, 31, 40, 41):
            b0 = b[j]
            b1 = b[j + 2]
            b2 = b[j + 4]
            b3 = b[j + 6]
            b4 = b[j + 8]
            a[j] = b0 ^ ((b1 ^ m) & b2)
            a[j + 2] = b1 ^ ((b2 ^ m) & b3)
            a[j + 4] = b2 ^ ((b3 ^ m) & b4)
            a[j + 6] = b3 ^ ((b4 ^ m) & b0)
            a[j + 8] = b4 ^ ((b0 ^ m) & b1)
        a[0] ^= rc[r]
        a[1] ^= rc[r + 1]
    for j in range(50):
        s[j] = a[j]


def _shuffle(v):
    # delta swaps that move the even bits of a 32-bit word to its low half
    q = (v ^ (v >> 1)) & 0x22222222
    v ^= q ^ (q << 1)
    q = (v ^ (v >> 2)) & 0x0C0C0C0C
    v ^= q ^ (q << 2)
    q = (v ^ (v >> 4)) & 0x00F000F0
    v ^= q ^ (q << 4)
    q = (v ^ (v >> 8)) & 0x0000FF00
    return v ^ q ^ (q << 8)


def _unshuffle(v):
    q = (v ^ (v >> 8)) & 0x0000FF00
    v ^= q ^ (q << 8)
    q = (v ^ (v >> 4)) & 0x00F000F0
    v ^= q ^ (q << 4)
    q = (v ^ (v >> 2)) & 0x0C0C0C0C
    v ^= q ^ (q << 2)
    q = (v ^ (v >> 1)) & 0x22222222
    return v ^ q ^ (q << 1)


def absorb(s, data, off, nlanes):
    for i in range(nlanes):
        p = off + 8 * i
        lo = _shuffle(data[p] | (data[p + 1] << 8) | (data[p + 2] << 16) | (data[p + 3] << 24))
        hi = _shuffle(data[p + 4] | (data[p + 5] << 8) | (data[p + 6] << 16) | (data[p + 7] << 24))
        s[2 * i] ^= (lo & 0xFFFF) | ((hi & 0xFFFF) << 16)
        s[2 * i + 1] ^= (lo >> 16) | (hi & 0xFFFF0000)


def squeeze(s, out, nlanes):
    for i in range(nlanes):
        e = s[2 * i]
        o = s[2 * i + 1]
        lo = _unshuffle((e & 0xFFFF) | ((o & 0xFFFF) << 16))
        hi = _unshuffle((e >> 16) | (o & 0xFFFF0000))
        p = 8 * i
        for j in range(4):
            out[p + j] = (lo >> (8 * j)) & 0xFF
            out[p + 4 + j] = (hi >> (8 * j)) & 0xFF
