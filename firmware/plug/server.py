# The plug's HTTP/1.0-1.1 server on asyncio, small and hard to knock over.
#
#   srv = Server(max_request_bytes=cfg["server"]["max_request_bytes"])
#   srv.route("GET", "/status", lambda req: {"ok": True})           # dict/list -> JSON
#   srv.route("GET", "/metrics", lambda req: text_response(
#       plug.prometheus.prometheus(families), content_type=PROMETHEUS))
#   srv.route("POST", "/config", handler)        # handler(req) or async handler(req)
#   await srv.start("0.0.0.0", cfg["server"]["port"])
#
# A handler gets a Request (method, path, query dict, headers dict with lower-case names,
# body bytes, json()) and returns a Response, a dict/list (JSON), a str/bytes (text) or
# None (204). It may raise HTTPError(status, message) for a 4xx; any other exception is
# logged and answered with 500, and the server keeps running. A Response body may be an
# iterable of str/bytes chunks (CSV rows): it is streamed without Content-Length.
#
# Bounds, so no client can exhaust the 64 KB heap or stall metering: the request line
# (414), the head (431: size and header count), the body (413, from Content-Length,
# before reading it; 411 without one), concurrent connections (503 beyond the limit, no
# reading), and a deadline for the whole request (408: slow-drip clients are cut off)
# and for every write. Malformed requests get 400, unknown paths 404, wrong methods 405.
# One request per connection (Connection: close).
import asyncio
import json
import sys
import time

from micropython import const

from plug.http_request import REASONS, HTTPError, Request, parse_head, parse_query, unquote
from plug.prometheus import CONTENT_TYPE as PROMETHEUS

__all__ = ("Server", "Response", "HTTPError", "Request", "json_response", "text_response",
           "error_response", "csv_lines", "parse_query", "unquote", "PROMETHEUS", "JSON",
           "TEXT", "CSV")

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
CSV = "text/csv; charset=utf-8"

_CHUNK = const(256)
_LINGER_MS = const(200)
_LINGER_BYTES = const(16384)


def _log(msg):
    try:
        from plug.repl import log
    except ImportError:
        log = print
    log(msg)


class Response:
    def __init__(self, body=b"", status=200, content_type=TEXT, headers=None):
        self.body = body
        self.status = status
        self.content_type = content_type
        self.headers = headers or {}


def json_response(obj, status=200):
    return Response(json.dumps(obj), status, JSON)


def text_response(text, status=200, content_type=TEXT):
    return Response(text, status, content_type)


def error_response(status, message=None):
    return json_response({"error": message or REASONS.get(status, "error")}, status)


def _csv_field(v):
    s = "" if v is None else str(v)
    if "," in s or '"' in s or "\n" in s or "\r" in s:
        s = '"' + s.replace('"', '""') + '"'
    return s


def csv_lines(header, rows):
    """CSV text as a generator of lines (RFC 4180 quoting), for a streamed Response."""
    if header:
        yield ",".join(_csv_field(v) for v in header) + "\r\n"
    for row in rows:
        yield ",".join(_csv_field(v) for v in row) + "\r\n"


class Server:
    def __init__(self, max_request_bytes=4096, max_connections=4, timeout_s=5,
                 max_line=512, max_head=2048, log=None):
        self.max_body = max_request_bytes
        self.max_connections = max_connections
        self.timeout_ms = int(timeout_s * 1000)
        self.max_line = max_line
        self.max_head = max_head
        self.log = log or _log
        self.routes = {}
        self.active = 0
        self.stats = {"requests": 0, "responses_4xx": 0, "responses_5xx": 0, "rejected": 0,
                      "timeouts": 0, "handler_errors": 0}
        self._server = None

    def route(self, method, path, handler):
        self.routes.setdefault(path, {})[method] = handler

    async def start(self, host="0.0.0.0", port=80, backlog=4):
        self._server = await asyncio.start_server(self._serve, host, port, backlog)
        return self

    def close(self):
        if self._server is not None:
            self._server.close()
            self._server = None

    # -- one connection ---------------------------------------------------------------

    def _left(self, deadline):
        left = time.ticks_diff(deadline, time.ticks_ms())
        if left <= 0:
            raise asyncio.TimeoutError()
        return left

    async def _read(self, reader, n, deadline):
        return await asyncio.wait_for_ms(reader.read(n), self._left(deadline))

    async def _read_head(self, reader, deadline):
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
            data = await self._read(reader, _CHUNK, deadline)
            if not data:
                if buf.strip():
                    raise HTTPError(400, "connection closed inside the request head")
                return None, None
            buf += data

    async def _read_request(self, reader, deadline):
        head, rest = await self._read_head(reader, deadline)
        if head is None:
            return None, 0
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
            if length > self.max_body:
                raise HTTPError(413, "body larger than %d bytes" % self.max_body)
        body = rest[:length]
        while len(body) < length:
            data = await self._read(reader, min(_CHUNK * 4, length - len(body)), deadline)
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

    async def _write(self, writer, data, deadline):
        writer.write(data.encode() if isinstance(data, str) else data)
        await asyncio.wait_for_ms(writer.drain(), self._left(deadline))

    async def _respond(self, writer, resp, head_only):
        deadline = time.ticks_add(time.ticks_ms(), self.timeout_ms)
        body = resp.body
        whole = isinstance(body, (bytes, str, bytearray))
        if isinstance(body, str):
            body = body.encode()
        lines = ["HTTP/1.1 %d %s" % (resp.status, REASONS.get(resp.status, "Status")),
                 "Connection: close", "Cache-Control: no-store"]
        if resp.status != 204:
            lines.append("Content-Type: " + resp.content_type)
        if whole and resp.status != 204:
            lines.append("Content-Length: %d" % len(body))
        for k in resp.headers:
            lines.append("%s: %s" % (k, resp.headers[k]))
        await self._write(writer, "\r\n".join(lines) + "\r\n\r\n", deadline)
        if head_only or resp.status == 204:
            return
        if whole:
            if body:
                await self._write(writer, body, deadline)
            return
        buf = bytearray()  # coalesce small chunks (CSV rows) into fewer socket writes
        for chunk in body:
            buf += chunk.encode() if isinstance(chunk, str) else chunk
            if len(buf) >= _CHUNK * 2:
                await self._write(writer, buf, deadline)
                buf = bytearray()
        if buf:
            await self._write(writer, buf, deadline)

    async def _linger(self, reader):
        # Read and drop what the client still sends, so closing does not reset the
        # connection before it has read our answer.
        deadline = time.ticks_add(time.ticks_ms(), _LINGER_MS)
        dropped = 0
        try:
            while dropped < _LINGER_BYTES:
                data = await self._read(reader, _CHUNK, deadline)
                if not data:
                    break
                dropped += len(data)
        except Exception:  # noqa: BLE001 - best effort; MemoryError on a full heap too
            pass

    async def _serve(self, reader, writer):
        if self.active >= self.max_connections:
            self.stats["rejected"] += 1
            try:
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
                             b"Retry-After: 1\r\nContent-Length: 0\r\n\r\n")
                await asyncio.wait_for_ms(writer.drain(), 1000)
            except (asyncio.TimeoutError, OSError):
                pass
            await self._close(writer)
            return
        self.active += 1
        req = None
        unread = 0
        try:
            deadline = time.ticks_add(time.ticks_ms(), self.timeout_ms)
            try:
                req, unread = await self._read_request(reader, deadline)
                if req is None:
                    return
                self.stats["requests"] += 1
                resp = await self._dispatch(req)
            except HTTPError as e:
                resp = error_response(e.status, e.message)
                resp.headers = e.headers or {}
                unread = 1
            except asyncio.TimeoutError:
                self.stats["timeouts"] += 1
                resp = error_response(408, "request not received in time")
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
            try:
                await self._respond(writer, resp, req is not None and req.method == "HEAD")
            except (asyncio.TimeoutError, OSError):
                return
            except Exception as e:  # noqa: BLE001 - e.g. a failing streamed body
                self.log("[http] writing the answer to %s failed: %r"
                         % (req.path if req else "?", e))
                return
            if unread:
                await self._linger(reader)
        finally:
            self.active -= 1
            await self._close(writer)

    def _log_exc(self, what, e):
        import io

        s = io.StringIO()
        sys.print_exception(e, s)
        self.log("[http] %s failed: %r" % (what, e))
        for line in s.getvalue().split("\n"):
            if line:
                self.log("[http]   " + line)

    async def _close(self, writer):
        try:
            writer.close()
            await writer.wait_closed()
        except OSError:
            pass
