"""Power cuts: a virtual plug SIGKILLed 15 times across a simulated day (some right after a
payment shows pending, some right after a config was POSTed), checked from the outside
(`make faults` runs the full 50 cuts)."""

import pytest

from tools import faults

pytestmark = pytest.mark.slow


def test_fifteen_power_cuts_lose_nothing_and_pay_each_invoice_once():
    fig, problems = faults.power_cuts(cuts=15, day_s=40, seed=7, log=lambda *a: None)
    assert problems == []
    assert fig["cuts"] == 15 and fig["boots"] >= 16
    assert fig["cuts_after_config"] >= 3
    assert fig["payments"] >= 3 and fig["paid_wei"] == fig["payee_delta_wei"]
    assert fig["max_loss_intervals"] <= 2
