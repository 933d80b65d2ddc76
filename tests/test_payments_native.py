"""Native-coin payments from the plug against a real anvil node, run under MicroPython
with the 64 KB heap: paid exactly once per invoice, whatever happens in between."""

import pytest

from paytest import PAYEE, Plug, config, finish, sigkill, signal_tree, wait_for

pytestmark = pytest.mark.slow

AMOUNT = 12345 * 10**9


@pytest.fixture
def plug(tmp_path, devnet):
    p = Plug(tmp_path / "state", config(devnet.url))
    devnet.fund(p.address, 10**18)
    return p


def test_native_payment_lands_once_and_repeat_pay_signs_nothing(plug, devnet):
    before = devnet.balance(PAYEE)
    out = plug.run("p = make(ST)\nr = p.pay('inv-1', %r, %d, memo=b'plug M1/A')\n"
                   "settle(p)\nshow(p.get('inv-1'))\n"
                   "r2 = p.pay('inv-1', %r, %d)\nprint('same', r2 is p.get('inv-1'))\n"
                   % (PAYEE, AMOUNT, PAYEE, AMOUNT))
    assert "same True" in out
    assert devnet.balance(PAYEE) - before == AMOUNT
    assert devnet.nonce(plug.address) == 1
    # after a reboot the record is still there and paying it again is a no-op
    recs = plug.records("p = make(ST)\np.pay('inv-1', %r, %d)\n" % (PAYEE, AMOUNT))
    assert [(r["id"], r["st"]) for r in recs] == [("inv-1", "confirmed")]
    assert devnet.nonce(plug.address) == 1
    tx = devnet.rpc("eth_getTransactionByHash", recs[0]["mined"])
    assert tx["input"] == "0x" + b"plug M1/A".hex()
    assert tx["type"] == "0x2"



def test_stuck_payment_is_replaced_with_same_nonce_and_paid_once(tmp_path, devnet_factory):
    d = devnet_factory(automine=False)
    plug = Plug(tmp_path / "s", config(d.url))
    d.fund(plug.address, 10**18)
    d.mine()
    out = plug.run(
        "clock = ManualClock()\np = make(ST, clock)\n"
        "r = p.pay('inv-s', %r, %d)\nprint('first', r['st'], r['hash'])\n"
        "p.step()\nprint('still', r['st'])\n"
        "clock.t += 61\np.step()\nprint('replaced', r['st'], len(r['v']), r['hash'])\n"
        % (PAYEE, AMOUNT))
    assert "first sent" in out and "still sent" in out
    first = out.split("first sent ")[1].split()[0]
    second = out.split("replaced sent 2 ")[1].split()[0]
    assert first != second
    # the node holds only the replacement; both fee fields were raised by > 10%
    t1 = d.rpc("eth_getTransactionByHash", first)
    t2 = d.rpc("eth_getTransactionByHash", second)
    assert t2 is not None and int(t2["nonce"], 16) == 0
    if t1 is not None:
        assert int(t2["maxFeePerGas"], 16) * 10 > int(t1["maxFeePerGas"], 16) * 11
        assert int(t2["maxPriorityFeePerGas"], 16) * 10 > int(t1["maxPriorityFeePerGas"], 16) * 11
    d.mine()
    recs = plug.records("p = make(ST)\nsettle(p)\n")
    assert recs[0]["st"] == "confirmed" and recs[0]["mined"] == second
    assert d.balance(PAYEE) == AMOUNT
    assert d.nonce(plug.address) == 1


def test_sigkill_between_prepared_and_broadcast(plug, devnet):
    proc = plug.start("p = make(ST)\np.hook = wait_at('prepared')\n"
                      "p.pay('inv-k1', %r, %d)\n" % (PAYEE, AMOUNT))
    line = wait_for(proc, "AT prepared")
    sigkill(proc)
    signed = line.split()[2]
    assert devnet.rpc("eth_getTransactionByHash", signed) is None  # never broadcast
    recs = plug.records("p = make(ST)\nsettle(p)\np.pay('inv-k1', %r, %d)\n" % (PAYEE, AMOUNT))
    assert [(r["st"], r["mined"]) for r in recs] == [("confirmed", signed)]  # same bytes
    assert devnet.balance(PAYEE) == AMOUNT
    assert devnet.nonce(plug.address) == 1


@pytest.mark.parametrize("event", ["broadcast", "sent"])
def test_sigkill_between_broadcast_and_receipt(plug, devnet, event):
    proc = plug.start("p = make(ST)\np.hook = wait_at(%r)\n"
                      "p.pay('inv-k2', %r, %d)\n" % (event, PAYEE, AMOUNT))
    line = wait_for(proc, "AT " + event)
    sigkill(proc)
    signed = line.split()[2]
    recs = plug.records("p = make(ST)\nsettle(p)\np.pay('inv-k2', %r, %d)\n" % (PAYEE, AMOUNT))
    assert [(r["st"], r["mined"]) for r in recs] == [("confirmed", signed)]
    assert devnet.balance(PAYEE) == AMOUNT
    assert devnet.nonce(plug.address) == 1


def test_nonce_used_underneath_by_someone_else_with_the_same_key(tmp_path, devnet_factory):
    from eth_account import Account

    d = devnet_factory(automine=False)
    plug = Plug(tmp_path / "s", config(d.url))
    d.fund(plug.address, 10**18)
    d.mine()
    out = plug.run("p = make(ST)\nr = p.pay('inv-n', %r, %d)\nshow(r)\n" % (PAYEE, AMOUNT))
    assert '"st": "sent"' in out and '"n": 0' in out
    # the same key, used elsewhere, replaces our pending tx with its own at nonce 0
    other = "0x000000000000000000000000000000000000bEEF"
    raw = Account.from_key(plug.key).sign_transaction(dict(
        to=other, value=1, gas=21000, nonce=0, chainId=31337,
        maxFeePerGas=50 * 10**9, maxPriorityFeePerGas=20 * 10**9)).raw_transaction
    d.rpc("eth_sendRawTransaction", "0x" + raw.hex())
    d.mine()
    assert d.balance(other) == 1 and d.balance(PAYEE) == 0
    d.set_automine(True)
    # signed again only once the nonce has stayed taken for a few steps and two minutes
    recs = plug.records("clock = ManualClock()\np = make(ST, clock)\nfor i in range(4):\n"
                        "    p.step()\n    clock.t += 60\nsettle(p)\n")
    assert recs[0]["st"] == "confirmed" and recs[0]["n"] == 1
    assert d.balance(PAYEE) == AMOUNT
    assert d.nonce(plug.address) == 2


def test_insufficient_funds_refused_before_signing_then_paid_once_funded(tmp_path, devnet):
    plug = Plug(tmp_path / "s", config(devnet.url))
    out = plug.run("p = make(ST)\ntry:\n    p.pay('inv-f', %r, %d)\n"
                   "except SpendRefused as e:\n    print('refused', e)\n"
                   "print('recs', len(p.records()))\n" % (PAYEE, AMOUNT))
    assert "refused balance of" in out and "recs 0" in out
    devnet.fund(plug.address, 10**18)
    plug.run("p = make(ST)\np.pay('inv-f', %r, %d)\nsettle(p)\n" % (PAYEE, AMOUNT))
    assert devnet.balance(PAYEE) == AMOUNT


def test_node_side_insufficient_funds_waits_and_pays_once_refunded(plug, devnet):
    proc = plug.start("p = make(ST)\np.hook = wait_at('prepared')\n"
                      "r = p.pay('inv-d', %r, %d)\nshow(r)\nsettle(p, 5)\nshow(r)\n"
                      "print('WAIT')\nimport sys\nsys.stdin.readline()\n"
                      "settle(p)\nshow(r)\n" % (PAYEE, AMOUNT))
    wait_for(proc, "AT prepared")
    devnet.fund(plug.address, 1000)  # drained after the plug checked its balance
    proc.stdin.write("\n")
    proc.stdin.flush()
    wait_for(proc, "WAIT")
    devnet.fund(plug.address, 10**18)
    proc.stdin.write("\n")
    proc.stdin.flush()
    out = finish(proc)
    assert '"st": "confirmed"' in out.splitlines()[-1]
    assert devnet.balance(PAYEE) == AMOUNT
    assert devnet.nonce(plug.address) == 1


def test_node_down_and_back(plug, devnet):
    import signal

    proc = plug.start("p = make(ST, rpc_kw={'timeout_s': 0.5, 'retries': 1})\n"
                      "p.hook = wait_at('prepared')\nr = p.pay('inv-o', %r, %d)\n"
                      "print('state', r['st'])\nsettle(p, 3)\nprint('down', r['st'], r['err'])\n"
                      "print('WAIT')\nimport sys\nsys.stdin.readline()\n"
                      "settle(p)\nshow(r)\n" % (PAYEE, AMOUNT))
    wait_for(proc, "AT prepared")
    signal_tree(devnet.proc.pid, signal.SIGSTOP)  # node hangs: connections time out
    try:
        proc.stdin.write("\n")
        proc.stdin.flush()
        line = wait_for(proc, "down")
        # the plug survived the hanging node: its step() logged the timeout and went on
        assert line.startswith("down ") and "no node answered" in line, "\n".join(proc.lines)
    finally:
        signal_tree(devnet.proc.pid, signal.SIGCONT)
    wait_for(proc, "WAIT")
    proc.stdin.write("\n")
    proc.stdin.flush()
    out = finish(proc)
    assert '"st": "confirmed"' in out.splitlines()[-1]
    assert devnet.balance(PAYEE) == AMOUNT
    assert devnet.nonce(plug.address) == 1


def test_reverting_payee_fails_and_releases_the_invoice(plug, devnet):
    rejecter = "0x00000000000000000000000000000000000Fa11"
    rejecter = "0x" + "00" * 18 + "fa11"
    devnet.rpc("anvil_setCode", rejecter, "0x60006000fd")  # REVERT on any call
    out = plug.run("p = make(ST)\nr = p.pay('inv-r', %r, %d)\nsettle(p)\nshow(r)\n"
                   "r2 = p.pay('inv-r', %r, %d)\nsettle(p)\nshow(r2)\n"
                   "print('spent', p.spent_today())\n"
                   % (rejecter, AMOUNT, rejecter, AMOUNT))
    lines = [x for x in out.splitlines() if x.startswith("{")]
    assert '"st": "failed"' in lines[0] and '"att": 1' in lines[0]
    assert '"st": "failed"' in lines[1] and '"att": 2' in lines[1]
    assert "spent 0" in out
    assert devnet.balance(rejecter) == 0
    assert devnet.nonce(plug.address) == 2  # each attempt used its own nonce


def test_per_channel_accounts_pay_from_their_own_addresses(tmp_path, devnet):
    import os

    from eth_account import Account
    from eth_account.hdaccount.deterministic import HDPath

    seed = os.urandom(32)
    cfg = config(devnet.url, wallet={"mode": "per_channel"},
                 channels={"M1/A": {"account": 0}, "M1/B": {"account": 1}})
    plug = Plug(tmp_path / "s", cfg, seed=seed)
    addrs = [Account.from_key(HDPath("m/44'/60'/0'/0/%d" % i).derive(seed)).address
             for i in (0, 1)]
    for a in addrs:
        devnet.fund(a, 10**18)
    recs = plug.records("p = make(ST)\np.pay('A-1', %r, 100, channel_key='M1/A')\n"
                        "p.pay('B-1', %r, 200, channel_key='M1/B')\nsettle(p)\n"
                        % (PAYEE, PAYEE))
    got = sorted((r["id"], r["from"], r["st"]) for r in recs)
    assert got == [("A-1", addrs[0], "confirmed"), ("B-1", addrs[1], "confirmed")]
    assert [devnet.nonce(a) for a in addrs] == [1, 1]
    assert devnet.balance(PAYEE) == 300


def test_receipt_of_an_older_variant_counts(tmp_path, devnet_factory):
    d = devnet_factory(automine=False)
    plug = Plug(tmp_path / "s", config(d.url))
    d.fund(plug.address, 10**18)
    d.mine()
    first = plug.records("p = make(ST)\np.pay('inv-v', %r, %d)\n" % (PAYEE, AMOUNT))[0]["hash"]
    raw1 = d.rpc("eth_getRawTransactionByHash", first)
    out = plug.run("clock = ManualClock()\nclock.t += 3600\np = make(ST, clock)\np.step()\n"
                   "show(p.get('inv-v'))\n")
    second = [x for x in out.splitlines() if x.startswith("{")][0]
    assert '"st": "sent"' in second and first in second  # both hashes kept
    # the node forgets the replacement and mines the first variant after all
    d.rpc("anvil_dropTransaction", d.rpc("eth_getBlockByNumber", "pending", False)
          ["transactions"][0])
    d.rpc("eth_sendRawTransaction", raw1)
    d.mine()
    rec = plug.records("p = make(ST)\nsettle(p)\n")[0]
    assert rec["st"] == "confirmed" and rec["mined"] == first and rec["hash"] != first
    assert d.balance(PAYEE) == AMOUNT and d.nonce(plug.address) == 1
