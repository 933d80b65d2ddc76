"""RPC and rates replies are read as pieces of <= 512 B and parsed as one stream
(plug/http_client.py chunks=True, plug/jsonlimit.py), so neither asks for a block the
size of the reply (issue 11: on the board's heap the largest free block is 0.7-1.1 KB
of 28-33 KB free, and a 1,071 B receipt read into one bytearray failed the payment).

On the MicroPython unix port: a JSON-RPC receipt (about 1.3 KB) and a 10 KB rates page
over real loopback HTTP, through the plug's own RPC client and provider fetch, on a heap
cut into holes of about 600 B (tools/heap_holes.py). The control, the old path (one
bytearray of Content-Length, json.loads) on the same heap, must fail: the holes bite.

The unix port is 64-bit: pointer arrays are twice the ESP32's. The rates page holds 64
half-hours, so its parsed list (64 pointers, 512 B here) fits a hole too; on the board
96 quarter-hours make a list of 512 B (the buffers and strings are the same size)."""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tools import mp
from tools.paths import ROOT

HOLE = 600
TX = "0x" + "ab" * 32


def receipt(rid):
    log = {"address": "0x" + "5f" * 20, "blockHash": "0x" + "11" * 32, "blockNumber": "0x1c",
           "data": "0x" + "00" * 31 + "64", "logIndex": "0x0", "removed": False,
           "topics": ["0x" + "dd" * 32, "0x" + "00" * 12 + "70" * 20,
                      "0x" + "00" * 12 + "3c" * 20],
           "transactionHash": TX, "transactionIndex": "0x0"}
    return json.dumps({"jsonrpc": "2.0", "id": rid, "result": {
        "blockHash": "0x" + "11" * 32, "blockNumber": "0x1c", "contractAddress": None,
        "cumulativeGasUsed": "0xb5f3", "effectiveGasPrice": "0x3b9aca00",
        "from": "0x" + "f3" * 20, "gasUsed": "0xb5f3", "logs": [log],
        "logsBloom": "0x" + "00" * 64, "status": "0x1", "to": "0x" + "5f" * 20,
        "transactionHash": TX, "transactionIndex": "0x0", "type": "0x2"}}).encode()


def octopus_page(n=64):
    """An Octopus Agile page of n half-hours, about 10 KB for 64."""
    res = [{"value_exc_vat": 15.12 + i, "value_inc_vat": 15.876 + i,
            "valid_from": "2023-03-26T%02d:%02d:00Z" % (i // 2 % 24, i % 2 * 30),
            "valid_to": "2023-03-26T%02d:%02d:00Z" % ((i + 1) // 2 % 24, (i + 1) % 2 * 30),
            "payment_method": None}
           for i in range(n)]
    return json.dumps({"count": n, "next": None, "previous": None, "results": res}).encode()


class _Node(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *a):
        pass

    def _send(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._send(receipt(req["id"]))

    def do_GET(self):
        self._send(octopus_page())


@pytest.fixture(scope="module")
def node():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Node)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()
    srv.server_close()


PLUG = """
import gc, json, sys
sys.path.append(%r)
import heap_holes
from plug import http_client, jsonlimit, provider, rpc
BASE, HOLE, TX = %r, %d, %r
r = rpc.RPC(BASE + '/rpc', timeout_s=5, retries=0, deadline_s=10)

def get(url):
    return provider.http_get(url, chunks=True)

def both():
    out = []
    try:
        rec = r.call('eth_getTransactionReceipt', [TX])
        out.append([rec['status'], rec['logs'][0]['topics'][2][-4:]])
    except Exception as e:
        out.append(repr(e))
    try:
        page = provider.get_json(get, BASE + '/rates')
        out.append([len(page['results']), page['results'][-1]['valid_to']])
    except Exception as e:
        out.append(repr(e))
    return out

def old():
    out = []
    for method, path, body in (('POST', '/rpc', json.dumps({'jsonrpc': '2.0', 'id': 1,
            'method': 'eth_getTransactionReceipt', 'params': [TX]})), ('GET', '/rates', None)):
        try:  # the path before issue 11: one bytearray of Content-Length
            st, b = http_client.request(method, BASE + path, body, timeout_s=5)
            out.append(len(jsonlimit.loads(b, 16384)))
        except MemoryError as e:
            out.append('MemoryError')
        b = None
    return out

print(json.dumps(['whole', both(), old()]))
gc.collect()
keep = heap_holes.holes(HOLE)
print(json.dumps(['holes', heap_holes.largest(), gc.mem_free(), both(), old()]))
keep = None
gc.collect()
"""


def test_receipt_and_rates_are_parsed_on_a_heap_of_600_byte_holes(node):
    assert 1000 < len(receipt(1)) < 1400 and 9500 < len(octopus_page()) < 11000
    out = mp.run(PLUG % (os.path.join(ROOT, "tools"), node, HOLE, TX), heap="256k",
                 path_dirs=mp_dirs(), timeout=120)
    lines = [json.loads(x) for x in out.strip().splitlines()]
    want = [["0x1", "3c3c"], [64, "2023-03-26T08:00:00Z"]]
    assert lines[0] == ["whole", want, [3, 4]], out
    tag, largest, free, got, control = lines[1]
    assert tag == "holes" and largest < 2 * HOLE + 64 and free > 20000, out  # fragmented
    assert got == want, out
    assert control == ["MemoryError", "MemoryError"], out  # the old path does not fit


def mp_dirs():
    from paytest import build_dir

    return build_dir()
