"""Accuracy on the simulator, on MicroPython: after calibrating each channel from ONE resistive
reference load (10 A, 230 V with 3rd/5th voltage harmonics), the per-channel energy error stays
within 0.2 % for the chips and 0.5 % for the waveform path, from 5 % to 120 % of rated current
(16 A), PF 0.5 lagging / 1 / 0.8 leading, with and without current harmonics (25 % 3rd, 12 %
5th), and for export. The simulated chips carry seeded factory gain errors of a few percent and a
small power offset per channel. Run with -s to see the table (tests/accuracy_run.py does the
work on the device side).

With a CT phase error of about a degree per channel (as real CTs have), PF 0.5 lagging reads a
few percent off until cal.phase() is done against a PF 0.5 inductive reference load; after it
the whole sweep is within the 0.5 % class."""

import ast
import os

import pytest

from tools import mp
from tools.paths import DEVICE_DIRS

TESTS = os.path.dirname(os.path.abspath(__file__))
LIMITS = {"ade7953": 0.2, "ade7953_i2c": 0.2, "atm90e32": 0.2, "waveform": 0.5}


CLASS_LIMIT = 0.5  # IEC 62053-22 class 0.5S


def measure(kind, *args):
    # the drivers and calibration.py compile from source here: the heap is the compiler's
    out = mp.run(path=os.path.join(TESTS, "accuracy_run.py"), args=[kind] + list(args),
                 heap="512k", path_dirs=(TESTS,) + DEVICE_DIRS, timeout=600)
    return ast.literal_eval(out.strip().splitlines()[-1])


def table(kind, rows):
    lines = ["", "energy error after one-point calibration: %s (limit %.1f %%)"
             % (kind, LIMITS[kind]),
             "%-3s %6s %5s %5s %7s  %s" % ("ch", "%In", "PF", "harm", "flow", "error %")]
    for ch, pct, pf, harm, flow, err in rows:
        lines.append("%-3s %6d %5s %5s %7s  %+.4f" % (ch, pct, pf, "yes" if harm else "no", flow,
                                                    err))
    return "\n".join(lines)


def summary(kind, rows):
    """Worst |error| % over channels and harmonics, per current and PF (export separately)."""
    pfs = ("0.5L", "1.0", "0.8C")
    lines = ["%s worst |error| %%: %s" % (kind, "  ".join("%6s" % p for p in pfs))]
    for pct in (5, 10, 50, 100, 120):
        cells = []
        for pf in pfs:
            errs = [abs(r[5]) for r in rows if r[1] == pct and r[2] == pf and r[4] == "import"]
            cells.append("%6.3f" % max(errs))
        lines.append("%*s %3d %%In: %s" % (len(kind), "", pct, "  ".join(cells)))
    exp = max(abs(r[5]) for r in rows if r[4] == "export")
    lines.append("%*s export (50 %%, 100 %% + harmonics): %.3f" % (len(kind), "", exp))
    return "\n".join(lines)


@pytest.mark.parametrize("kind", sorted(LIMITS))
def test_energy_error_after_one_point_calibration(kind):
    rows = measure(kind)
    print(table(kind, rows))
    print(summary(kind, rows))
    channels = {r[0] for r in rows}
    assert len(rows) == 32 * len(channels)
    assert {r[1] for r in rows} == {5, 10, 50, 100, 120}
    assert {r[2] for r in rows} == {"0.5L", "1.0", "0.8C"}
    assert {r[4] for r in rows} == {"import", "export"}
    worst = max(abs(r[5]) for r in rows)
    assert worst < LIMITS[kind], table(kind, rows)


@pytest.mark.parametrize("kind", sorted(LIMITS))
def test_ct_phase_error_is_calibrated_out_with_cal_phase(kind):
    before, after = measure(kind, "phase")
    print(table(kind, before).replace("one-point calibration", "gain calibration only, CT "
                                      "phase error ~1 deg"))
    print(table(kind, after).replace("one-point calibration", "gain and phase calibration"))
    print(summary(kind, after))
    assert len(before) == len(after) == 32 * len({r[0] for r in after})
    # without phase calibration every channel fails the class at PF 0.5 lagging and 0.8 leading
    for ch in {r[0] for r in before}:
        for pf in ("0.5L", "0.8C"):
            worst = max(abs(r[5]) for r in before if r[0] == ch and r[2] == pf)
            assert worst > CLASS_LIMIT, (ch, pf, table(kind, before))
    worst = max(abs(r[5]) for r in after)
    assert worst < CLASS_LIMIT, table(kind, after)
