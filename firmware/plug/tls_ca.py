# The CA certificates the plug checks https servers against (plug/http_client.py):
# CA_FILE on the flash, DER certificates one after another, at most MAX_CA_BYTES, as
# `plugctl deploy --ca roots.pem` writes it (a deploy restarts the plug, so it is read
# once). Loaded for https requests only.
CA_FILE = "ca.der"  # on the flash, beside main.py
MAX_CA_BYTES = 16384  # a few roots; a whole system bundle would not fit the heap


def der_certs(data):
    """The DER certificates of a CA file, one bytes each; ValueError if it is not a run
    of DER SEQUENCEs."""
    out = []
    i = 0
    while i < len(data):
        if data[i] != 0x30 or i + 2 > len(data):
            raise ValueError("not a DER certificate at byte %d" % i)
        n = data[i + 1]
        hdr = 2
        if n & 0x80:
            hdr += n & 0x7F
            if not 1 <= n & 0x7F <= 3 or i + hdr > len(data):
                raise ValueError("bad DER length at byte %d" % i)
            n = int.from_bytes(data[i + 2:i + hdr], "big")
        if i + hdr + n > len(data):
            raise ValueError("truncated DER certificate at byte %d" % i)
        out.append(data[i:i + hdr + n])
        i += hdr + n
    return out


_made = None  # (CA_FILE, context): the file is read and parsed once per boot


def context():
    """An mbedtls client context that requires a certificate chain to CA_FILE's roots."""
    global _made
    if _made is not None and _made[0] == CA_FILE:
        return _made[1]
    import tls

    try:
        with open(CA_FILE, "rb") as f:
            data = f.read(MAX_CA_BYTES + 1)
    except OSError:
        raise OSError("https: no CA certificates on the plug (%s): the server cannot be "
                      "checked, so nothing is sent" % CA_FILE)
    if len(data) > MAX_CA_BYTES:
        raise OSError("https: %s is over %d bytes" % (CA_FILE, MAX_CA_BYTES))
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_REQUIRED
    try:
        certs = der_certs(data)
        for c in certs:
            ctx.load_verify_locations(c)
    except ValueError as e:
        raise OSError("https: %s is not usable: %s" % (CA_FILE, e))
    if not certs:
        raise OSError("https: %s holds no certificate" % CA_FILE)
    _made = (CA_FILE, ctx)
    return ctx
