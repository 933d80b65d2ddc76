"""Network faults: the RPC node hangs and goes down, the tariff server errors and goes
down, each for about two hours of plug time; metering never stops and billing catches up."""

import pytest

from tools import faults_net

pytestmark = pytest.mark.slow


def test_outages_of_node_and_tariff_server_stop_neither_metering_nor_billing():
    fig, problems = faults_net.network(day_s=60, outage_s=5, log=lambda *a: None)
    assert problems == []
    assert fig["polls"] > 40
    assert fig["payments_after_outage"] >= 1
    assert fig["paid_wei"] == fig["payee_delta_wei"]
