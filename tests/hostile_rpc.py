"""A hostile JSON-RPC server on 127.0.0.1 for the chain client's tests.

The URL path picks the misbehaviour: http://127.0.0.1:PORT/<mode>[/<method>,<method>]
applies <mode> to the listed JSON-RPC methods (all if none are listed) and forwards
every other call to the upstream node (anvil), so a test can poison just the receipts
of an otherwise real chain. Modes are the keys of MODES.

A lying node, switched at run time: `h.lie = "ahead"` (or another of LIES, None for the
truth) makes the plain proxy URL (`h.base`) lie about what the chain holds while it
forwards everything else: nonces 1000 ahead or a few behind, receipts for transactions
it swallowed, another chain id, or malformed replies. `h.lied` counts the lies told.
"""

import json
import socket
import socketserver
import threading
import time
import urllib.request

LONG_HEADER = 100 * 1024  # bytes of the one header line of "long_header"
TRICKLE_S = 1.0  # "header_trickle": seconds between header bytes

def _reply(status, body, headers=None, length=True):
    head = "HTTP/1.1 %s\r\n" % status
    hs = dict(headers or {})
    if length:
        hs.setdefault("Content-Length", str(len(body)))
    hs.setdefault("Connection", "close")
    for k, v in hs.items():
        head += "%s: %s\r\n" % (k, v)
    return head.encode() + b"\r\n" + body


def _ok(obj):
    return _reply("200 OK", json.dumps(obj).encode(), {"Content-Type": "application/json"})


def _env(req, **kw):
    out = {"jsonrpc": "2.0", "id": req.get("id")}
    out.update(kw)
    return out


MODES = {
    # envelope
    "not_json": lambda req, up: _reply("200 OK", b"<html>bad gateway</html>"),
    "empty": lambda req, up: _reply("200 OK", b""),
    "wrong_id": lambda req, up: _ok(dict(up(), id=req.get("id", 0) + 1)),
    "string_id": lambda req, up: _ok(dict(up(), id=str(req.get("id")))),
    "no_jsonrpc": lambda req, up: _ok({"id": req.get("id"), "result": up().get("result")}),
    "both": lambda req, up: _ok(_env(req, result="0x1", error={"code": 1, "message": "x"})),
    "neither": lambda req, up: _ok(_env(req)),
    "array": lambda req, up: _ok([up()]),
    "error_bad": lambda req, up: _ok(_env(req, error={"code": "boom", "message": 5})),
    "error_huge": lambda req, up: _ok(_env(req, error={"code": -32000, "message": "x" * 9000})),
    # values
    "huge_hex": lambda req, up: _ok(_env(req, result="0x" + "f" * 3000)),
    "huge_int": lambda req, up: _reply("200 OK", b'{"jsonrpc":"2.0","id":%d,"result":%s}'
                                       % (req.get("id"), b"9" * 4000)),
    "float": lambda req, up: _reply("200 OK", b'{"jsonrpc":"2.0","id":%d,"result":1e999}'
                                    % req.get("id")),
    "negative": lambda req, up: _ok(_env(req, result="-0x1")),
    "wrong_type": lambda req, up: _ok(_env(req, result={"status": True, "blockNumber": [1]})),
    "bool": lambda req, up: _ok(_env(req, result=True)),
    "bad_hex": lambda req, up: _ok(_env(req, result="0xzz")),
    "other_receipt": lambda req, up: _ok(_env(req, result={
        "transactionHash": "0x" + "11" * 32, "status": "0x1", "blockNumber": "0x5"})),
    "deep": lambda req, up: _reply("200 OK", b"[" * 20000 + b"]" * 20000),
    # transport
    "oversize_length": lambda req, up: _reply("200 OK", b"{}", {"Content-Length": "999999999"},
                                              length=False),
    "oversize_body": lambda req, up: _reply("200 OK", b'{"jsonrpc":"2.0","result":"'
                                            + b"a" * 200000 + b'"}', length=False),
    "bad_length": lambda req, up: _reply("200 OK", b"{}", {"Content-Length": "lots"},
                                         length=False),
    "short_body": lambda req, up: _reply("200 OK", b'{"jsonrpc"', {"Content-Length": "500"},
                                         length=False),
    "http500": lambda req, up: _reply("500 Internal Server Error", b"{}"),
    "bad_status": lambda req, up: b"HTTP/1.1 abc\r\n\r\n",
    "garbage": lambda req, up: b"\x00\xff\xfe garbage without any http\r\n\r\n",
    "header_flood": lambda req, up: b"HTTP/1.1 200 OK\r\n" + b"X-Junk: y\r\n" * 3000 + b"\r\n{}",
    "long_header": lambda req, up: (b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * LONG_HEADER
                                    + b"\r\nContent-Length: 2\r\n\r\n{}"),
    "chunked": lambda req, up: _reply("200 OK", b"2\r\n{}\r\n0\r\n\r\n",
                                      {"Transfer-Encoding": "chunked"}, length=False),
    "redirect_loop": None,  # handled below: 302 to itself
    "close": None,  # close without a byte
    "hang": None,  # read the request, never answer
    "drip": None,  # a valid reply whose body comes one byte at a time, slowly
    "header_trickle": None,  # status line, then a header line of one byte a second, no end
}


def serve(handle):
    """A threading TCP server on a free loopback port calling handle(sock) per connection."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            handle(self.request)

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def read_request(sock, timeout=5):
    """(path, body) of one HTTP request read from sock, or (None, None) if it closed first."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None, None
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split()[1]
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return path, body


AHEAD = 1000  # "ahead": eth_getTransactionCount + this
BEHIND = 3  # "behind": eth_getTransactionCount - this
# "malformed": these MODES in turn, for every call
MALFORMED = ("not_json", "wrong_id", "bad_hex", "huge_hex", "neither", "wrong_type", "deep",
             "negative", "error_bad", "array", "float")


def _lie(h, req, forward):
    """The reply (bytes) of a lying node to `req`, or None to forward it honestly."""
    method = req.get("method")
    lie = h.lie
    if lie in ("ahead", "behind") and method == "eth_getTransactionCount":
        up = forward()
        n = int(up["result"], 16)
        n = n + AHEAD if lie == "ahead" else max(0, n - BEHIND)
        return _ok(dict(up, result=hex(n)))
    if lie == "fake_receipt":
        if method == "eth_sendRawTransaction":  # swallowed: "sent", never mined
            from eth_hash.auto import keccak

            raw = bytes.fromhex(req["params"][0][2:])
            h.swallowed.append("0x" + keccak(raw).hex())
            return _ok(_env(req, result=h.swallowed[-1]))
        if method == "eth_getTransactionReceipt":
            up = forward()
            if up.get("result") is None:
                blk = h._forward(json.dumps({"jsonrpc": "2.0", "id": 1,
                                             "method": "eth_blockNumber",
                                             "params": []}).encode())
                return _ok(_env(req, result={"transactionHash": req["params"][0],
                                             "status": "0x1", "blockNumber": blk["result"]}))
            return _ok(up)
    if lie == "wrong_chain" and method == "eth_chainId":
        return _ok(_env(req, result="0x1"))
    if lie == "malformed":
        mode = MALFORMED[h.lied % len(MALFORMED)]
        return MODES[mode](req, forward)
    return None


LIES = ("ahead", "behind", "fake_receipt", "wrong_chain", "malformed")


class HostileRPC:
    def __init__(self, upstream=None):
        self.upstream = upstream
        self.requests = 0
        self.lie = None  # one of LIES: the plain proxy lies so (see _lie)
        self.lied = 0
        self.swallowed = []  # hashes of transactions "fake_receipt" did not forward
        self.server = serve(self._handle)
        self.port = self.server.server_address[1]
        self.base = "http://127.0.0.1:%d" % self.port
        self._stop = threading.Event()

    def url(self, mode, methods=()):
        return "%s/%s%s" % (self.base, mode, ("/" + ",".join(methods)) if methods else "")

    def close(self):
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _forward(self, body):
        if not self.upstream:
            return {"jsonrpc": "2.0", "id": json.loads(body).get("id"), "result": "0x1"}
        req = urllib.request.Request(self.upstream, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def _handle(self, sock):
        self.requests += 1
        try:
            path, body = read_request(sock)
        except (OSError, ValueError, IndexError):
            return
        if path is None:
            return
        parts = path.strip("/").split("/")
        mode = parts[0] or "proxy"
        methods = parts[1].split(",") if len(parts) > 1 else None
        try:
            req = json.loads(body)
        except ValueError:
            req = {}
        if mode == "proxy" and self.lie:
            try:
                out = _lie(self, req, lambda: self._forward(body))
            except (OSError, ValueError, KeyError, TypeError):
                return  # upstream away: the client sees a closed connection
            if out is None:
                out = _ok(self._forward(body))
            else:
                self.lied += 1
        elif mode == "proxy" or (methods and req.get("method") not in methods):
            out = _ok(self._forward(body))
        elif mode == "close":
            return
        elif mode == "hang":
            self._stop.wait(30)
            return
        elif mode == "redirect_loop":
            out = _reply("302 Found", b"", {"Location": self.url(mode) + "/x"})
        elif mode == "header_trickle":
            try:
                sock.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while not self._stop.wait(TRICKLE_S):
                    sock.sendall(b"a")
            except OSError:  # the client gave up
                pass
            return
        elif mode == "drip":
            out = _ok(self._forward(body))
            head = out.index(b"\r\n\r\n") + 4
            try:
                sock.sendall(out[:head])
                for i in range(head, len(out)):
                    sock.sendall(out[i:i + 1])
                    if self._stop.wait(0.2):
                        return
            except OSError:
                pass
            return
        else:
            out = MODES[mode](req, lambda: self._forward(body))
        try:
            sock.sendall(out)
            sock.shutdown(socket.SHUT_WR)
            time.sleep(0.01)
        except OSError:
            pass
