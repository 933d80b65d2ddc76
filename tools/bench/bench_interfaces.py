"""The plug's interfaces: HTTP server throughput on MicroPython (64 KB heap) beside
CPython's http.server as a peer, raw REPL round trips over the pty by hand and through
mpremote, and the heap the REPL and server take."""

import http.client
import json
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tools import mp
from tools.paths import ROOT

sys.path.insert(0, os.path.join(ROOT, "tests"))
from iface_util import TESTS, MicroPythonServer, compile_plug  # noqa: E402


def _get_many(port, path, n, threads=1):
    def worker(k, out):
        t0 = time.perf_counter()
        for _ in range(k):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            if r.status != 200:
                busy.append(r.status)
        out.append(time.perf_counter() - t0)

    out = []
    busy = []
    ts = [threading.Thread(target=worker, args=(n // threads, out)) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return n / (time.perf_counter() - t0), len(busy)


class _Peer(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        body = json.dumps({"ticks": 1, "max_gap_ms": 20, "mem_free": 0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def bench_http(mpy):
    srv = MicroPythonServer(mpy)
    peer = ThreadingHTTPServer(("127.0.0.1", 0), _Peer)
    threading.Thread(target=peer.serve_forever, daemon=True).start()
    try:
        for path in ("/status", "/metrics", "/rows?n=200"):
            rate, _ = _get_many(srv.port, path, 300)
            print("http  %-12s micropython-64k %7.0f req/s" % (path, rate))
        rate4, busy = _get_many(srv.port, "/status", 300, threads=4)
        prate, _ = _get_many(peer.server_address[1], "/status", 300)
        prate4, _ = _get_many(peer.server_address[1], "/status", 300, threads=4)
        print("http  /status      micropython-64k %7.0f req/s with 4 clients (%d got 503: "
              "connection limit 4)" % (rate4, busy))
        print("http  /status      cpython http.server %5.0f req/s, %5.0f req/s with 4 clients"
              % (prate, prate4))
        c = http.client.HTTPConnection("127.0.0.1", srv.port)
        c.request("GET", "/status")
        st = json.loads(c.getresponse().read())
        print("http  server heap free after %d requests: %d bytes; loop max gap %d ms"
              % (st["stats"]["requests"], st["mem_free"], st["max_gap_ms"]))
    finally:
        srv.stop()
        peer.shutdown()


def bench_repl(mpy, tmp):
    from tools.vplug import VirtualPlug

    vp = VirtualPlug(os.path.join(tmp, "flash"), main_script=os.path.join(TESTS, "repl_main.py"),
                     path_dirs=(mpy,), serial_link=os.path.join(tmp, "tty")).start()
    try:
        vp.expect("repl test app ready")
        vp.send("\x01")
        vp.expect("raw REPL; CTRL-B to exit\r\n>")
        n = 200
        t0 = time.perf_counter()
        for i in range(n):
            vp.send("print(%d)\x04" % i)
            vp.expect("\x04>")
        dt = (time.perf_counter() - t0) / n
        print("repl  raw exec round trip over the pty, by hand: %6.2f ms" % (dt * 1000))
        vp.send("\x02")
        vp.expect(">>> ")
        t0 = time.perf_counter()
        for _ in range(5):
            vp.mpremote("exec", "print(1)")
        dt = (time.perf_counter() - t0) / 5
        print("repl  `mpremote resume exec` (process start included): %6.0f ms" % (dt * 1000))
        data = os.path.join(tmp, "blob.bin")
        with open(data, "wb") as f:
            f.write(os.urandom(16384))
        t0 = time.perf_counter()
        vp.mpremote("fs", "cp", data, ":blob.bin")
        dt = time.perf_counter() - t0
        print("repl  `mpremote fs cp` 16 KB: %.2f s (%.1f KB/s)" % (dt, 16 / dt))
        vp.reset_prompt()
        print("repl  ticking task during all that: %s (ticks, max gap ms)"
              % vp.command("state['ticks'], state['max_gap_ms']"))
    finally:
        vp.kill()


def bench_heap(mpy):
    code = ("import gc\ngc.collect()\na = gc.mem_free()\nimport asyncio, select\ngc.collect()\n"
            "b = gc.mem_free()\nimport plug.repl\ngc.collect()\nc = gc.mem_free()\n"
            "import plug.server\ngc.collect()\nd = gc.mem_free()\nimport plug.prometheus\n"
            "gc.collect()\nprint(a - b, b - c, c - d, d - gc.mem_free())\n")
    aio, rep, srv, prom = mp.run(code, path_dirs=(mpy,)).split()
    print("heap  (unix x64 .mpy; less on the 32-bit ESP32, ~0 when frozen) asyncio %s, "
          "plug.repl %s, plug.server %s, plug.prometheus %s bytes" % (aio, rep, srv, prom))


def run():
    with tempfile.TemporaryDirectory() as tmp:
        mpy = compile_plug(os.path.join(tmp, "mpy"))
        bench_heap(mpy)
        bench_http(mpy)
        bench_repl(mpy, tmp)


if __name__ == "__main__":
    run()
