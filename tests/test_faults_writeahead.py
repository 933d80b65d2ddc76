"""A failed durable write never lets a payment reach the chain (found by `make faults`).

The power-cut run paid one invoice twice: the payment record was signed and kept in RAM,
its store write failed (MemoryError on a fragmented heap), the next pass broadcast the
record anyway, and after the next power cut the plug knew nothing of it and signed the
invoice again with a new nonce. Run under MicroPython with the 64 KB heap against anvil.
"""

import pytest

from paytest import PAYEE, Plug, config

pytestmark = pytest.mark.slow

AMOUNT = 777 * 10**9

FAILING_STORE = """
p = make(ST)
real = p.store.save
fail = [0]
def flaky(name, obj):
    if fail[0]:
        fail[0] -= 1
        raise MemoryError("memory allocation failed (test)")
    return real(name, obj)
p.store.save = flaky
"""


@pytest.fixture
def plug(tmp_path, devnet):
    p = Plug(tmp_path / "state", config(devnet.url))
    devnet.fund(p.address, 10**18)
    return p


def test_record_not_written_is_not_broadcast_and_a_reboot_pays_once(plug, devnet):
    out = plug.run(FAILING_STORE + (
        "fail[0] = 1\n"
        "try:\n    p.pay('inv-w', %r, %d)\nexcept MemoryError as e:\n    print('pay failed', e)\n"
        "fail[0] = 3\n"  # every write of the next steps fails too
        "for _ in range(3):\n"
        "    try:\n        p.step()\n    except MemoryError:\n        print('step failed')\n"
        "print('again', p.pay('inv-w', %r, %d) is None)\n" % (PAYEE, AMOUNT, PAYEE, AMOUNT)))
    assert "pay failed" in out and out.count("step failed") == 3
    # nothing reached the chain while the record was not durable
    assert devnet.nonce(plug.address) == 0 and devnet.balance(PAYEE) == 0
    # once a write works, the same signed payment goes out, and a reboot knows it
    recs = plug.records("p = make(ST)\nsettle(p)\np.pay('inv-w', %r, %d)\nsettle(p)\n"
                        % (PAYEE, AMOUNT))
    assert [(r["id"], r["st"]) for r in recs] == [("inv-w", "confirmed")]
    assert devnet.balance(PAYEE) == AMOUNT and devnet.nonce(plug.address) == 1


def test_pay_again_after_a_failed_write_writes_before_returning(plug, devnet):
    # settlement closes the invoice when pay() returns: the record must be durable then
    out = plug.run(FAILING_STORE + (
        "fail[0] = 1\n"
        "try:\n    p.pay('inv-x', %r, %d)\nexcept MemoryError:\n    print('first failed')\n"
        "fail[0] = 1\n"
        "try:\n    p.pay('inv-x', %r, %d)\nexcept MemoryError:\n    print('second failed')\n"
        "r = p.pay('inv-x', %r, %d)\nprint('third', r['st'])\n"
        % ((PAYEE, AMOUNT) * 3)))
    assert "first failed" in out and "second failed" in out
    assert "third sent" in out or "third prepared" in out
    recs = plug.records("p = make(ST)\nsettle(p)\n")  # a reboot: from the store only
    assert [(r["id"], r["st"]) for r in recs] == [("inv-x", "confirmed")]
    assert devnet.balance(PAYEE) == AMOUNT and devnet.nonce(plug.address) == 1
