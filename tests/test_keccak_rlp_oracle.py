"""lib/keccak.py and lib/rlp.py against independent implementations.

Oracles: eth_hash (pycryptodome's Keccak-256, what eth-account uses) and the `rlp`
package (pyrlp, eth-account's RLP, reachable here as `pyrlp`, see conftest.py).
Checked on CPython with hypothesis, and in batches on the MicroPython unix port (both
keccak back ends) and the 32-bit WebAssembly port: the device hashes/encodes a file of
inputs and prints results that are compared with the oracle here.
"""

import os
import random
import subprocess

import pyrlp
import pytest
from eth_hash.auto import keccak as oracle_keccak
from hypothesis import given, settings
from hypothesis import strategies as st

import keccak
import rlp
from tools import mp
from tools.paths import ROOT, executable

RUNNER = os.path.join(ROOT, "tools", "wasm_run.mjs")

# lengths around the 136-byte rate and its multiples, then random ones
EDGE_LENGTHS = [0, 1, 2, 31, 32, 33, 55, 56, 63, 64, 65, 127, 128, 129, 134, 135, 136, 137, 138,
                200, 255, 256, 270, 271, 272, 273, 407, 408, 409, 543, 544, 545]


def _messages(n_random, max_len, seed):
    rnd = random.Random(seed)
    lengths = EDGE_LENGTHS + [rnd.randrange(max_len) for _ in range(n_random)]
    msgs = []
    for n in lengths:
        data = bytes(rnd.getrandbits(8) for _ in range(n))
        chunk = rnd.choice([1, 7, 64, 135, 136, 137, 300])
        msgs.append((chunk, data))
    return msgs


_KECCAK_SCRIPT = """
import binascii, keccak
keccak.set_backend(%r)
with open(%r) as f:
    for line in f:
        chunk, hexdata = line.split()
        chunk = int(chunk)
        data = binascii.unhexlify(hexdata) if hexdata != "-" else b""
        h = keccak.Keccak256()
        for i in range(0, len(data), chunk):
            h.update(data[i:i + chunk])
        print(binascii.hexlify(keccak.keccak256(data)).decode(), h.hexdigest())
"""


def _write_messages(path, msgs):
    with open(path, "w") as f:
        for chunk, data in msgs:
            f.write("%d %s\n" % (chunk, data.hex() or "-"))


def _check_digests(out, msgs):
    lines = out.strip().splitlines()
    assert len(lines) == len(msgs)
    for (chunk, data), line in zip(msgs, lines):
        want = oracle_keccak(data).hex()
        one_shot, incremental = line.split()
        assert one_shot == want, "one-shot keccak of %d bytes" % len(data)
        assert incremental == want, "keccak of %d bytes fed in %d-byte chunks" % (len(data), chunk)


@pytest.mark.parametrize("backend", ["viper", "python"])
def test_keccak_on_unix_port_matches_pycryptodome(backend, tmp_path):
    n_random, max_len = (300, 4000) if backend == "viper" else (60, 1200)
    msgs = _messages(n_random, max_len, seed=backend)
    path = str(tmp_path / "msgs.txt")
    _write_messages(path, msgs)
    out = mp.run(_KECCAK_SCRIPT % (backend, path), heap="128k")  # the script holds 8 KB lines
    _check_digests(out, msgs)


def test_keccak_on_wasm_matches_pycryptodome(tmp_path):
    msgs = _messages(20, 600, seed="wasm")
    _write_messages(str(tmp_path / "msgs.txt"), msgs)
    r = subprocess.run([executable("node"), RUNNER, "--heap", "256k", "--dir",
                        "%s:/data" % tmp_path, "--code",
                        _KECCAK_SCRIPT % ("python", "/data/msgs.txt")],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    _check_digests(r.stdout, msgs)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=700), st.integers(min_value=1, max_value=300))
def test_keccak_cpython_matches_pycryptodome(data, chunk):
    assert keccak.keccak256(data) == oracle_keccak(data)
    h = keccak.Keccak256()
    for i in range(0, len(data), chunk):
        h.update(data[i:i + chunk])
    assert h.digest() == oracle_keccak(data)


# ---- RLP ----

rlp_items = st.recursive(
    st.one_of(st.binary(max_size=80), st.integers(min_value=0, max_value=2 ** 256)),
    lambda children: st.lists(children, max_size=6),
    max_leaves=25,
)


def _as_pyrlp_item(item):
    return [_as_pyrlp_item(x) for x in item] if isinstance(item, list) else item


def _decoded(item):
    # what decode() returns for an encoded item: ints as their big-endian bytes
    if isinstance(item, list):
        return [_decoded(x) for x in item]
    if isinstance(item, int):
        return item.to_bytes((item.bit_length() + 7) // 8, "big")
    return item


@settings(max_examples=300, deadline=None)
@given(rlp_items)
def test_rlp_encode_matches_pyrlp(item):
    enc = rlp.encode(item)
    assert enc == pyrlp.encode(_as_pyrlp_item(item))
    assert rlp.encoded_length(item) == len(enc)
    assert rlp.decode(enc) == _decoded(item)


def _pyrlp_verdict(data):
    try:
        return ("ok", pyrlp.decode(data, strict=True))
    except Exception:  # pyrlp's DecodingError and friends: the oracle says "invalid"
        return ("err", None)


def _ours_verdict(data):
    try:
        return ("ok", rlp.decode(data, max_depth=1000))
    except rlp.RLPError:
        return ("err", None)


def _mutate(rnd, enc):
    b = bytearray(enc)
    op = rnd.randrange(5)
    if op == 0 and b:
        b[rnd.randrange(len(b))] = rnd.getrandbits(8)
    elif op == 1 and b:
        del b[rnd.randrange(len(b)):]
    elif op == 2:
        b.append(rnd.getrandbits(8))
    elif op == 3 and b:
        # re-encode the first length in long form or with a leading zero
        b[0:1] = bytes([0xB8, 0x00]) if rnd.random() < 0.5 else bytes([0x81])
    else:
        b.insert(rnd.randrange(len(b) + 1), rnd.getrandbits(8))
    return bytes(b)


@settings(max_examples=400, deadline=None)
@given(rlp_items, st.randoms(use_true_random=False))
def test_rlp_strict_decode_agrees_with_pyrlp_on_mutations(item, rnd):
    data = _mutate(rnd, pyrlp.encode(_as_pyrlp_item(item)))
    assert _ours_verdict(data) == _pyrlp_verdict(data), data.hex()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_rlp_strict_decode_agrees_with_pyrlp_on_noise(data):
    assert _ours_verdict(data) == _pyrlp_verdict(data), data.hex()


def _random_item(rnd, depth=0):
    k = rnd.randrange(10)
    if depth < 4 and k < 3:
        return [_random_item(rnd, depth + 1) for _ in range(rnd.randrange(5))]
    if k < 6:
        return bytes(rnd.getrandbits(8) for _ in range(rnd.choice([0, 1, 1, 2, 20, 55, 56, 70])))
    return rnd.choice([0, 1, 127, 128, 255, 256, 2 ** 31, 2 ** 32, 2 ** 64, rnd.getrandbits(256)])


_RLP_SCRIPT = """
import binascii, rlp
with open(%r) as f:
    for line in f:
        kind, text = line.rstrip("\\n").split(" ", 1)
        if kind == "item":
            print(binascii.hexlify(rlp.encode(eval(text))).decode())
        else:
            try:
                d = rlp.decode(binascii.unhexlify(text) if text != "-" else b"", 1000)
                print("ok " + binascii.hexlify(rlp.encode(d)).decode())
            except rlp.RLPError:
                print("err")
"""


def test_rlp_on_unix_port_matches_pyrlp(tmp_path):
    rnd = random.Random(2024)
    items = [_random_item(rnd) for _ in range(300)]
    blobs = [_mutate(rnd, pyrlp.encode(x)) for x in items]
    path = str(tmp_path / "rlp.txt")
    with open(path, "w") as f:
        for x in items:
            f.write("item %r\n" % (x,))
        for b in blobs:
            f.write("blob %s\n" % (b.hex() or "-"))
    lines = mp.run(_RLP_SCRIPT % path).strip().splitlines()
    assert len(lines) == len(items) + len(blobs)
    for x, line in zip(items, lines):
        assert line == pyrlp.encode(x).hex(), x
    for b, line in zip(blobs, lines[len(items):]):
        verdict, value = _pyrlp_verdict(b)
        if verdict == "ok":
            assert line == "ok " + pyrlp.encode(value).hex(), b.hex()
        else:
            assert line == "err", b.hex()
