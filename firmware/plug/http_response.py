# What the plug's HTTP server (firmware/plug/server.py) answers with: a Response (status,
# content type, extra headers, and a body of bytes/str or an iterable of str/bytes chunks
# that is streamed without Content-Length), JSON and text answers, the JSON error body
# {"error": message}, and CSV lines (RFC 4180 quoting) for a streamed body.
import json

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
