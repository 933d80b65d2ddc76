"""The chain client (MicroPython) against a hostile local JSON-RPC server: malformed
JSON, wrong ids, oversize and slow replies, huge numbers, wrong types, hangs. It never
crashes, every failure is a ChainError with a short message, and a pending payment's
record is not changed by any of it."""

import os

import pytest

from hostile_rpc import MODES, HostileRPC
from paytest import PAYEE, Plug, build_dir, config
from tools import mp

pytestmark = pytest.mark.slow

ADDR = "0x2546BcD3c84621e976D8185a91A922aE77ECEc30"
HASH = "0x" + "ab" * 32


@pytest.fixture
def hostile():
    with HostileRPC() as h:
        yield h


def _hostile_calls(urls_modes, chain_id):
    code = (
        "import gc, time\nfrom plug.rpc import RPC, ChainError\nfrom plug.chain import Chain\n"
        "for m, u in %r:\n"
        "    gc.collect()\n"
        "    c = Chain(RPC([u], timeout_s=0.3, retries=0, deadline_s=1), %d)\n"
        "    calls = (('chain', c.check_chain), ('nonce', lambda: c.nonce(%r)),\n"
        "             ('receipt', lambda: c.receipt(%r)), ('fees', c.fees),\n"
        "             ('send', lambda: c.send_raw('0x02c0')))\n"
        "    for name, fn in calls:\n"
        "        t = time.ticks_ms()\n"
        "        try:\n            fn()\n            res, msg = 'OK', ''\n"
        "        except ChainError as e:\n            res, msg = type(e).__name__, str(e)\n"
        "        print('R', m, name, res, len(msg), time.ticks_diff(time.ticks_ms(), t))\n"
        % (urls_modes, chain_id, ADDR, HASH))
    # 104k: a 9 KB error reply is parsed beside the chain client, its HTTP client and the
    # JSON scanner (plug/jsonlimit.py); at 96k it was within 300 bytes of MemoryError
    out = mp.run(code, heap="104k", path_dirs=build_dir(), timeout=300)
    rows = [line.split()[1:] for line in out.splitlines() if line.startswith("R ")]
    print("\n".join(" ".join(r) for r in rows))
    return rows


def test_every_misbehaviour_is_a_short_chainerror_never_a_crash(hostile):
    modes = sorted(MODES)
    rows = _hostile_calls([(m, hostile.url(m)) for m in modes], 31337)
    assert len(rows) == 5 * len(modes)
    for mode, call, res, msglen, ms in rows:
        assert res != "OK", (mode, call)  # nothing hostile is believed
        assert res in ("Unreachable", "BadReply", "RPCError", "WrongChain", "ChainError"), \
            (mode, call, res)
        assert int(msglen) < 400, (mode, call)
        assert int(ms) < 3000, (mode, call, ms)  # deadline holds even for slow drips
    # a node whose chain id cannot be read is never used: its other answers are not asked
    assert {r for m, c, r, _, _ in rows if c != "chain"} == {"Unreachable"}
    # poison past a good eth_chainId (the fallback answers "0x1" to the rest)
    methods = ["eth_getTransactionCount", "eth_getTransactionReceipt"]
    rows = _hostile_calls([(m, hostile.url(m, methods)) for m in
                           ("wrong_id", "huge_hex", "other_receipt", "error_huge")], 1)
    got = {(m, c): r for m, c, r, _, _ in rows}
    assert got[("wrong_id", "nonce")] == "Unreachable"
    assert got[("huge_hex", "nonce")] == "BadReply"
    assert got[("other_receipt", "receipt")] == "BadReply"
    assert got[("error_huge", "nonce")] == "RPCError"


def test_trickled_or_huge_header_lines_give_up_at_the_deadline(hostile):
    """A node that sends its status line and then one header byte a second without end,
    or a 100 KB header line, held requests' readline (a whole line or nothing) far past
    any deadline, or filled the heap. Each byte comes within the 2 s read timeout, so
    only the 3 s deadline stops it: every call gives up by then with the reason."""
    code = (
        "import gc, time\nfrom plug.rpc import RPC, ChainError\nfrom plug.chain import Chain\n"
        "for m, u in %r:\n"
        "    c = Chain(RPC([u], timeout_s=2, retries=0, deadline_s=3), 31337)\n"
        "    for name, fn in (('chain', c.check_chain), ('nonce', lambda: c.nonce(%r))):\n"
        "        gc.collect()\n"
        "        t = time.ticks_ms()\n"
        "        try:\n            fn()\n            msg = 'OK'\n"
        "        except ChainError as e:\n            msg = '%%s: %%s' %% (type(e).__name__, e)\n"
        "        print('R', m, name, time.ticks_diff(time.ticks_ms(), t), msg)\n"
        % ([(m, hostile.url(m)) for m in ("header_trickle", "long_header")], ADDR))
    out = mp.run(code, heap="96k", path_dirs=build_dir(), timeout=120)
    rows = [line.split(None, 4)[1:] for line in out.splitlines() if line.startswith("R ")]
    assert [r[:2] for r in rows] == [["header_trickle", "chain"], ["header_trickle", "nonce"],
                                     ["long_header", "chain"], ["long_header", "nonce"]]
    for mode, call, ms, msg in rows:
        assert msg.startswith("Unreachable: "), (mode, call, msg)
        if mode == "header_trickle":
            assert "not complete within 3 s" in msg, msg
            assert 2900 <= int(ms) < 3700, (mode, call, ms)  # the deadline, + slack
        else:
            assert "header over 4096 bytes" in msg, msg
            assert int(ms) < 1000, (mode, call, ms)


def test_failover_to_the_next_url_and_remember_it(hostile, devnet):
    urls = [hostile.url("garbage"), hostile.url("hang"), devnet.url]
    out = mp.run(
        "from plug.rpc import RPC\nfrom plug.chain import Chain\n"
        "r = RPC(%r, timeout_s=0.3, retries=0)\nc = Chain(r, 31337)\nc.check_chain()\n"
        "print('n', c.nonce(%r), r.round_trips)\nc.block_number()\nprint('rt', r.round_trips)\n"
        % (urls, ADDR), heap="96k", path_dirs=build_dir())
    assert "n 0 4" in out and "rt 5" in out  # after failing over once, calls go straight to it


def _snapshot(recs):
    return [(r["id"], r["st"], r["n"], r["hash"], r["mined"]) for r in recs]


def test_hostile_replies_never_change_a_pending_payment(tmp_path, devnet_factory):
    d = devnet_factory(automine=False)
    with HostileRPC(upstream=d.url) as h:
        plug = Plug(tmp_path / "s", config(d.url))
        d.fund(plug.address, 10**18)
        d.mine()
        before = plug.records("p = make(ST)\np.pay('h-1', %r, 777)\n" % PAYEE)
        assert before[0]["st"] == "sent"
        d.mine()  # mined: every receipt lookup from here on is poisoned
        poison = ["not_json", "wrong_id", "no_jsonrpc", "both", "huge_hex", "huge_int", "float",
                  "negative", "wrong_type", "bool", "bad_hex", "other_receipt", "oversize_length",
                  "oversize_body", "http500", "garbage", "header_flood", "chunked", "hang",
                  "error_bad", "long_header", "header_trickle"]
        urls = [h.url(m, ["eth_getTransactionReceipt", "eth_getTransactionCount"])
                for m in poison]
        code = ("for u in %r:\n"
                "    p = make(ST, urls=[u], rpc_kw={'timeout_s': 0.3, 'retries': 0})\n"
                "    p.clock.t += 3600\n"  # past the replacement deadline too
                "    p.step()\n"
                "for u in %r:\n"  # reads within the timeout: only the deadline stops it
                "    p = make(ST, urls=[u], rpc_kw={'timeout_s': 2, 'retries': 0, "
                "'deadline_s': 3})\n"
                "    p.clock.t += 3600\n"
                "    p.step()\n"
                "p = make(ST)\n" % (urls, [h.url("header_trickle", ["eth_getTransactionReceipt",
                                                                 "eth_getTransactionCount"])]))
        after = plug.records(code)
        assert _snapshot(after) == _snapshot(before)
        assert after[0]["hashes"] == before[0]["hashes"]  # no replacement was signed on a lie
        assert d.balance(PAYEE) == 777
        done = plug.records("p = make(ST)\nsettle(p)\n")
        assert done[0]["st"] == "confirmed" and done[0]["mined"] == before[0]["hash"]
        assert d.balance(PAYEE) == 777 and d.nonce(plug.address) == 1


def test_store_is_untouched_by_a_hostile_step(tmp_path, hostile, devnet):
    plug = Plug(tmp_path / "s", config(devnet.url))
    devnet.fund(plug.address, 10**18)
    plug.records("p = make(ST)\np.pay('h-2', %r, 5)\n" % PAYEE)
    files = {n: open(os.path.join(plug.state, n), "rb").read()
             for n in os.listdir(plug.state) if n.startswith("payments")}
    plug.run("p = make(ST, urls=[%r], rpc_kw={'timeout_s': 0.3, 'retries': 0})\np.step()\n"
             % hostile.url("garbage"))
    after = {n: open(os.path.join(plug.state, n), "rb").read()
             for n in os.listdir(plug.state) if n.startswith("payments")}
    assert after == files  # not a byte written
    done = plug.records("p = make(ST)\nsettle(p)\n")
    assert done[0]["st"] == "confirmed" and devnet.balance(PAYEE) == 5
