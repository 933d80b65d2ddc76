# The plug's HTTP/1.0-1.1 server on asyncio, small and hard to knock over.
#
#   srv = Server(max_request_bytes=cfg["server"]["max_request_bytes"])
#   srv.route("GET", "/status", lambda req: {"ok": True})           # dict/list -> JSON
#   srv.route("GET", "/metrics", lambda req: Response(          # a generator: streamed
#       prometheus.prometheus_lines(families), content_type=prometheus.CONTENT_TYPE))
#   srv.route("POST", "/config", handler)        # handler(req) or async handler(req)
#   srv.route("POST", "/update", handler, stream=True)  # reads req.stream itself (_Body)
#   await srv.start("0.0.0.0", cfg["server"]["port"])
#
# A handler gets a Request (method, path, query dict, headers dict with lower-case names,
# body bytes, json()) and returns a Response, a dict/list (JSON), a str/bytes (text) or
# None (204). It may raise HTTPError(status, message) for a 4xx; any other exception is
# logged and answered with 500, and the server keeps running. A Response body may be an
# iterable of str/bytes chunks (CSV rows, JSON pieces). Every body, whole or not, is
# copied to the socket through one 512-byte buffer per connection: a whole str/bytes body
# and an iterable one that fits the buffer get a Content-Length, a longer iterable one is
# streamed until the connection closes; a dict/list answer is encoded piece by piece
# (http_response.json_chunks), never as one string.
# Requests are parsed by http_request.py, answers built by http_response.py; both are
# re-exported here.
#
# Bounds, so no client can exhaust the 64 KB heap or stall metering: the request line
# (414), the head (431: size and header count), the body (413, from Content-Length,
# before reading it; 411 without one), a deadline for the head (head_timeout_s, 2 s) well
# under the one for the whole request (timeout_s, 5 s; 408 at either: slow-drip clients
# are cut off) and one for the answer (timeout_s). Connections: at most max_connections
# at once, and a slow client cannot hold them: when a client arrives and every slot is
# taken, the connection that has waited longest on its own client (still sending its
# head, then its body, then not reading its answer) is evicted with a 408, so a newcomer
# finds a slot. A head that has arrived but is not read yet (a loaded plug is behind, its
# client is not) keeps its slot, and so does a client connected less than _FRESH_MS ago
# that has sent nothing yet; a newcomer that finds only those and handlers running gets
# 503 (no reading). Malformed requests get 400, unknown paths 404, wrong methods 405. One request
# per connection (Connection: close).
#
# Memory: about 1 KB of heap per open connection. Deadlines are kept by one sweeper task
# (every _SWEEP_MS) that cancels what is late, not by a timer task around every read, and
# the accept loop is the server's own, so a MemoryError costs the one connection it
# happened on (asyncio.start_server's loop would end on it, and the server with it).
import asyncio
import gc
import json
import select
import sys
import time

from micropython import const

from plug import iobuf
from plug.http_request import REASONS, HTTPError, Request, parse_head, parse_query, unquote
from plug.http_response import (CSV, JSON, TEXT, Response, csv_lines, error_response,
                                json_response, text_response)

__all__ = ("Server", "Response", "HTTPError", "Request", "json_response", "text_response",
           "error_response", "csv_lines", "parse_query", "unquote", "JSON", "TEXT", "CSV")

_CHUNK = const(256)
_BUF = const(512)  # the answer's buffer, one per connection: iobuf.SIZE
_LINGER_MS = const(200)
_LINGER_BYTES = const(16384)
_SWEEP_MS = const(100)  # how often deadlines are checked
_FRESH_MS = const(500)  # a connection this new that has sent nothing yet is not evicted
# what a connection is doing; the lower, the sooner it is evicted for a newcomer
_HEAD = const(0)  # waiting for the client's request head
_BODY = const(1)  # waiting for the body
_SEND = const(2)  # waiting for the client to take the answer (or lingering after it)
_BUSY = const(3)  # running its handler: never cut off
# cut off (its task ends at its next step): past its deadline or evicted before its
# answer (both told why with a 408), or while answering (just closed)
_LATE = const(4)
_EVICTED = const(5)
_QUIET = const(6)


def _arrived(sock):
    """True if bytes from the client wait unread on `sock`."""
    p = select.poll()
    p.register(sock, select.POLLIN)
    return bool(p.poll(0))


class _Body:
    """A streamed request body: `await readinto(mv)` fills at most len(mv) bytes and
    returns how many, 0 at its end (or when the client closed early). `left`: bytes still
    to come. Each read must arrive within the server's timeout_s (408 otherwise); while
    it waits the connection counts as sending its body, between reads as busy."""

    def __init__(self, srv, conn, reader, rest, length):
        self.srv = srv
        self.conn = conn
        self.r = reader
        self.rest = rest  # what arrived with the head
        self.left = length

    async def readinto(self, mv):
        n = min(len(mv), self.left)
        if not n:
            return 0
        if self.rest:
            n = min(n, len(self.rest))
            mv[:n] = self.rest[:n]
            self.rest = self.rest[n:]
        else:
            c = self.conn
            c[1], c[3] = _BODY, time.ticks_add(time.ticks_ms(), self.srv.timeout_ms)
            n = await self.r.readinto(mv[:n] if n < len(mv) else mv)
            c[1] = _BUSY
            if not n:
                self.left = 0
                return 0
        self.left -= n
        return n


def _log(msg):
    # through the REPL's log (it prints around a serial session) where it is loaded, as
    # on the plug; never loaded just for this (16 KB of heap)
    repl = sys.modules.get("plug.repl")
    (repl.log if repl else print)(msg)


class Server:
    def __init__(self, max_request_bytes=4096, max_connections=4, timeout_s=5,
                 max_line=512, max_head=2048, log=None, head_timeout_s=2):
        self.max_body = max_request_bytes
        self.max_connections = max_connections
        self.timeout_ms = int(timeout_s * 1000)
        self.head_ms = min(self.timeout_ms, int(head_timeout_s * 1000))
        self.max_line = max_line
        self.max_head = max_head
        self.log = log or _log
        self.routes = {}
        self.active = 0
        # per connection: [start ticks_ms, phase, task, deadline ticks_ms]; the sweeper
        # cuts off what is past its deadline, _evict() what a newcomer needs
        self._conns = []
        self.stats = {"requests": 0, "responses_2xx": 0, "responses_4xx": 0,
                      "responses_5xx": 0, "rejected": 0,
                      "timeouts": 0, "handler_errors": 0, "evicted": 0}
        self._sock = None
        self._tasks = ()

    def route(self, method, path, handler, stream=False):
        """stream=True: the body is not read before the handler runs (nor bounded by
        max_request_bytes); the handler reads it from req.stream (_Body) and bounds it."""
        self.routes.setdefault(path, {})[method] = (handler,) if stream else handler

    async def start(self, host="0.0.0.0", port=80, backlog=4):
        import socket

        ai = socket.getaddrinfo(host, port)[0]
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(ai[-1])
        s.listen(backlog)
        s.setblocking(False)
        self._sock = s
        self._tasks = (asyncio.create_task(self._accept(s)), asyncio.create_task(self._sweep()))
        return self

    def close(self):
        for t in self._tasks:
            t.cancel()
        self._tasks = ()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- connections --------------------------------------------------------------------

    async def _accept(self, s):
        # Our own accept loop (not asyncio.start_server's), so that a full heap costs the
        # one connection it happened on instead of ending the loop and with it the server.
        listening = asyncio.StreamReader(s)
        while True:
            await listening.read(0)  # returns once a connection waits to be accepted
            c = None
            try:
                c = s.accept()[0]
                c.setblocking(False)
                st = asyncio.StreamReader(c)
                asyncio.create_task(self._serve(st, st))
                c = st = None  # the connection's task holds them; this frame waits on
            except (OSError, MemoryError) as e:  # e.g. the client gave up; no room
                if isinstance(e, MemoryError):
                    self.stats["rejected"] += 1
                if c is not None:
                    c.close()
                c = st = None
                gc.collect()
                await asyncio.sleep_ms(10)  # e.g. out of sockets: do not spin on it

    async def _sweep(self):
        # Cut off every connection past its deadline (head, request, answer, linger):
        # one task for all of them instead of a timer around every read.
        while True:
            await asyncio.sleep_ms(_SWEEP_MS)
            now = time.ticks_ms()
            i = 0
            while i < len(self._conns):
                c = self._conns[i]
                if c[1] < _BUSY and time.ticks_diff(now, c[3]) >= 0:
                    if c[1] < _SEND:
                        self.stats["timeouts"] += 1
                    self._cut(c, _LATE)  # removes it from the list
                else:
                    i += 1
            c = None  # else this frame keeps a finished request (body, answer) till the next

    def _evict(self):
        """Make room for a newcomer: cut off the connection that has waited longest on its
        client, in the order head (a part of one before none yet), body, answer; never one
        running its handler. True if one was."""
        victim = vrank = None
        now = time.ticks_ms()
        for c in self._conns:
            if c[1] >= _BUSY:
                continue
            if c[1] == _HEAD and (_arrived(c[4]) or not c[5] and
                                  time.ticks_diff(now, c[0]) < _FRESH_MS):
                continue  # a head waiting to be read (the plug is behind, not its client),
                # or a client just connected, about to send
            rank = c[1] * 2 + (c[1] == _HEAD and not c[5])
            if victim is None or rank < vrank or (
                    rank == vrank and time.ticks_diff(c[0], victim[0]) < 0):
                victim, vrank = c, rank
        if victim is None:
            return False
        self.stats["evicted"] += 1
        self._cut(victim, _EVICTED)
        return True

    def _cut(self, conn, why):
        # its slot is free at once; its task ends at its next step (CancelledError)
        conn[1] = why if conn[1] < _SEND else _QUIET
        self._drop(conn)
        conn[2].cancel()

    def _drop(self, conn):
        for i, c in enumerate(self._conns):
            if c is conn:
                del self._conns[i]
                self.active -= 1
                return

    def _say(self, writer, status, message, extra=""):
        # a short answer without waiting (the socket's buffer takes it), best effort
        body = json.dumps({"error": message})
        try:
            writer.s.write(("HTTP/1.1 %d %s\r\nConnection: close\r\n%sContent-Type: %s\r\n"
                            "Content-Length: %d\r\n\r\n%s" % (
                                status, REASONS[status], extra, JSON, len(body), body)).encode())
        except (OSError, AttributeError, MemoryError):
            pass

    # -- one connection ---------------------------------------------------------------

    async def _read_head(self, reader, conn):
        buf = b""
        while True:
            nl = buf.find(b"\n")
            if nl > self.max_line or (nl < 0 and len(buf) > self.max_line):
                raise HTTPError(414, "request line longer than %d bytes" % self.max_line)
            end, sep = buf.find(b"\r\n\r\n"), 4
            if end < 0:
                end, sep = buf.find(b"\n\n"), 2
            if end > self.max_head or (end < 0 and len(buf) > self.max_head):
                raise HTTPError(431, "request head longer than %d bytes" % self.max_head)
            if end >= 0:
                return buf[:end], buf[end + sep:]
            data = await reader.read(_CHUNK)
            if not data:
                if buf.strip():
                    raise HTTPError(400, "connection closed inside the request head")
                return None, None
            buf += data
            conn[5] = True  # a head begun: a trickle is evicted before a client yet to send

    async def _read_request(self, reader, conn):
        head, rest = await self._read_head(reader, conn)
        if head is None:
            return None, 0
        conn[1], conn[3] = _BODY, time.ticks_add(conn[0], self.timeout_ms)
        method, path, query, version, headers = parse_head(head)
        handler = self._handler(method, path)
        if "transfer-encoding" in headers:
            raise HTTPError(411, "chunked bodies are not accepted; send Content-Length")
        cl = headers.get("content-length")
        if cl is None:
            if method in ("POST", "PUT", "PATCH"):
                raise HTTPError(411, "Content-Length is required")
            length = 0
        else:
            if not cl.isdigit() or len(cl) > 9:
                raise HTTPError(400, "invalid Content-Length")
            length = int(cl)
            if length > self.max_body and type(handler) is not tuple:
                raise HTTPError(413, "body larger than %d bytes" % self.max_body)
        if type(handler) is tuple:  # a streamed route: its handler reads the body
            req = Request(method, path, query, version, headers, b"")
            req.handler = handler[0]
            req.stream = _Body(self, conn, reader, rest[:length], length)
            return req, 0
        body = rest[:length]
        while len(body) < length:
            data = await reader.read(min(_CHUNK * 4, length - len(body)))
            if not data:
                raise HTTPError(400, "connection closed before the end of the body")
            body += data
        req = Request(method, path, query, version, headers, body)
        req.handler = handler
        return req, len(rest) - len(body)

    def _handler(self, method, path):
        methods = self.routes.get(path)
        if methods is None:
            raise HTTPError(404, "no such resource: %s" % path)
        handler = methods.get(method)
        if handler is None and method == "HEAD":
            handler = methods.get("GET")
        if handler is None:
            allow = ", ".join(sorted(methods))
            raise HTTPError(405, "method not allowed; use " + allow, {"Allow": allow})
        return handler

    async def _dispatch(self, req):
        r = req.handler(req)
        if hasattr(r, "send") and not isinstance(r, Response):  # a coroutine
            r = await r
        if isinstance(r, Response):
            return r
        if r is None:
            return Response(b"", 204)
        if isinstance(r, (dict, list)):
            return json_response(r)
        if isinstance(r, (str, bytes)):
            return text_response(r)
        raise TypeError("handler for %s returned %s" % (req.path, type(r).__name__))

    async def _write(self, writer, data):
        writer.write(data.encode() if isinstance(data, str) else data)
        await writer.drain()

    async def _head(self, writer, resp, length):
        lines = ["HTTP/1.1 %d %s" % (resp.status, REASONS.get(resp.status, "Status")),
                 "Connection: close"]
        hs = resp.headers  # a handler's own Cache-Control and Content-Length win (the page)
        if "Cache-Control" not in hs:
            lines.append("Cache-Control: no-store")
        if resp.status != 204:
            lines.append("Content-Type: " + resp.content_type)
        if length is not None and resp.status not in (204, 304) and "Content-Length" not in hs:
            lines.append("Content-Length: %d" % length)
        for k in resp.headers:
            lines.append("%s: %s" % (k, resp.headers[k]))
        await self._write(writer, "\r\n".join(lines) + "\r\n\r\n")

    async def _respond(self, writer, resp, head_only):
        # Every body goes through one _BUF-byte buffer (a str or bytes body in slices, an
        # iterable body piece by piece). A whole body is sent with its Content-Length, an
        # iterable one too if it fits the buffer; a longer one is streamed (Connection:
        # close ends it). Nothing here allocates more than the buffer, whatever the size.
        body = resp.body
        if resp.status == 204:
            await self._head(writer, resp, None)
            return
        known = None  # the length of a whole body
        if isinstance(body, (bytes, str, bytearray)):
            known = len(memoryview(body))  # a str's UTF-8 length (MicroPython)
            body = (body,)
        buf = iobuf.SERVER.take()
        try:
            await self._send(writer, resp, head_only, body, known, buf)
        finally:
            iobuf.SERVER.give(buf)

    async def _send(self, writer, resp, head_only, body, known, buf):
        mv = memoryview(buf)
        n = 0  # bytes in buf
        sent = False  # the head has gone (streaming)
        try:
            for piece in body:
                if not isinstance(piece, (bytes, bytearray, memoryview)):
                    piece = str(piece)
                src = memoryview(piece)  # a str's UTF-8 bytes, no copy (MicroPython)
                i, size = 0, len(src)
                while i < size:
                    if n == _BUF:
                        if not sent:
                            await self._head(writer, resp, known)
                            sent = True
                            if head_only:
                                return
                        await self._write(writer, mv)
                        n = 0
                    k = min(_BUF - n, size - i)
                    mv[n:n + k] = src[i:i + k]
                    n += k
                    i += k
                src = piece = None
        except MemoryError:  # making the body (a generator): 503 if nothing has gone yet
            if sent:
                raise
            self.stats["responses_5xx"] += 1
            self._say(writer, 503, "out of memory; try again", "Retry-After: 1\r\n")
            return
        if not sent:
            await self._head(writer, resp, n)
            if head_only:
                return
        if n:
            await self._write(writer, mv[:n])

    async def _linger(self, reader):
        # Read and drop what the client still sends (for _LINGER_MS, set as the
        # connection's deadline), so closing does not reset the connection before it
        # has read our answer.
        dropped = 0
        try:
            while dropped < _LINGER_BYTES:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                dropped += len(data)
        except Exception:  # noqa: BLE001 - best effort; MemoryError on a full heap too
            pass

    async def _serve(self, reader, writer):
        conn = None
        req = None
        unread = 0
        try:
            if self.active >= self.max_connections and not self._evict():
                self.stats["rejected"] += 1
                self._say(writer, 503, "all connections are busy; try again",
                          "Retry-After: 1\r\n")
                return
            t0 = time.ticks_ms()
            conn = [t0, _HEAD, asyncio.current_task(), time.ticks_add(t0, self.head_ms),
                    writer.s, False]
            self._conns.append(conn)
            self.active += 1
            try:
                req, unread = await self._read_request(reader, conn)
                if req is None:
                    return
                self.stats["requests"] += 1
                conn[1] = _BUSY
                resp = await self._dispatch(req)
            except HTTPError as e:
                resp = error_response(e.status, e.message)
                resp.headers = e.headers or {}
                unread = 1
            except OSError:
                return
            except MemoryError:  # a full heap is transient: the client may try again
                resp = error_response(503, "out of memory; try again")
                resp.headers = {"Retry-After": "1"}
                unread = 1
            except Exception as e:  # noqa: BLE001 - a handler bug must not stop the server
                self.stats["handler_errors"] += 1
                self._log_exc("%s %s" % (req.method, req.path) if req else "request", e)
                resp = error_response(500, "internal error; see the plug's log")
            if resp.status >= 500:
                self.stats["responses_5xx"] += 1
            elif resp.status >= 400:
                self.stats["responses_4xx"] += 1
            else:  # /metrics: plug_http_responses_total by class
                self.stats["responses_2xx"] += 1
            conn[1], conn[3] = _SEND, time.ticks_add(time.ticks_ms(), self.timeout_ms)
            try:
                await self._respond(writer, resp, req is not None and req.method == "HEAD")
            except OSError:
                return
            except Exception as e:  # noqa: BLE001 - e.g. a failing streamed body
                self.log("[http] writing the answer to %s failed: %r"
                         % (req.path if req else "?", e))
                return
            if unread:
                conn[3] = time.ticks_add(time.ticks_ms(), _LINGER_MS)
                await self._linger(reader)
        except asyncio.CancelledError:  # cut off by _sweep() or _evict()?
            why = conn[1] if conn else None
            if why == _LATE:  # before its answer: tell it why, without waiting
                self._say(writer, 408, "request not received in time")
            elif why == _EVICTED:
                self._say(writer, 408, "too slow: evicted for a newer connection")
            elif why != _QUIET:  # not by us: pass it on
                raise
        except MemoryError:  # e.g. no room for this connection's record
            pass
        finally:
            if conn is not None:
                self._drop(conn)
            try:
                writer.s.close()
            except OSError:
                pass

    def _log_exc(self, what, e):
        import io

        s = io.StringIO()
        sys.print_exception(e, s)
        self.log("[http] %s failed: %r" % (what, e))
        for line in s.getvalue().split("\n"):
            if line:
                self.log("[http]   " + line)
