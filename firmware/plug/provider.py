# The energy provider: its descriptor, fetched over HTTP and checked against the
# owner's config before the plug bills or pays by it (tariff.py keeps the rates).
#
# Provider descriptor (JSON at config["provider"]["url"]):
#   {"name": "Example Energy", "payee": "0x...", "chain_id": 31337,
#    "currency": "native" | {"address": "0x...", "decimals": 6, "symbol": "EURC"},
#    "rates": {"url": "http://...", "format": "native"|"octopus"|"awattar"|"energy-charts"},
#    "quote_signer": "0x..."}           (required for the native format)
# The payee must be in config["provider"]["approved_payees"], the chain id must be the
# configured chain's and a token must be in approved_tokens; the fiat formats need a
# token (a 1:1 fiat-backed stablecoin). A refused descriptor is reported and the last
# approved provider stays in force (tariff.py: when a new provider takes effect).
#
# HTTP (plug.http_client): a fetch blocks the plug's event loop while it waits, so each
# one is a single operation with ONE total deadline, FETCH_DEADLINE_S (4 s: connect, TLS
# handshake, request and the whole reply; only the name lookup is outside it), checked
# after every chunk read, and a quiet peer is given up after FETCH_TIMEOUT_S (2 s)
# without a byte. At most 40 header lines and 4 KB of headers, no redirects, at most
# MAX_BODY bytes. The tariff's rates refresh (Octopus pages included), the descriptor
# and the config pull URL (app.py) are one such operation each. Rates and descriptors
# are read in pieces of <= 512 B and parsed as one stream (no block the size of a reply).
from plug import rates

FETCH_TIMEOUT_S = 2  # seconds without a byte before a quiet peer is given up
FETCH_DEADLINE_S = 4  # seconds for one whole fetch: the longest the event loop waits

try:
    from time import ticks_ms as ms_now
except ImportError:  # CPython (host tools): as plug.http_client counts
    import time

    def ms_now():
        return int(time.monotonic() * 1000)

_FORMATS = ("native", "octopus", "awattar", "energy-charts")
_ECONNRESET = 104  # errno on Linux, lwIP (the ESP32) and MicroPython's unix port


class TariffError(Exception):
    """A provider or rates reply the plug refuses; the message says why."""


def _addr(v, what):
    if not isinstance(v, str) or len(v) != 42 or v[:2] not in ("0x", "0X"):
        raise TariffError("descriptor: %s must be a 0x address, got %r" % (what, v))
    try:
        int(v[2:], 16)
    except ValueError:
        raise TariffError("descriptor: %s is not hex: %r" % (what, v))
    return v


def _approved(addr, approved):
    return addr.lower() in [a.lower() for a in approved]


def check_descriptor(d, provider_cfg, chain_id):
    """The descriptor as the plug keeps it, or TariffError naming the refused field:
    {"name", "payee", "token" (None = native), "decimals", "symbol", "rates_url",
     "format", "signer"}."""
    if not isinstance(d, dict):
        raise TariffError("descriptor: not a JSON object")
    name = d.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        raise TariffError("descriptor: name must be a string of 1..64 characters")
    payee = _addr(d.get("payee"), "payee")
    if not _approved(payee, provider_cfg.get("approved_payees", ())):
        raise TariffError("descriptor: payee %s is not approved by the owner" % payee)
    cid = d.get("chain_id")
    if type(cid) is not int or cid != chain_id:
        raise TariffError("descriptor: chain id %r is not the configured chain %d"
                          % (cid, chain_id))
    cur = d.get("currency")
    if cur == "native":
        token, decimals, symbol = None, 18, "native"
    elif isinstance(cur, dict):
        token = _addr(cur.get("address"), "currency.address")
        if not _approved(token, provider_cfg.get("approved_tokens", ())):
            raise TariffError("descriptor: token %s is not approved by the owner" % token)
        decimals, symbol = cur.get("decimals"), cur.get("symbol")
        if type(decimals) is not int or not 0 <= decimals <= 36:
            raise TariffError("descriptor: currency.decimals must be an integer 0..36")
        if not isinstance(symbol, str) or not 0 < len(symbol) <= 11:
            raise TariffError("descriptor: currency.symbol must be 1..11 characters")
    else:
        raise TariffError("descriptor: currency must be \"native\" or "
                          "{address, decimals, symbol}")
    rt = d.get("rates")
    if not isinstance(rt, dict):
        raise TariffError("descriptor: rates must be {url, format}")
    url, fmt = rt.get("url"), rt.get("format")
    if not isinstance(url, str) or len(url) > 200 or not (url.startswith("http://")
                                                         or url.startswith("https://")):
        raise TariffError("descriptor: rates.url must be an http(s) URL")
    if fmt not in _FORMATS:
        raise TariffError("descriptor: rates.format %r is not one of %s"
                          % (fmt, ", ".join(_FORMATS)))
    if fmt != "native" and token is None:
        raise TariffError("descriptor: %s prices are fiat; settle in an approved stablecoin" % fmt)
    signer = d.get("quote_signer")
    if fmt == "native" or signer is not None:
        signer = _addr(signer, "quote_signer")
    return {"name": name, "payee": payee, "chain_id": cid, "token": token,
            "decimals": decimals, "symbol": symbol, "rates_url": url, "format": fmt,
            "signer": signer}


def check_token_decimals(d, decimals_of):
    """TariffError unless the descriptor's token has the decimals it claims on chain
    (decimals_of(address) -> int, e.g. Chain.erc20_decimals). Native: nothing to read."""
    tok = d["token"]
    if tok is None:
        return
    try:
        got = decimals_of(tok)
    except Exception as e:  # node away or not a token: the claim is unchecked
        raise TariffError("descriptor: cannot read decimals() of token %s (%s)" % (tok, e))
    if got != d["decimals"]:
        raise TariffError("descriptor: token %s has %d decimals on chain, the descriptor "
                          "says %d" % (tok, got, d["decimals"]))


def _lower(v):
    return v.lower() if isinstance(v, str) else v


def same_provider(a, b):
    """True if descriptors a and b are one provider: same payee, chain, token, decimals,
    quote signer and rates format (name, symbol and rates URL may differ)."""
    for k in ("payee", "token", "signer"):
        if _lower(a.get(k)) != _lower(b.get(k)):
            return False
    # a descriptor kept before chain_id was recorded is of the configured chain
    ca, cb = a.get("chain_id"), b.get("chain_id")
    if ca is not None and cb is not None and ca != cb:
        return False
    return a.get("decimals") == b.get("decimals") and a.get("format") == b.get("format")


def http_get(url, limit=rates.MAX_BODY, timeout=FETCH_TIMEOUT_S, deadline_s=FETCH_DEADLINE_S,
             since=None, chunks=False):
    """Body of a 200 reply, at most `limit` bytes, all of it within `deadline_s` seconds
    (connect to the last byte) of ms_now() `since` (default: now), or TariffError.
    chunks=True: the body as a list of pieces of <= 512 B (for get_json; no block the
    size of a rates reply)."""
    from plug import http_client

    if since is None:
        since = ms_now()
    for again in (False, True):
        try:  # several requests of one operation share its deadline (since: when it began)
            status, body = http_client.request(
                "GET", url, timeout_s=timeout, deadline_ms=int(deadline_s * 1000),
                max_body_bytes=limit, start_ms=since, chunks=chunks)
            break
        except http_client.ReplyError as e:
            raise TariffError("reply from %s refused: %s" % (url, e))
        except OSError as e:
            # a GET is safe to send again: once, within the same deadline, after the
            # server reset the connection (a busy server's accept queue, a NAT's restart)
            if again or not e.args or e.args[0] != _ECONNRESET:
                raise TariffError("no reply from %s (%s)" % (url, e))
        except ValueError as e:
            raise TariffError("cannot fetch %s: %s" % (url, e))
    if 300 <= status < 400:
        raise TariffError("HTTP %d from %s: redirect refused (configure the final URL)"
                          % (status, url))
    if status != 200:
        raise TariffError("HTTP %d from %s" % (status, url))
    return body


def get_json(get, url):
    """The JSON of get(url) (bytes, or a list of chunks: parsed as one stream), or
    TariffError."""
    body = get(url)
    from plug import iobuf, jsonlimit

    try:
        try:  # size and nesting before the parser and the rate parsers recurse
            jsonlimit.check(body, rates.MAX_BODY)
        except ValueError as e:
            raise TariffError("JSON from %s refused: %s" % (url, e))
        try:
            return jsonlimit.parse(body)
        except ValueError:
            raise TariffError("malformed JSON from %s" % url)
        except (RuntimeError, MemoryError):  # nesting too deep for the parser or the heap
            raise TariffError("JSON from %s is nested too deeply" % url)
    finally:
        iobuf.CLIENT.give_all(body)  # a reply read in pieces (plug/iobuf.py)
