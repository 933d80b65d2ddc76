"""lib/eth.py on MicroPython against eth-account on CPython, on random inputs.

Hypothesis draws batches of transactions (both types, random keys, chain ids up to
EIP-2294's bound, values up to 2**256-1, data up to 6 KB, access lists) and messages.
Each batch is signed by ONE MicroPython process (tests/eth_batch.py, lib/ as .mpy), which
also decodes its own output again; every raw transaction must equal eth-account's
byte for byte, and the decoded sender and hash must match eth-account's.
"""

import json
import os
import random

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpy_lib import mpy_lib_fixture  # noqa: F401  (the mpy_lib fixture)
from tools import mp

HERE = os.path.dirname(os.path.abspath(__file__))
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
U256 = 2**256 - 1
# Hypothesis overruns its per-example budget on much longer lists, so a few batches of
# 40 transactions: 8 x 40 = 320 transactions, 8 MicroPython processes.
BATCH = 40
DECODE_EVERY = 4  # decode_transaction (4x slower than signing) on every 4th
MSG_BATCH = 30  # 3 x 30 messages, each signed, recovered and recovered with high s

SETTINGS = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))

keys = st.integers(1, N - 1).map(lambda k: k.to_bytes(32, "big"))
addresses = st.binary(min_size=20, max_size=20).map(to_checksum_address)
uint = st.one_of(st.integers(0, 2**31), st.integers(0, 2**64), st.integers(0, U256))
chain_ids = st.one_of(st.sampled_from([1, 5, 137, 31337, 11155111]), st.integers(1, 2**32),
                      st.integers(2**32, 2**63 - 37))


def _big_data(size_seed):
    # several KB drawn byte by byte would overrun hypothesis' per-example budget
    size, seed = size_seed
    return random.Random(seed).randbytes(size)


datas = st.one_of(st.binary(max_size=100),
                  st.tuples(st.integers(1000, 6000), st.integers(0, 2**32)).map(_big_data))
access_lists = st.lists(
    st.fixed_dictionaries({"address": addresses, "storageKeys": st.lists(
        st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex()), max_size=3)}),
    max_size=3)


@st.composite
def transactions(draw, tx_type):
    tx = {"nonce": draw(st.integers(0, 2**64 - 1)), "gas": draw(uint), "to": draw(addresses),
          "value": draw(uint), "data": draw(datas), "chainId": draw(chain_ids)}
    if tx_type == 0:
        tx["type"] = 0
        tx["gasPrice"] = draw(uint)
    else:
        tx["type"] = 2
        tip = draw(uint)
        tx["maxPriorityFeePerGas"] = tip
        tx["maxFeePerGas"] = draw(st.integers(tip, U256))
        tx["accessList"] = draw(access_lists)
    if draw(st.booleans()):
        del tx["type"]  # inferred from the fee fields, as eth-account does
    return tx


def run_batch(lib_dir, tmp_path, jobs):
    """Run the jobs (header, payload) in one MicroPython process (tests/eth_batch.py),
    lib/ as .mpy like the plug. The heap is larger than the plug's because transactions
    with up to 6 KB of data need 6 KB blocks; test_signing_fits_in_16k_of_free_heap
    proves the budget for the transfers the plug sends."""
    path = tmp_path / "jobs.bin"
    path.write_bytes(b"".join(head.encode() + b"\n" + payload for head, payload in jobs))
    out = mp.run(path=os.path.join(HERE, "eth_batch.py"), args=[str(path)],
                 path_dirs=(lib_dir,), heap="256k", timeout=900)
    got = out.splitlines()
    assert len(got) == len(jobs), out[-2000:]
    return got


def tx_job(key, tx, decode):
    j = {k: (hex(v) if isinstance(v, int) else v) for k, v in tx.items() if k != "data"}
    return ("%s %s %d %s" % ("T" if decode else "S", key.hex(), len(tx["data"]), json.dumps(j)),
            tx["data"])


@settings(SETTINGS, max_examples=8)
@given(st.lists(st.tuples(keys, transactions(0)), min_size=BATCH // 2, max_size=BATCH // 2),
       st.lists(st.tuples(keys, transactions(2)), min_size=BATCH // 2, max_size=BATCH // 2))
def test_random_transactions_equal_eth_account(mpy_lib, tmp_path_factory, legacy, dynamic):
    batch = legacy + dynamic
    got = run_batch(mpy_lib, tmp_path_factory.mktemp("tx"), [tx_job(k, tx, i % DECODE_EVERY == 0)
                                                           for i, (k, tx) in enumerate(batch)])
    for i, ((key, tx), line) in enumerate(zip(batch, got)):
        # eth-account knows legacy transactions only without a type field
        want = Account.sign_transaction({k: v for k, v in tx.items()
                                         if (k, v) != ("type", 0)}, key)
        assert line.split()[0] == want.raw_transaction.hex(), "job %d differs: %r" % (i, tx)
        if i % DECODE_EVERY == 0:
            _, sender, tx_hash = line.split()
            assert sender == Account.from_key(key).address
            assert tx_hash == want.hash.hex()


messages = st.one_of(st.binary(max_size=200), st.text(max_size=80).map(str.encode),
                     st.tuples(st.integers(1000, 3000), st.integers(0, 2**32)).map(_big_data))


@settings(SETTINGS, max_examples=3)
@given(st.lists(st.tuples(keys, messages), min_size=MSG_BATCH, max_size=MSG_BATCH))
def test_random_messages_sign_and_recover_like_eth_account(mpy_lib, tmp_path_factory, batch):
    jobs = [("M %s %d" % (k.hex(), len(m)), m) for k, m in batch]
    want = [Account.sign_message(encode_defunct(primitive=m), k).signature for k, m in batch]
    # recover eth-account's signatures, and the same signatures with s flipped high
    for (_, m), sig in zip(batch, want):
        jobs.append(("R %s %d" % (sig.hex(), len(m)), m))
        s = int.from_bytes(sig[32:64], "big")
        high = sig[:32] + (N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
        jobs.append(("R %s %d" % (high.hex(), len(m)), m))
    got = run_batch(mpy_lib, tmp_path_factory.mktemp("msg"), jobs)
    for i, (k, _) in enumerate(batch):
        assert got[i] == want[i].hex(), "message %d differs" % i
        address = Account.from_key(k).address
        assert got[len(batch) + 2 * i] == address
        high = got[len(batch) + 2 * i + 1]
        assert high.startswith("ERR signature:") and "high" in high, high


BUDGET_SCRIPT = """
import gc
import eth, eth_tx, eth_message
gc.collect()
ballast = []
while gc.mem_free() > %(budget)d + 256:  # leave only the budget free, fragmented as it is
    ballast.append(bytearray(256))
gc.collect()
print(gc.mem_free())
key = bytes([0x46] * 32)
data = eth.erc20_transfer_data(%(to)r, 10**18)
for tx in %(txs)r:
    tx["data"] = data
    print(eth.sign_transaction(tx, key).hex())
print(eth.sign_message(b"plug config v1", key).hex())
"""


def test_signing_fits_in_16k_of_free_heap(mpy_lib):
    """An ERC-20 transfer of both types and a message sign with only 16 KB of heap free
    (64 KB heap, lib/ loaded as .mpy): the budget the billing loop must leave."""
    key = b"\x46" * 32
    token = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    payee = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
    txs = [{"type": 2, "nonce": 7, "maxFeePerGas": 30 * 10**9, "maxPriorityFeePerGas": 10**9,
            "gas": 60000, "to": token, "value": 0, "chainId": 11155111},
           {"nonce": 8, "gasPrice": 30 * 10**9, "gas": 60000, "to": token, "value": 0,
            "chainId": 2**40 + 1}]
    out = mp.run(BUDGET_SCRIPT % {"budget": 16 * 1024, "to": payee, "txs": txs},
                 path_dirs=(mpy_lib,), heap="64k").split()
    assert int(out[0]) <= 16 * 1024 + 256
    data = bytes.fromhex("a9059cbb" + "00" * 12 + payee[2:].lower()) + (10**18).to_bytes(32, "big")
    for tx, got in zip(txs, out[1:3]):
        want = Account.sign_transaction(dict(tx, data=data), key).raw_transaction.hex()
        assert got == want
    assert out[3] == Account.sign_message(encode_defunct(b"plug config v1"), key).signature.hex()


@st.composite
def address_strings(draw):
    """Addresses as people type them: checksummed, lower, upper, or with letters flipped."""
    import eth_utils

    a = eth_utils.to_checksum_address(draw(st.binary(min_size=20, max_size=20)))
    style = draw(st.sampled_from(["checksum", "lower", "upper", "flip", "short"]))
    if style == "lower":
        return a.lower()
    if style == "upper":
        return "0x" + a[2:].upper()
    if style == "short":
        return a[:-1]
    i = draw(st.integers(2, 41))
    return a[:i] + a[i].swapcase() + a[i + 1:]


@settings(max_examples=300, deadline=None)
@given(address_strings())
def test_address_checks_agree_with_eth_utils(s):
    import eth_utils

    import eth

    # eth-utils 6's is_address ignores the checksum; ours rejects a wrong one (EIP-55)
    want = eth_utils.is_hex_address(s) and (not eth_utils.is_checksum_formatted_address(s)
                                            or eth_utils.is_checksum_address(s))
    assert eth.is_address(s) == want
    assert eth.is_checksum_address(s) == eth_utils.is_checksum_address(s)
    if eth.is_address(s):
        assert eth.to_checksum_address(s) == eth_utils.to_checksum_address(s)
