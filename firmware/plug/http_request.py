# HTTP request parsing for the plug's server (firmware/plug/server.py): the request
# line, headers, percent-decoding and query strings. Everything malformed raises
# HTTPError with the status to answer (400, 414, 431, 505) and a message a person can
# act on.
from micropython import const

from plug import jsonlimit

MAX_HEADERS = const(32)

REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
            304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
            408: "Request Timeout", 409: "Conflict",
            411: "Length Required", 413: "Content Too Large", 414: "URI Too Long",
            422: "Unprocessable Content", 431: "Request Header Fields Too Large",
            500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
            505: "HTTP Version Not Supported"}


class HTTPError(Exception):
    """Raise from a handler to answer `status` with a JSON {"error": message}."""

    def __init__(self, status, message=None, headers=None):
        message = message or REASONS.get(status, "error")
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.headers = headers


class Request:
    def __init__(self, method, path, query, version, headers, body):
        self.method = method
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.body = body

    def json(self):
        """The body parsed as JSON; HTTPError 400 if it is not JSON or nests deeper
        than plug/jsonlimit.py allows."""
        try:
            return jsonlimit.loads(self.body, len(self.body))
        except ValueError as e:
            raise HTTPError(400, "request body refused: %s" % e)


def unquote(s, plus=False):
    """Percent-decode (and '+' -> ' ' in query strings); HTTPError 400 if malformed."""
    if "%" not in s and not (plus and "+" in s):
        return s
    out = bytearray()
    b = s.encode()
    i = 0
    while i < len(b):
        c = b[i]
        if c == 37:  # %
            hexd = b[i + 1:i + 3]
            if len(hexd) != 2 or not all(ch in b"0123456789abcdefABCDEF" for ch in hexd):
                raise HTTPError(400, "malformed percent-escape in URL")
            out.append(int(hexd, 16))
            i += 3
            continue
        out.append(32 if (plus and c == 43) else c)
        i += 1
    try:
        return out.decode()
    except UnicodeError:
        raise HTTPError(400, "URL is not valid UTF-8")


def parse_query(qs):
    """'a=1&b=x+y' -> {'a': '1', 'b': 'x y'} (the last of repeated names wins)."""
    q = {}
    if not qs:
        return q
    parts = qs.split("&")
    if len(parts) > MAX_HEADERS:
        raise HTTPError(414, "too many query parameters")
    for part in parts:
        if part:
            k, _, v = part.partition("=")
            q[unquote(k, True)] = unquote(v, True)
    return q


def _token(s):
    if not s:
        return False
    for ch in s:
        if ch <= " " or ch >= "\x7f" or ch in '()<>@,;:\\"/[]?={}':
            return False
    return True


def parse_head(head):
    """Request line and headers from the head bytes (without the blank line)."""
    try:
        text = head.decode()
    except UnicodeError:
        raise HTTPError(400, "request head is not valid text")
    lines = text.split("\n")
    parts = lines[0].rstrip("\r").split(" ")
    if len(parts) != 3 or not _token(parts[0]) or not parts[0].isupper():
        raise HTTPError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        if version.startswith("HTTP/") and len(version) == 8 and version[5].isdigit():
            raise HTTPError(505, "only HTTP/1.0 and HTTP/1.1 are served")
        raise HTTPError(400, "malformed HTTP version")
    if target.startswith("http://"):
        target = "/" + target[7:].partition("/")[2]
    if not target.startswith("/"):
        raise HTTPError(400, "request target must be a path")
    for ch in target:
        if ch < "!" or ch > "~":
            raise HTTPError(400, "invalid character in URL")
    path, _, qs = target.partition("?")
    path = unquote(path.partition("#")[0])
    query = parse_query(qs.partition("#")[0])
    headers = {}
    if len(lines) - 1 > MAX_HEADERS:
        raise HTTPError(431, "more than %d header lines" % MAX_HEADERS)
    for line in lines[1:]:
        line = line.rstrip("\r")
        name, sep, value = line.partition(":")
        if not sep or not _token(name):
            raise HTTPError(400, "malformed header line")
        name = name.lower()
        value = value.strip()
        if name in headers and name in ("content-length", "host", "transfer-encoding"):
            if headers[name] != value:
                raise HTTPError(400, "conflicting %s headers" % name)
        headers[name] = value
    return method, path, query, version, headers
