"""Generated replies for the fuzz tests: real-shaped samples (tests/data/, the reference
tariff server's native quote, anvil-shaped JSON-RPC replies), mutated structurally and
byte-wise, plus hypothesis-generated well-formed ones. Deterministic per seed."""

import json
import os
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.tariff_server import sign_quote

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
QUOTE_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil #1


def _load(name):
    with open(os.path.join(DATA, name)) as f:
        return json.load(f)


def native_sample():
    s = _load("tariff_schedule.json")
    q = {"format": "plug-rates/1", "chain_id": 31337, "currency": "native", "decimals": 18,
         "issued": s["issued"], "intervals": s["intervals"]}
    q["signature"] = sign_quote(q, QUOTE_KEY)
    return q


SAMPLES = {
    "native": [native_sample],
    "octopus": [lambda: _load("octopus_agile_p1.json"), lambda: _load("octopus_agile_p2.json"),
                lambda: _load("octopus_fixed.json")],
    "awattar": [lambda: _load("awattar_marketdata.json")],
    "energy-charts": [lambda: _load("energy_charts_price.json")],
}

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
                        st.sampled_from(["0.0001", "-1", "1e5", "0x10", "", "2026-05-25T15:00:00Z",
                                         "2026-13-45T99:99:99Z", "Eur/MWh", "EUR / MWh"]))
json_any = st.recursive(json_scalar, lambda c: st.one_of(st.lists(c, max_size=4),
                                                         st.dictionaries(st.text(max_size=8), c,
                                                                         max_size=4)),
                        max_leaves=10)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _set(obj, path, value, delete=False):
    if not path:
        return value
    cur = obj
    for k in path[:-1]:
        cur = cur[k]
    if delete:
        del cur[path[-1]]
    else:
        cur[path[-1]] = value
    return obj


def mutate_struct(obj, rnd, value):
    """One structural change at a random place: replace, delete, duplicate or reverse."""
    paths = list(_paths(obj))
    path = rnd.choice(paths)
    op = rnd.choice(("replace", "replace", "delete", "dup", "reverse"))
    if op == "delete" and path:
        return _set(obj, path, None, delete=True)
    cur = obj
    for k in path:
        cur = cur[k]
    if op in ("dup", "reverse") and isinstance(cur, list) and cur:
        new = cur + [cur[-1]] if op == "dup" else cur[::-1]
        return _set(obj, path, new)
    return _set(obj, path, value)


def mutate_bytes(body, rnd):
    op = rnd.choice(("truncate", "flip", "insert", "nest", "number", "token", "utf8", "dup"))
    i = rnd.randrange(len(body) + 1)
    if op == "truncate":
        return body[:i]
    if op == "flip" and body:
        b = bytearray(body)
        for _ in range(rnd.randint(1, 4)):
            j = rnd.randrange(len(b))
            b[j] ^= 1 << rnd.randrange(8)
        return bytes(b)
    if op == "insert":
        junk = rnd.choice((b",", b"]", b"}", b"\"", b":", b"\x00", b"\\u12"))
        return body[:i] + junk + body[i:]
    if op == "nest":
        return b"[" * 3000 + body + b"]" * 3000
    if op == "number":
        num = rnd.choice((b"9" * 500, b"1e999", b"-0", b"1E-400", b"0.1" * 3))
        return body[:i] + num + body[i:]
    if op == "token":
        tok = rnd.choice((b"NaN", b"Infinity", b"-Infinity", b"null", b"true"))
        return body[:i] + tok + body[i:]
    if op == "utf8":
        bad = rnd.choice((b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf"))
        return body[:i] + bad + body[i:]
    return body + body


def _iv_times(draw):
    base = draw(st.one_of(st.integers(946684800, 2**32), st.integers(946684800, 2**32),
                          st.integers(-5, 2**34)))
    out = []
    t = base
    for _ in range(draw(st.integers(0, 6))):
        length = draw(st.one_of(st.just(1800), st.just(3600), st.integers(-100, 90000)))
        out.append((t, t + length))
        t += length + draw(st.sampled_from([0, 0, 0, 60, -60]))
    return out


price_text = st.one_of(st.from_regex(r"-?[0-9]{1,2}(\.[0-9]{1,18})?", fullmatch=True),
                       st.from_regex(r"0\.0[0-9]{1,8}", fullmatch=True), st.text(max_size=8))
market_float = st.one_of(st.floats(-5000, 5000, allow_nan=False).map(lambda x: round(x, 2)),
                         st.floats(allow_nan=False, allow_infinity=False),
                         st.integers(-10**8, 10**8))


@st.composite
def shaped(draw, fmt):
    """A well-formed reply of `fmt` with generated values (signed, for native)."""
    times = _iv_times(draw)
    if fmt == "native":
        q = {"format": "plug-rates/1", "chain_id": draw(st.sampled_from([31337] * 4 + [1])),
             "currency": "native", "decimals": draw(st.sampled_from([18] * 4 + [6])),
             "issued": draw(st.integers(0, 2**33)),
             "intervals": [{"start": a, "end": b, "price": draw(price_text)} for a, b in times]}
        try:
            q["signature"] = sign_quote(q, QUOTE_KEY)
        except (TypeError, ValueError):
            q["signature"] = "0x" + "11" * 65
        return q
    if fmt == "octopus":
        import time as _t

        def iso(u):
            return _t.strftime("%Y-%m-%dT%H:%M:%SZ", _t.gmtime(max(0, min(u, 2**33))))
        rows = [{"value_exc_vat": 1.0, "value_inc_vat": draw(market_float),
                 "valid_from": iso(a), "valid_to": draw(st.sampled_from([iso(b), iso(b), None])),
                 "payment_method": None} for a, b in reversed(times)]
        return {"count": len(rows), "next": None, "previous": None, "results": rows}
    if fmt == "awattar":
        return {"object": "list", "url": "/de/v1/marketdata",
                "data": [{"start_timestamp": a * 1000, "end_timestamp": b * 1000,
                          "marketprice": draw(market_float), "unit": "Eur/MWh"}
                         for a, b in times]}
    ts = [a for a, _ in times]
    return {"license_info": "CC BY 4.0", "unix_seconds": ts, "unit": "EUR / MWh",
            "price": [draw(st.one_of(market_float, st.none())) for _ in ts], "deprecated": False}


def rate_replies(fmt, n, seed):
    """n reply bodies (bytes) for format `fmt`: a third hypothesis-shaped, a third
    structural mutations of real samples (native ones re-signed half the time), a
    third byte-level mutations."""
    rnd = random.Random(seed)
    out = []

    @settings(max_examples=n, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(shaped(fmt), json_any)
    def collect(reply, value):
        kind = len(out) % 3
        if kind == 0:
            body = json.dumps(reply).encode()
        else:
            obj = rnd.choice(SAMPLES[fmt])()
            if kind == 1:
                obj = mutate_struct(obj, rnd, value)
                if fmt == "native" and isinstance(obj, dict) and rnd.random() < 0.5:
                    try:
                        obj["signature"] = sign_quote(obj, QUOTE_KEY)
                    except (TypeError, ValueError, KeyError, AttributeError):
                        pass
                body = json.dumps(obj).encode()
            else:
                body = mutate_bytes(json.dumps(obj).encode(), rnd)
        out.append(body)

    while len(out) < n:
        collect()
    return out[:n]


# ---- JSON-RPC replies ----------------------------------------------------------------

RPC_HASH = "0x" + "ab" * 32
SEND_HASH = "0xcace66b6a82a5dc496a5b21a4032eb58baf223ea6f142a01593a5d105d5ee150"  # keccak(02c0)
RPC_SAMPLES = {
    "eth_chainId": "0x7a69",
    "eth_getTransactionCount": "0x5",
    "eth_blockNumber": "0x1b4",
    "eth_getBalance": "0xde0b6b3a7640000",
    "eth_estimateGas": "0x5208",
    "eth_getTransactionReceipt": {"transactionHash": RPC_HASH, "status": "0x1",
                                  "blockNumber": "0x5", "gasUsed": "0x5208",
                                  "logs": [], "from": "0x2546BcD3c84621e976D8185a91A922aE77ECEc30"},
    "eth_sendRawTransaction": SEND_HASH,
    "eth_call": "0x" + "00" * 31 + "2a",
    "eth_getBlockByNumber": {"number": "0x1b4", "baseFeePerGas": "0x3b9aca00",
                             "hash": RPC_HASH, "transactions": []},
    "eth_maxPriorityFeePerGas": "0x3b9aca00",
    "eth_feeHistory": {"oldestBlock": "0x1", "reward": [["0x1"], ["0x2"], ["0x3"]],
                       "baseFeePerGas": ["0x1", "0x1"]},
}
NODE_ERRORS = ["nonce too low", "replacement transaction underpriced", "already known",
               "insufficient funds for gas * price + value", "execution reverted",
               "method not found", "x" * 5000]


def rpc_values(n, seed):
    """n hypothesis-generated JSON values to put where a result belongs."""
    out = []
    hexes = st.one_of(st.integers(0, 2**300).map(hex), st.text("0123456789abcdefxX", max_size=70),
                      st.integers(-2**70, -1).map(hex))

    @settings(max_examples=n, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(json_any, hexes))
    def collect(v):
        out.append(v)

    while len(out) < n:
        collect()
    return out[:n]


def http(status, body, length=True):
    head = "HTTP/1.1 %s\r\nContent-Type: application/json\r\nConnection: close\r\n" % status
    if length is True:
        head += "Content-Length: %d\r\n" % len(body)
    elif length is not None:
        head += "Content-Length: %s\r\n" % length
    return head.encode() + b"\r\n" + body


def rpc_reply(req, rnd, values):
    """Raw HTTP reply bytes to one JSON-RPC request, chosen and mutated at random."""
    method = req.get("method") if isinstance(req, dict) else None
    rid = req.get("id") if isinstance(req, dict) else 0
    sample = json.loads(json.dumps(RPC_SAMPLES.get(method, "0x1")))
    kind = rnd.randrange(12)
    env = {"jsonrpc": "2.0", "id": rid, "result": sample}
    if kind in (0, 1):
        pass  # as a good node answers
    elif kind in (2, 3):
        env["result"] = rnd.choice(values)
    elif kind == 4 and isinstance(sample, (dict, list)):
        env["result"] = mutate_struct(sample, rnd, rnd.choice(values))
    elif kind == 5:
        env = {"jsonrpc": "2.0", "id": rid,
               "error": {"code": rnd.choice([-32000, 3, -32601, rnd.choice(values)]),
                         "message": rnd.choice(NODE_ERRORS + [rnd.choice(values)])}}
    elif kind == 6:
        env = mutate_struct(env, rnd, rnd.choice(values))
    elif kind == 7:
        env = rnd.choice([dict(env, id=rid + 1), dict(env, id=str(rid)), [env],
                          dict(env, jsonrpc="1.0"), dict(env, error={"code": 1, "message": "m"}),
                          {"jsonrpc": "2.0", "id": rid}, None, dict(env, id=None)])
    body = json.dumps(env).encode()
    if kind in (8, 9):
        body = mutate_bytes(body, rnd)
    if kind == 10:
        return http(rnd.choice(["200 OK", "500 Internal Server Error", "302 Found", "200 OK"]),
                    body, rnd.choice([True, None, len(body) + 50, "lots", -1, 10**12]))
    return http("200 OK", body)
