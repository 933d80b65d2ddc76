"""A virtual plug behind a lying JSON-RPC node (the faults run's `lying` phase): nonces far
ahead and behind, receipts for transactions the node swallowed, another chain id and
malformed replies for about 40 s, then honesty. Every invoice made by then is paid on
chain exactly once within 5 minutes, nothing goes to an unapproved address, and the
payments store stays under its bound throughout."""

import pytest

from tools import faults_net

pytestmark = pytest.mark.slow

LIES = (("ahead", 14), ("fake_receipt", 8), ("behind", 8), ("wrong_chain", 4),
        ("malformed", 4))


def test_a_lying_node_delays_payments_and_never_stops_or_doubles_them():
    fig, problems = faults_net.lying(day_s=60, lies=LIES, heal_s=300, log=lambda *a: None)
    assert problems == []
    assert fig["lies_told"] > 20
    assert fig["invoices_at_honesty"] >= 3
    assert fig["healed_s"] < 300
    assert fig["store_max_bytes"] <= faults_net.PAYMENTS_MAX_BYTES
    assert fig["paid_wei"] == fig["payee_delta_wei"]
