# The plug's native rate quote: prices as decimal strings, signed by the provider's
# quote key. Reply shape (JSON):
#
#   {"format": "plug-rates/1", "chain_id": 31337, "currency": "native" | "0x<token>",
#    "decimals": 18, "issued": <unix s>,
#    "intervals": [{"start": <unix s>, "end": <unix s>, "price": "0.000125"}, ...],
#    "signature": "0x<65 bytes r||s||v>"}
#
# `price` is the rate in whole currency units per kWh (ETH, or whole tokens), a plain
# decimal string with at most `decimals` decimals, so it converts to base units exactly.
#
# Canonical body (what the signature covers) -- ASCII lines, each ending in "\n":
#
#   plug-rates/1
#   chain_id=<decimal>
#   currency=<"native" or the token address as 0x + 40 lowercase hex>
#   decimals=<decimal>
#   issued=<decimal unix seconds>
#   <start>,<end>,<price>          one line per interval, in the reply's order,
#                                  price exactly as the string in the reply
#
# The signature is EIP-191 personal_sign ("\x19Ethereum Signed Message:\n" + length +
# body) by the quote signer named in the provider descriptor; eth.recover_message
# checks it on the plug. Chain id and currency are inside the signed body, so a quote
# cannot be replayed onto another chain or token; `issued` lets the plug refuse a
# quote older than the newest one it accepted.
from plug.rates import RateError, check_schedule, decimal_units, from_unix

FORMAT = "plug-rates/1"


def canonical(q):
    """The bytes the quote key signs, built from a parsed reply (see module header)."""
    out = ["%s\nchain_id=%d\ncurrency=%s\ndecimals=%d\nissued=%d\n"
           % (FORMAT, q["chain_id"], q["currency"].lower(), q["decimals"], q["issued"])]
    for iv in q["intervals"]:
        out.append("%d,%d,%s\n" % (iv["start"], iv["end"], iv["price"]))
    return "".join(out).encode()


def _int(q, name):
    v = q.get(name)
    if type(v) is not int or v < 0:
        raise RateError("native rates: %s must be a non-negative integer" % name)
    return v


def parse(q, chain_id, currency, decimals, signer, cap=None, recover=None):
    """Checked schedule [[start, end, rate_per_kwh], ...] (plug time, base units) and the
    quote's `issued` time (Unix seconds).

    `currency` is "native" or the token address; `signer` the descriptor's quote
    signer address. `recover(msg, sig) -> address` defaults to eth.recover_message.
    """
    if not isinstance(q, dict):
        raise RateError("native rates: reply is not a JSON object")
    if q.get("format") != FORMAT:
        raise RateError("native rates: format must be %r" % FORMAT)
    if _int(q, "chain_id") != chain_id:
        raise RateError("native rates: quote is for chain %r, not %d"
                        % (q.get("chain_id"), chain_id))
    cur = q.get("currency")
    if not isinstance(cur, str) or cur.lower() != currency.lower():
        raise RateError("native rates: quote is in currency %r, not %s" % (cur, currency))
    if _int(q, "decimals") != decimals:
        raise RateError("native rates: quote has %r decimals, the currency has %d"
                        % (q.get("decimals"), decimals))
    issued = _int(q, "issued")
    ivs = q.get("intervals")
    if not isinstance(ivs, list):
        raise RateError("native rates: intervals must be a list")
    sched = []
    for iv in ivs:
        if not isinstance(iv, dict):
            raise RateError("native rates: each interval must be an object")
        if not isinstance(iv.get("price"), str):
            raise RateError("native rates: price must be a decimal string")
        s, e = _int(iv, "start"), _int(iv, "end")
        sched.append([from_unix(s), from_unix(e),
                      decimal_units(iv["price"], decimals, "native rates: price")])
    sig = q.get("signature")
    if not isinstance(sig, str) or len(sig) != 132 or sig[:2] != "0x":
        raise RateError("native rates: signature must be 0x + 65 bytes hex")
    import binascii

    try:
        raw = binascii.unhexlify(sig[2:])
    except ValueError:
        raise RateError("native rates: signature is not hex")
    if recover is None:
        from eth import recover_message as recover
    try:
        who = recover(canonical(q), raw)
    except ValueError as e:
        raise RateError("native rates: bad signature (%s)" % e)
    if who.lower() != signer.lower():
        raise RateError("native rates: signed by %s, not by the provider's quote signer %s"
                        % (who, signer))
    check_schedule(sched, cap, "native rates")
    return sched, issued
