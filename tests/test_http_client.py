"""plug/http_client.py, the plug's own HTTP client, against a scripted loopback server:
the same cases on CPython (host tools) and on MicroPython (the plug, 64 KB heap, .mpy).
A peer that trickles header bytes or sends a 100 KB header line is given up at the
deadline with a clear error; malformed replies are refused; the socket is always
closed. Then the tariff fetches (provider, rates, the config pull URL) against the
reference tariff server's header_trickle and long_header modes (https: test_https.py)."""

import json
import os
import socket
import threading

import pytest

from tools import mp
from tools.paths import ROOT
from tools.tariff_server import TariffServer

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PAYEE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def _head(*lines, body=b"", length=True):
    hs = list(lines)
    if length:
        hs.append("Content-Length: %d" % len(body))
    return ("\r\n".join(hs) + "\r\n\r\n").encode() + body


REPLIES = {
    "/ok": _head("HTTP/1.1 200 OK", "Content-Type: application/json", body=b'{"a": true}'),
    "/lf": b"HTTP/1.0 200 OK\nContent-Length: 2\n\n{}",
    "/eof": _head("HTTP/1.0 200 OK", body=b"x" * 3000, length=False),
    "/long": _head("HTTP/1.0 200 OK", body=b"y" * 1500),
    "/k1": _head("HTTP/1.0 200 OK", body=b"z" * 1024),
    "/extra": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}xyz",
    "/redirect": _head("HTTP/1.1 302 Found", "Location: /ok"),
    "/status500": _head("HTTP/1.1 500 Internal Server Error", body=b"{}"),
    "/chunked": _head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked",
                      body=b"2\r\n{}\r\n0\r\n\r\n", length=False),
    "/neg_length": _head("HTTP/1.1 200 OK", "Content-Length: -5", body=b"{}", length=False),
    "/bad_length": _head("HTTP/1.1 200 OK", "Content-Length: 12abc", body=b"{}", length=False),
    "/two_lengths": _head("HTTP/1.1 200 OK", "Content-Length: 2", "Content-Length: 3",
                          body=b"{} ", length=False),
    "/big_length": _head("HTTP/1.1 200 OK", "Content-Length: 20000", length=False),
    "/big_eof": _head("HTTP/1.0 200 OK", body=b"x" * 20000, length=False),
    "/truncated": _head("HTTP/1.1 200 OK", "Content-Length: 100", body=b"x" * 10, length=False),
    "/long_header": _head("HTTP/1.1 200 OK", "X-Long: " + "a" * 100 * 1024, body=b"{}"),
    "/lines40": _head("HTTP/1.1 200 OK", *["X-%d: y" % i for i in range(39)], body=b"{}"),
    "/lines41": _head("HTTP/1.1 200 OK", *["X-%d: y" % i for i in range(40)], body=b"{}"),
    "/not_http": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    "/bad_code": _head("HTTP/1.1 2000 OK", body=b"{}"),
    "/no_colon": _head("HTTP/1.1 200 OK", "no colon here", body=b"{}"),
    "/close": b"",
}
TRICKLE_S = 0.5  # "/trickle": seconds between header bytes ("/body_trickle": body bytes)

# (path, timeout_s, deadline_ms, max_body_bytes, expected: ok status or a refusal)
CASES = [
    ("/ok", 2, 3000, 16384, ["ok", 200, '{"a": true}']),
    ("/ok?a=1&b=x", 2, 3000, 16384, ["ok", 200, '{"a": true}']),
    ("/lf", 2, 3000, 16384, ["ok", 200, "{}"]),
    ("/eof", 2, 3000, 16384, ["ok", 200, "3000 x 'x'"]),
    ("/long", 2, 3000, 16384, ["ok", 200, "1500 x 'y'"]),
    ("/k1", 2, 3000, 16384, ["ok", 200, "1024 x 'z'"]),
    ("/extra", 2, 3000, 16384, ["ok", 200, "{}"]),
    ("/redirect", 2, 3000, 16384, ["ok", 302, ""]),
    ("/status500", 2, 3000, 16384, ["ok", 500, "{}"]),
    ("/lines40", 2, 3000, 16384, ["ok", 200, "{}"]),
    ("/chunked", 2, 3000, 16384, ["refused", "Transfer-Encoding not supported"]),
    ("/neg_length", 2, 3000, 16384, ["refused", "bad Content-Length"]),
    ("/bad_length", 2, 3000, 16384, ["refused", "bad Content-Length"]),
    ("/two_lengths", 2, 3000, 16384, ["refused", "bad Content-Length"]),
    ("/big_length", 2, 3000, 16384, ["refused", "reply of 20000 bytes is over the 16384 byte "
                                                "limit"]),
    ("/big_eof", 2, 3000, 16384, ["refused", "reply is over the 16384 byte limit"]),
    ("/truncated", 2, 3000, 16384, ["refused", "truncated reply: 10 of 100 bytes"]),
    ("/long_header", 2, 3000, 16384, ["refused", "header over 4096 bytes"]),
    ("/lines41", 2, 3000, 16384, ["refused", "more than 40 header lines"]),
    ("/not_http", 2, 3000, 16384, ["refused", "not an HTTP reply"]),
    ("/bad_code", 2, 3000, 16384, ["refused", "not an HTTP reply"]),
    ("/no_colon", 2, 3000, 16384, ["refused", "malformed header line"]),
    ("/close", 2, 3000, 16384, ["refused", "no reply"]),
    # slow peers: each byte comes well within the read timeout, only the deadline stops them
    ("/trickle", 2, 2500, 16384, ["refused", "not complete within 2 s ("]),
    ("/body_trickle", 2, 1500, 16384, ["refused", "not complete within 1 s"]),
    ("/hang", 1, 5000, 16384, ["oserror"]),  # no byte for the read timeout
]

DRIVER = """
import gc, json, time
from plug import http_client as hc
try:
    ticks, diff = time.ticks_ms, time.ticks_diff
except AttributeError:
    ticks = lambda: int(time.monotonic() * 1000)
    diff = lambda a, b: a - b
BASE, CASES, CH = %r, json.loads(%r), %r
res = []
for path, timeout, deadline, cap in CASES:
    t = ticks()
    try:
        st, b = hc.request('POST', BASE + path, '{"q": 1}', {'X-Test': 'yes'}, timeout, deadline,
                           4096, cap, chunks=CH)
        if CH:  # pieces of 1..512 bytes, each full but the last
            sizes = [len(x) for x in b]
            if any(n != 512 for n in sizes[:-1]) or sizes and not 0 < sizes[-1] <= 512:
                raise ValueError('chunks of %%r bytes' %% (sizes,))
            b = b''.join(bytes(x) for x in b)
        body = str(b, "utf-8")  # a long one is kept short: res lives on the 64 KB heap
        r = ['ok', st, body if len(body) <= 64 else '%%d x %%r' %% (len(body), body[0])]
        body = b = None
    except hc.ReplyError as e:
        r = ['refused', str(e)]
    except OSError as e:
        r = ['oserror', str(e)]
    res.append([r, diff(ticks(), t)])
    gc.collect()
closed = 0
t = ticks()
while closed < len(CASES) and diff(ticks(), t) < 5000:
    closed = int(hc.request('GET', BASE + '/_closed')[1])
# the quick cases again: nothing stays on the heap
gc.collect()
free = gc.mem_free() if hasattr(gc, 'mem_free') else 0
for path, timeout, deadline, cap in CASES:
    if path not in ('/trickle', '/body_trickle', '/hang'):
        try:
            hc.request('GET', BASE + path, timeout_s=timeout, max_body_bytes=cap, chunks=CH)
        except OSError:
            pass
gc.collect()
after = gc.mem_free() if hasattr(gc, 'mem_free') else 0
print(json.dumps([res, closed, free - after]))
"""


class Scripted:
    """Loopback server answering REPLIES[path] (and the slow modes); records requests
    and counts connections the client closed."""

    def __init__(self):
        self.heads = {}
        self.closed = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.base = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(c,), daemon=True).start()

    def _handle(self, c):
        with c:
            c.settimeout(10)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = c.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                path = data.split(b" ", 2)[1].decode()
                n = 0
                for line in data.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
                    if line.lower().startswith(b"content-length:"):
                        n = int(line.split(b":")[1])
                while len(data.split(b"\r\n\r\n", 1)[1]) < n:
                    data += c.recv(4096)
                self.heads.setdefault(path, data)
                if path == "/_closed":
                    c.sendall(_head("HTTP/1.0 200 OK", body=b"%d" % self.closed))
                    return
                key = path.split("?")[0]
                if key == "/trickle":
                    c.sendall(b"HTTP/1.1 200 OK\r\n")
                    while not self.stop.wait(TRICKLE_S):
                        c.sendall(b"X")
                elif key == "/body_trickle":
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                    while not self.stop.wait(TRICKLE_S):
                        c.sendall(b"x")
                elif key != "/hang":
                    c.sendall(REPLIES[key])
                    c.shutdown(socket.SHUT_WR)
                while c.recv(4096):  # until the client closes its end
                    pass
            except OSError:  # reset by the client, or our 10 s passed
                pass
            with self.lock:
                self.closed += 1

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.fixture
def scripted():
    s = Scripted()
    yield s
    s.close()


def _check(scripted, out):
    res, closed, _leak = out
    assert len(res) == len(CASES)
    for (path, timeout, deadline, _cap, want), (got, ms) in zip(CASES, res):
        if want[0] == "oserror":
            assert got[0] == "oserror", (path, got)
            assert timeout * 1000 - 50 <= ms < timeout * 1000 + 700, (path, ms)
            continue
        if path in ("/trickle", "/body_trickle"):
            assert got[0] == want[0] and got[1].startswith(want[1]), (path, got)
            assert deadline - 50 <= ms < deadline + 700, (path, ms)  # the deadline holds
            continue
        assert got == want, path
        assert ms < 2000, (path, ms)
    assert closed == len(CASES)  # every socket was closed, refused or not
    head = scripted.heads["/ok?a=1&b=x"]
    port = scripted.base.rsplit(":", 1)[1]
    assert head.startswith(b"POST /ok?a=1&b=x HTTP/1.0\r\n")
    for h in (b"Host: 127.0.0.1:" + port.encode(), b"X-Test: yes", b"Content-Length: 8"):
        assert h + b"\r\n" in head
    assert head.endswith(b'\r\n\r\n{"q": 1}')


def _cases():
    return json.dumps([c[:4] for c in CASES])


# chunks=True (RPC and rates replies, issue 11): the body as pieces of <= 512 B, with the
# same bounds and the same refusals
@pytest.mark.parametrize("chunks", [False, True], ids=["whole", "chunks"])
def test_cases_on_cpython(scripted, capsys, chunks):
    exec(DRIVER % (scripted.base, _cases(), chunks), {})
    _check(scripted, json.loads(capsys.readouterr().out.strip().splitlines()[-1]))


@pytest.mark.parametrize("chunks", [False, True], ids=["whole", "chunks"])
def test_cases_on_micropython_in_64k(scripted, mpy_dirs, chunks):
    out = mp.run(DRIVER % (scripted.base, _cases(), chunks), heap="64k", path_dirs=mpy_dirs,
                 timeout=120)
    got = json.loads(out.strip().splitlines()[-1])
    _check(scripted, got)
    assert abs(got[2]) < 256  # nothing kept on the heap by two dozen requests


def test_bad_urls_are_valueerrors():
    from plug.http_client import request, split_url

    assert split_url("http://h/p?q") == (False, "h", 80, "h", "/p?q")
    assert split_url("https://h:8443") == (True, "h", 8443, "h:8443", "/")
    for url in ("ftp://h/", "http://h:x/", "http://h:0/", "http:///p", "h:80/",
                "http://h/a\r\nX-Injected: 1", "http://h/a b"):
        with pytest.raises(ValueError):
            request("GET", url)


# ---- tariff fetches ----

PRELUDE = """
import gc, json, time
from plug import http_client
from plug.store import Store
from plug.provider import TariffError, http_get
from plug.tariff import Tariff
from plug.billing import Billing
class Clock:
    t = 820540800 + 600   # 2026-01-01T00:10:00Z in plug time
    def time(self):
        return self.t
cfg = json.loads(%r)
store = Store(%r)
tf = Tariff(store, Clock(), cfg, log=None)
bil = Billing(store)
BASE = %r
def control(**c):
    http_client.request('POST', BASE + '/_control', json.dumps(c))
def snap():
    return json.dumps([tf.providers, tf.sched, tf.issued, bil.state])
"""

TARIFF = """
tf.poll()
t0 = 820540800
bil.bill('M1/A', [(t0, t0 + 600, 10**9)], tf.segments)
before = snap()
tf.timeout = 2      # seconds per read: the trickled bytes come faster than that
tf.deadline_s = 3   # seconds per request
res = []
# the config pull URL (app.py) goes through the same http_get
control(misbehave=['header_trickle'], target='all')
t = time.ticks_ms()
try:
    http_get(BASE + '/provider.json', timeout=2, deadline_s=3)
    pull = 'accepted'
except TariffError as e:
    pull = str(e)
res.append(['pull', 'all', [pull], time.ticks_diff(time.ticks_ms(), t), snap() == before])
control(misbehave=[])
tf.next_desc = tf.next_rates = 0
n = tf.report_count
tf.poll()   # the server behaves again: the plug fetches normally
upto = bil.bill('M1/A', [(t0 + 600, t0 + 1200, 10**9)], tf.segments)
print(json.dumps([res, tf.report_count - n, upto, bil.totals('M1/A')]))
"""

def tariff_cfg(url):
    return {"provider": {"url": url + "/provider.json", "approved_payees": [PAYEE],
                         "approved_tokens": [], "rate_cap_per_kwh": 10**15, "fallback": "hold",
                         "fallback_rate_per_kwh": 0, "refresh_s": 900},
            "chain": {"chain_id": 31337}}


def run_tariff(dirs, tmp_path):
    """The fetches on MicroPython (128 KB heap: the quote check loads eth + ecdsa_micro)."""
    with open(os.path.join(DATA, "tariff_schedule.json")) as f:
        sched = json.load(f)
    with TariffServer(sched) as ts:
        ts.control(trickle_s=1.0)
        code = (PRELUDE % (json.dumps(tariff_cfg(ts.url)), str(tmp_path / "plug"), ts.url)
                + TARIFF)
        out = mp.run(code, heap="128k", path_dirs=dirs, timeout=300, cwd=ROOT)
    return json.loads(out.strip().splitlines()[-1])


def test_config_pull_gives_up_at_the_deadline_and_changes_nothing(mpy_dirs, tmp_path):
    """The config pull URL goes through the tariff's http_get: a server that trickles a
    header line a byte a second gives up within its 3 s deadline (+ slack), nothing
    recorded changes, and the tariff fetches normally afterwards. (The tariff fetches
    themselves: tests/test_tariff.py.)"""
    res, new_reports, upto, totals = run_tariff(mpy_dirs, tmp_path)
    _, _, why, ms, unchanged = res[-1]
    assert "not complete within 3 s" in why[0] and ms < 3700 and unchanged
    assert new_reports == 0
    assert upto == 820540800 + 1200 and totals == [2 * 10**9, 2 * 125 * 10**12]
