# What the plug's HTTP server (firmware/plug/server.py) answers with: a Response (status,
# content type, extra headers, and a body of bytes/str or an iterable of str/bytes chunks),
# JSON and text answers, the JSON error body {"error": message}, and CSV lines (RFC 4180
# quoting) for a streamed body.
#
# Memory: no answer is ever built as one string. A JSON answer is a generator of small
# pieces (json_chunks: the exact text json.dumps gives, a key and its scalar value or a
# small container at a time, long strings in slices), which the server copies through
# one small buffer per connection; a body that fits that buffer is sent with its
# Content-Length, a longer one streamed until the connection closes.
import json

from micropython import const

from plug.http_request import REASONS

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
CSV = "text/csv; charset=utf-8"


class Response:
    def __init__(self, body=b"", status=200, content_type=TEXT, headers=None):
        self.body = body
        self.status = status
        self.content_type = content_type
        self.headers = headers or {}


_STR = const(64)  # longer strings are encoded in slices of this many characters
_SMALL = const(6)  # a container of at most this many short scalars is encoded whole


def _small(obj):
    """True if json.dumps(obj) is certainly short: few items, no containers, no long
    strings (keys included)."""
    if len(obj) > _SMALL:
        return False
    for k in obj:
        v = obj[k] if isinstance(obj, dict) else k
        if isinstance(v, (dict, list, tuple)) or (isinstance(v, str) and len(v) > _STR + 8):
            return False
        if isinstance(k, str) and len(k) > _STR // 2:
            return False
    return True


def _leaf(v):
    if isinstance(v, str) and len(v) > _STR:
        return None  # streamed by _str_chunks
    return json.dumps(v)


def _str_chunks(s):
    yield '"'
    for i in range(0, len(s), _STR):
        yield json.dumps(s[i:i + _STR])[1:-1]  # escaping is per character
    yield '"'


def json_chunks(obj):
    """json.dumps(obj) as a generator of small strings (the same text, piece by piece):
    a key with its scalar value, a small container whole, long strings in slices."""
    if isinstance(obj, (dict, list, tuple)):
        if _small(obj):
            yield json.dumps(obj)
            return
        d = isinstance(obj, dict)
        sep = "{" if d else "["
        for k in obj:
            v = obj[k] if d else k
            if d:
                sep += json.dumps(k if isinstance(k, str) else str(k)) + ": "
            s = None if isinstance(v, (dict, list, tuple)) else _leaf(v)
            if s is None:
                yield sep
                yield from json_chunks(v)
            else:
                yield sep + s
            sep = ", "
        yield "}" if d else "]"
    elif isinstance(obj, str) and len(obj) > _STR:
        yield from _str_chunks(obj)
    else:
        yield json.dumps(obj)


def json_response(obj, status=200):
    """A JSON answer, streamed from json_chunks(obj) (small ones still get a
    Content-Length: see the header)."""
    return Response(json_chunks(obj), status, JSON)


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
