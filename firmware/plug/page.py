# GET / : the owner's page (firmware/www/index.html), served from the flash as the build
# gzipped it (www/index.html.gz: tools/build_mpy makes it, plugctl deploy and a release
# bring it; with the frozen firmware it is copied like board.json). Imported when / is
# first asked for.
#
#   200  Content-Encoding: gzip, text/html, ETag "<CRC-32 and length of the page>" (the
#        gzip trailer's 8 bytes, so it changes with the page), Cache-Control: no-cache (the
#        browser asks again with If-None-Match and gets a 304 with no body)
#   406  a client that does not take gzip (no Accept-Encoding, or one without gzip, or
#        gzip;q=0): every browser takes it, and inflating on the plug would need the
#        compressor's whole window (32 KB for gzip -9) on the heap
#   503  the page is not on the flash (the API still answers)
# The body is read in _READ-byte pieces into one buffer and handed to the server as a
# generator of memoryviews (the server copies each into its own buffer before the next);
# a 304 never reads the page.
import os
import sys
from binascii import hexlify

from micropython import const

from plug.server import HTTPError, Response

# the page of the software running: a release runs from its slot (main.py puts slot/a or
# slot/b first on sys.path; plug/slots.py), a plug deployed over serial from the root
PATH = "www/index.html.gz"
if sys.path and sys.path[0][:5] == "slot/":
    PATH = sys.path[0] + "/" + PATH
_READ = const(512)
HTML = "text/html; charset=utf-8"


def _gzip_ok(accept):
    """Whether an Accept-Encoding value takes gzip (RFC 9110 12.5.3: gzip, x-gzip or *,
    with no q=0)."""
    for item in (accept or "").split(","):
        parts = item.split(";")
        name = parts[0].strip().lower()
        if name not in ("gzip", "x-gzip", "*"):
            continue
        q = "1"
        for p in parts[1:]:
            p = p.strip().lower()
            if p[:2] == "q=":
                q = p[2:].strip()
        try:
            if float(q) > 0:
                return True
        except ValueError:
            pass
    return False


def _chunks(size):
    buf = bytearray(_READ)
    mv = memoryview(buf)
    with open(PATH, "rb") as f:  # one left half read (a HEAD, a client gone) is closed
        while size > 0:  # by its finaliser at the next collection
            n = f.readinto(buf)
            if not n:
                break
            n = min(n, size)
            size -= n
            yield mv[:n]


def page(req):
    if not _gzip_ok(req.headers.get("accept-encoding")):
        raise HTTPError(406, "this page is sent gzip-compressed only: use a browser, or "
                        "curl --compressed; the data is at /status, /ledger and /metrics",
                        {"Vary": "Accept-Encoding"})
    try:
        size = os.stat(PATH)[6]
        with open(PATH, "rb") as f:
            f.seek(size - 8)
            trailer = f.read(8)  # CRC-32 and length of the page
    except (OSError, ValueError):
        raise HTTPError(503, "the page is not on the flash (%s): plugctl deploy puts it "
                        "there; on frozen firmware copy build/esp32/firmware/www/index.html.gz"
                        " to :www/ (README)" % PATH)
    if len(trailer) != 8:
        raise HTTPError(503, "%s is damaged: copy it again" % PATH)
    tag = '"%s"' % hexlify(trailer).decode()
    headers = {"ETag": tag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    inm = req.headers.get("if-none-match") or ""
    if tag in inm or inm.strip() == "*":
        return Response((), 304, HTML, headers)
    headers["Content-Encoding"] = "gzip"
    headers["Content-Length"] = str(size)
    return Response(_chunks(size), 200, HTML, headers)
