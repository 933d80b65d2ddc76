# Local control over HTTP: GET /switch (open, like every read) and POST /switch, which
# needs the owner's control token.
#
#   POST /switch  Authorization: Bearer <token>   {"channel": "M1/A", "on": false}
#   -> 200 {"channel": "M1/A", "relay": true, "on": false, ...}
# The signed config holds only the token's SHA-256 (control.token_sha256), so neither
# the flash nor /status gives the token away. The request's token is hashed and the two
# digests compared in constant time. The scheme is case-insensitive (RFC 7235). No token
# configured, none sent or a wrong one: 401 and nothing changes; a malformed body or an
# unknown channel: 400; switching on an output held off by over-temperature or a cut for
# non-payment: 409 naming the reason (outputs.HeldOff), nothing changes.
import hashlib
import binascii

from plug.server import HTTPError

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="plug"'}


def same(a, b):
    """a == b for two byte strings, in a time that does not depend on where they differ."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0


def authorized(token_sha256, header):
    """Whether an Authorization header carries the token whose SHA-256 (hex) is given."""
    if not token_sha256 or not header or header[:7].lower() != "bearer ":
        return False
    got = binascii.hexlify(hashlib.sha256(header[7:].strip().encode()).digest())
    return same(got, token_sha256.encode())


def get_switch(plug, req):
    return {"outputs": plug.outputs()}


def post_switch(plug, req):
    tok = plug.cfgm.config["control"]["token_sha256"]
    if not authorized(tok, req.headers.get("authorization")):
        raise HTTPError(401, "switching needs 'Authorization: Bearer <control token>'; the "
                        "owner's signed config sets its SHA-256 (control.token_sha256)"
                        if not tok else "missing or wrong control token", _CHALLENGE)
    body = req.json()
    if not isinstance(body, dict) or set(body) != {"channel", "on"}:
        raise HTTPError(400, 'body must be {"channel": "M1/A", "on": true|false}')
    if not isinstance(body["channel"], str):
        raise HTTPError(400, "channel must be a string such as \"M1/A\"")
    from plug.outputs import HeldOff

    try:
        st = plug.switch(body["channel"], body["on"], "http")
    except HeldOff as e:
        raise HTTPError(409, str(e))
    except ValueError as e:
        raise HTTPError(400, str(e))
    out = {"channel": body["channel"]}
    out.update(st)
    return out
