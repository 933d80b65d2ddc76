"""Depth and size limits on every JSON the plug parses from outside (plug/jsonlimit.py),
checked before the parser or anything else can recurse: the byte scanner against a
CPython reference on MicroPython (viper) and CPython (its fallback), and the plug's real
callers (the JSON-RPC client, the tariff's JSON fetch, POST bodies) against real HTTP
servers on 127.0.0.1 with a 64 KB heap."""

import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from paytest import build_dir

from tools import mp

DEEP = 3000  # levels: far past the recursion limit of any encoder walking the result


def ref_depth(b):
    """Deepest [ / { nesting outside strings, by CPython's own parser."""
    def d(o):
        if isinstance(o, dict):
            return 1 + max([d(v) for v in o.values()] + [0])
        if isinstance(o, list):
            return 1 + max([d(v) for v in o] + [0])
        return 0
    return d(json.loads(b))


def docs(seed=7, n=150):
    """Valid JSON documents 0..12 levels deep, with brackets, quotes and backslashes
    inside strings (which must not count)."""
    rnd = random.Random(seed)
    tricky = ["[", "{", "]]]", "\\", '"', '\\"[[', "x\\\\", "}{", "\u00e9[", ""]

    def val(depth):
        if depth <= 0 or rnd.random() < 0.2:
            return rnd.choice([1, -2, None, True, rnd.choice(tricky) * rnd.randint(1, 4)])
        if rnd.random() < 0.5:
            return [val(depth - 1) for _ in range(rnd.randint(0, 3))]
        return {rnd.choice(tricky) + str(i): val(depth - 1) for i in range(rnd.randint(0, 3))}

    return [json.dumps(val(rnd.randint(0, 12))).encode() for _ in range(n)]


def test_the_scanner_counts_nesting_outside_strings_exactly():
    from plug import jsonlimit

    cases = docs()
    want = [ref_depth(b) > 8 for b in cases]
    assert any(want) and not all(want)
    # CPython: the portable fallback
    assert [jsonlimit._deepest(b, len(b), 8) >= 0 for b in cases] == want
    # MicroPython: the viper scanner the plug runs
    code = ("from plug import jsonlimit\n"
            "print('viper', jsonlimit.VIPER)\n"
            "for line in open(%r, 'rb'):\n"
            "    b = line.rstrip(b'\\n')\n"
            "    print(jsonlimit._deepest(b, len(b), 8) >= 0)\n")
    import os
    import tempfile

    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as f:
        f.write(b"\n".join(cases) + b"\n")
    try:
        out = mp.run(code % f.name, heap="64k", path_dirs=build_dir()).split()
    finally:
        os.remove(f.name)
    assert out[:2] == ["viper", "True"]
    assert [x == "True" for x in out[2:]] == want


CHUNKED = """
import json
from plug import jsonlimit
def pieces(b, size):
    return [bytearray(b[i:i + size]) for i in range(0, len(b), size)]
for line in open(%r, 'rb'):
    b = line.rstrip(b'\\n')
    out = []
    for size in (1, 2, 3, 7, 512):  # every split point: in strings, after backslashes
        try:
            jsonlimit.check(pieces(b, size), 16384)
            same = jsonlimit.parse(pieces(b, size)) == json.loads(b)
            out.append('ok' if same else 'differs')
        except ValueError as e:
            out.append(str(e))
    print(json.dumps(out))
"""


def test_a_reply_in_chunks_is_scanned_and_parsed_as_the_whole_would_be(tmp_path):
    """RPC and rates replies come as pieces of <= 512 B (issue 11): the scanner carries its
    state across them (split inside strings, after a backslash, between brackets) and
    parse() reads them as one stream, on MicroPython (viper, json.load over readinto)
    and CPython (the fallback)."""
    import contextlib
    import io

    cases = docs(seed=11, n=80)
    want = [["nested deeper than 8 levels" if ref_depth(b) > 8 else "ok"] * 5 for b in cases]
    assert any(w[0] == "ok" for w in want) and not all(w[0] == "ok" for w in want)
    path = tmp_path / "docs.jsonl"
    path.write_bytes(b"\n".join(cases) + b"\n")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(CHUNKED % str(path), {})
    assert [json.loads(x) for x in buf.getvalue().split("\n") if x] == want
    out = mp.run(CHUNKED % str(path), heap="4m", path_dirs=build_dir())  # 1 B pieces
    assert [json.loads(x) for x in out.strip().splitlines()] == want


class _Replies(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    bodies = {}

    def log_message(self, *a):
        pass

    def _send(self):
        if self.headers.get("Content-Length"):
            self.rfile.read(int(self.headers["Content-Length"]))
        body = self.bodies[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _send


@pytest.fixture(scope="module")
def replies():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Replies)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % srv.server_address[1], _Replies.bodies
    srv.shutdown()
    srv.server_close()


def test_deep_rpc_and_tariff_replies_are_refused_before_parsing(replies):
    url, bodies = replies
    nest = b"[" * DEEP + b"]" * DEEP
    bodies["/rpc-deep"] = b'{"jsonrpc":"2.0","id":1,"result":' + nest + b"}"
    bodies["/rpc-deep-obj"] = b'{"jsonrpc":"2.0","id":1,"result":' + b'{"a":' * (DEEP // 2) + b"1" \
        + b"}" * (DEEP // 2) + b"}"
    bodies["/rpc-ok"] = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"logs": [{
        "topics": ["0x" + "ab" * 32], "data": "0x[[[[[[[[[["}], "status": "0x1"}}).encode()
    bodies["/rates-deep"] = b'{"results":' + nest + b"}"
    bodies["/rates-ok"] = json.dumps({"results": [{"value_inc_vat": 25.1}]}).encode()
    code = (
        "from plug.rpc import RPC, ChainError\n"
        "from plug.provider import TariffError, get_json, http_get\n"
        "for path in ('/rpc-deep', '/rpc-deep-obj', '/rpc-ok'):\n"
        "    try:\n"
        "        r = RPC([%r + path], timeout_s=2, retries=0).call('eth_getTransactionReceipt')\n"
        "        print('R', path, 'OK', r['status'])\n"
        "    except ChainError as e:\n"
        "        print('R', path, type(e).__name__, e)\n"
        "for path in ('/rates-deep', '/rates-ok'):\n"
        "    try:\n"
        "        print('R', path, 'OK', get_json(http_get, %r + path)['results'][0])\n"
        "    except TariffError as e:\n"
        "        print('R', path, 'TariffError', e)\n" % (url, url))
    # 80k: the .mpy code of rpc, provider and http_client sits in this heap, beside the
    # client's kept buffers and a 6 KB reply read whole (http_get without chunks)
    out = [ln[2:] for ln in mp.run(code, heap="80k", path_dirs=build_dir()).splitlines()
           if ln.startswith("R ")]
    assert len(out) == 5, out
    for line in out[:2]:
        assert line.startswith("/rpc-deep") and "nested deeper than 8 levels" in line, line
        assert "Unreachable" in line or "BadReply" in line, line
    assert out[2] == "/rpc-ok OK 0x1"
    assert out[3].startswith("/rates-deep TariffError") and "nested deeper than 8" in out[3]
    assert out[4] == "/rates-ok OK {'value_inc_vat': 25.1}"
