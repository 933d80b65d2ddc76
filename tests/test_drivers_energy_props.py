"""Property: converting chip energy LSBs to micro-watt-hours never drifts, however the reads
split the stream (CPython, hypothesis; the same code runs on MicroPython in test_lib_frontends)."""

from frontend import EnergyCounter
from hypothesis import given
from hypothesis import strategies as st


@given(st.integers(1, 10**7), st.integers(1, 10**6),
       st.lists(st.integers(0, 2**24), max_size=200))
def test_sum_of_reads_is_floor_of_total(num, den, reads):
    c = EnergyCounter(num, den)
    got = sum(c.add(x) for x in reads)
    assert got == sum(reads) * num // den
    assert 0 <= c.rem < c.den
