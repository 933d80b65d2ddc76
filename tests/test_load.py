"""Load: five virtual plugs metering and paying against one anvil and one tariff server at
once (`make faults` runs twenty); every payment lands once."""

import pytest

from tools import faults_load

pytestmark = pytest.mark.slow


def test_five_plugs_at_once_each_pay_and_nothing_twice():
    fig, problems = faults_load.load(plugs=5, speed=480, run_s=30, log=lambda *a: None)
    assert problems == []
    assert fig["plugs_that_paid"] == 5
    assert fig["paid_wei"] == fig["payee_delta_wei"]
