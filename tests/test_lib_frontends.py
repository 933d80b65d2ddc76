"""lib/frontend.py on CPython and MicroPython: exact energy conversion, calibration checks."""

from dual import raises
from frontend import (EnergyCounter, FrontEnd, offset_rms, reference_gains, snapshot,
                      sign_extend, ticks_diff)


class _Fake(FrontEnd):
    def __init__(self):
        FrontEnd.__init__(self, "M1", ("A", "B"), 16.0)
        self.applied = []

    def _apply(self, indices):
        self.applied.append(list(indices))


def test_energy_counter_is_exact_however_the_stream_is_split():
    # ADE7953 board scaling: 1 LSB = 1e6 / 154^2 uWh
    total = 0
    c = EnergyCounter(1000000, 23716)
    lsbs = [0, 1, 7, 23715, 23716, 100000, 3, 5929 * 3 + 1] * 5
    for x in lsbs:
        total += c.add(x)
    assert total == sum(lsbs) * 1000000 // 23716
    one = EnergyCounter(1000000, 23716).add(sum(lsbs))
    assert one == total


def test_energy_counter_large_reads_and_refusals():
    c = EnergyCounter(3125, 1)
    assert c.add(65535) == 65535 * 3125
    assert isinstance(raises(ValueError, c.add, -1), ValueError)
    raises(ValueError, EnergyCounter, 0, 5)
    c = EnergyCounter(10, 36)  # mJ -> uWh
    assert sum(c.add(1) for _ in range(36)) == 10


def test_helpers():
    assert sign_extend(0xFFFFFF, 24) == -1
    assert sign_extend(0x7FFFFF, 24) == 0x7FFFFF
    assert sign_extend(0x8000, 16) == -32768
    assert ticks_diff(5, (1 << 30) - 5) == 10
    assert ticks_diff(100, 200) == -100
    assert offset_rms(0.005, 0.005) == 0.0
    assert abs(offset_rms(5.0, 0.003) - 5.0) < 1e-5
    g = reference_gains({"v_gain": 1.0, "i_gain": 1.0, "p_gain": 2.0}, 220.0, 10.0, 2000.0,
                        230.0, 10.5, 2300.0)
    assert abs(g["v_gain"] - 230.0 / 220.0) < 1e-9
    assert abs(g["i_gain"] - 1.05) < 1e-9
    assert abs(g["p_gain"] - 2.3) < 1e-9
    raises(ValueError, reference_gains, {"v_gain": 1.0, "i_gain": 1.0, "p_gain": 1.0},
           230.0, 0.0, 0.0, 230.0, 10.0, 2300.0)


def test_calibration_roundtrip_and_partial_update():
    fe = _Fake()
    cal = fe.calibration()
    assert cal["A"] == {"v_gain": 1.0, "i_gain": 1.0, "p_gain": 1.0, "phase_deg": 0.0,
                        "i_offset": 0.0}
    fe.load_calibration({"B": {"i_gain": 1.03, "phase_deg": -0.4}})
    assert fe.applied == [[1]]
    assert fe.calibration()["B"]["i_gain"] == 1.03
    assert fe.calibration()["B"]["v_gain"] == 1.0
    fe.load_calibration(fe.calibration())  # unchanged: nothing written
    assert fe.applied == [[1]]


def test_bad_calibration_is_refused_and_changes_nothing():
    fe = _Fake()
    before = fe.calibration()
    for bad in ({"C": {"v_gain": 1.0}},  # no such channel
                {"A": {"v_gain": 5.0}},  # a 5x gain is a wrong reference, not a calibration
                {"A": {"v_gain": 1.01, "i_gain": 0.1}},  # valid first key, bad second
                {"A": {"phase_deg": 12.0}},
                {"A": {"i_offset": 3.0}},
                {"A": {"volts": 1.0}},
                {"A": {"p_gain": "1.0"}},
                {"A": {"p_gain": True}},
                {"A": {"p_gain": float("nan")}},
                {"A": 1.0},
                [1, 2]):
        e = raises(ValueError, fe.load_calibration, bad)
        assert str(e)
    assert fe.calibration() == before
    assert fe.applied == []


def test_codes_are_validated():
    raises(ValueError, FrontEnd, "M/1", ("A",), 16.0)
    raises(ValueError, FrontEnd, "M1", ("A", "A"), 16.0)
    raises(ValueError, FrontEnd, "M1", (), 16.0)
    raises(ValueError, FrontEnd, "M1", ("A",), 0)
    fe = FrontEnd("M1", ("A", "B"), 16.0)
    assert [r.channel_code for r in fe.readings] == ["A", "B"]


def test_readings_copy_keeps_values_across_reads():
    fe = _Fake()
    fe.readings[0].import_uwh = 5
    snap = snapshot(fe.readings)
    fe.readings[0].import_uwh = 9
    assert snap[0]["import_uwh"] == 5 and snap[0]["channel_code"] == "A"
