# One HTTP/1.0 request with every wait bounded, for the RPC client and tariff fetches.
#
#   status, body = request("POST", "http://node:8545", b'{"jsonrpc": ...}',
#                          {"Content-Type": "application/json"}, timeout_s=5,
#                          deadline_ms=11000, max_body_bytes=16384)
#
# The reply is read in chunks of whatever has arrived: one wait is at most timeout_s,
# and the deadline (connect, send, headers and body together) is checked after every
# chunk (a wait ends at the deadline), so a peer that trickles bytes holds the caller
# no longer than deadline_ms. Headers: at most max_header_bytes and _MAX_LINES lines.
# Body: exactly Content-Length bytes (refused if garbage or over max_body_bytes), or up
# to EOF, at most max_body_bytes; in one bytearray, or with chunks=True as a list of
# bytearrays of 512 bytes (the last shorter), for replies read in steady state (RPC,
# rates: plug/jsonlimit.py parses the list), so none needs a block its size.
# No redirects (a 3xx is returned as its status), no chunked or other transfer
# encodings (refused: an HTTP/1.0 request should not get one). https on MicroPython
# checks the server's certificate chain, validity dates and host name
# against the CA certificates on the flash (plug/tls_ca.py); without them https is
# refused, never sent unchecked (the clock must be set, from NTP, for the dates to
# pass). The socket is always closed.
# A refused reply raises ReplyError (an OSError); network errors and a quiet peer (no
# byte for timeout_s) raise OSError; a bad URL ValueError; no room for the reply, the
# TLS connection or the CA certificates a MemoryError saying which.
# The name lookup (getaddrinfo) is the one wait no timeout bounds.
# One operation of several requests (retries, other nodes, pages) shares one deadline:
# pass the ticks_ms() it began at as start_ms, and each request gets what is left.
# The callers' figures: plug/provider.py (fetches), plug/rpc.py (calls), plug/app.py.
import socket
import sys
import time

from plug import iobuf

try:
    from micropython import const
except ImportError:  # CPython (host tools)
    def const(x):
        return x

_MP = sys.implementation.name == "micropython"
if _MP:  # non-blocking socket, poll, read what has arrived (TLS sockets too)
    import select
    from time import ticks_diff as _diff
    from time import ticks_ms as _ms
else:  # CPython: a blocking socket with a timeout per recv
    def _ms():
        return int(time.monotonic() * 1000)

    def _diff(a, b):
        return a - b

_CHUNK = const(512)
_MAX_LINES = const(40)  # header lines after the status line
_MAX_DIGITS = const(9)  # of Content-Length
_ETIMEDOUT = const(110)
_ENOMEM = const(12)


class ReplyError(OSError):
    """A reply refused: malformed, over a limit or not complete by the deadline."""


def split_url(url):
    """(tls, host, port, host as in the URL, path) of an http:// or https:// URL."""
    if url.startswith("http://"):
        tls, rest, port = False, url[7:], 80
    elif url.startswith("https://"):
        tls, rest, port = True, url[8:], 443
    else:
        raise ValueError("%r is not an http:// or https:// URL" % (url,))
    for ch in " \r\n":  # a URL from a reply (Octopus `next`) must not add header lines
        if ch in rest:
            raise ValueError("whitespace in URL %r" % (url,))
    i = rest.find("/")
    hostport, path = (rest, "/") if i < 0 else (rest[:i], rest[i:])
    host = hostport
    if ":" in hostport:
        host, p = hostport.rsplit(":", 1)
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise ValueError("bad port in %r" % (url,))
        port = int(p)
    if not host:
        raise ValueError("no host in %r" % (url,))
    return tls, host, port, hostport, path


def _secs(ms):
    return "%d s" % (ms // 1000) if ms >= 1000 else "%d ms" % ms


class _Conn:
    def __init__(self, sock, timeout_s, start, deadline_ms):
        self.s = sock
        self.wait_ms = int(timeout_s * 1000)
        self.start = start
        self.deadline_ms = deadline_ms
        self.got = 0  # bytes received
        if _MP:
            sock.setblocking(False)
            self.poll = select.poll()
            self.poll.register(sock, select.POLLIN)

    def late(self):
        return ReplyError("not complete within %s (%d bytes so far)"
                          % (_secs(self.deadline_ms), self.got))

    def left(self):
        left = self.deadline_ms - _diff(_ms(), self.start)
        if left <= 0:
            raise self.late()
        return left

    def send(self, data):
        """Write all of data by the deadline (TLS on MicroPython: the handshake runs here)."""
        if not _MP:
            self.s.settimeout(self.wait_ms / 1000)
            self.s.sendall(data)
            return
        # POLLOUT only: a TLS socket whose handshake waits to read polls for that itself
        self.poll.modify(self.s, select.POLLOUT)
        try:
            while data:
                n = self.s.write(data)
                if n is None:  # would block, or TLS has to read first
                    if not self.poll.poll(min(self.left(), self.wait_ms)):
                        self.left()
                        raise OSError(_ETIMEDOUT)
                elif n < len(data):
                    data = memoryview(data)[n:]
                else:
                    data = None
        finally:
            self.poll.modify(self.s, select.POLLIN)

    def into(self, mv):
        """Bytes read into mv (whatever has arrived, at least one), 0 at EOF."""
        while True:
            left = self.left()
            wait = min(left, self.wait_ms)
            if _MP:
                if not self.poll.poll(wait):
                    self.left()
                    raise OSError(_ETIMEDOUT)
                n = self.s.readinto(mv)
                if n is None:  # TLS: a record not complete yet
                    continue
            else:
                self.s.settimeout(wait / 1000)
                try:
                    n = self.s.recv_into(mv)
                except OSError:
                    self.left()
                    raise
            self.got += n
            return n


def _connect(host, port, tls, wait_s):
    """(socket to use, the plain socket under it): a failed TLS handshake leaves the plain
    one open, so both are closed."""
    ctx = None
    if tls and _MP:
        from plug import tls_ca

        ctx = tls_ca.context()
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM, ai[2])
    try:
        s.settimeout(wait_s)
        s.connect(ai[-1])
        if not tls:
            return s, s
        if ctx is None:  # CPython (host tools): the system's CA store
            import ssl

            return ssl.create_default_context().wrap_socket(s, server_hostname=host), s
        s.setblocking(False)  # the handshake runs in _Conn.send, within the deadline
        try:
            return ctx.wrap_socket(s, server_hostname=host, do_handshake_on_connect=False), s
        except (OSError, MemoryError) as e:  # mbedtls' buffers: OSError ENOMEM
            if isinstance(e, OSError) and e.errno != _ENOMEM:
                raise
            raise MemoryError("https: no memory for a TLS connection (%s)" % (e,))
    except BaseException:
        s.close()
        raise


def _digits(b):
    if not b or len(b) > _MAX_DIGITS:
        return False
    for c in b:
        if not 48 <= c <= 57:
            return False
    return True


def _head(c, scratch, max_header_bytes, max_body_bytes):
    """(status, Content-Length or None, body bytes read with the headers)."""
    buf = bytearray()
    pos = used = lines = 0
    status = length = None
    while True:
        i = buf.find(b"\n", pos)
        if i < 0:
            if used + len(buf) - pos > max_header_bytes:
                raise ReplyError("header over %d bytes" % max_header_bytes)
            if pos:
                buf = buf[pos:]
                pos = 0
            n = c.into(scratch)
            if not n:
                raise ReplyError("no reply" if status is None and not buf and not used
                                 else "connection closed in the headers")
            buf.extend(scratch[:n])
            continue
        line = bytes(buf[pos:i]).rstrip(b"\r")
        used += i + 1 - pos
        pos = i + 1
        if used > max_header_bytes:
            raise ReplyError("header over %d bytes" % max_header_bytes)
        if status is None:
            parts = line.split(None, 2)
            if line[:5] != b"HTTP/" or len(parts) < 2 or len(parts[1]) != 3 or \
                    not _digits(parts[1]):
                raise ReplyError("not an HTTP reply")
            status = int(parts[1])
            continue
        if not line:
            return status, length, buf[pos:]
        lines += 1
        if lines > _MAX_LINES:
            raise ReplyError("more than %d header lines" % _MAX_LINES)
        k = line.find(b":")
        if k < 1:
            raise ReplyError("malformed header line")
        name = line[:k].strip().lower()
        value = line[k + 1:].strip()
        if name == b"content-length":
            if not _digits(value) or (length is not None and length != int(value)):
                raise ReplyError("bad Content-Length")
            length = int(value)
            if length > max_body_bytes:
                raise ReplyError("reply of %d bytes is over the %d byte limit"
                                 % (length, max_body_bytes))
        elif name == b"transfer-encoding" and value.lower() != b"identity":
            raise ReplyError("Transfer-Encoding not supported")


def _body(c, rest, length, cap):
    if length is None:  # up to EOF: 2 KB first, then room for the cap in one step
        got = len(rest)
        buf = bytearray(max(got, min(cap + 1, 2048)))
        buf[:got] = rest
        while True:
            if got == len(buf):
                if got > cap:
                    raise ReplyError("reply is over the %d byte limit" % cap)
                big = bytearray(cap + 1)
                big[:got] = buf
                buf = big
            n = c.into(memoryview(buf)[got:])
            if not n:
                buf[got:] = b""
                return buf
            got += n
    buf = bytearray(length)
    got = min(len(rest), length)
    buf[:got] = rest[:got]
    mv = memoryview(buf)
    while got < length:
        n = c.into(mv[got:])
        if not n:
            raise ReplyError("truncated reply: %d of %d bytes" % (got, length))
        got += n
    return buf


class Reply:
    """A reply's body as it arrives (request(..., stream=True)), within the request's
    waits and deadline: readinto(mv) -> bytes read (0 at the end: Content-Length reached,
    or EOF; a body cut short just ends early), then close()."""

    def __init__(self, c, rest, length, socks):
        self.c = c
        self.rest = memoryview(rest)  # what came with the headers
        self.left = length  # None: until EOF
        self.socks = socks

    def readinto(self, mv):
        n = len(mv) if self.left is None else min(len(mv), self.left)
        if not n:
            return 0
        if len(self.rest):
            k = min(n, len(self.rest))
            mv[:k] = self.rest[:k]
            self.rest = self.rest[k:]
        else:
            k = self.c.into(mv[:n])
        if self.left is not None:
            self.left -= k
        return k

    def close(self):
        for s in self.socks:
            s.close()


def _pieces(r, cap):
    """The body read from Reply r as a list of buffers of _CHUNK bytes from plug/iobuf.py
    (the last one a shorter copy): no block the size of the reply (plug/jsonlimit.py
    parses such a list); the caller gives them back (iobuf.CLIENT.give_all) once parsed."""
    out = []
    got = 0
    buf = None
    try:
        while True:
            buf = iobuf.CLIENT.take()
            mv = memoryview(buf)
            k = 0
            while k < _CHUNK:
                n = r.readinto(mv[k:])
                if not n:
                    break
                k += n
                got += n
                if got > cap:  # only without a Content-Length (_head bounds one)
                    raise ReplyError("reply is over the %d byte limit" % cap)
            if k < _CHUNK:
                if r.left:
                    raise ReplyError("truncated reply: %d of %d bytes" % (got, got + r.left))
                if k:
                    out.append(bytes(mv[:k]))
                mv = None
                iobuf.CLIENT.give(buf)
                return out
            out.append(buf)
            buf = None
    except BaseException:
        iobuf.CLIENT.give(buf)
        iobuf.CLIENT.give_all(out)
        raise


def request(method, url, body=None, headers=None, timeout_s=5, deadline_ms=None,
            max_header_bytes=4096, max_body_bytes=16384, start_ms=None, stream=False,
            chunks=False):
    """(status, body as a bytearray); deadline_ms defaults to 2 * timeout_s + 1 s, counted
    from start_ms (a ticks_ms() value; default: now). chunks=True: the body as a list of
    bytearrays of at most 512 bytes (the same bounds and errors), for the replies read in
    steady state (RPC, rates), so none asks for a block the size of the reply.
    stream=True: (status, Reply), the body left to read (max_body_bytes bounds its
    Content-Length) and the caller to close it."""
    start = _ms() if start_ms is None else start_ms
    if deadline_ms is None:
        deadline_ms = int((2 * timeout_s + 1) * 1000)
    tls, host, port, hostport, path = split_url(url)
    head = "%s %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n" % (method, path, hostport)
    for k, v in (headers or {}).items():
        head += "%s: %s\r\n" % (k, v)
    if isinstance(body, str):
        body = body.encode()
    if body is not None:
        head += "Content-Length: %d\r\n" % len(body)
    data = (head + "\r\n").encode()
    # connect waits what is left (at least 1 ms: past the deadline, send() refuses)
    left = deadline_ms - _diff(_ms(), start)
    s, raw = _connect(host, port, tls, max(0.001, min(timeout_s * 1000, left) / 1000))
    kept = None
    try:
        c = _Conn(s, timeout_s, start, deadline_ms)
        try:
            c.send(data)
        except ValueError as e:  # mbedtls refused the server's certificate
            raise OSError("https: certificate of %s refused: %s" % (host, str(e).strip()))
        if body:  # apart from the head: no block the size of both
            c.send(body)
        data = body = None
        if stream:  # the Reply keeps what came with the head: its own buffer
            status, length, rest = _head(c, memoryview(bytearray(_CHUNK)), max_header_bytes,
                                         max_body_bytes)
            kept = Reply(c, rest, length, (s, raw))
            return status, kept
        scratch = iobuf.CLIENT.take()
        length = None
        try:
            status, length, rest = _head(c, memoryview(scratch), max_header_bytes,
                                         max_body_bytes)
            if chunks:
                return status, _pieces(Reply(c, rest, length, ()), max_body_bytes)
            return status, _body(c, rest, length, max_body_bytes)
        except MemoryError as e:
            raise MemoryError("no room for a reply of %s bytes (%s)"
                              % (length if length is not None else "up to %d" % max_body_bytes, e))
        finally:
            rest = None
            iobuf.CLIENT.give(scratch)
    finally:
        if kept is None:
            s.close()
            raw.close()
