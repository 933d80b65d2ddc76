# Keccak-f[1600] in @micropython.viper: the fast path of lib/keccak.py.
# ruff: noqa: F821  (ptr8, ptr32, uint are viper builtins)
#
# Kept apart from keccak.py because a port without the native emitter (the
# WebAssembly port) refuses to compile any module that holds a viper function;
# keccak.py imports this one inside try/except and falls back to pure Python.
#
# Layout (shared with the fallback in keccak.py): the 25 lanes of 64 bits are
# stored bit-interleaved as 50 words of 32 bits, lane i = x + 5*y at s[2i] (its
# even bits) and s[2i+1] (its odd bits). A 64-bit rotation then becomes two 32-bit
# rotations, so nothing needs 64-bit integers.
#
# 32-bit semantics on every target: viper ints are 32-bit on the ESP32 and 64-bit
# on the x64 unix port. Every word is loaded as `uint(...)` (ptr32 loads are
# signed `int`; `>>` on uint is a logical shift, on int an arithmetic one) and
# every value that is shifted right has no bits above bit 31: it comes straight
# from a 32-bit load, or is masked with `M`. Left shifts, xor, and, or may leave
# garbage above bit 31 on x64, but the low 32 bits never depend on it and stores
# to ptr32/ptr8 truncate. So both targets compute the same words.
import micropython


@micropython.viper
def permute(s: ptr32, w: ptr32, t: ptr8, rc: ptr32):
    """24 rounds on state `s` (50 words). `w` is 70 words of scratch, `t` the
    rho/pi table (4 bytes per lane: dest lane, swap halves, even rot, odd rot),
    `rc` the 24 interleaved round constants (48 words)."""
    M = (uint(0xFFFF) << 16) | 0xFFFF
    r = 0
    while r < 48:
        # theta: column parities C[x] (even, odd) into w[50 + 2x], w[51 + 2x]
        j = 0
        while j < 10:
            w[50 + j] = uint(s[j]) ^ uint(s[j + 10]) ^ uint(s[j + 20]) ^ uint(s[j + 30]) ^ uint(
                s[j + 40])
            j += 1
        c0 = uint(w[50])
        c1 = uint(w[51])
        c2 = uint(w[52])
        c3 = uint(w[53])
        c4 = uint(w[54])
        c5 = uint(w[55])
        c6 = uint(w[56])
        c7 = uint(w[57])
        c8 = uint(w[58])
        c9 = uint(w[59])
        # D[x] = C[x-1] ^ rot(C[x+1], 1); an odd rotation by 1 swaps the halves:
        # even' = rotl32(odd, 1), odd' = even
        w[60] = c8 ^ (c3 << 1) ^ (c3 >> 31)
        w[61] = c9 ^ c2
        w[62] = c0 ^ (c5 << 1) ^ (c5 >> 31)
        w[63] = c1 ^ c4
        w[64] = c2 ^ (c7 << 1) ^ (c7 >> 31)
        w[65] = c3 ^ c6
        w[66] = c4 ^ (c9 << 1) ^ (c9 >> 31)
        w[67] = c5 ^ c8
        w[68] = c6 ^ (c1 << 1) ^ (c1 >> 31)
        w[69] = c7 ^ c0
        # theta applied, then rho and pi: B[pi(i)] = rot(A[i] ^ D[x], rho[i]) into w[0..49]
        i = 0
        y = 0
        while y < 5:
            x = 0
            while x < 10:
                e = uint(s[i]) ^ uint(w[60 + x])
                o = uint(s[i + 1]) ^ uint(w[61 + x])
                k = i + i
                if t[k + 1]:
                    q = e
                    e = o
                    o = q
                # e and o come from 32-bit loads, so their right shifts are clean;
                # what the left shifts push above bit 31 on x64 the store drops
                n = t[k + 2]
                if n:
                    e = (e << n) | (e >> (32 - n))
                n = t[k + 3]
                if n:
                    o = (o << n) | (o >> (32 - n))
                d = t[k] << 1
                w[d] = e
                w[d + 1] = o
                i += 2
                x += 2
            y += 1
        # chi (row by row, even and odd words separately) and iota
        j = 0
        while j < 50:
            b0 = uint(w[j])
            b1 = uint(w[j + 2])
            b2 = uint(w[j + 4])
            b3 = uint(w[j + 6])
            b4 = uint(w[j + 8])
            s[j] = b0 ^ ((b1 ^ M) & b2)
            s[j + 2] = b1 ^ ((b2 ^ M) & b3)
            s[j + 4] = b2 ^ ((b3 ^ M) & b4)
            s[j + 6] = b3 ^ ((b4 ^ M) & b0)
            s[j + 8] = b4 ^ ((b0 ^ M) & b1)
            if j & 1:
                j += 9
            else:
                j += 1
        s[0] = uint(s[0]) ^ uint(rc[r])
        s[1] = uint(s[1]) ^ uint(rc[r + 1])
        r += 2


@micropython.viper
def absorb(s: ptr32, data: ptr8, off: int, nlanes: int):
    """XOR `nlanes` lanes (8 bytes each, little-endian) of `data` from byte `off`
    into the state, converting each to the interleaved form."""
    i = 0
    while i < nlanes:
        p = off + (i << 3)
        lo = uint(data[p]) | (uint(data[p + 1]) << 8) | (uint(data[p + 2]) << 16) | (
            uint(data[p + 3]) << 24)
        hi = uint(data[p + 4]) | (uint(data[p + 5]) << 8) | (uint(data[p + 6]) << 16) | (
            uint(data[p + 7]) << 24)
        # gather the even bits of each word into its low half, the odd bits into the high half
        q = (lo ^ (lo >> 1)) & 0x22222222
        lo = lo ^ q ^ (q << 1)
        q = (lo ^ (lo >> 2)) & 0x0C0C0C0C
        lo = lo ^ q ^ (q << 2)
        q = (lo ^ (lo >> 4)) & 0x00F000F0
        lo = lo ^ q ^ (q << 4)
        q = (lo ^ (lo >> 8)) & 0x0000FF00
        lo = lo ^ q ^ (q << 8)
        q = (hi ^ (hi >> 1)) & 0x22222222
        hi = hi ^ q ^ (q << 1)
        q = (hi ^ (hi >> 2)) & 0x0C0C0C0C
        hi = hi ^ q ^ (q << 2)
        q = (hi ^ (hi >> 4)) & 0x00F000F0
        hi = hi ^ q ^ (q << 4)
        q = (hi ^ (hi >> 8)) & 0x0000FF00
        hi = hi ^ q ^ (q << 8)
        k = i << 1
        s[k] = uint(s[k]) ^ (lo & 0xFFFF) ^ (hi << 16)
        s[k + 1] = uint(s[k + 1]) ^ (lo >> 16) ^ ((hi >> 16) << 16)
        i += 1


@micropython.viper
def squeeze(s: ptr32, out: ptr8, nlanes: int):
    """Write the first `nlanes` lanes of the state to `out` as little-endian bytes."""
    M = (uint(0xFFFF) << 16) | 0xFFFF
    i = 0
    while i < nlanes:
        e = uint(s[i << 1])
        o = uint(s[(i << 1) + 1])
        lo = ((e & 0xFFFF) | (o << 16)) & M
        hi = (e >> 16) | ((o >> 16) << 16)
        q = (lo ^ (lo >> 8)) & 0x0000FF00
        lo = lo ^ q ^ (q << 8)
        q = (lo ^ (lo >> 4)) & 0x00F000F0
        lo = lo ^ q ^ (q << 4)
        q = (lo ^ (lo >> 2)) & 0x0C0C0C0C
        lo = lo ^ q ^ (q << 2)
        q = (lo ^ (lo >> 1)) & 0x22222222
        lo = lo ^ q ^ (q << 1)
        q = (hi ^ (hi >> 8)) & 0x0000FF00
        hi = hi ^ q ^ (q << 8)
        q = (hi ^ (hi >> 4)) & 0x00F000F0
        hi = hi ^ q ^ (q << 4)
        q = (hi ^ (hi >> 2)) & 0x0C0C0C0C
        hi = hi ^ q ^ (q << 2)
        q = (hi ^ (hi >> 1)) & 0x22222222
        hi = hi ^ q ^ (q << 1)
        p = i << 3
        out[p] = lo
        out[p + 1] = lo >> 8
        out[p + 2] = lo >> 16
        out[p + 3] = lo >> 24
        out[p + 4] = hi
        out[p + 5] = hi >> 8
        out[p + 6] = hi >> 16
        out[p + 7] = hi >> 24
        i += 1
